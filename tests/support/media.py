"""Small real media files for tests: a PNG image and a WAV clip, written on demand."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_png(path: Path, width: int = 320, height: int = 240) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(path)
    return path


def write_wav(path: Path, seconds: float = 1.0, rate: int = 16_000) -> Path:
    import soundfile

    t = np.arange(int(seconds * rate)) / rate
    soundfile.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate)
    return path

"""Reading the image and audio files a user attaches, checked at the boundary (CLI, UI)."""

from __future__ import annotations

import io
import mimetypes
from pathlib import Path

from arena.errors import MediaError
from backends.base import Media

IMAGE_FORMATS = "PNG, JPEG, WebP, GIF or BMP"
AUDIO_FORMATS = "WAV, FLAC, OGG or MP3"


def read_image(path: str | Path) -> Media:
    data = _read(path, "image")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
            fmt = (image.format or "").lower()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise MediaError(
            f"{path} is not an image that can be read ({type(exc).__name__}); give a {IMAGE_FORMATS} file"
        ) from exc
    return Media(kind="image", data=data, mime=f"image/{fmt or 'octet-stream'}", name=Path(path).name)


def read_audio(path: str | Path) -> Media:
    data = _read(path, "audio")
    import soundfile

    try:
        info = soundfile.info(io.BytesIO(data))
    except Exception as exc:  # soundfile raises its own LibsndfileError/RuntimeError
        raise MediaError(
            f"{path} is not an audio file that can be read; give a {AUDIO_FORMATS} file"
        ) from exc
    if info.frames == 0:
        raise MediaError(f"{path} holds no audio samples; record or pick a clip with sound in it")
    mime = mimetypes.guess_type(str(path))[0] or f"audio/{info.format.lower()}"
    return Media(kind="audio", data=data, mime=mime, name=Path(path).name)


def _read(path: str | Path, what: str) -> bytes:
    file = Path(path)
    if not file.exists():
        raise MediaError(f"{what} file {path} does not exist")
    if not file.is_file():
        raise MediaError(f"{what} path {path} is not a file")
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise MediaError(f"{what} file {path} cannot be read: {exc.strerror}") from exc
    if not data:
        raise MediaError(f"{what} file {path} is empty")
    return data

"""Encoding attached media the way serving engines take it."""

from __future__ import annotations

import base64
import io
from math import gcd

from arena.errors import UnsupportedInput
from backends.base import Media

#: Gemma 4's audio feature extractor works at 16 kHz; engines resample, but sending 16 kHz mono
#: means every engine hears the same samples.
AUDIO_RATE = 16_000


def base64_text(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def data_uri(media: Media) -> str:
    """`data:<mime>;base64,...`, as OpenAI's `image_url` parts take it."""
    return f"data:{media.mime or 'application/octet-stream'};base64,{base64_text(media.data)}"


def wav_16k_mono(media: Media, variant: str) -> bytes:
    """The clip as a 16 kHz mono 16-bit PCM WAV file with a full RIFF header.

    Ollama tells audio from images by the file header (undocumented, ollama issue #15427) and
    OpenAI's `input_audio` names the format, so every clip is sent as WAV. A clip that already is
    16 kHz mono PCM WAV is sent unchanged.
    """
    import numpy as np
    import soundfile

    try:
        info = soundfile.info(io.BytesIO(media.data))
        if (info.format, info.subtype, info.samplerate, info.channels) == ("WAV", "PCM_16", AUDIO_RATE, 1):
            return media.data
        samples, rate = soundfile.read(io.BytesIO(media.data), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
        raise UnsupportedInput(
            f"{variant}: the audio clip {media.name or media.mime!r} could not be read to convert it to "
            f"16 kHz mono WAV ({type(exc).__name__}): give a WAV, FLAC, OGG or MP3 file"
        ) from exc
    mono = samples.mean(axis=1)
    if rate != AUDIO_RATE:
        from scipy.signal import resample_poly

        step = gcd(int(rate), AUDIO_RATE)
        mono = resample_poly(mono, AUDIO_RATE // step, int(rate) // step).astype(np.float32)
    out = io.BytesIO()
    soundfile.write(out, np.clip(mono, -1.0, 1.0), AUDIO_RATE, format="WAV", subtype="PCM_16")
    return out.getvalue()

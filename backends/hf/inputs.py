"""Turns a Request into what a transformers processor takes: chat messages, PIL images, 16 kHz audio."""

from __future__ import annotations

import io
from collections.abc import Sequence
from math import gcd
from typing import Any

from arena.errors import MediaError
from backends.base import Media, Request

AUDIO_RATE = 16_000  # Gemma 4's audio feature extractor works at 16 kHz mono


def chat_messages(request: Request) -> list[dict[str, Any]]:
    """The system prompt, then each earlier turn as a user message (its own attachments first, as
    Gemma's examples place them) and the variant's answer, then the new user turn. An answer is
    only its text: Gemma 4's chat template leaves earlier turns' thinking out."""
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": [{"type": "text", "text": request.system}]})
    for turn in request.history:
        messages.append(_user_message(turn.prompt, turn.images, turn.audio))
        messages.append({"role": "assistant", "content": [{"type": "text", "text": turn.answer}]})
    messages.append(_user_message(request.prompt, request.images, request.audio))
    return messages


def media_in_order(request: Request) -> tuple[list[Media], list[Media]]:
    """(images, audio clips) of every turn, oldest first: the order of their placeholders in
    `chat_messages`, which is the order the processor matches them in."""
    turns = [*((t.images, t.audio) for t in request.history), (request.images, request.audio)]
    return [m for images, _ in turns for m in images], [m for _, audio in turns for m in audio]


def _user_message(prompt: str, images: Sequence[Media], audio: Sequence[Media]) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "image"} for _ in images]
    content += [{"type": "audio"} for _ in audio]
    content.append({"type": "text", "text": prompt})
    return {"role": "user", "content": content}


def decode_image(media: Media) -> Any:
    from PIL import Image

    try:
        image = Image.open(io.BytesIO(media.data))
        image.load()
    except Exception as exc:
        raise MediaError(f"{media.name or 'image'} could not be read as an image: {exc}") from exc
    return image.convert("RGB")


def decode_audio(media: Media) -> Any:
    """Decode any format libsndfile reads (WAV, FLAC, OGG, MP3) to float32 mono at 16 kHz."""
    import numpy as np
    import soundfile

    try:
        samples, rate = soundfile.read(io.BytesIO(media.data), dtype="float32", always_2d=True)
    except Exception as exc:
        raise MediaError(f"{media.name or 'audio'} could not be read as audio: {exc}") from exc
    mono = samples.mean(axis=1)
    if rate != AUDIO_RATE:
        from scipy.signal import resample_poly

        common = gcd(int(rate), AUDIO_RATE)
        mono = resample_poly(mono, AUDIO_RATE // common, int(rate) // common).astype(np.float32)
    return mono

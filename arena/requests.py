"""Building a Request from what a user typed (CLI flags or the web form), checked at the boundary."""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Sequence
from pathlib import Path

from arena.errors import UsageError
from arena.media import read_audio, read_image
from backends.base import Media, Request, Tool

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp"}
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".webm", ".m4a"}


def parse_tools(text: str | None) -> tuple[Tool, ...]:
    """Tools from JSON: a list of OpenAI-style functions, or one. Text only, never a path: the web
    form passes what a browser typed, and a path would have the server read its own files for it
    (the CLI reads `--tools FILE` itself, `read_tools_arg`)."""
    if not text or not text.strip():
        return ()
    if not _looks_like_json(text):
        raise UsageError("tools must be JSON: a list of OpenAI-style functions, e.g. "
                         '[{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]')
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"tools is not valid JSON: {exc.msg} at line {exc.lineno}") from exc
    items = data if isinstance(data, list) else [data]
    try:
        return tuple(Tool.from_json(item) for item in items)
    except (ValueError, AttributeError, TypeError) as exc:
        raise UsageError(f"tools: {exc}") from exc


def read_tools_arg(text: str | None) -> str | None:
    """The CLI's `--tools`: JSON as it is, or the contents of the file it names."""
    if not text or _looks_like_json(text):
        return text
    path = Path(text.strip())
    if not path.is_file():
        raise UsageError(f"tools must be a JSON list of functions or a file holding one: {text.strip()} is neither")
    return path.read_text()


def _looks_like_json(text: str) -> bool:
    """A JSON list or object, as tools are given (anything else is a path, on the command line)."""
    return text.lstrip().startswith(("[", "{"))


def split_media(paths: Sequence[str | Path]) -> tuple[tuple[Media, ...], tuple[Media, ...]]:
    """Read attached files as images or audio clips, by their type."""
    images: list[Media] = []
    audio: list[Media] = []
    for path in paths:
        suffix = Path(path).suffix.lower()
        mime = mimetypes.guess_type(str(path))[0] or ""
        if suffix in IMAGE_SUFFIXES or mime.startswith("image/"):
            images.append(read_image(path))
        elif suffix in AUDIO_SUFFIXES or mime.startswith("audio/"):
            audio.append(read_audio(path))
        else:
            raise UsageError(f"{Path(path).name}: attach an image (PNG, JPEG, WebP) or audio (WAV, MP3, FLAC, OGG)")
    return tuple(images), tuple(audio)


def build_request(
    prompt: str,
    *,
    system: str | None = None,
    images: Sequence[Media] = (),
    audio: Sequence[Media] = (),
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int | None = None,
    thinking: bool = False,
    tools: str | None = None,
) -> Request:
    """A Request, or a UsageError saying which value is wrong and what to give instead."""
    if not prompt or not prompt.strip():
        raise UsageError("the prompt is empty: type the text to send")
    if max_new_tokens < 1:
        raise UsageError("max new tokens must be at least 1")
    if temperature < 0:
        raise UsageError("temperature must be 0 or more (0 decodes greedily)")
    if not 0 < top_p <= 1:
        raise UsageError("top-p must be above 0 and at most 1")
    return Request(
        prompt=prompt,
        system=system or None,
        images=tuple(images),
        audio=tuple(audio),
        max_new_tokens=int(max_new_tokens),
        temperature=float(temperature),
        top_p=float(top_p),
        seed=None if seed is None else int(seed),
        thinking=bool(thinking),
        tools=parse_tools(tools),
    )

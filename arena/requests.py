"""Building a Request from what a user typed (CLI flags or the web form), checked at the boundary."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from arena.errors import MediaError, UsageError
from arena.limits import DEFAULT_LIMITS, FLAGS, Limits, too_much
from arena.media import check_media, read_attachment, read_audio, read_image
from backends.base import Media, Request, Tool

#: What a file's name suggests, for hints before anything is sent (the UI's "cannot take audio"
#: notes). What a file is, is read from its content (`arena.media`).
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


def read_tools_arg(text: str | None, limits: Limits = DEFAULT_LIMITS) -> str | None:
    """The CLI's `--tools`: JSON as it is, or the contents of the file it names (read no further
    than one character past the limit, which `build_request` then refuses)."""
    if not text or _looks_like_json(text):
        return text
    path = Path(text.strip())
    if not path.is_file():
        raise UsageError(f"tools must be a JSON list of functions or a file holding one: {text.strip()} is neither")
    try:
        with path.open(encoding="utf-8") as stream:
            return stream.read(limits.max_tools_json_chars + 1)
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"tools file {path} cannot be read as UTF-8 text: {exc}") from exc


def _looks_like_json(text: str) -> bool:
    """A JSON list or object, as tools are given (anything else is a path, on the command line)."""
    return text.lstrip().startswith(("[", "{"))


def split_media(
    paths: Sequence[str | Path], limits: Limits = DEFAULT_LIMITS
) -> tuple[tuple[Media, ...], tuple[Media, ...]]:
    """Read attached files as images or audio clips, told apart by content, each checked against
    `limits`. `build_request(files=...)` does the same after checking the text it is sent with."""
    _check_count(len(paths), limits)
    media = [read_attachment(path, limits) for path in paths]
    return (tuple(m for m in media if m.kind == "image"), tuple(m for m in media if m.kind == "audio"))


def build_request(
    prompt: str,
    *,
    system: str | None = None,
    images: Sequence[Media | str | Path] = (),
    audio: Sequence[Media | str | Path] = (),
    files: Sequence[str | Path] = (),
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    top_p: float = 1.0,
    top_k: int | None = None,
    seed: int | None = None,
    thinking: bool = False,
    tools: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Request:
    """A Request, or a UsageError saying which value is wrong and what to give instead.

    Cheapest checks first: the prompt's length before anything else, then the other values, and
    only then are files read (`images`/`audio` as paths or Media already read, `files` told apart
    by content), each checked against `limits` from its size and header before it is decoded."""
    prompt = prompt or ""
    _check_length("the prompt", prompt, limits.max_prompt_chars, "shorten it", "max_prompt_chars")
    _check_length("the system prompt", system or "", limits.max_system_chars, "shorten it", "max_system_chars")
    _check_length("the tools JSON", tools or "", limits.max_tools_json_chars, "send fewer or shorter functions",
                  "max_tools_json_chars")
    if not prompt.strip():
        raise UsageError("the prompt is empty: type the text to send")
    tokens = _whole_number(max_new_tokens, "max new tokens")
    if tokens < 1:
        raise UsageError(f"max new tokens must be at least 1, not {tokens:,}")
    if tokens > limits.max_new_tokens_cap:
        raise UsageError(f"max new tokens must be between 1 and {limits.max_new_tokens_cap:,}, not {tokens:,}: "
                         f"ask for fewer, or raise {FLAGS['max_new_tokens_cap']}")
    if not math.isfinite(temperature) or temperature < 0:
        raise UsageError("temperature must be 0 or more (0 decodes greedily)")
    if not 0 < top_p <= 1:
        raise UsageError("top-p must be above 0 and at most 1")
    if top_k is not None:
        top_k = _whole_number(top_k, "top-k")
        if top_k < 0:
            raise UsageError(f"top-k must be 0 (no cut-off) or more, not {top_k:,}")
    if seed is not None:
        seed = _whole_number(seed, "the seed")
        if not 0 <= seed <= limits.max_seed:
            raise UsageError(f"the seed must be between 0 and {limits.max_seed:,}, not {seed:,}: pick one in range")
    parsed_tools = parse_tools(tools)
    _check_count(len(images) + len(audio) + len(files), limits)
    read_images = [_media(item, read_image, limits) for item in images]
    read_audio_clips = [_media(item, read_audio, limits) for item in audio]
    attached = [read_attachment(path, limits) for path in files]
    return Request(
        prompt=prompt,
        system=system or None,
        images=(*read_images, *(m for m in attached if m.kind == "image")),
        audio=(*read_audio_clips, *(m for m in attached if m.kind == "audio")),
        max_new_tokens=tokens,
        temperature=float(temperature),
        top_p=float(top_p),
        top_k=top_k or None,
        seed=seed,
        thinking=bool(thinking),
        tools=parsed_tools,
    )


def _check_length(what: str, text: str, limit: int, fix: str, key: str) -> None:
    if len(text) > limit:
        raise too_much(what, f"{len(text):,} characters", f"{limit:,}", fix, key)


def _check_count(count: int, limits: Limits) -> None:
    if count > limits.max_files:
        raise too_much("the request", f"{count} attached files", f"{limits.max_files}", "attach fewer",
                       "max_files", MediaError)


def _whole_number(value: Any, what: str) -> int:
    """`value` as an int: the web form's numbers may come as floats; inf, NaN or 2.5 are refused."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():  # False for inf and NaN too
        return int(value)
    raise UsageError(f"{what} must be a whole number, not {value!r}")


def _media(item: Media | str | Path, read: Callable[[str | Path, Limits], Media], limits: Limits) -> Media:
    return check_media(item, limits) if isinstance(item, Media) else read(item, limits)

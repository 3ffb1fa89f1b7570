"""Building a Request from what a user typed (CLI flags or the web form), checked at the boundary."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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


def read_text_file(path: str | Path, what: str, *, most: int | None = None, encoding: str = "utf-8") -> str:
    """The text of the file at `path` (`what` names it in errors), read no further than `most`
    characters and one more, so a caller can refuse a longer file without reading it whole.
    UsageError for a missing, unreadable or non-UTF-8 file."""
    try:
        with open(path, encoding=encoding) as stream:
            return stream.read() if most is None else stream.read(most + 1)
    except FileNotFoundError:
        raise UsageError(f"{what} does not exist") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{what} is not UTF-8 text (byte {exc.start}): save it as UTF-8") from exc
    except OSError as exc:
        raise UsageError(f"{what} cannot be read: {exc.strerror or exc}") from exc


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


@dataclass(frozen=True)
class UserTurn:
    """One user turn of a conversation read from a file: its text and its own attachments."""

    prompt: str
    images: tuple[Media, ...] = ()
    audio: tuple[Media, ...] = ()


#: How a messages file is written, for the messages that refuse one.
_MESSAGES_SHAPE = 'a JSON list of user turns, each a string or {"text": "...", "files": ["photo.png"]}'


def read_messages_file(path: str | Path, limits: Limits = DEFAULT_LIMITS) -> list[UserTurn]:
    """The user turns of a conversation in a JSON file: a list whose items are each a string (the
    text) or an object `{"text": "...", "files": [...]}`, files relative to the file's folder and
    told apart by content (`split_media`). Every item's shape and text is checked before any
    attached file is read; every refusal names the item by its number (from 1)."""
    file = Path(path)
    items = _messages_json(file, limits)
    if not isinstance(items, list):
        raise UsageError(f"messages file {file} must hold {_MESSAGES_SHAPE}, not a JSON {_json_kind(items)}")
    if not items:
        raise UsageError(f"messages file {file} holds no turns: put at least one user turn in its list")
    if len(items) > limits.max_turns:
        raise too_much(f"messages file {file}", f"{len(items)} turns", f"{limits.max_turns}",
                       "send fewer", "max_turns")
    shapes = [_turn_shape(file, number, item, limits) for number, item in enumerate(items, 1)]
    turns = []
    for number, (text, names) in enumerate(shapes, 1):
        try:
            images, audio = split_media([file.parent / name for name in names], limits)
        except UsageError as exc:
            raise type(exc)(f"turn {number} of {file}: {exc} (files are relative to the messages file's "
                            "folder)") from exc
        turns.append(UserTurn(text, images, audio))
    return turns


def _messages_json(file: Path, limits: Limits) -> Any:
    # JSON may spell one character as six (\\uXXXX): read no further than every turn at the
    # longest, escaped, could take, so a huge file is refused without being read whole.
    most = limits.max_turns * (6 * limits.max_prompt_chars + 4_096)
    text = read_text_file(file, f"messages file {file}", most=most)
    if len(text) > most:
        raise too_much(f"messages file {file}", f"more than {most:,} characters", f"{most:,}",
                       "send fewer or shorter turns", "max_turns")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"messages file {file} is not valid JSON: {exc.msg} at line {exc.lineno}; "
                         f"write {_MESSAGES_SHAPE}") from exc


def _turn_shape(file: Path, number: int, item: Any, limits: Limits) -> tuple[str, list[str]]:
    """(text, file names) of one item, checked: the text's length first, nothing read yet."""
    where = f"turn {number} of {file}"
    text: Any = item
    names: Any = []
    if isinstance(item, dict):
        unknown = sorted(set(item) - {"text", "files"})
        if unknown:
            raise UsageError(f"{where} has {', '.join(map(repr, unknown))}: a turn takes only 'text' and 'files'")
        text, names = item.get("text"), item.get("files", [])
        if not isinstance(text, str):
            has = "none" if "text" not in item else f"a JSON {_json_kind(text)}"
            raise UsageError(f"{where} needs a 'text' string, and has {has}")
        if not isinstance(names, list) or not all(isinstance(name, str) and name for name in names):
            raise UsageError(f"{where}: 'files' must be a list of file names, e.g. [\"photo.png\", \"clip.wav\"]")
    elif not isinstance(item, str):
        raise UsageError(f"{where} is a JSON {_json_kind(item)}; each turn is a string or "
                         '{"text": "...", "files": [...]}')
    _check_length(where, text, limits.max_prompt_chars, "shorten it", "max_prompt_chars")
    if not text.strip():
        raise UsageError(f"{where} is empty: give the text to send")
    if len(names) > limits.max_files:
        raise too_much(where, f"{len(names)} attached files", f"{limits.max_files}", "attach fewer", "max_files",
                       MediaError)
    return text, names


def _json_kind(value: Any) -> str:
    """How JSON names the type of a parsed value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    kinds: dict[type, str] = {str: "string", list: "list", dict: "object"}
    return kinds.get(type(value), type(value).__name__)

"""What one request may ask of the arena, so a single client cannot tie up the variants or the store.

Measured before these limits: a 10 MB prompt kept two workers busy 14 s, grew each by ~1.3 GB and
stored 20-38 MB per call; a 20-minute clip was silently cut to 30 s; a seed of 2**70 failed every
variant with an overflow. Each limit is checked at the boundary (`arena.requests.build_request`,
`arena.media`) before any work is done, and every refusal names the limit and the flag that sets it.

Defaults, and why:
- `max_prompt_chars` 32,000: about 8,000 tokens of English at ~4 characters a token: a long
  document with a question fits, and prefill stays seconds, not minutes, on a CPU variant. Gemma 4's
  context (128K-256K tokens) is far above what an interactive side-by-side needs.
- `max_system_chars` 8,000: instructions, not documents (~2,000 tokens).
- `max_tools_json_chars` 16,000: a dozen OpenAI-style function schemas take a few KB.
- `max_new_tokens_cap` 4,096: a long answer or a thinking trace; more is minutes per variant.
- `max_seed` 2**31 - 1: the widest seed every engine takes (torch, llama.cpp, Ollama, vLLM).
- `max_files` 8 attachments; `max_upload_bytes` 20 MiB each: a phone photo or a 30 s WAV is far less.
- `max_image_pixels` 4096 x 4096 (16.8 MP): Gemma 4's image processor shrinks every image to its
  soft-token budget (at most 1120 tokens = 1120 x 9 patches of 16 x 16 px, ~2.6 MP), so more pixels
  never reach the model; a 12 MP photo fits, and decoding stays under 50 MB of RGB (Pillow itself
  only warns at 89 MP).
- `max_audio_s` 30: Gemma 4's audio feature extractor keeps the first 480,000 samples at 16 kHz
  (30 s) and drops the rest without a word; a longer clip is refused instead, and the limit cannot
  be raised above 30 s.
- `max_turns` 20: user turns in one conversation. Every turn resends the whole history (each
  earlier prompt, its attachments and the variant's answer), so prefill grows with each turn;
  20 turns of long prompts already reach ~160,000 tokens of prompt alone.
- `max_concurrent_per_user` 2 and `max_queue` 64: enforced by the web server, not per request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from arena.errors import UsageError

#: The widest seed range every engine takes (torch and numpy take more; llama.cpp and Ollama do not).
SEED_CEILING = 2**31 - 1
#: Gemma 4's audio feature extractor keeps 480,000 samples at 16 kHz and cuts the rest.
GEMMA4_AUDIO_S = 30.0

#: Upload types by the name a user knows, each with the format names its decoder (Pillow,
#: libsndfile) reports for it. MPO is how Pillow names the JPEG files many cameras write.
IMAGE_TYPES: Mapping[str, tuple[str, ...]] = {
    "png": ("PNG",), "jpeg": ("JPEG", "MPO"), "webp": ("WEBP",), "gif": ("GIF",), "bmp": ("BMP",),
}
AUDIO_TYPES: Mapping[str, tuple[str, ...]] = {
    "wav": ("WAV", "WAVEX"), "flac": ("FLAC",), "ogg": ("OGG",), "mp3": ("MP3",),
}
MIME_TYPES: Mapping[str, str] = {
    "png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp", "gif": "image/gif", "bmp": "image/bmp",
    "wav": "audio/wav", "flac": "audio/flac", "ogg": "audio/ogg", "mp3": "audio/mpeg",
}

#: The command-line flag that sets each limit: every refusal names it, so whoever runs the arena
#: knows what to raise (`cli.limits` builds its arguments from this table).
FLAGS: Mapping[str, str] = {
    "max_prompt_chars": "--max-prompt-chars",
    "max_system_chars": "--max-system-chars",
    "max_tools_json_chars": "--max-tools-chars",
    "max_new_tokens_cap": "--max-new-tokens-cap",
    "max_seed": "--max-seed",
    "max_files": "--max-files",
    "max_upload_bytes": "--max-upload-mb",
    "image_types": "--image-types",
    "audio_types": "--audio-types",
    "max_image_pixels": "--max-image-pixels",
    "max_audio_s": "--max-audio-s",
    "max_turns": "--max-turns",
    "max_concurrent_per_user": "--max-concurrent",
    "max_queue": "--max-queue",
    "max_votes_per_minute": "--max-votes-per-minute",
}


@dataclass(frozen=True)
class Limits:
    """What one request may ask; see the module's docstring for why each default is what it is."""

    max_prompt_chars: int = 32_000
    max_system_chars: int = 8_000
    max_tools_json_chars: int = 16_000
    max_new_tokens_cap: int = 4_096
    max_seed: int = SEED_CEILING
    max_files: int = 8
    max_upload_bytes: int = 20 * 2**20
    image_types: tuple[str, ...] = tuple(IMAGE_TYPES)
    audio_types: tuple[str, ...] = tuple(AUDIO_TYPES)
    max_image_pixels: int = 4096 * 4096
    max_audio_s: float = GEMMA4_AUDIO_S
    #: User turns in one conversation (each follow-up resends the whole history).
    max_turns: int = 20
    #: Enforced by the web server: requests one user may have running at once, and requests
    #: waiting in the whole queue.
    max_concurrent_per_user: int = 2
    max_queue: int = 64
    #: Enforced by the web server: votes one user may cast in a minute. Reading two answers and
    #: deciding takes a person several seconds; a script voting without reading does not.
    max_votes_per_minute: int = 20

    @classmethod
    def from_mapping(
        cls,
        values: Mapping[str, Any],
        *,
        base: Limits | None = None,
        where: str = "",
        names: Mapping[str, str] | None = None,
    ) -> Limits:
        """`base` (the defaults) with `values` applied, each checked: an unknown key, a wrong type
        or a value out of range is a UsageError that says which and what is taken. `where` says
        where the values come from ("variant file x.toml, [limits]"); `names` how the user spelled
        each key (flags), for the messages."""
        known = [f.name for f in fields(cls)]
        prefix = f"{where}: " if where else ""
        checked: dict[str, Any] = {}
        for key, value in values.items():
            if key not in known:
                raise UsageError(f"{prefix}unknown limit {key!r}; the known ones are {', '.join(known)}")
            checked[key] = _checked(key, value, f"{prefix}{(names or {}).get(key, key)}")
        return replace(base or DEFAULT_LIMITS, **checked)


def _checked(key: str, value: Any, label: str) -> Any:
    if key in ("image_types", "audio_types"):
        return _types(value, IMAGE_TYPES if key == "image_types" else AUDIO_TYPES, label)
    if key == "max_audio_s":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise UsageError(f"{label} must be a number of seconds, not {value!r}")
        if not 0 < value <= GEMMA4_AUDIO_S:
            raise UsageError(
                f"{label} must be above 0 and at most {GEMMA4_AUDIO_S:g}: Gemma 4's audio encoder takes "
                f"{GEMMA4_AUDIO_S:g} s and would cut a longer clip"
            )
        return float(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{label} must be a whole number, not {value!r}")
    if key == "max_seed":
        if not 0 <= value <= SEED_CEILING:
            raise UsageError(f"{label} must be between 0 and {SEED_CEILING:,}, the widest range every engine takes")
    elif value < 1:
        raise UsageError(f"{label} must be at least 1, not {value}")
    return value


def _types(value: Any, allowed: Mapping[str, tuple[str, ...]], label: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [part for part in value.split(",") if part.strip()]
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
        raise UsageError(f"{label} must be a list of type names from {', '.join(allowed)}, not {value!r}")
    names = tuple(item.strip().lower().replace("jpg", "jpeg") for item in value)
    unknown = [name for name in names if name not in allowed]
    if unknown:
        raise UsageError(f"{label}: {', '.join(unknown)} cannot be read here; the types known are {', '.join(allowed)}")
    return names


def too_much(
    what: str, has: str, limit: str, fix: str, key: str, error: type[UsageError] = UsageError
) -> UsageError:
    """The one shape of every refusal: what was sent, the limit, what to do, and which flag sets it.

    "the prompt has 10,000,000 characters; at most 32,000 are taken: shorten it, or raise
    --max-prompt-chars"."""
    return error(f"{what} has {has}; at most {limit} are taken: {fix}, or raise {FLAGS[key]}")


DEFAULT_LIMITS = Limits()

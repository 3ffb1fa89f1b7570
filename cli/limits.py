"""The limits flags (`--max-prompt-chars`, `--max-upload-mb`...), shared by `serve` and `compare`.

Each flag defaults to None: unset, the variant file's `[limits]` table decides, else
`arena.limits.DEFAULT_LIMITS`. The flag names come from `arena.limits.FLAGS`, the table every
refusal message names them from.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from arena.limits import DEFAULT_LIMITS, FLAGS, Limits

MIB = 2**20


@dataclass(frozen=True)
class _Flag:
    field: str
    type: Callable[[str], Any]
    metavar: str
    help: str
    #: From what the flag takes to the field's value (MiB to bytes).
    to_value: Callable[[Any], Any] = lambda value: value
    #: Only the web server enforces it: `compare` leaves the flag out.
    serving_only: bool = False

    @property
    def dest(self) -> str:
        return f"limit_{self.field}"


def _mib(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"give a size in MiB above 0, e.g. 20 or 0.5, not {text!r}")
    return value


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


_D = DEFAULT_LIMITS
_FLAGS = (
    _Flag("max_prompt_chars", int, "N", f"longest prompt, in characters (default {_D.max_prompt_chars:,})"),
    _Flag("max_system_chars", int, "N", f"longest system prompt, in characters (default {_D.max_system_chars:,})"),
    _Flag("max_tools_json_chars", int, "N", f"longest tools JSON, in characters (default {_D.max_tools_json_chars:,})"),
    _Flag("max_new_tokens_cap", int, "N", f"most new tokens a request may ask for (default {_D.max_new_tokens_cap:,})"),
    _Flag("max_seed", int, "N", f"largest seed taken (default and most {_D.max_seed:,})"),
    _Flag("max_files", int, "N", f"most files attached to one request (default {_D.max_files})"),
    _Flag("max_upload_bytes", _mib, "MB", f"largest attached file, in MiB (default {_D.max_upload_bytes / MIB:g})",
          to_value=lambda mib: max(1, round(mib * MIB))),
    _Flag("image_types", _names, "LIST", f"image types taken (default {','.join(_D.image_types)})"),
    _Flag("audio_types", _names, "LIST", f"audio types taken (default {','.join(_D.audio_types)})"),
    _Flag("max_image_pixels", int, "N", f"most pixels in one image (default {_D.max_image_pixels:,} = 4096 x 4096)"),
    _Flag("max_audio_s", float, "S", f"longest audio clip, in seconds (default and most {_D.max_audio_s:g}: "
          "Gemma 4's audio encoder cuts the rest)"),
    _Flag("max_turns", int, "N", f"most user turns in one conversation (default {_D.max_turns})"),
    _Flag("max_concurrent_per_user", int, "N",
          f"requests one user may have running at once (default {_D.max_concurrent_per_user})", serving_only=True),
    _Flag("max_queue", int, "N", f"requests waiting in the server's queue at most (default {_D.max_queue})",
          serving_only=True),
    _Flag("max_votes_per_minute", int, "N",
          f"votes one user may cast in a minute (default {_D.max_votes_per_minute})", serving_only=True),
)


def add_limit_arguments(parser: argparse.ArgumentParser, *, serving: bool = True) -> None:
    """The limits flags, in their own help group; `serving=False` leaves out those only a server
    enforces (concurrency per user, queue size)."""
    group = parser.add_argument_group(
        "limits", "what one request may ask (unset: the variant file's [limits], else the defaults shown)"
    )
    for flag in _FLAGS:
        if serving or not flag.serving_only:
            group.add_argument(FLAGS[flag.field], dest=flag.dest, type=flag.type, metavar=flag.metavar,
                               default=None, help=flag.help)


def limits_from(args: argparse.Namespace, file_limits: Mapping[str, Any] | None) -> Limits:
    """DEFAULT_LIMITS, then the variant file's `[limits]` table, then the flags given."""
    base = Limits.from_mapping(file_limits or {}, where="the variant file's [limits]")
    given = {
        flag.field: flag.to_value(getattr(args, flag.dest))
        for flag in _FLAGS
        if getattr(args, flag.dest, None) is not None
    }
    return Limits.from_mapping(given, base=base, names=FLAGS)

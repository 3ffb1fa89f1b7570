"""The fast path of `storage.fastchat.read_battle_table`: FastChat battle lines to a ratings table.

`storage.fastchat.write_battles` puts each battle object on its own line, starting with model_a,
model_b, winner and tstamp, in that order (JSONL, or a JSON array with one item per line). For
such a file one regular-expression scan pulls those four fields out of every line at once, and
each distinct (model_a, model_b, winner) is decoded once: about ten times faster than parsing
each line with `json.loads`.

It checks that every line starts with those four fields in plain form (names without quotes,
backslashes or escapes; a numeric tstamp) and ends with `}` (or `},` in an array), and that no
line holds two objects; it does not parse the rest of each line. Anything else returns None and
the caller takes the slow path, which parses everything and reports bad lines precisely.
"""

from __future__ import annotations

import itertools
import mmap
import multiprocessing
import re
import threading
from collections import defaultdict
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from operator import itemgetter
from pathlib import Path

import numpy as np

from arena.ratings import Battles

# A name in plain form has no quote, backslash or newline; anything else (escapes, other key
# orders, a null tstamp, pretty-printed arrays) misses the pattern and goes to the slow path.
_PLAIN = rb'[^"\\\n]+'
_FIELDS = (
    rb'\{"model_a": "(' + _PLAIN + rb'", "model_b": "' + _PLAIN + rb'", "winner": "' + _PLAIN + rb')"'
    rb', "tstamp": (-?[0-9][0-9.eE+-]*)(?=[,}])'
)
_FIRST = re.compile(_FIELDS)
# A newline cannot occur inside a one-line JSON object, so every newline ends a battle. The scan
# matches at every newline: with the battle that starts there, if the line before ended as it
# should and the new one is plain, or else with empty groups, which give a bad line away. So the
# number of matches is the number of lines, and nothing needs counting on the side.
_NEXT = {
    "jsonl": re.compile(rb"\n(?:(?<=\}\n)" + _FIELDS + rb"|)"),
    "json": re.compile(rb"\n(?:(?<=\},\n)" + _FIELDS + rb"|)"),
}
_OPENING = {"jsonl": b"", "json": b"[\n"}
_CLOSINGS = {"jsonl": (b"}\n", b"}"), "json": (b"}\n]\n", b"}\n]")}
# two objects on one line (files joined without a last newline); text cannot hold it unescaped
_TWO_ON_A_LINE = re.compile(rb'\}\{"')
_SEPARATORS = (b'", "model_b": "', b'", "winner": "')
_BOM = b"\xef\xbb\xbf"


def scan_plain_layout(path: Path, winner_codes: Mapping[str, int]) -> tuple[Battles, str] | None:
    """(table, "jsonl" or "json") if every battle in the file is in the plain layout; None sends
    the caller to the slow path (also for an empty or unreadable file).

    `winner_codes` maps each FastChat winner to an outcome code of `arena.ratings.Battles`. A large
    file is scanned in two halves at once, the second in a forked process, where that is safe.
    """
    try:
        # mapped, not read: the scan then costs no copy of a file that may be hundreds of MB
        with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as view:
            layout = _layout(view)
            if layout is None:
                return None
            fmt, begin = layout
            middle = _middle(view, begin) if _can_fork() and len(view) > _PARALLEL_BYTES else None
            if middle is None:
                parts = [_scan_part(view, fmt, begin, len(view))]
            else:
                with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
                    second = pool.submit(_scan_file_part, path, fmt, middle)
                    parts = [_scan_part(view, fmt, begin, middle), second.result()]
    except (OSError, ValueError):  # an empty file cannot be mapped
        return None
    if any(part is None for part in parts):
        return None
    table = _decode_plain([part for part in parts if part is not None], winner_codes)
    return None if table is None else (table, fmt)


# Above this size the scan is split in two (the fork and the transfer cost ~0.1 s).
_PARALLEL_BYTES = 64 * 2**20

#: One part of the file: its distinct (model_a, model_b, winner) combinations, each line's
#: combination number, and each line's tstamp.
_Part = tuple[list[bytes], np.ndarray, np.ndarray]


def _layout(view: mmap.mmap) -> tuple[str, int] | None:
    """("jsonl" or "json", where the first battle starts), if the file opens and closes as
    `write_battles` writes it."""
    start = len(_BOM) if view[: len(_BOM)] == _BOM else 0
    fmt = "json" if view[start : start + 64].lstrip()[:1] == b"[" else "jsonl"
    opening = _OPENING[fmt]
    if view[start : start + len(opening)] != opening or not view[-4:].endswith(_CLOSINGS[fmt]):
        return None
    return fmt, start + len(opening)


def _middle(view: mmap.mmap, begin: int) -> int | None:
    """The newline nearest the middle of the battles: where the second half starts."""
    middle = view.find(b"\n", begin + (len(view) - begin) // 2)
    return middle if middle > begin else None


def _can_fork() -> bool:
    # A fork copies only the calling thread: safe in a one-thread program (the CLI), not in the app.
    return "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1


def _scan_file_part(path: Path, fmt: str, start: int) -> _Part | None:
    """In the forked process: the second half, from the newline at `start` to the end."""
    with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as view:
        return _scan_part(view, fmt, start, len(view))


def _scan_part(view: mmap.mmap, fmt: str, start: int, end: int) -> _Part | None:
    """The battles whose lines start in [start, end). `start` is either where the first battle
    starts or a newline; `end` is a newline or the end of the file."""
    if _TWO_ON_A_LINE.search(view, start, end):
        return None  # two objects on one line: only the slow path can say which
    matches: list[tuple[bytes, bytes]]
    if view[start : start + 1] == b"\n":
        matches = _NEXT[fmt].findall(view, start, end)
    else:
        first = _FIRST.match(view, start)
        if first is None:
            return None
        matches = [(first[1], first[2]), *_NEXT[fmt].findall(view, first.end(), end)]
    if end == len(view):
        # after the last battle come the newlines of its own line and, in an array, of the "]" line
        tail = (fmt == "json") + (view[-1:] == b"\n")
        if any(combo for combo, _ in matches[len(matches) - tail :]):
            return None
        del matches[len(matches) - tail :]
    # few distinct (model_a, model_b, winner) combinations: number them in one pass
    numbers: defaultdict[bytes, int] = defaultdict(itertools.count().__next__)
    codes = np.fromiter(map(numbers.__getitem__, map(itemgetter(0), matches)), dtype=np.intp, count=len(matches))
    if b"" in numbers:
        return None  # a line not in the plain layout (its groups are empty): the slow path says which
    try:
        tstamp = np.fromiter(map(float, map(itemgetter(1), matches)), dtype=np.float64, count=len(matches))
    except ValueError:
        return None
    return list(numbers), codes, tstamp


def _decode_plain(parts: list[_Part], winner_codes: Mapping[str, int]) -> Battles | None:
    """The table from the parts' combinations, codes and tstamps; None if a line was not plain
    after all. Each distinct combination is decoded once."""
    combos: dict[bytes, int] = {}
    codes, stamps = [], []
    for part_combos, part_codes, part_stamps in parts:
        renumber = np.array([combos.setdefault(c, len(combos)) for c in part_combos], dtype=np.intp)
        codes.append(renumber[part_codes] if len(part_codes) else part_codes)
        stamps.append(part_stamps)
    try:
        fields = [_split_combo(combo) for combo in combos]
    except ValueError:
        return None
    tstamp = np.concatenate(stamps)
    if not np.isfinite(tstamp).all() or any(
        a == b or not a.strip() or not b.strip() or winner not in winner_codes for a, b, winner in fields
    ):
        return None
    models = sorted({name for a, b, _ in fields for name in (a, b)})
    index = {name: i for i, name in enumerate(models)}
    a = np.array([index[a] for a, _, _ in fields], dtype=np.intp)
    b = np.array([index[b] for _, b, _ in fields], dtype=np.intp)
    outcome = np.array([winner_codes[winner] for _, _, winner in fields], dtype=np.int8)
    all_codes = np.concatenate(codes)
    return Battles(tuple(models), a[all_codes], b[all_codes], outcome[all_codes], tstamp)


def _split_combo(combo: bytes) -> tuple[str, str, str]:
    model_a, rest = combo.split(_SEPARATORS[0])
    model_b, winner = rest.split(_SEPARATORS[1])
    # UnicodeDecodeError is a ValueError: a name that is not UTF-8 goes to the slow path
    return model_a.decode(), model_b.decode(), winner.decode()

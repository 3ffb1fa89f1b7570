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

import mmap
import re
from collections.abc import Mapping
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

    `winner_codes` maps each FastChat winner to an outcome code of `arena.ratings.Battles`.
    """
    try:
        # mapped, not read: the scan then costs no copy of a file that may be hundreds of MB
        with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as view:
            return _scan(view, winner_codes)
    except (OSError, ValueError):  # an empty file cannot be mapped
        return None


def _scan(view: mmap.mmap, winner_codes: Mapping[str, int]) -> tuple[Battles, str] | None:
    start = len(_BOM) if view[: len(_BOM)] == _BOM else 0
    fmt = "json" if view[start : start + 64].lstrip()[:1] == b"[" else "jsonl"
    opening = _OPENING[fmt]
    if view[start : start + len(opening)] != opening or not view[-4:].endswith(_CLOSINGS[fmt]):
        return None
    first = _FIRST.match(view, start + len(opening))
    if first is None or _TWO_ON_A_LINE.search(view):
        return None
    matches = _NEXT[fmt].findall(view, first.end())
    # after the last battle come the newlines of its own line and, in an array, of the "]" line
    tail = (fmt == "json") + (view[-1:] == b"\n")
    ends = matches[len(matches) - tail :]
    del matches[len(matches) - tail :]
    matches.insert(0, first.groups())
    if any(combo for combo, _ in ends):
        return None
    table = _decode_plain(matches, winner_codes)
    return None if table is None else (table, fmt)


def _decode_plain(matches: list[tuple[bytes, bytes]], winner_codes: Mapping[str, int]) -> Battles | None:
    """The table from (combination, tstamp) per battle; None if a line was not plain after all."""
    # few distinct (model_a, model_b, winner) combinations: number them, decode each one once
    lookup = dict.fromkeys(map(itemgetter(0), matches), 0)
    if b"" in lookup:
        return None  # a line not in the plain layout (its groups are empty): the slow path says which
    for code, combo in enumerate(lookup):
        lookup[combo] = code
    codes = np.fromiter(map(lookup.__getitem__, map(itemgetter(0), matches)), dtype=np.intp, count=len(matches))
    try:
        fields = [_split_combo(combo) for combo in lookup]
        tstamp = np.fromiter(map(float, map(itemgetter(1), matches)), dtype=np.float64, count=len(matches))
    except ValueError:
        return None
    if not np.isfinite(tstamp).all() or any(
        a == b or not a.strip() or not b.strip() or winner not in winner_codes for a, b, winner in fields
    ):
        return None
    models = sorted({name for a, b, _ in fields for name in (a, b)})
    index = {name: i for i, name in enumerate(models)}
    a = np.array([index[a] for a, _, _ in fields], dtype=np.intp)
    b = np.array([index[b] for _, b, _ in fields], dtype=np.intp)
    outcome = np.array([winner_codes[winner] for _, _, winner in fields], dtype=np.int8)
    return Battles(tuple(models), a[codes], b[codes], outcome[codes], tstamp)


def _split_combo(combo: bytes) -> tuple[str, str, str]:
    model_a, rest = combo.split(_SEPARATORS[0])
    model_b, winner = rest.split(_SEPARATORS[1])
    # UnicodeDecodeError is a ValueError: a name that is not UTF-8 goes to the slow path
    return model_a.decode(), model_b.decode(), winner.decode()

"""Reading FastChat battle files: a JSON array or JSON lines, keys in any order, extra fields.

A file is a JSON array (as FastChat's `clean_battle_data.py` writes it, `json.dump(..., indent=2)`)
or JSON lines (one object per line), told apart by its first character. `storage.fastchat` says
what a battle holds; fields it does not name are read past.

Two readers:
- `read_battle_table` gives the `arena.ratings.Battles` table for the leaderboard. It decodes only
  what ratings use (model_a, model_b, winner, tstamp, anony) and keeps the battles of one mode:
  blind ones by default (named battles, `anony` false, are left out as FastChat's rating code
  does), named ones, or all. Each battle is a vote of its own: the format has no place to say
  that several battles came from one multi-way vote.
- `read_battles` gives full `BattleRecord`s (imports, and ratings of one judge's battles).

Bad lines (JSON lines, numbered from 1) or items (JSON array, indexed from 0) are reported with
the reason; `strict=True` refuses the file listing the first few, `strict=False` skips them and
says which. A JSON array that is not valid JSON as a whole cannot be read item by item and is
refused with the line and column where it breaks.

How: the file is mapped into memory (not copied) and msgspec decodes it in one call (JSON lines:
one call per 8 MB slice) into `RatedBattle` structs, skipping unknown fields without building
them and checking each field's type as it goes. Only if that fails, or a battle breaks a rule a
type cannot say (a blank name, the same variant on both sides), is the file read again entry by
entry, which finds every bad entry and its position; a good file never pays for that. The
structs become the table through C-speed maps (few distinct combinations of model_a, model_b,
winner and anony, numbered once), not a Python loop per battle. JSON lines also learn the
variant names slice by slice (see `_decoder_knowing`).

Why msgspec, measured on 1,000,000 battles on this project's 2-core benchmark machine (shared,
load average ~4 at the time): decoding JSON lines (153 MB) took 0.28 s, and the indented array
with FastChat's extra fields (549 MB) 0.45 s at 0.8 GB peak, with an import of 0.01 s. polars
needed 0.44 s to import and 0.66 s for the lines, and 10.6 s and 3.8 GB for the array; DuckDB
parsed both quickly, but fetching the name columns into Python took 0.65 s (lines) and 0.89 s
(array) after a 0.2 s import; pyarrow reads no JSON arrays. None of those reports a bad
record's position.
"""

from __future__ import annotations

import codecs
import contextlib
import itertools
import mmap
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import Any, BinaryIO, Literal

import msgspec
import numpy as np

from arena.errors import UsageError
from arena.ratings import OUTCOME_CODES, Battles
from storage.fastchat import SHOWN_PROBLEMS, WINNER_TO_OUTCOME, BattleRecord, Winner, rated_fields


class RatedBattle(msgspec.Struct, gc=False):
    """What ratings use of one battle, as decoded (unknown fields ignored). Not tracked by the
    garbage collector: a million of them would otherwise trigger collections that find nothing."""

    model_a: str
    model_b: str
    winner: Winner
    tstamp: float | None = None
    anony: bool | None = None


@dataclass(frozen=True)
class Skipped:
    """A line (JSON lines, numbered from 1) or item (JSON array, indexed from 0) left out, and why."""

    kind: str
    number: int
    reason: str

    def __str__(self) -> str:
        return f"{self.kind} {self.number}: {self.reason}"


MODES = ("blind", "named", "all")  # as storage.queries.RATING_MODES; `anony` true is blind


def check_mode(mode: str) -> str:
    """Return `mode` if it is one of MODES, else raise UsageError naming them."""
    if mode not in MODES:
        raise UsageError(f"unknown mode {mode!r}: expected one of {', '.join(MODES)}")
    return mode


def _kept(mode: str, anony: bool | None) -> bool:
    """Whether a battle with this `anony` belongs to `mode` (missing `anony` counts as blind)."""
    return mode == "all" or (anony is not False) == (mode == "blind")


@dataclass(frozen=True)
class BattleFile:
    """What `read_battles` read: the records, what was skipped, the file's format, and how many
    named (or blind) battles `of_mode` left out."""

    records: tuple[BattleRecord, ...]
    skipped: tuple[Skipped, ...]
    format: str
    named_left_out: int = 0
    blind_left_out: int = 0

    def battles(self) -> Battles:
        """The records as a ratings table."""
        return Battles.from_pairs(record.pair() for record in self.records)

    def of_mode(self, mode: str) -> BattleFile:
        """The file with the battles of `mode` only ('blind', 'named' or 'all'), the others
        counted in `named_left_out` or `blind_left_out`."""
        kept = tuple(record for record in self.records if _kept(check_mode(mode), record.anony))
        left_out = len(self.records) - len(kept)
        named, blind = (left_out, 0) if mode == "blind" else (0, left_out)
        return BattleFile(kept, self.skipped, self.format, self.named_left_out + named, self.blind_left_out + blind)

    def anonymous_only(self) -> BattleFile:
        """The file without its named battles (`anony` false), counted in `named_left_out`."""
        return self.of_mode("blind")


@dataclass(frozen=True)
class BattleTable:
    """What `read_battle_table` read. `fast` says the file was decoded in one pass (no entry
    needed looking at on its own); `named_left_out` counts the named battles not in the table
    (mode blind), `blind_left_out` the blind ones (mode named)."""

    battles: Battles
    skipped: tuple[Skipped, ...]
    format: str
    fast: bool
    named_left_out: int = 0
    blind_left_out: int = 0

    @classmethod
    def of_mode(
        cls, mode: str, battles: Battles, skipped: tuple[Skipped, ...], format: str, *, fast: bool, left_out: int
    ) -> BattleTable:
        """A table of `mode`'s battles, `left_out` the battles of the other mode."""
        named, blind = (left_out, 0) if mode == "blind" else (0, left_out)
        return cls(battles, skipped, format, fast, named_left_out=named, blind_left_out=blind)


def read_battles(path: Path | str, *, strict: bool = True) -> BattleFile:
    """Read every battle of a FastChat JSON or JSONL file as full records, named ones included
    (see the module docstring for `strict`). Raises UsageError for an unreadable or refused file."""
    path = Path(path)
    data = _read(path)
    fmt = _format_of(data)
    kind, entries = _entries(path, data, fmt)
    records, skipped = [], []
    for number, text in entries:
        try:
            records.append(BattleRecord.from_fastchat(_parse(text)))
        except ValueError as exc:
            skipped.append(Skipped(kind, number, str(exc)))
    if strict and skipped:
        raise UsageError(_refusal(path, kind, skipped, len(records)))
    return BattleFile(tuple(records), tuple(skipped), fmt)


def read_battle_table(
    path: Path | str, *, strict: bool = True, mode: str = "blind", include_named: bool = False
) -> BattleTable:
    """Read a FastChat JSON or JSONL file straight into a ratings table, checking only the fields
    ratings use (model_a, model_b, winner, tstamp, anony). Only the battles of `mode` are kept:
    'blind' (the default: named battles, `anony` false, are left out and counted), 'named' or
    'all'; `include_named=True` is the older spelling of mode 'all'."""
    path = Path(path)
    mode = "all" if include_named else check_mode(mode)
    data = _read(path)
    fmt = _format_of(data)
    decoded = _decode_whole(data, fmt)
    table = None if decoded is None else _tabulate(decoded, mode)
    if table is not None:
        return BattleTable.of_mode(mode, table[0], (), fmt, fast=True, left_out=table[1])
    kind, entries = _entries(path, data, fmt)
    good, skipped = _decode_each(entries, kind)
    if strict and skipped:
        raise UsageError(_refusal(path, kind, skipped, len(good)))
    table = _tabulate(good, mode)
    assert table is not None, "every entry has been checked"
    return BattleTable.of_mode(mode, table[0], tuple(skipped), fmt, fast=False, left_out=table[1])


# --- the file -------------------------------------------------------------------------------------------


#: A whole file: mapped (large files, no copy) or read.
_Buffer = bytes | mmap.mmap


def _read(path: Path) -> _Buffer:
    """The file's bytes, mapped into memory where possible (no copy of a file that may be
    hundreds of MB), without a UTF-8 byte order mark."""
    try:
        with path.open("rb") as file:
            try:
                data: _Buffer = _map(file)
            except (OSError, ValueError):  # empty (cannot be mapped), a pipe, ...
                data = file.read()
    except FileNotFoundError:
        raise UsageError(f"battles file {path} does not exist: check the path") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a folder: give a FastChat battles file (.json or .jsonl)") from None
    except OSError as exc:
        raise UsageError(f"cannot read battles file {path}: {exc.strerror or exc}") from None
    return data[len(codecs.BOM_UTF8) :] if data[: len(codecs.BOM_UTF8)] == codecs.BOM_UTF8 else data


def _map(file: BinaryIO) -> mmap.mmap:
    if not hasattr(mmap, "MAP_PRIVATE"):  # Windows
        return mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    # MAP_POPULATE (Linux) maps every page at once: on a 500 MB file ~0.2 s less than a fault per page
    flags = mmap.MAP_PRIVATE | getattr(mmap, "MAP_POPULATE", 0)
    return mmap.mmap(file.fileno(), 0, flags=flags, prot=mmap.PROT_READ)


def _format_of(data: _Buffer) -> str:
    return "json" if data[:4096].lstrip()[:1] == b"[" else "jsonl"


def _newlines(data: _Buffer | memoryview, end: int | None = None) -> int:
    """How many newlines the data holds (before `end`): numpy in cache-sized chunks is ~5 times
    faster than bytes.count."""
    view = np.frombuffer(data, dtype=np.uint8)[:end]
    step = 1 << 20
    return sum(int(np.count_nonzero(view[i : i + step] == ord("\n"))) for i in range(0, len(view), step))


# --- one pass: the whole file at once ---------------------------------------------------------------

_RATED = msgspec.json.Decoder(RatedBattle)
_RATED_ARRAY = msgspec.json.Decoder(list[RatedBattle])
_RAW_ARRAY = msgspec.json.Decoder(list[msgspec.Raw])
_COMBINATION = attrgetter("model_a", "model_b", "winner", "anony")
_TSTAMP = attrgetter("tstamp")
_MODEL_A, _MODEL_B = attrgetter("model_a"), attrgetter("model_b")
_CHUNK_BYTES = 8 << 20  # JSON lines are decoded this much at a time (cut at a newline)


def _decode_whole(data: _Buffer, fmt: str) -> list[RatedBattle] | None:
    """Every battle, if the whole file decodes; None sends the caller to `_decode_each`."""
    if fmt == "json":
        try:
            return _RATED_ARRAY.decode(data)
        except msgspec.DecodeError:  # also msgspec.ValidationError
            return None
    battles: list[RatedBattle] = []
    names: set[str] = set()
    named: msgspec.json.Decoder[Any] | None = None
    view = memoryview(data)
    start = 0
    while start < len(data):
        end = data.find(b"\n", start + _CHUNK_BYTES) + 1 or len(data)
        chunk = view[start:end]
        part = None
        if named is not None:
            with contextlib.suppress(msgspec.DecodeError):  # a name not seen yet, or a bad line: decoded plainly below
                part = named.decode_lines(chunk)
        if part is None:
            try:
                part = _RATED.decode_lines(chunk)
            except msgspec.DecodeError:
                return None
            seen = len(names)
            names.update(map(_MODEL_A, part), map(_MODEL_B, part))
            if len(names) > seen:
                named = _decoder_knowing(names)
        # msgspec reads two objects on one line as two battles; here a line is a battle, so the
        # counts must agree (blank lines also differ: the entry-by-entry pass takes those in stride)
        if len(part) != _newlines(chunk) + (data[end - 1 : end] != b"\n"):
            return None
        battles += part
        start = end
    return battles


def _decoder_knowing(names: set[str]) -> msgspec.json.Decoder[Any]:
    """A decoder of `RatedBattle`'s fields that takes model names only from `names`. Variant
    names repeat across a file: as a Literal each decodes to one shared string instead of a new
    one per battle, which on a million battles makes decoding ~30 % faster and numbering the
    combinations and freeing them 2-3 times faster."""
    known = Literal[tuple(sorted(names))]  # type: ignore[valid-type]
    struct = msgspec.defstruct(
        "RatedBattleOfKnownVariants",
        [
            ("model_a", known),
            ("model_b", known),
            ("winner", Winner),
            ("tstamp", float | None, None),
            ("anony", bool | None, None),
        ],
        gc=False,
    )
    return msgspec.json.Decoder(struct)


def _tabulate(battles: list[RatedBattle], mode: str) -> tuple[Battles, int] | None:
    """(the table of `mode`'s battles, battles of the other mode left out); None if a battle
    names a blank variant or the same variant twice (types cannot say that: `_decode_each` finds
    which)."""
    numbers: defaultdict[tuple[str, str, Winner, bool | None], int] = defaultdict(itertools.count().__next__)
    codes = np.fromiter(map(numbers.__getitem__, map(_COMBINATION, battles)), dtype=np.intp, count=len(battles))
    combinations = list(numbers)  # in code order
    if any(a == b or not a.strip() or not b.strip() for a, b, _, _ in combinations):
        return None
    stamps = np.fromiter(map(_TSTAMP, battles), dtype=np.float64, count=len(battles))  # None -> NaN
    keep = np.array([_kept(mode, anony) for *_, anony in combinations], dtype=bool)
    if not keep.all():
        rows = keep[codes]
        codes, stamps = codes[rows], stamps[rows]
    models = sorted({name for (a, b, _, _), kept in zip(combinations, keep, strict=True) if kept for name in (a, b)})
    index = {name: i for i, name in enumerate(models)}
    a = np.array([index.get(combo[0], 0) for combo in combinations], dtype=np.intp)
    b = np.array([index.get(combo[1], 0) for combo in combinations], dtype=np.intp)
    outcome = np.array([OUTCOME_CODES[WINNER_TO_OUTCOME[combo[2]]] for combo in combinations], dtype=np.int8)
    timed = len(stamps) > 0 and not np.isnan(stamps).all()
    table = Battles(tuple(models), a[codes], b[codes], outcome[codes], stamps if timed else None)
    return table, len(battles) - len(codes)


# --- entry by entry: positions and reasons ----------------------------------------------------------


def _entries(path: Path, data: _Buffer, fmt: str) -> tuple[str, Iterable[tuple[int, bytes | msgspec.Raw]]]:
    """("line", (line number, text) of every non-blank line) or ("item", (index, text) of every
    item of the array); the array is refused whole if it is not valid JSON."""
    if fmt == "jsonl":
        lines = (data if isinstance(data, bytes) else data[:]).split(b"\n")
        return "line", ((n, line) for n, line in enumerate(lines, start=1) if line and not line.isspace())
    try:
        items = _RAW_ARRAY.decode(data)  # each item's text, checked as JSON but not decoded yet
    except msgspec.DecodeError as exc:
        raise UsageError(_not_an_array(path, data, exc)) from None
    return "item", enumerate(items)


def _decode_each(
    entries: Iterable[tuple[int, bytes | msgspec.Raw]], kind: str
) -> tuple[list[RatedBattle], list[Skipped]]:
    good: list[RatedBattle] = []
    skipped: list[Skipped] = []
    for number, text in entries:
        try:
            battle = _RATED.decode(text)
            if battle.model_a != battle.model_b and battle.model_a.strip() and battle.model_b.strip():
                good.append(battle)
                continue
        except msgspec.DecodeError:
            pass
        try:  # again as plain JSON, to say exactly what is wrong
            good.append(RatedBattle(*rated_fields(_parse(text))))
        except ValueError as exc:
            skipped.append(Skipped(kind, number, str(exc)))
    return good, skipped


def _parse(text: bytes | msgspec.Raw) -> object:
    """One entry as plain JSON values; ValueError says how it is not JSON."""
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        raise ValueError(_json_problem(exc, bytes(text) if isinstance(text, msgspec.Raw) else text)) from None


_AT_BYTE = re.compile(r"JSON is malformed: (?P<what>.*) \(byte (?P<offset>\d+)\)")


def _json_problem(exc: msgspec.DecodeError, text: bytes) -> str:
    message = str(exc).split(" - at ")[0]
    if "UTF-8" in message:
        return "not UTF-8 text"
    found = _AT_BYTE.fullmatch(message)
    if found is None:
        return f"not valid JSON ({message[:1].lower()}{message[1:]})"
    column = len(text[: int(found["offset"])].decode(errors="replace")) + 1
    return f"not valid JSON ({found['what']} at column {column})"


def _not_an_array(path: Path, data: _Buffer, exc: msgspec.DecodeError) -> str:
    found = _AT_BYTE.fullmatch(str(exc))
    if found is None:
        where, what = "", str(exc)
    else:
        offset = int(found["offset"])
        line_start = data.rfind(b"\n", 0, offset) + 1
        column = len(data[line_start:offset].decode(errors="replace")) + 1
        line = _newlines(data, offset) + 1
        where, what = f" at line {line} column {column}", found["what"]
    return (
        f"{path} is not valid JSON{where} ({what}), so no battle in it can be read. Fix it, or write it "
        "as JSONL (one battle per line), where bad lines can be skipped."
    )


def _refusal(path: Path, kind: str, skipped: list[Skipped], good: int) -> str:
    shown = "; ".join(str(problem) for problem in skipped[:SHOWN_PROBLEMS])
    more = f"; {len(skipped) - SHOWN_PROBLEMS} more" if len(skipped) > SHOWN_PROBLEMS else ""
    return (
        f"{path}: {len(skipped)} of {len(skipped) + good} {kind}s are not usable battles ({shown}{more}). "
        f"Fix or delete those {kind}s, or read the file leniently (strict=False) to skip them."
    )

"""FastChat "clean battle" files, the lingua franca of arena analysis: read and write.

A battle is a JSON object with `model_a`, `model_b` and `winner` (`model_a | model_b | tie |
tie (bothbad)`, our outcomes a / b / tie / both_bad), and optionally `tstamp`, `question_id`,
`judge`, `anony`, `turn`, `language`, `conversation_a`, `conversation_b` ([{role, content}]).
Other fields (FastChat's `conv_metadata`, `category_tag`, ...) are read past and not kept.

A file is a JSON array or JSONL (one object per line), told apart by its first character.
Bad lines (JSONL, numbered from 1) or items (JSON array, indexed from 0) are reported with the
reason; `strict=True` refuses the file listing the first few, `strict=False` skips them and says
which. A JSON array that is not valid JSON as a whole cannot be read item by item and is refused.

Two readers: `read_battles` gives full records (exports, imports); `read_battle_table` gives the
`arena.ratings.Battles` table for the leaderboard and checks only the fields ratings use. It has
a fast path for files in the layout `write_battles` writes (each object on its own line, starting
with model_a, model_b, winner and tstamp): one regular-expression scan pulls those four fields
out of every line at once, about ten times faster than `json.loads` per line. The fast path
checks that every line starts with those fields in plain form and ends with `}`; it does not
parse the rest of each line (`storage.fastchat_scan` says exactly what it checks). Any other
file, or any surprise, takes the slow path, which parses everything and reports precisely.
"""

from __future__ import annotations

import codecs
import json
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

import numpy as np

from arena.errors import UsageError
from arena.ratings import OUTCOME_CODES, OUTCOMES, Battles, PairOutcome
from storage.fastchat_scan import scan_plain_layout

WINNERS = ("model_a", "model_b", "tie", "tie (bothbad)")
WINNER_TO_OUTCOME = dict(zip(WINNERS, OUTCOMES, strict=True))
OUTCOME_TO_WINNER = dict(zip(OUTCOMES, WINNERS, strict=True))
FORMATS = ("jsonl", "json")
SHOWN_PROBLEMS = 5

_WINNER_CHOICES = ", ".join(WINNERS)
_WINNER_CODES = {winner: OUTCOME_CODES[outcome] for winner, outcome in WINNER_TO_OUTCOME.items()}
_T = TypeVar("_T")


@dataclass(frozen=True)
class Message:
    """One turn of a conversation."""

    role: str
    content: str


@dataclass(frozen=True)
class BattleRecord:
    """One FastChat clean battle, with the winner as our outcome (a, b, tie, both_bad)."""

    model_a: str
    model_b: str
    outcome: str
    tstamp: float | None = None
    question_id: str | None = None
    judge: str | None = None
    anony: bool = False
    conversation_a: tuple[Message, ...] = ()
    conversation_b: tuple[Message, ...] = ()
    turn: int = 1
    language: str = "unknown"

    def __post_init__(self) -> None:
        self.pair()  # the same rules as a pair outcome: known outcome, two different variants
        if self.tstamp is not None and not math.isfinite(self.tstamp):
            raise ValueError(f"tstamp must be a finite number of seconds, not {self.tstamp!r}")

    def pair(self) -> PairOutcome:
        """The pairwise outcome this battle records (what ratings use)."""
        return PairOutcome(self.model_a, self.model_b, self.outcome, self.tstamp)

    def to_fastchat(self) -> dict[str, Any]:
        """The FastChat JSON object. model_a, model_b, winner and tstamp come first, always in
        that order: `read_battle_table`'s fast path relies on it."""
        return {
            "model_a": self.model_a,
            "model_b": self.model_b,
            "winner": OUTCOME_TO_WINNER[self.outcome],
            "tstamp": self.tstamp,
            "question_id": self.question_id,
            "judge": self.judge,
            "anony": self.anony,
            "turn": self.turn,
            "language": self.language,
            "conversation_a": [{"role": m.role, "content": m.content} for m in self.conversation_a],
            "conversation_b": [{"role": m.role, "content": m.content} for m in self.conversation_b],
        }

    @classmethod
    def from_fastchat(cls, obj: object) -> BattleRecord:
        """Check and convert one parsed FastChat object; ValueError says what is wrong."""
        model_a, model_b, outcome, tstamp = _rated_fields(obj)
        assert isinstance(obj, dict)  # _rated_fields has checked it
        return cls(
            model_a=model_a,
            model_b=model_b,
            outcome=OUTCOMES[outcome],
            tstamp=tstamp,
            question_id=_optional_text(obj, "question_id"),
            judge=_optional_text(obj, "judge"),
            anony=_flag(obj, "anony"),
            conversation_a=_conversation(obj, "conversation_a"),
            conversation_b=_conversation(obj, "conversation_b"),
            turn=_turn(obj),
            language=_optional_text(obj, "language") or "unknown",
        )

    @classmethod
    def coerce(cls, value: BattleRecord | Mapping[str, Any]) -> BattleRecord:
        """A record from itself or from a mapping of the same field names (`outcome`, or a
        FastChat `winner`); conversations may be lists of {role, content} dicts."""
        if isinstance(value, BattleRecord):
            return value
        outcome = value["outcome"] if "outcome" in value else WINNER_TO_OUTCOME.get(value.get("winner", ""), "")
        return cls(
            model_a=value["model_a"],
            model_b=value["model_b"],
            outcome=outcome,
            tstamp=None if value.get("tstamp") is None else float(value["tstamp"]),
            question_id=None if value.get("question_id") is None else str(value["question_id"]),
            judge=None if value.get("judge") is None else str(value["judge"]),
            anony=bool(value.get("anony", False)),
            conversation_a=tuple(_message(turn) for turn in value.get("conversation_a") or ()),
            conversation_b=tuple(_message(turn) for turn in value.get("conversation_b") or ()),
            turn=int(value.get("turn", 1)),
            language=value.get("language") or "unknown",
        )


@dataclass(frozen=True)
class Skipped:
    """A line (JSONL, numbered from 1) or item (JSON array, indexed from 0) left out, and why."""

    kind: str
    number: int
    reason: str

    def __str__(self) -> str:
        return f"{self.kind} {self.number}: {self.reason}"


@dataclass(frozen=True)
class BattleFile:
    """What `read_battles` read: the records, what was skipped, and the file's format."""

    records: tuple[BattleRecord, ...]
    skipped: tuple[Skipped, ...]
    format: str

    def battles(self) -> Battles:
        """The records as a ratings table."""
        return Battles.from_pairs(record.pair() for record in self.records)


@dataclass(frozen=True)
class BattleTable:
    """What `read_battle_table` read; `fast` says whether the fast path did it."""

    battles: Battles
    skipped: tuple[Skipped, ...]
    format: str
    fast: bool


# --- reading ----------------------------------------------------------------------------------------


def read_battles(path: Path | str, *, strict: bool = True) -> BattleFile:
    """Read every battle of a FastChat JSON or JSONL file as full records (see the module
    docstring for `strict`). Raises UsageError for an unreadable or refused file."""
    path = Path(path)
    fmt, records, skipped = _collect(path, _read_bytes(path), BattleRecord.from_fastchat, strict)
    return BattleFile(tuple(records), skipped, fmt)


def read_battle_table(path: Path | str, *, strict: bool = True) -> BattleTable:
    """Read a FastChat JSON or JSONL file straight into a ratings table, checking only the
    fields ratings use (model_a, model_b, winner, tstamp). Fast for `write_battles`' layout."""
    path = Path(path)
    scanned = scan_plain_layout(path, _WINNER_CODES)
    if scanned is not None:
        return BattleTable(scanned[0], (), scanned[1], fast=True)
    fmt, rows, skipped = _collect(path, _read_bytes(path), _rated_fields, strict)
    return BattleTable(_table(rows), skipped, fmt, fast=False)


def _read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"battles file {path} does not exist: check the path") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a folder: give a FastChat battles file (.json or .jsonl)") from None
    except OSError as exc:
        raise UsageError(f"cannot read battles file {path}: {exc.strerror or exc}") from None
    return data.removeprefix(codecs.BOM_UTF8)


def _format_of(data: bytes) -> str:
    return "json" if data.lstrip()[:1] == b"[" else "jsonl"


def _collect(
    path: Path, data: bytes, convert: Callable[[object], _T], strict: bool
) -> tuple[str, list[_T], tuple[Skipped, ...]]:
    """Convert every entry of the file; refuse it (strict) or skip and list the bad ones."""
    fmt = _format_of(data)
    kind, entries = ("line", _lines(data)) if fmt == "jsonl" else ("item", _items(path, data))
    good: list[_T] = []
    skipped: list[Skipped] = []
    for number, value, error in entries:
        if error is None:
            try:
                good.append(convert(value))
                continue
            except ValueError as exc:
                error = str(exc)
        skipped.append(Skipped(kind, number, error))
    if strict and skipped:
        raise UsageError(_refusal(path, kind, skipped, len(good)))
    return fmt, good, tuple(skipped)


def _lines(data: bytes) -> Iterator[tuple[int, object, str | None]]:
    """(line number, parsed object, None) or (line number, None, why it is not JSON)."""
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue  # blank lines, such as a last newline, are not battles
        try:
            yield number, json.loads(line), None
        except UnicodeDecodeError:
            yield number, None, "not UTF-8 text"
        except json.JSONDecodeError as exc:
            yield number, None, f"not valid JSON ({exc.msg} at column {exc.colno})"


def _items(path: Path, data: bytes) -> Iterator[tuple[int, object, str | None]]:
    try:
        items = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        where = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise UsageError(
            f"{path} is not valid JSON{where} ({getattr(exc, 'msg', exc)}), so no battle in it can be "
            "read. Fix it, or write it as JSONL (one battle per line), where bad lines can be skipped."
        ) from None
    return ((index, item, None) for index, item in enumerate(items))


def _refusal(path: Path, kind: str, skipped: list[Skipped], good: int) -> str:
    shown = "; ".join(str(problem) for problem in skipped[:SHOWN_PROBLEMS])
    more = f"; {len(skipped) - SHOWN_PROBLEMS} more" if len(skipped) > SHOWN_PROBLEMS else ""
    return (
        f"{path}: {len(skipped)} of {len(skipped) + good} {kind}s are not usable battles ({shown}{more}). "
        f"Fix or delete those {kind}s, or read the file leniently (strict=False) to skip them."
    )


# --- checking fields --------------------------------------------------------------------------------


def _rated_fields(obj: object) -> tuple[str, str, int, float | None]:
    """(model_a, model_b, outcome code, tstamp) of a parsed battle; ValueError says what is wrong."""
    if not isinstance(obj, dict):
        raise ValueError(f'not a JSON object but {_json_kind(obj)}: a battle is {{"model_a": ..., ...}}')
    model_a, model_b = _name(obj, "model_a"), _name(obj, "model_b")
    if model_a == model_b:
        raise ValueError(f"model_a and model_b are both {model_a!r}: a battle needs two different variants")
    if "winner" not in obj:
        raise ValueError(f"no winner (expected one of {_WINNER_CHOICES})")
    winner = obj["winner"]
    if not isinstance(winner, str) or winner not in WINNER_TO_OUTCOME:
        raise ValueError(f"unknown winner {winner!r} (expected one of {_WINNER_CHOICES})")
    return model_a, model_b, OUTCOME_CODES[WINNER_TO_OUTCOME[winner]], _tstamp(obj)


def _json_kind(value: object) -> str:
    kinds = {list: "an array", str: "a string", bool: "true/false", type(None): "null"}
    return kinds.get(type(value), "a number")


def _name(obj: dict[str, Any], field: str) -> str:
    if field not in obj:
        raise ValueError(f"no {field}")
    value = obj[field]
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{field} must be a variant name, not {value!r}")
    return value


def _tstamp(obj: dict[str, Any]) -> float | None:
    value = obj.get("tstamp")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"tstamp must be a number of seconds, not {value!r}")
    return float(value)


def _optional_text(obj: dict[str, Any], field: str) -> str | None:
    value = obj.get(field)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # some exports number their questions
    raise ValueError(f"{field} must be text, not {value!r}")


def _flag(obj: dict[str, Any], field: str) -> bool:
    value = obj.get(field)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ValueError(f"{field} must be true or false, not {value!r}")
    return value


def _turn(obj: dict[str, Any]) -> int:
    value = obj.get("turn", 1)
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"turn must be a whole number from 1, not {value!r}")
    return value


def _conversation(obj: dict[str, Any], field: str) -> tuple[Message, ...]:
    value = obj.get(field)
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ValueError(f"{field} must be a list of {{role, content}} messages, not {_json_kind(value)}")
    messages = []
    for index, turn in enumerate(value):
        if not isinstance(turn, dict) or not isinstance(turn.get("role"), str):
            raise ValueError(f"{field}[{index}] must be a {{role, content}} message")
        if not isinstance(turn.get("content"), str):
            raise ValueError(f"{field}[{index}].content must be text (multimodal content is not supported)")
        messages.append(Message(turn["role"], turn["content"]))
    return tuple(messages)


def _message(turn: Message | Mapping[str, Any]) -> Message:
    if isinstance(turn, Message):
        return turn
    return Message(str(turn["role"]), "" if turn.get("content") is None else str(turn["content"]))


def _table(rows: list[tuple[str, str, int, float | None]]) -> Battles:
    names = sorted({name for row in rows for name in row[:2]})
    index = {name: i for i, name in enumerate(names)}
    stamps = [math.nan if row[3] is None else row[3] for row in rows]
    return Battles(
        models=tuple(names),
        a=np.array([index[row[0]] for row in rows], dtype=np.intp),
        b=np.array([index[row[1]] for row in rows], dtype=np.intp),
        outcome=np.array([row[2] for row in rows], dtype=np.int8),
        tstamp=np.array(stamps) if any(row[3] is not None for row in rows) else None,
    )


# --- writing ----------------------------------------------------------------------------------------


def write_battles(
    records: Iterable[BattleRecord | Mapping[str, Any]], out: Path | str | IO[str], *, format: str = "jsonl"
) -> int:
    """Write battles as FastChat JSONL (one per line) or a JSON array (one item per line), to a
    path or an open text stream; return how many were written.

    Records may be `BattleRecord`s or mappings of the same fields (see `BattleRecord.coerce`). A
    path is written beside the target and renamed into place when complete.
    """
    if format not in FORMATS:
        raise UsageError(f"unknown battles format {format!r}: expected one of {', '.join(FORMATS)}")
    if isinstance(out, str | Path):
        return _write_to_path(Path(out), records, format)
    return _write_stream(out, records, format)


def _write_stream(stream: IO[str], records: Iterable[BattleRecord | Mapping[str, Any]], fmt: str) -> int:
    count = 0
    if fmt == "json":
        stream.write("[")
    for record in records:
        line = json.dumps(BattleRecord.coerce(record).to_fastchat(), ensure_ascii=False, allow_nan=False)
        if fmt == "json":
            stream.write(("\n" if count == 0 else ",\n") + line)  # one item per line: the fast path reads it
        else:
            stream.write(line + "\n")
        count += 1
    if fmt == "json":
        stream.write("\n]\n" if count else "]\n")
    return count


def _write_to_path(path: Path, records: Iterable[BattleRecord | Mapping[str, Any]], fmt: str) -> int:
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        with partial.open("w", encoding="utf-8", newline="\n") as stream:
            count = _write_stream(stream, records, fmt)
        os.replace(partial, path)
    except OSError as exc:
        raise UsageError(f"cannot write battles to {path}: {exc.strerror or exc}") from None
    finally:
        partial.unlink(missing_ok=True)
    return count

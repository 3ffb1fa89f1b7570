"""Writing stored votes out: CSV and JSONL (one record per vote, every side with its answer and
stats), FastChat clean battles (one record per pairwise outcome), and a leaderboard as CSV.

Files are written beside the target and renamed into place when complete, so a failed export
never leaves half a file where a good one was.

Times in CSV and JSONL are ISO 8601 in UTC with milliseconds (`2026-12-01T01:39:54.123Z`); a
FastChat file keeps its `tstamp` in epoch seconds, as that format defines it. A vote on a later
turn of a conversation covers the turns before it: each record names its `turn` and
`conversation` (the first turn's battle id); JSONL records hold the earlier turns too, and a
FastChat battle holds the whole conversation in `conversation_a` / `conversation_b`.

CSV files are for spreadsheets, which run a cell starting with `=`, `+`, `-`, `@`, a tab or a
carriage return as a formula (`=HYPERLINK(...)` in a prompt would be a live link): every text cell
that starts so gets a leading `'` (OWASP's advice on CSV injection). JSONL and FastChat files are
data and keep every string verbatim.
"""

from __future__ import annotations

import csv
import json
import os
import string
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from arena.errors import UsageError
from arena.rating_tables import BOARD_COLUMNS
from arena.votes import Vote, implied_outcomes
from storage.fastchat import BattleRecord, Message, write_battles
from storage.queries import STAT_COLUMNS, voted_variants

VOTE_FORMATS = ("csv", "jsonl", "fastchat")
#: The leaderboard CSV's columns: every field of the table the Leaderboard tab shows
#: (`arena.rating_tables.BOARD_COLUMNS`), the 95 % interval as ci_low and ci_high, and whether
#: the row is preliminary (the tab marks it after the variant's name).
LEADERBOARD_COLUMNS = tuple(field for column in BOARD_COLUMNS for field in column.fields)
SIDE_LETTERS = string.ascii_lowercase

#: What a spreadsheet takes as the start of a formula (OWASP, "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

_SIDE_FIELDS = ("variant", "spec", "text", "thinking", "tool_calls", "error", "error_kind", *STAT_COLUMNS, "server")
_VOTE_FIELDS = (
    "vote_id",
    "battle_id",
    "conversation",
    "turn",
    "voted_at",
    "voter",
    "mode",
    "served_at",
    "served_to",
    "has_image",
    "has_audio",
    "source",
    "language",
    "prompt",
    "request",
    "sides",
    "outcome",
    "best",
    "ranking",
)


def write_votes(rows: Iterable[dict[str, Any]], format: str, out: Path) -> int:
    """Write `rows` (from `storage.queries.export_rows`) to `out` ('-' for stdout) as `format`;
    return how many records were written."""
    if format not in VOTE_FORMATS:
        raise UsageError(f"unknown export format {format!r}: expected one of {', '.join(VOTE_FORMATS)}")
    rows = list(rows)
    with open_output(out) as stream:
        if format == "fastchat":
            return write_battles(fastchat_records(rows), stream)
        records = [vote_record(row) for row in rows]
        if format == "csv":
            return _write_csv(records, stream)
        for record in records:
            stream.write(json.dumps(record, ensure_ascii=False) + "\n")
        return len(records)


def iso_time(seconds: float | None) -> str | None:
    """Epoch seconds as ISO 8601 in UTC with milliseconds, e.g. 2026-12-01T01:39:54.123Z."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def vote_record(row: dict[str, Any]) -> dict[str, Any]:
    """One vote as a JSON-able dict: the battle, the vote (by label), each side's run, and the
    earlier turns of its conversation (each with every side's answer), oldest first."""
    vote: Vote = row["vote"]
    return {
        "vote_id": row["vote_id"],
        "battle_id": row["battle_id"],
        "conversation": row["conversation"],
        "turn": row["turn"],
        "voted_at": iso_time(row["voted_at"]),
        "voter": row["voter"],
        "mode": row["mode"],
        "served_at": iso_time(row["created_at"]),
        "served_to": row["served_to"],
        "has_image": bool(row["has_image"]),
        "has_audio": bool(row["has_audio"]),
        "source": row["source"],
        "source_ref": row["source_ref"],
        "language": row["language"],
        "request": json.loads(row["request"]),
        "vote": {
            "outcome": vote.outcome,
            "best": vote.best,
            "ranking": None if vote.ranking is None else [list(tier) for tier in vote.ranking],
        },
        "sides": [_side_record(side) for side in row["sides"]],
        "earlier_turns": [
            {
                "battle_id": turn["battle_id"],
                "turn": turn["turn"],
                "request": json.loads(turn["request"]),
                "answers": turn["answers"],
            }
            for turn in row["earlier_turns"]
        ],
    }


def _side_record(side: dict[str, Any]) -> dict[str, Any]:
    return {
        "position": side["position"],
        "variant": side["variant"],
        "spec": side["spec"],
        "text": side["text"],
        "thinking": side["thinking"],
        "tool_calls": json.loads(side["tool_calls"] or "[]"),
        "error": side["error"],
        "error_kind": side["error_kind"],
        "recorded_at": iso_time(side["recorded_at"]),
        "stats": {**{name: side[name] for name in STAT_COLUMNS}, "server": json.loads(side["server"] or "{}")},
    }


def _write_csv(records: list[dict[str, Any]], stream: IO[str]) -> int:
    most_sides = max((len(record["sides"]) for record in records), default=2)
    header = list(_VOTE_FIELDS) + [
        f"{letter}_{field}" for letter in SIDE_LETTERS[:most_sides] for field in _SIDE_FIELDS
    ]
    writer = _SafeCsvWriter(stream)
    writer.writerow(header)
    for record in records:
        vote = record["vote"]
        row: list[Any] = [
            record["vote_id"],
            record["battle_id"],
            record["conversation"],
            record["turn"],
            record["voted_at"],
            record["voter"],
            record["mode"],
            record["served_at"],
            record["served_to"],
            int(record["has_image"]),
            int(record["has_audio"]),
            record["source"],
            record["language"],
            record["request"]["prompt"],
            json.dumps(record["request"], ensure_ascii=False),
            len(record["sides"]),
            vote["outcome"],
            vote["best"],
            None if vote["ranking"] is None else json.dumps(vote["ranking"], ensure_ascii=False),
        ]
        for index in range(most_sides):
            if index >= len(record["sides"]):
                row += [None] * len(_SIDE_FIELDS)
                continue
            side = record["sides"][index]
            stats = side["stats"]
            row += [
                side["variant"],
                side["spec"],
                side["text"],
                side["thinking"],
                json.dumps(side["tool_calls"], ensure_ascii=False),
                side["error"],
                side["error_kind"],
                *(stats[name] for name in STAT_COLUMNS),
                json.dumps(stats["server"]),
            ]
        writer.writerow(row)
    return len(records)


def fastchat_records(rows: Iterable[dict[str, Any]]) -> Iterator[BattleRecord]:
    """FastChat clean battles for exported votes (`storage.queries.export_rows`): one per implied
    pairwise outcome, in voting order, so `leaderboard --battles` on them rates exactly as
    `leaderboard --db` does. A vote on a later turn writes the whole conversation up to it (system
    first, then each turn's user message and that side's own answer), `turn` their count.

    `question_id` is the battle id (with "-n" per pair for votes on more than two variants), or
    the original question id of an imported battle."""
    for row in rows:
        vote: Vote = row["vote"]
        request = json.loads(row["request"])
        pairs = implied_outcomes(voted_variants(row["mode"], row["sides"]), vote, tstamp=row["voted_at"])
        question = row["source_ref"] or row["battle_id"]
        turns = [*row["earlier_turns"], _last_turn(row)]
        for index, pair in enumerate(pairs):
            yield BattleRecord(
                model_a=pair.model_a,
                model_b=pair.model_b,
                outcome=pair.outcome,
                tstamp=pair.tstamp,  # epoch seconds: FastChat's own field (only CSV and JSONL say ISO 8601)
                question_id=question if len(pairs) == 1 else f"{question}-{index}",
                judge=row["voter"],
                anony=row["mode"] == "blind",
                conversation_a=_conversation(turns, pair.model_a),
                conversation_b=_conversation(turns, pair.model_b),
                # an import of a FastChat battle whose turns could not be told apart kept its count
                turn=max(row["turn"], int(request.get("turn", 1))),
                language=row["language"] or "unknown",
            )


def _last_turn(row: dict[str, Any]) -> dict[str, Any]:
    """The voted turn in the shape of `storage.queries.earlier_turns`."""
    answers = {side["variant"]: side["text"] or "" for side in row["sides"]}
    return {"battle_id": row["battle_id"], "turn": row["turn"], "request": row["request"], "answers": answers}


def _conversation(turns: list[dict[str, Any]], variant: str) -> tuple[Message, ...]:
    """The messages `variant` saw and sent: the system prompt of the first turn, then each turn's
    user message and its own answer."""
    requests = [json.loads(turn["request"]) for turn in turns]
    system = () if not requests[0].get("system") else (Message("system", requests[0]["system"]),)
    exchanges = (
        message
        for turn, request in zip(turns, requests, strict=True)
        for message in (Message("user", request["prompt"]), Message("assistant", turn["answers"].get(variant, "")))
    )
    return (*system, *exchanges)


def write_leaderboard_csv(rows: Iterable[Any], out: Path) -> int:
    """Write leaderboard rows (`arena.ratings.Row`, or objects with the LEADERBOARD_COLUMNS
    attributes) as CSV, one column per field of the Leaderboard tab's table."""
    count = 0
    with open_output(out) as stream:
        writer = _SafeCsvWriter(stream)
        writer.writerow(LEADERBOARD_COLUMNS)
        for row in rows:
            writer.writerow([getattr(row, name) for name in LEADERBOARD_COLUMNS])
            count += 1
    return count


def spreadsheet_safe(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula, with a leading `'`; anything else as it is
    (numbers stay numbers: -3.5 is a value, not a formula)."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class _SafeCsvWriter:
    """csv.writer whose every text cell goes through `spreadsheet_safe`."""

    def __init__(self, stream: IO[str]) -> None:
        self._writer = csv.writer(stream)

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow([spreadsheet_safe(value) for value in row])


@contextmanager
def open_output(out: Path) -> Iterator[IO[str]]:
    """A text stream for `out` ('-' is stdout); a file is renamed into place only when complete."""
    if str(out) == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    out = Path(out).expanduser()
    if not out.parent.is_dir():
        raise UsageError(f"cannot write {out}: the folder {out.parent} does not exist")
    partial = out.with_name(f".{out.name}.partial-{os.getpid()}")
    try:
        with partial.open("w", encoding="utf-8", newline="") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(partial, out)
    except OSError as exc:
        raise UsageError(f"cannot write {out}: {exc.strerror or exc}") from exc
    finally:
        partial.unlink(missing_ok=True)

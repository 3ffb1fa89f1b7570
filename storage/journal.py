"""An append-only log of what the store records, so a copy elsewhere can rebuild the database.

A store opened with a `Journal` appends one JSON object per line for every record it commits
(battle opened, its runs with their identity flags, a vote; an import's battles, runs and votes),
after the SQLite commit and before the caller gets its answer: an acknowledged vote is in the log.
`storage.hub_sync` pushes the folder to a Hugging Face dataset and replays it into an empty disk.

Files: `<folder>/journal/<start>-<run>-<part>.jsonl`, a new run (and file) per process and
a new part past `max_file_bytes`, so no file is ever rewritten, only appended to (what
`huggingface_hub.CommitScheduler` assumes), and each push re-sends one small part. The first line
of a file names the format. Each record carries `seq`, the number of its write, taken inside the
write transaction, so replay follows commit order even where two threads appended their lines
the other way round (and then gives votes the ids they had).

Conversations and media (format 2): a battle record carries `parent_id` and `turn`, and the
bytes of a request's images and audio, stored once each in the `media` table, come as `media`
records (base64) just before the first battle that used them. Format 1 journals (before m004)
stay readable: their battles are first turns, and they hold no media.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import json
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from sqlite_utils import Database

from arena.errors import StorageError
from arena.measure import Result, Stats
from arena.votes import Vote
from backends.base import Media, ToolCall
from storage.queries import STAT_COLUMNS, read_battle, vote_from_row
from storage.records import Flag, NewBattle, insert_battle, insert_flags, insert_media, insert_runs, insert_vote

JOURNAL_DIR = "journal"
FORMAT = 2
#: The formats this version replays: 1 (before conversations and media) and 2.
READABLE_FORMATS = (1, 2)
#: Below the Hub's 10 MB limit for plain (non-LFS) files, so a push sends one small git blob.
MAX_FILE_BYTES = 8 * 2**20

Record = dict[str, Any]


class Journal:
    """Appends records to this process's journal files in `folder`/journal. Thread-safe.

    Each append is one unbuffered `write(2)` to a file opened with O_APPEND, made outside any
    Python lock: the kernel keeps concurrent appends whole and apart, and no thread waits for
    another's write (a lock held across the write cost a quarter of the vote throughput: threads
    queued on it one context switch at a time). So a push may find a line half written: it sends
    files up to their last complete line (`complete_size`). The store given a journal closes it.
    """

    def __init__(self, folder: str | Path, *, max_file_bytes: int = MAX_FILE_BYTES) -> None:
        self.folder = Path(folder).expanduser()
        started = datetime.now(UTC)
        self.run = f"{started:%Y%m%dT%H%M%S%f}Z-{uuid.uuid4().hex[:12]}"
        self._max_file_bytes = max_file_bytes
        self._lock = threading.Lock()  # for the bookkeeping below only, never held across a write
        self._issued = 0  # writes numbered (committed, or about to be)
        self._appended = 0  # of those, appended (or found to have nothing to append)
        self._part = 0
        self._file: IO[bytes] | None = None  # opened on the first record: an idle run leaves no file
        self._opened: list[IO[bytes]] = []  # every part: closed only once no thread is writing
        self._size = self._header_size = 0
        self._writing = 0  # appends under way
        self._closed = False

    @property
    def path(self) -> Path:
        """The file being appended to now."""
        return self.folder / JOURNAL_DIR / f"{self.run}-{self._part:05d}.jsonl"

    def next_seq(self) -> int:
        """The number of the next write: take it inside the write transaction, so numbers follow
        commit order (the only thing the store's writer thread does for the journal)."""
        with self._lock:
            self._issued += 1
            return self._issued

    def append(self, seq: int, records: Sequence[Record]) -> None:
        """Write the records of write `seq`: once this returns they are in the file. Not fsynced:
        on a Space the disk goes at a restart, so what counts is what was pushed; and SQLite keeps
        its own durable copy."""
        try:
            if records:
                lines = [json.dumps({"seq": seq, **record}, ensure_ascii=False) + "\n" for record in records]
                self._write("".join(lines).encode())
        finally:
            with self._lock:
                self._appended += 1

    def close(self, timeout_s: float = 5.0) -> None:
        """Close the files once every write numbered so far is appended (a caller answered by the
        store's writer may not have appended yet), waiting at most `timeout_s`. Idempotent."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                if (self._appended >= self._issued and self._writing == 0) or time.monotonic() > deadline:
                    self._closed = True
                    opened, self._opened, self._file = self._opened, [], None
                    break
            time.sleep(0.001)
        for file in opened:
            file.close()

    def _write(self, data: bytes) -> None:
        try:
            with self._lock:
                if self._closed:
                    raise StorageError(f"the journal {self.path} is closed: open the store again to record more")
                file = self._current(len(data))
                self._size += len(data)
                self._writing += 1
            try:
                written = file.write(data)
            finally:
                with self._lock:
                    self._writing -= 1
        except OSError as exc:
            raise self._not_journaled(exc) from exc
        if written != len(data):
            raise self._not_journaled(OSError(f"only {written} of {len(data)} bytes were written"))

    def _current(self, adding: int) -> IO[bytes]:
        """The part to append `adding` bytes to: a new one past `max_file_bytes` (the old one
        stays open for appends already under way)."""
        if self._file is not None and self._size > self._header_size and self._size + adding > self._max_file_bytes:
            self._part += 1
            self._file = None
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("ab", buffering=0)
            self._opened.append(self._file)
            header = {"journal": "gemma-arena", "format": FORMAT, "run": self.run, "part": self._part}
            self._size = self._header_size = self._file.write(json.dumps(header).encode() + b"\n") or 0
        return self._file

    def _not_journaled(self, exc: OSError) -> StorageError:
        return StorageError(
            f"recorded in the votes database but not in the journal {self.path} ({exc.strerror or exc}): "
            "it will not survive a restart of the Space; free disk space there or fix its permissions"
        )


def complete_size(path: Path) -> int:
    """How many bytes of `path` are whole lines: what may be pushed while appends go on."""
    with path.open("rb") as file:
        end = file.seek(0, 2)
        while end > 0:
            start = max(0, end - 65536)
            file.seek(start)
            chunk = file.read(end - start)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                return start + newline + 1
            end = start
    return 0


# -- records, as the store writes them ---------------------------------------------------------


def battle_record(battle: NewBattle) -> Record:
    """A battle as served (`insert_battle`)."""
    return {
        "kind": "battle",
        "id": battle.id,
        "created_at": battle.created_at,
        "mode": battle.mode,
        "voter": battle.voter,
        "variants": [list(pair) for pair in battle.variants],
        "prompt": battle.prompt,
        "request": battle.request_json,
        "has_image": battle.has_image,
        "has_audio": battle.has_audio,
        "source": battle.source,
        "source_ref": battle.source_ref,
        "language": battle.language,
        "parent_id": battle.parent_id,
        "turn": battle.turn,
    }


def media_record(media: Media) -> Record:
    """The bytes of an attachment, as `insert_media` stored them (base64)."""
    return {
        "kind": "media",
        "sha256": media.sha256,
        "media_kind": media.kind,
        "mime": media.mime,
        "data": base64.b64encode(media.data).decode("ascii"),
    }


def runs_record(battle_id: str, results: Sequence[Result], recorded_at: float, flags: Sequence[Flag]) -> Record:
    """A battle's runs, in position order, with the identity flags found in them (`insert_runs`)."""
    return {
        "kind": "runs",
        "battle_id": battle_id,
        "recorded_at": recorded_at,
        "results": [result.to_json() for result in results],
        "flags": [[position, list(words)] for _, position, words in flags],
    }


def vote_record(vote_id: int, battle_id: str, vote: Vote, voter: str | None, created_at: float) -> Record:
    """A vote as given to `insert_vote` (`voter` None: the one the battle was served to)."""
    return {
        "kind": "vote",
        "id": vote_id,
        "battle_id": battle_id,
        "created_at": created_at,
        "voter": voter,
        "outcome": vote.outcome,
        "best": vote.best,
        "ranking": None if vote.ranking is None else [list(tier) for tier in vote.ranking],
    }


# -- records read back from the database (what a bulk write such as an import stored) ----------


@dataclass(frozen=True)
class Marks:
    """The highest row ids of the journaled tables before a write: what lies above is new."""

    battles: int
    runs: int
    votes: int
    flags: int
    media: int = 0


def marks(db: Database) -> Marks:
    """Where each journaled table ends now."""
    row = db.conn.execute(
        "SELECT (SELECT IFNULL(MAX(rowid), 0) FROM battles), (SELECT IFNULL(MAX(id), 0) FROM runs), "
        "(SELECT IFNULL(MAX(id), 0) FROM votes), (SELECT IFNULL(MAX(rowid), 0) FROM identity_flags), "
        "(SELECT IFNULL(MAX(rowid), 0) FROM media)"
    ).fetchone()
    return Marks(*row)


def records_since(db: Database, since: Marks) -> list[Record]:
    """Every medium, battle, run, flag and vote stored after `since`, as journal records: media
    first, then each battle followed by its runs (a follow-up turn is replayed only after the turn
    before it finished), then runs of older battles, flags, votes."""
    records = [
        media_record(Media(kind, data, mime))
        for kind, data, mime in db.conn.execute(
            "SELECT kind, data, mime FROM media WHERE rowid > ? ORDER BY rowid", [since.media]
        )
    ]
    battles: dict[str, tuple[Any, ...]] = {}
    sides: dict[str, list[tuple[str, str | None]]] = {}
    for *battle, variant, spec in db.conn.execute(
        "SELECT b.id, b.created_at, b.mode, b.voter, b.prompt, b.request, b.has_image, b.has_audio, b.source, "
        "b.source_ref, b.language, b.parent_id, b.turn, s.variant, s.spec FROM battles b "
        "JOIN sides s ON s.battle_id = b.id WHERE b.rowid > ? ORDER BY b.rowid, s.position",
        [since.battles],
    ):
        battles.setdefault(battle[0], tuple(battle))
        sides.setdefault(battle[0], []).append((variant, spec))
    flags = _flags_since(db, since.flags)
    runs = {record["battle_id"]: record for record in _runs_since(db, since.runs, flags)}
    for id, created_at, mode, voter, prompt, request, image, audio, *rest in battles.values():
        # rest: source, source_ref, language, parent_id, turn
        battle = NewBattle(
            id, created_at, mode, voter, tuple(sides[id]), prompt, request, bool(image), bool(audio), *rest
        )
        records.append(battle_record(battle))
        if id in runs:
            records.append(runs.pop(id))
    records += runs.values()
    if flags:  # flags on runs stored before (none of this project's writes do that, but keep them)
        records.append({"kind": "flags", "flags": [[b, p, list(w)] for b, found in flags.items() for p, w in found]})
    records += _votes_since(db, since.votes)
    return records


def _flags_since(db: Database, since: int) -> dict[str, list[tuple[int, tuple[str, ...]]]]:
    found: dict[str, list[tuple[int, tuple[str, ...]]]] = {}
    for battle_id, position, words in db.conn.execute(
        "SELECT battle_id, position, words FROM identity_flags WHERE rowid > ? ORDER BY rowid", [since]
    ):
        found.setdefault(battle_id, []).append((position, tuple(json.loads(words))))
    return found


def _runs_since(db: Database, since: int, flags: dict[str, list[tuple[int, tuple[str, ...]]]]) -> Iterator[Record]:
    rows = db.conn.execute(
        "SELECT r.battle_id, r.recorded_at, s.variant, r.text, r.thinking, r.tool_calls, r.error, r.error_kind, "
        f"{', '.join('r.' + column for column in STAT_COLUMNS)}, r.server FROM runs r "
        "JOIN sides s ON s.battle_id = r.battle_id AND s.position = r.position WHERE r.id > ? ORDER BY r.id",
        [since],
    )
    current: Record | None = None
    for battle_id, recorded_at, variant, text, thinking, tool_calls, error, error_kind, *stats in rows:
        if current is None or current["battle_id"] != battle_id:
            if current is not None:
                yield current
            found = flags.pop(battle_id, [])
            current = runs_record(battle_id, [], recorded_at, [(battle_id, p, w) for p, w in found])
        server = json.loads(stats.pop())
        calls = tuple(ToolCall(call["name"], call["arguments"]) for call in json.loads(tool_calls))
        values = dict(zip(STAT_COLUMNS, stats, strict=True))
        measured = Stats(**{**values, "stalled": bool(values["stalled"])}, server=server)
        current["results"].append(Result(variant, text, thinking, calls, measured, error, error_kind).to_json())
    if current is not None:
        yield current


def _votes_since(db: Database, since: int) -> Iterator[Record]:
    rows = db.conn.execute(
        "SELECT v.id, v.battle_id, v.created_at, v.voter, v.outcome, v.best, v.ranking, s.variant FROM votes v "
        "JOIN sides s ON s.battle_id = v.battle_id WHERE v.id > ? ORDER BY v.id, s.position",
        [since],
    )
    for _, group in itertools.groupby(rows, key=lambda row: row[0]):
        sides = list(group)
        vote_id, battle_id, created_at, voter, outcome, best, ranking, _ = sides[0]
        labels = [row[-1] for row in sides]  # in position order: a stored vote names positions
        yield vote_record(vote_id, battle_id, vote_from_row(labels, outcome, best, ranking), voter, created_at)


# -- reading journal files back, and replaying them into a store -------------------------------


@dataclass
class Replayed:
    """What a replay did: records added, records already stored (skipped), and the lines that
    could not be used, each with its file, line and why."""

    files: int = 0
    added: dict[str, int] = field(default_factory=dict)
    already_stored: int = 0
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        added = ", ".join(f"{count} {kind}" for kind, count in sorted(self.added.items())) or "nothing"
        text = f"replayed {self.files} journal files: added {added}; {self.already_stored} records were already stored"
        if self.problems:
            text += f"; {len(self.problems)} records could not be used: " + "; ".join(self.problems[:5])
        return text


#: A record with where it came from: (file, line, record).
Located = tuple[str, int, Record]


def read_journals(paths: Iterable[Path], report: Replayed) -> list[Located]:
    """The records of journal files in the order to replay them: runs in the order they started
    (their file names sort so), each run's records in commit order (`seq`), whatever part file they
    are in. A line that is not JSON (a file cut short by a crash) is reported and left out."""
    runs: dict[str, list[tuple[int, Located]]] = {}
    for path in sorted(paths, key=lambda p: p.name):
        report.files += 1
        run = path.stem.rsplit("-", 1)[0]
        lines = runs.setdefault(run, [])
        with path.open(encoding="utf-8", errors="replace") as stream:
            for number, line in enumerate(stream, 1):
                try:
                    record = json.loads(line)
                    if not isinstance(record, dict):
                        raise ValueError("not a JSON object")
                except ValueError as exc:
                    report.problems.append(f"{path.name} line {number}: not a journal record ({exc})")
                    continue
                if "journal" in record:
                    if record.get("format") not in READABLE_FORMATS:
                        raise StorageError(
                            f"{path.name} is a journal of format {record.get('format')}, which this Gemma Arena "
                            f"does not know (it reads formats {', '.join(map(str, READABLE_FORMATS))}): upgrade "
                            "gemma-arena before restoring"
                        )
                    continue
                lines.append((int(record.get("seq", 0)), (path.name, number, record)))
    return [located for run in sorted(runs) for _, located in sorted(runs[run], key=lambda item: item[0])]


def replay(db: Database, records: Sequence[Located], report: Replayed) -> None:
    """Store each record that is not stored yet, through the same functions that first stored it
    (so every check runs again), each in a savepoint: a record that fails is reported, not stored,
    and the others go on. Call inside a write transaction."""
    for name, number, record in records:
        db.conn.execute("SAVEPOINT replay")
        try:
            added = _apply(db, record)
        except (StorageError, ValueError, KeyError, TypeError, IndexError) as exc:
            db.conn.execute("ROLLBACK TO replay")
            report.problems.append(f"{name} line {number}: {record.get('kind', '?')} not restored ({exc})")
        else:
            if added:
                report.added[record["kind"]] = report.added.get(record["kind"], 0) + 1
            else:
                report.already_stored += 1
        db.conn.execute("RELEASE replay")


def _apply(db: Database, record: Record) -> bool:
    """Store one record; False if it was stored already."""
    kind = record["kind"]
    if kind == "battle":
        if read_battle(db, record["id"]) is not None:
            return False
        variants = tuple((label, spec) for label, spec in record["variants"])
        insert_battle(
            db,
            NewBattle(
                record["id"],
                record["created_at"],
                record["mode"],
                record["voter"],
                variants,
                record["prompt"],
                record["request"],
                record["has_image"],
                record["has_audio"],
                record["source"],
                record["source_ref"],
                record["language"],
                # format 1 (before conversations): a first turn
                record.get("parent_id"),
                record.get("turn"),
            ),
        )
        return True
    if kind == "media":
        return bool(insert_media(db, [_media(record)]))
    if kind == "runs":
        battle = read_battle(db, record["battle_id"])
        if battle is not None and battle.phase != "served":
            return False
        flags = [(record["battle_id"], position, tuple(words)) for position, words in record["flags"]]
        results = [_result(value) for value in record["results"]]
        insert_runs(db, record["battle_id"], results, record["recorded_at"], flags)
        return True
    if kind == "vote":
        battle = read_battle(db, record["battle_id"])
        if battle is not None and battle.vote is not None:
            return False
        vote = Vote.of(outcome=record["outcome"], best=record["best"], ranking=record["ranking"])
        insert_vote(db, record["battle_id"], vote, record["voter"], record["created_at"])
        return True
    if kind == "flags":
        new = [
            (battle_id, position, tuple(words))
            for battle_id, position, words in record["flags"]
            if not db.conn.execute(
                "SELECT 1 FROM identity_flags WHERE battle_id = ? AND position = ?", [battle_id, position]
            ).fetchone()
        ]
        insert_flags(db, new)
        return bool(new)
    raise ValueError(f"unknown record kind {kind!r}")


def _media(record: Record) -> Media:
    try:
        data = base64.b64decode(record["data"], validate=True)
    except (binascii.Error, TypeError) as exc:
        raise ValueError(f"its data is not base64 ({exc})") from None
    if hashlib.sha256(data).hexdigest() != record["sha256"]:
        raise ValueError(f"its bytes do not hash to {record['sha256']}: the file was damaged")
    return Media(record["media_kind"], data, record["mime"])


def _result(value: Record) -> Result:
    stats = value["stats"]
    return Result(
        variant=value["variant"],
        text=value["text"],
        thinking=value["thinking"],
        tool_calls=tuple(ToolCall(call["name"], call["arguments"]) for call in value["tool_calls"]),
        # a figure a record lacks (written before m003 added it) takes the default
        stats=Stats(**{name: stats[name] for name in STAT_COLUMNS if name in stats}, server=stats["server"]),
        error=value["error"],
        error_kind=value["error_kind"],
    )

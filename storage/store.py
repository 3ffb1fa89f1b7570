"""The vote store: one object to record battles, runs and votes, and read them back.

Safe to share between threads: each thread reads on its own connection, and writes go through
one writer (group commit by default). Several processes may open the same file at once: SQLite's
locks and the busy timeout order their writes. Every method that records something returns only
once it is committed with `synchronous=FULL`, i.e. durable, and, when the store has a journal
(`storage.journal`), appended to it too.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from sqlite_utils import Database

from arena.errors import StorageError
from arena.measure import Result
from arena.ratings import PairOutcome
from arena.voters import VoterStats, voter_stats
from arena.votes import CastVote, Vote
from backends.base import Media, Request
from storage import queries
from storage.conversations import HistoryEntry, StoredConversation, read_conversation, read_history, read_media
from storage.db import DEFAULT_BUSY_TIMEOUT_S, StoreReadOnly, connect, read_snapshot, sqlite_errors
from storage.journal import (
    Journal,
    Record,
    battle_record,
    marks,
    media_record,
    records_since,
    runs_record,
    vote_record,
)
from storage.migrations import apply_migrations
from storage.records import (
    NewBattle,
    VoteRejected,
    insert_battle,
    insert_media,
    insert_runs,
    insert_vote,
    result_flags,
)
from storage.writer import DirectWriter, GroupCommitWriter, Job, Writer

if TYPE_CHECKING:
    from storage.imports import ImportReport

T = TypeVar("T")

#: (label, spec) of each variant, in the order the battle shows them.
VariantList = Sequence[tuple[str, str]]


class StoreMissing(StorageError):
    """There is no votes database at the given path (and the caller asked not to create one)."""


def open_store(
    path: str | Path,
    *,
    create: bool = True,
    group_commit: bool = True,
    busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
    journal: Journal | None = None,
) -> Store:
    """Open (or create, with its folders) the votes database at `path` and bring its schema up to
    date. Refuses a database written by a newer version (NewerSchema).

    `group_commit` batches concurrent writes from this process's threads into shared commits;
    `busy_timeout_s` is how long a write waits for another program's lock before StoreBusy;
    `journal` also gets every record, before its writer is answered (the store closes it).
    """
    path = Path(path).expanduser()
    if not path.exists():
        if not create:
            raise StoreMissing(
                f"there is no votes database at {path}: vote first, import FastChat battles with "
                "`python app.py import FILE`, or point --db / GEMMA_ARENA_DB at an existing file"
            )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreReadOnly(
                f"cannot create the folder {path.parent} for the votes database ({exc.strerror}): "
                "point --db / GEMMA_ARENA_DB at a writable place"
            ) from exc
    return Store(path, group_commit=group_commit, busy_timeout_s=busy_timeout_s, journal=journal)


class Store:
    """Battles, runs and votes in one SQLite file. Create it with `open_store`; close it when done."""

    def __init__(
        self, path: Path, *, group_commit: bool, busy_timeout_s: float, journal: Journal | None = None
    ) -> None:
        self.path = path
        self._journal = journal
        self._busy_timeout_s = busy_timeout_s
        self._pid = os.getpid()
        self._closed = False
        self._local = threading.local()
        # Weak: a finished thread's connection closes with its thread-local; close() takes the rest.
        self._connections: weakref.WeakSet[Database] = weakref.WeakSet()
        self._lock = threading.Lock()
        db = self._connection()
        try:
            with sqlite_errors(path):
                apply_migrations(db, path)
        except BaseException:
            self.close()
            raise
        self._writer: Writer = (
            GroupCommitWriter(self._connect, path) if group_commit else DirectWriter(self._connection, path)
        )

    # -- recording ------------------------------------------------------------------------

    def open_battle(
        self,
        request: Request,
        variants: VariantList,
        *,
        mode: str = "blind",
        voter: str | None = None,
        parent_id: str | None = None,
    ) -> str:
        """Record a battle as served (phase 'served') before its answers stream; return its id.

        `parent_id` makes it the next turn of that battle's conversation (`request` is the new
        turn alone: its `history` is not stored, the chain of parents is). BattleRejected, in the
        write's own transaction, when the parent is unknown or unfinished, its conversation has a
        vote, `mode` or `voter` differ from the parent's, or a variant did not answer there. The
        bytes of the request's images and audio are stored once each (`media`)."""
        battle = self._new_battle(request, variants, mode, voter, parent_id)
        attachments = (*request.images, *request.audio)

        def job(db: Database) -> tuple[NewBattle, list[Media]]:
            return insert_battle(db, battle), insert_media(db, attachments)

        return self._write(job, lambda stored: [*map(media_record, stored[1]), battle_record(stored[0])])[0].id

    def finish_battle(self, battle_id: str, results: Sequence[Result]) -> str:
        """Record each side's result (in position order); return the phase: 'finished', or
        'errored' if any result has an error (such a battle takes no vote). An answer that names a
        model family or maker flags the battle (`arena.identity`)."""
        now = time.time()
        flags = result_flags(battle_id, results)  # here, not in the writer: it serves every thread
        return self._write(
            lambda db: insert_runs(db, battle_id, results, now, flags),
            lambda _: [runs_record(battle_id, results, now, flags)],
        )

    def record_comparison(
        self,
        request: Request,
        variants: VariantList,
        results: Sequence[Result],
        *,
        mode: str = "named",
        voter: str | None = None,
        parent_id: str | None = None,
    ) -> str:
        """Open and finish a battle in one transaction (a finished comparison); return its id.
        `parent_id`: the next turn of that battle's conversation, as in `open_battle`."""
        battle = self._new_battle(request, variants, mode, voter, parent_id)
        attachments = (*request.images, *request.audio)
        flags = result_flags(battle.id, results)
        now = time.time()

        def job(db: Database) -> tuple[NewBattle, list[Media]]:
            stored = insert_battle(db, battle)
            new_media = insert_media(db, attachments)
            insert_runs(db, battle.id, results, now, flags)
            return stored, new_media

        def log(stored: tuple[NewBattle, list[Media]]) -> list[Record]:
            return [
                *map(media_record, stored[1]),
                battle_record(stored[0]),
                runs_record(battle.id, results, now, flags),
            ]

        return self._write(job, log)[0].id

    def record_vote(
        self,
        battle_id: str,
        outcome: str | None = None,
        *,
        best: str | None = None,
        ranking: Iterable[Iterable[str]] | None = None,
        voter: str | None = None,
    ) -> int:
        """Record the one vote on a finished battle and return its id once it is durable.

        Give exactly one of `outcome` ('a', 'b', 'tie', 'both_bad'; two-sided battles),
        `best` (a variant label) or `ranking` (tiers of labels, best first, equal rank allowed).
        `voter` defaults to the person the battle was served to. Raises VoteRejected for an
        unknown, unfinished, errored or already voted battle, a vote that does not fit it, a
        `voter` other than the one the battle was served to (when it was served to someone), or a
        turn of a conversation that is not its last or whose earlier turns hold a vote (a vote
        covers the conversation up to its turn, and ends it).
        """
        try:
            vote = Vote.of(outcome=outcome, best=best, ranking=ranking)
        except ValueError as exc:
            raise VoteRejected(f"vote on battle {battle_id} rejected: {exc}") from exc
        now = time.time()
        return self._write(
            lambda db: insert_vote(db, battle_id, vote, voter, now),
            lambda vote_id: [vote_record(vote_id, battle_id, vote, voter, now)],
        )

    # -- reading ----------------------------------------------------------------------------

    def battle(self, battle_id: str) -> queries.StoredBattle | None:
        """The battle with this id (its variants, phase and vote), or None."""
        with self._read() as db:
            return queries.read_battle(db, battle_id)

    def conversation(self, battle_id: str) -> StoredConversation | None:
        """The conversation from its first turn to this battle, oldest first (each turn with its
        request, answers by variant and vote), or None if there is no such battle."""
        with self._read() as db:
            return read_conversation(db, battle_id)

    def media(self, sha256: str) -> Media | None:
        """The stored bytes of an image or audio clip a request named by this SHA-256, or None."""
        with self._read() as db:
            return read_media(db, sha256)

    def history(self, voter: str | None, *, limit: int = 50, before: float | None = None) -> list[HistoryEntry]:
        """`voter`'s past conversations (everyone's with None: for admins), one entry per
        conversation by its last turn, newest first: at most `limit`, and only those whose last
        turn was served before `before` (for the next page: the last entry's `created_at`). A
        turn regenerated later supersedes its siblings, which are left out."""
        if limit < 1:
            raise StorageError(f"a history page holds 1 entry or more, not {limit}")
        with self._read() as db:
            return read_history(db, voter, limit=limit, before=before)

    def pair_outcomes(
        self,
        category: str = "all",
        voter: str | None = None,
        *,
        mode: str = "blind",
        include_flagged: bool = False,
    ) -> list[PairOutcome]:
        """Every vote in `category` ('all', 'text', 'image', 'audio'), by `voter` if given, on
        battles of `mode` ('blind', the default, 'named' or 'all': `queries.RATING_MODES`),
        without flagged battles unless `include_flagged`, as pairwise outcomes in voting order
        (see `arena.votes` for how multi-way votes are split; the pairs of one vote name it)."""
        with self._read_slice(category, mode) as db:
            return queries.pair_outcomes(db, category, voter, mode=mode, include_flagged=include_flagged)

    def cast_votes(
        self,
        category: str = "all",
        voter: str | None = None,
        *,
        mode: str = "blind",
        include_flagged: bool = False,
    ) -> list[CastVote]:
        """The votes of the same slice as `pair_outcomes`, one per vote, in voting order."""
        with self._read_slice(category, mode) as db:
            return queries.cast_votes(db, category, voter, mode=mode, include_flagged=include_flagged)

    def flagged_votes(self, category: str = "all", voter: str | None = None, *, mode: str = "blind") -> int:
        """How many votes of the slice are on flagged battles (an answer named a model family or
        maker): what `pair_outcomes` leaves out unless `include_flagged`."""
        with self._read_slice(category, mode) as db:
            return queries.flagged_votes(db, category, voter, mode=mode)

    def voters(self, mode: str = "blind") -> list[str]:
        """Everyone who voted on a battle of `mode`, sorted."""
        with self._read_slice("all", mode) as db:
            return queries.voters(db, mode)

    def voter_stats(
        self, category: str = "all", *, mode: str = "blind", include_flagged: bool = False
    ) -> list[VoterStats]:
        """One row per voter of the slice, most votes first: their votes by kind, and how often
        their decisive votes agree with the ratings of all voters of the same slice
        (`arena.voters`)."""
        return voter_stats(self.cast_votes(category, mode=mode, include_flagged=include_flagged))

    def battle_counts(self, *, voted_only: bool = False) -> dict[frozenset[str], int]:
        """How many battles (errored ones excluded; only voted ones if `voted_only`) put each pair
        of variants side by side, e.g. to serve the least-seen pairs next."""
        with self._read() as db:
            return queries.battle_counts(db, voted_only=voted_only)

    def speed_by_variant(self) -> list[queries.VariantSpeed]:
        """Median decode rate, time to first token and peak memory per variant, over successful
        runs of named comparisons and voted battles (an unvoted blind battle keeps its figures)."""
        with self._read() as db:
            return queries.speed_by_variant(db)

    def variant_specs(self) -> dict[str, str]:
        """Variant label -> the spec it last ran as (what `arena.variant_fits` estimates from)."""
        with self._read() as db:
            return queries.variant_specs(db)

    def integrity_check(self) -> str:
        """SQLite's own check of the file: 'ok', or what is damaged."""
        with self._read() as db:
            return "; ".join(row[0] for row in db.execute("PRAGMA integrity_check"))

    def export(self, format: str, out: Path, *, category: str = "all", voter: str | None = None) -> int:
        """Write the votes, joined with their battles and runs, as `format` ('csv', 'jsonl' or
        'fastchat'); return how many records were written. The file appears only when complete."""
        from storage.exports import write_votes

        self._check_category(category)
        with self._read() as db:
            return write_votes(queries.export_rows(db, category, voter), format, out)

    def import_fastchat(self, path: Path, *, strict: bool = True, include_named: bool = False) -> ImportReport:
        """Import FastChat clean battles (JSON or JSONL) as battles, runs and votes, in one
        transaction. With `strict`, any bad record refuses the whole file; otherwise bad records
        are skipped and listed in the returned report. Battles imported before are not repeated.
        Named battles (`anony` false) are left out, as FastChat does, unless `include_named`:
        then they are stored as named (mode 'named'). Answers that name a model are flagged."""
        from storage.imports import import_fastchat

        return import_fastchat(self, path, strict=strict, include_named=include_named)

    # -- plumbing ---------------------------------------------------------------------------

    def close(self) -> None:
        """Finish queued writes, close the journal and every connection. Idempotent."""
        self._closed = True
        writer = getattr(self, "_writer", None)
        if writer is not None:
            writer.close()
        if self._journal is not None:
            self._journal.close()
        with self._lock:
            connections = list(self._connections)
            self._connections.clear()
        for db in connections:
            db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(self, job: Job[T]) -> T:
        """Run `job(db)` in a write transaction of this store and return its value once committed.
        For storage modules only (imports); everything else uses the named methods. With a
        journal, what the job stored is read back from the transaction and journaled."""
        if self._journal is None:
            return self._write(job)
        stored: list[Record] = []

        def marked(db: Database) -> T:
            since = marks(db)
            value = job(db)
            stored[:] = records_since(db, since)  # read inside the transaction: exactly what it wrote
            return value

        return self._write(marked, lambda _: stored)

    def _write(self, job: Job[T], log: Callable[[T], list[Record]] | None = None) -> T:
        """Run `job` through the writer. With a journal, `log(value)` gives the records the job
        stored: they are numbered inside the transaction (commit order; nothing else is added to
        the writer thread's work), and appended once it committed, before this returns, so what
        a caller is told is stored is in the journal."""
        self._check_usable()
        journal = self._journal
        if journal is None or log is None:  # log is None only from write(), without a journal
            with sqlite_errors(self.path):
                return self._writer.run(job)

        def numbered(db: Database) -> tuple[T, int]:
            return job(db), journal.next_seq()

        with sqlite_errors(self.path):
            value, seq = self._writer.run(numbered)
        journal.append(seq, log(value))
        return value

    @contextmanager
    def _read(self) -> Iterator[Database]:
        self._check_usable()
        with sqlite_errors(self.path), read_snapshot(self._connection()) as db:
            yield db

    def _connect(self) -> Database:
        db = connect(self.path, busy_timeout_s=self._busy_timeout_s)
        with self._lock:
            self._connections.add(db)
        return db

    def _connection(self) -> Database:
        """This thread's own connection (SQLite connections are not shared between threads)."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self._connect()
        return db

    def _check_usable(self) -> None:
        if self._closed:
            raise StorageError(f"the vote store {self.path} is closed: open it again to use it")
        if os.getpid() != self._pid:
            raise StorageError("a vote store cannot cross a fork: open it again in the child process")

    @contextmanager
    def _read_slice(self, category: str, mode: str) -> Iterator[Database]:
        self._check_category(category)
        try:
            queries.check_mode(mode)
        except ValueError as exc:
            raise StorageError(str(exc)) from exc
        with self._read() as db:
            yield db

    @staticmethod
    def _check_category(category: str) -> None:
        try:
            queries.check_category(category)
        except ValueError as exc:
            raise StorageError(str(exc)) from exc

    @staticmethod
    def _new_battle(
        request: Request, variants: VariantList, mode: str, voter: str | None, parent_id: str | None
    ) -> NewBattle:
        battle = NewBattle(
            id=uuid.uuid4().hex,
            created_at=time.time(),
            mode=mode,
            voter=voter,
            variants=tuple((label, spec) for label, spec in variants),
            prompt=request.prompt,
            request_json=json.dumps(request.describe(), sort_keys=True),
            has_image=bool(request.images),
            has_audio=bool(request.audio),
            parent_id=parent_id,
        )
        battle.check()  # fail in the caller's thread, before anything is queued
        return battle

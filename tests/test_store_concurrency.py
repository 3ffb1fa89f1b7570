"""Concurrent writers, crashes and locks: an acknowledged vote is never lost."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
from contextlib import closing
from pathlib import Path

import pytest

from arena.settings import Settings
from arena.votes import Vote
from backends.base import Request
from storage import Store, StoreBusy, VoteRejected, open_store
from tests.test_store import PAIR, answer, finished_battle

REPO = Path(__file__).resolve().parent.parent

# A writer that votes on battles of its own, forever or `rounds` times, and prints
# "battle_id vote_id" only after record_vote returned (i.e. after the vote was acknowledged).
WRITER = """
import sys, threading
from arena.measure import Result
from backends.base import Request
from storage import open_store

path, rounds, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
pair = [("demo:e2b", "demo:e2b"), ("demo:e4b", "demo:e4b")]
lock = threading.Lock()

def vote(store):
    n = 0
    while rounds == 0 or n < rounds:
        battle_id = store.open_battle(Request("Say hi"), pair)
        store.finish_battle(battle_id, [Result("demo:e2b", "x"), Result("demo:e4b", "y")])
        vote_id = store.record_vote(battle_id, "ab"[n % 2])
        with lock:
            print(battle_id, vote_id, flush=True)
        n += 1

with open_store(path, busy_timeout_s=30) as store:
    workers = [threading.Thread(target=vote, args=(store,)) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
"""


def stored_votes(path: Path) -> set[tuple[str, int]]:
    with closing(sqlite3.connect(path)) as conn:
        return {(battle_id, vote_id) for battle_id, vote_id in conn.execute("SELECT battle_id, id FROM votes")}


def integrity(path: Path) -> str:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


def acknowledged(lines: list[str]) -> set[tuple[str, int]]:
    pairs = set()
    for line in lines:
        battle_id, vote_id = line.split()
        pairs.add((battle_id, int(vote_id)))
    return pairs


def test_threads_voting_at_once_lose_nothing(settings: Settings) -> None:
    group_commit_store = open_store(settings.db_path)
    direct_store = open_store(settings.db_path, group_commit=False, busy_timeout_s=30)
    acked: list[tuple[str, int]] = []

    def vote(store: Store) -> None:
        for n in range(15):
            battle_id = finished_battle(store)
            acked.append((battle_id, store.record_vote(battle_id, "ab"[n % 2])))

    threads = [
        threading.Thread(target=vote, args=(store,)) for store in (group_commit_store, direct_store) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    group_commit_store.close()
    direct_store.close()
    assert len(acked) == 16 * 15
    assert stored_votes(settings.db_path) == set(acked)
    assert integrity(settings.db_path) == "ok"


def test_processes_voting_at_once_lose_nothing(settings: Settings) -> None:
    open_store(settings.db_path).close()
    children = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(settings.db_path), "25", "2"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    acked: set[tuple[str, int]] = set()
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        acked |= acknowledged(out.splitlines())
    assert len(acked) == 4 * 2 * 25
    assert stored_votes(settings.db_path) == acked
    assert integrity(settings.db_path) == "ok"


def test_writer_killed_mid_stream_loses_no_acknowledged_vote(settings: Settings) -> None:
    open_store(settings.db_path).close()
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(settings.db_path), "0", "4"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    lines: list[str] = []
    try:
        while len(lines) < 300:
            line = child.stdout.readline()
            assert line, f"the writer stopped early: {child.stderr.read() if child.stderr else ''}"
            lines.append(line)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    # Lines already in the pipe were acknowledged too; a torn last line was not.
    lines += [line for line in child.stdout.read().splitlines(keepends=True) if line.endswith("\n")]
    assert child.returncode == -signal.SIGKILL
    acked = acknowledged(lines)
    assert len(acked) >= 300
    assert acked <= stored_votes(settings.db_path)
    assert integrity(settings.db_path) == "ok"
    with open_store(settings.db_path) as store:  # and the file is still a working store
        store.record_vote(finished_battle(store), "tie")


def test_two_votes_racing_on_one_battle_only_one_is_accepted(settings: Settings) -> None:
    with open_store(settings.db_path) as store:
        battles = [finished_battle(store) for _ in range(30)]
        outcomes: dict[str, list[str]] = {battle_id: [] for battle_id in battles}
        start = threading.Barrier(2)

        def vote(outcome: str) -> None:
            for battle_id in battles:
                start.wait()
                try:
                    store.record_vote(battle_id, outcome)
                    outcomes[battle_id].append(outcome)
                except VoteRejected:
                    pass

        threads = [threading.Thread(target=vote, args=(side,)) for side in ("a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert all(len(accepted) == 1 for accepted in outcomes.values())
        stored = {battle.id: battle.vote.outcome for battle in map(store.battle, battles)}  # type: ignore[union-attr]
        assert stored == {battle_id: accepted[0] for battle_id, accepted in outcomes.items()}


@pytest.mark.parametrize("group_commit", [True, False], ids=["group-commit", "commit-per-write"])
def test_database_locked_past_the_timeout_is_a_clear_error_and_loses_nothing(
    settings: Settings, group_commit: bool
) -> None:
    with open_store(settings.db_path, group_commit=group_commit, busy_timeout_s=0.2) as store:
        first = finished_battle(store)
        store.record_vote(first, "a")
        second = finished_battle(store)
        with closing(sqlite3.connect(settings.db_path, isolation_level=None)) as other:
            other.execute("BEGIN IMMEDIATE")  # another program holds the write lock
            with pytest.raises(StoreBusy, match="locked by another program"):
                store.record_vote(second, "b")
            other.execute("ROLLBACK")
        store.record_vote(second, "b")
        assert [p.outcome for p in store.pair_outcomes()] == ["a", "b"]


def test_a_thread_reads_the_votes_other_threads_recorded_since_its_last_read(settings: Settings) -> None:
    with open_store(settings.db_path) as store:
        battle_id = store.record_comparison(Request("hi"), PAIR, [answer("demo:e2b"), answer("demo:e4b")])
        assert store.battle(battle_id).vote is None  # type: ignore[union-attr]
        thread = threading.Thread(target=store.record_vote, args=(battle_id, "a"))
        thread.start()
        thread.join()
        assert store.battle(battle_id).vote == Vote(outcome="a")  # type: ignore[union-attr]

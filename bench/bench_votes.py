"""Vote ingestion under concurrent writers: throughput, latency, and that nothing is lost.

    .venv/bin/python -m bench.bench_votes [--writers 16] [--votes 4000] [--modes ...]

Each writer votes on its own finished battles as fast as it can; latency is the time
`record_vote` takes to return (the vote is then durable: committed with synchronous=FULL).
Modes, measured side by side in one run on the same machine:

- threads/group-commit: one process, one store, 16 threads; the store's writer thread commits
  queued votes in batches (the default)
- threads/group-commit+journal: the same with the store's journal on (what a Space runs: every
  record also appended to a JSONL file pushed to a dataset, `storage.journal`); the votes in the
  journal are counted too
- threads/commit-per-vote: one process, 16 threads, each with its own connection, one commit each
- processes/group-commit: 16 processes with a store each, all on one file

Afterwards the votes in the file are counted: every acknowledged vote must be there.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from arena.measure import Result, Stats
from backends.base import Request
from storage import Journal, Store, open_store
from storage.records import NewBattle, insert_battle, insert_runs

TARGET_VOTES_PER_S = 2000.0
TARGET_P99_MS = 20.0
MODES = ("threads/group-commit", "threads/group-commit+journal", "threads/commit-per-vote", "processes/group-commit")
VARIANTS = (("demo:e2b", "demo:e2b"), ("demo:e4b", "demo:e4b"))


def prepare(path: Path, battles: int) -> list[str]:
    """A fresh store holding `battles` finished two-sided battles; their ids."""
    results = [
        Result("demo:e2b", "answer one", stats=Stats(ttft_s=0.05, tokens_per_s=40.0)),
        Result("demo:e4b", "answer two", stats=Stats(ttft_s=0.09, tokens_per_s=25.0)),
    ]
    request = Request("Which is better?")
    ids = [f"bench-{index:07d}" for index in range(battles)]

    def job(db: Database) -> None:
        for battle_id in ids:
            insert_battle(
                db,
                NewBattle(
                    id=battle_id,
                    created_at=time.time(),
                    mode="blind",
                    voter=None,
                    variants=VARIANTS,
                    prompt=request.prompt,
                    request_json=json.dumps(request.describe()),
                    has_image=False,
                    has_audio=False,
                ),
            )
            insert_runs(db, battle_id, results, time.time())

    with open_store(path) as store:
        store.write(job)
    return ids


def _vote_all(store: Store, battle_ids: Sequence[str], latencies: list[float], acked: list[int]) -> None:
    outcomes = ("a", "b", "tie", "both_bad")
    for index, battle_id in enumerate(battle_ids):
        started = time.perf_counter()
        vote_id = store.record_vote(battle_id, outcomes[index % 4], voter=f"bench-{os.getpid()}")
        latencies.append(time.perf_counter() - started)
        acked.append(vote_id)


def run_threads(
    path: Path, slices: list[list[str]], *, group_commit: bool, journal: Path | None = None
) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    acked: list[int] = []
    with open_store(
        path, group_commit=group_commit, busy_timeout_s=30, journal=None if journal is None else Journal(journal)
    ) as store:
        start = threading.Barrier(len(slices) + 1)

        def writer(battle_ids: list[str]) -> None:
            store.battle(battle_ids[0])  # open this thread's connection before the clock starts
            start.wait()
            _vote_all(store, battle_ids, latencies, acked)

        threads = [threading.Thread(target=writer, args=(part,)) for part in slices]
        for thread in threads:
            thread.start()
        start.wait()
        began = time.perf_counter()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - began
    return elapsed, latencies, len(acked)


def _process_writer(path: str, battle_ids: list[str], ready: Any, go: Any, out: Any) -> None:
    latencies: list[float] = []
    acked: list[int] = []
    with open_store(path, busy_timeout_s=30) as store:
        store.battle(battle_ids[0])
        ready.release()
        go.wait()
        _vote_all(store, battle_ids, latencies, acked)
    out.put((latencies, len(acked)))


def run_processes(path: Path, slices: list[list[str]]) -> tuple[float, list[float], int]:
    context = multiprocessing.get_context("spawn")
    ready, go, out = context.Semaphore(0), context.Event(), context.Queue()
    workers = [context.Process(target=_process_writer, args=(str(path), part, ready, go, out)) for part in slices]
    for worker in workers:
        worker.start()
    for _ in workers:
        ready.acquire()
    began = time.perf_counter()
    go.set()
    gathered = [out.get() for _ in workers]
    elapsed = time.perf_counter() - began
    for worker in workers:
        worker.join()
    latencies = [value for part, _ in gathered for value in part]
    return elapsed, latencies, sum(count for _, count in gathered)


def journaled_votes(folder: Path) -> int:
    """How many votes the journal files under `folder` hold."""
    return sum(
        json.loads(line).get("kind") == "vote" for part in folder.glob("journal/*.jsonl") for line in part.open()
    )


def count_votes(path: Path) -> tuple[int, str]:
    """(votes stored, integrity check result); each bench vote is two-sided: one pair outcome."""
    with open_store(path) as store:
        return len(store.pair_outcomes(mode="all", include_flagged=True)), store.integrity_check()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--votes", type=int, default=4000, help="votes per mode (default 4000)")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--dir", type=Path, help="folder for the database files (default: a temp folder)")
    args = parser.parse_args(argv)

    print(f"# vote ingestion: {args.writers} writers, {args.votes} votes per mode")
    print(
        f"# {datetime.now(UTC):%Y-%m-%d %H:%M UTC} | {platform.node()} | {platform.platform()} | "
        f"{os.cpu_count()} CPUs | load {' '.join(f'{x:.1f}' for x in os.getloadavg())} | "
        f"Python {platform.python_version()} | SQLite {__import__('sqlite3').sqlite_version}"
    )
    print(f"# targets: >= {TARGET_VOTES_PER_S:.0f} votes/s, p99 < {TARGET_P99_MS:.0f} ms, zero lost")
    print(
        f"{'mode':26} {'votes/s':>9} {'x target':>8} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} "
        f"{'x p99 target':>12} {'acked':>6} {'stored':>6} {'lost':>4} integrity"
    )
    folder = args.dir or Path(tempfile.mkdtemp(prefix="bench-votes-"))
    failed = False
    for mode in args.modes:
        path = folder / f"{mode.replace('/', '-')}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        journal = folder / f"{mode.replace('/', '-')}-journal" if mode.endswith("+journal") else None
        if journal is not None:
            shutil.rmtree(journal, ignore_errors=True)
        ids = prepare(path, args.votes)
        slices = [ids[index :: args.writers] for index in range(args.writers)]
        if mode == "processes/group-commit":
            elapsed, latencies, acked = run_processes(path, slices)
        else:
            elapsed, latencies, acked = run_threads(path, slices, group_commit="group-commit" in mode, journal=journal)
        stored, integrity = count_votes(path)
        if journal is not None:  # an acknowledged vote must be in the journal as well
            stored = min(stored, journaled_votes(journal))
            shutil.rmtree(journal, ignore_errors=True)
        rate = acked / elapsed
        quantiles = statistics.quantiles(latencies, n=100)
        p50, p99 = quantiles[49] * 1000, quantiles[98] * 1000
        lost = acked - stored
        failed |= lost != 0 or integrity != "ok"
        print(
            f"{mode:26} {rate:9.0f} {rate / TARGET_VOTES_PER_S:8.2f} {p50:7.2f} {p99:7.2f} "
            f"{max(latencies) * 1000:7.1f} {TARGET_P99_MS / p99:12.2f} {acked:6d} {stored:6d} {lost:4d} {integrity}"
        )
    print("# x target: votes/s over the target (>= 1 meets it); x p99 target: 20 ms over p99 (>= 1 meets it)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

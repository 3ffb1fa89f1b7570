"""Leaderboard speed and agreement: Bradley-Terry fit + bootstrap, and end to end from a battles file.

    .venv/bin/python -m bench.bench_leaderboard [--battles 1000000] [--rounds 1000] [--repeat 3]
    .venv/bin/python bench/bench_leaderboard.py   (the same)

Synthetic battles among 8 variants with known true ratings (seeded; 10 % ties, drawn so that a
tie is half a win, as the model assumes) are written by `storage.fastchat.write_battles` as a
JSONL file in a temp folder. Then, each run repeated and the minimum and median printed:

(a) aggregate -> fit -> bootstrap rounds, from the in-memory table (target < 1 s)
(b) end to end: read the file (`read_battle_table`) and `compute_leaderboard` (target < 2 s)

and, side by side in the same run: the slow reader (`json.loads` per line) on a slice of the same
file, the agreement with an independent scipy reference (per-battle likelihood, L-BFGS) on a
smaller sample, and how close the fit comes to the true ratings. The machine is printed with its
load average, since other work on it shows up in the timings.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import numpy as np
import scipy

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from arena.ratings import OUTCOMES, Battles, aggregate, bootstrap, compute_leaderboard, fit_bradley_terry, online_elo
from storage.fastchat import BattleRecord, read_battle_table, read_battles, write_battles
from tests.support.bt_reference import scipy_reference_elo

T = TypeVar("T")
TARGET_COUNTS_S = 1.0
TARGET_END_TO_END_S = 2.0
TIE_SHARE = 0.1
TRUE_ELO = {
    "gemma-4-31b-it": 1120.0,
    "gemma-4-26b-a4b-it": 1095.0,
    "gemma-4-31b-it-q8": 1110.0,
    "gemma-4-e4b-it": 1010.0,
    "gemma-4-26b-a4b-it-q4": 1060.0,
    "gemma-4-e4b-it-q4": 985.0,
    "gemma-4-e2b-it": 930.0,
    "gemma-4-e2b-it-q4": 900.0,
}


def synthetic_battles(n: int, seed: int) -> Battles:
    """n battles, sides at random; P(a scores) from the true ratings, a tie (half a win) 10 % of
    the time, the rest split so that the expected score of a is still that probability."""
    rng = np.random.default_rng(seed)
    names = list(TRUE_ELO)
    elo = np.array([TRUE_ELO[name] for name in names])
    a = rng.integers(0, len(names), n)
    b = (a + rng.integers(1, len(names), n)) % len(names)
    expected = 1.0 / (1.0 + 10.0 ** ((elo[b] - elo[a]) / 400.0))
    a_wins = (expected - TIE_SHARE / 2) / (1 - TIE_SHARE)
    outcome = np.where(rng.random(n) < a_wins, 0, 1)
    outcome = np.where(rng.random(n) < TIE_SHARE, rng.integers(2, 4, n), outcome)  # tie or both bad
    tstamp = 1.7e9 + np.cumsum(rng.exponential(3.0, n))
    return Battles.from_arrays(names, a, b, outcome, tstamp)


def records(battles: Battles) -> Iterator[BattleRecord]:
    """The table as FastChat records, as an export of votes would write them."""
    assert battles.tstamp is not None
    columns = (battles.a.tolist(), battles.b.tolist(), battles.outcome.tolist(), battles.tstamp.tolist())
    for index, (a, b, code, stamp) in enumerate(zip(*columns, strict=True)):
        yield BattleRecord(
            battles.models[a],
            battles.models[b],
            OUTCOMES[code],
            stamp,
            question_id=f"{index:032x}",
            judge=f"voter-{index % 5000}",
            anony=True,
        )


def timed(run: Callable[[], T], repeat: int) -> tuple[list[float], T]:
    """Seconds of each of `repeat` runs, and the last result."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return times, result


def line(label: str, times: list[float], target: float | None = None) -> str:
    text = f"{label:<58} min {min(times):7.3f} s   median {statistics.median(times):7.3f} s"
    if target is not None:
        text += f"   target {target:g} s -> {min(times) / target:.2f}x of target"
    return text


def machine() -> str:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = "/".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (
        f"{os.cpu_count()} CPUs ({usable} usable), load average {load}, {platform.platform()}, "
        f"{platform.processor() or platform.machine()}; Python {platform.python_version()}, "
        f"numpy {np.__version__}, scipy {scipy.__version__}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_leaderboard", description=__doc__.split("\n")[0])
    parser.add_argument("--battles", type=int, default=1_000_000, metavar="N", help="battles (default 1000000)")
    parser.add_argument("--rounds", type=int, default=1000, metavar="R", help="bootstrap rounds (default 1000)")
    parser.add_argument("--repeat", type=int, default=3, metavar="K", help="runs per measurement (default 3)")
    parser.add_argument(
        "--sample", type=int, default=20_000, metavar="N", help="battles for the scipy agreement check (default 20000)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--work-dir",
        type=Path,
        metavar="DIR",
        help="keep the battles file here and reuse it on the next run (default: a temp folder)",
    )
    args = parser.parse_args(argv)
    if args.battles < 1 or args.rounds < 1 or args.repeat < 1:
        parser.error("--battles, --rounds and --repeat must be at least 1")

    print(f"Gemma Arena leaderboard benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M UTC}")
    print(f"machine: {machine()}")
    battles = synthetic_battles(args.battles, args.seed)
    print(
        f"battles: {len(battles):,} among {len(battles.models)} variants (seed {args.seed}), "
        f"{args.rounds} bootstrap rounds, best and median of {args.repeat} runs"
    )

    with tempfile.TemporaryDirectory(prefix="bench-leaderboard-") as folder:
        path = battles_file(args.work_dir or Path(folder), battles, args.seed)
        measure_counts(battles, args.rounds, args.repeat)
        measure_file(path, battles, args.rounds, args.repeat)
    check_agreement(battles, args.sample, args.seed)
    return 0


def battles_file(folder: Path, battles: Battles, seed: int) -> Path:
    """The battles as FastChat JSONL written by `write_battles`; an earlier run's file is reused."""
    path = folder / f"battles-{len(battles)}-seed{seed}.jsonl"
    if path.exists():
        print(f"setup: reusing {path} ({path.stat().st_size / 1e6:.0f} MB)\n")
        return path
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    write_battles(records(battles), path)
    print(
        f"setup (not timed): wrote {path.stat().st_size / 1e6:.0f} MB of FastChat JSONL "
        f"in {time.perf_counter() - start:.1f} s\n"
    )
    return path


def measure_counts(battles: Battles, rounds: int, repeat: int) -> None:
    aggregate_times, counts = timed(lambda: aggregate(battles), repeat)
    fit_times, _ = timed(lambda: fit_bradley_terry(counts), repeat)
    boot_times, _ = timed(lambda: bootstrap(counts, rounds, seed=0), repeat)

    def from_counts() -> None:
        counts = aggregate(battles)
        fit_bradley_terry(counts)
        bootstrap(counts, rounds, seed=0)

    total_times, _ = timed(from_counts, repeat)
    print(line(f"(a) aggregate + fit + {rounds} bootstrap rounds", total_times, TARGET_COUNTS_S))
    print(
        f"    of which aggregate {min(aggregate_times):.3f} s, fit {min(fit_times):.3f} s, "
        f"bootstrap {min(boot_times):.3f} s"
    )


def measure_file(path: Path, battles: Battles, rounds: int, repeat: int) -> None:
    read_times, table = timed(lambda: read_battle_table(path), repeat)
    assert table.fast and len(table.battles) == len(battles), "the writer's file must take the fast path"
    board_times, _ = timed(lambda: compute_leaderboard(table.battles, rounds=rounds), repeat)
    elo_times, _ = timed(lambda: online_elo(table.battles), repeat)
    end_times, _ = timed(lambda: compute_leaderboard(read_battle_table(path).battles, rounds=rounds), repeat)
    print(line("(b) end to end: read the file + compute_leaderboard", end_times, TARGET_END_TO_END_S))
    print(
        f"    of which read {min(read_times):.3f} s (fast path), leaderboard {min(board_times):.3f} s "
        f"(online Elo {min(elo_times):.3f} s)"
    )
    print(f"    without online Elo (read + aggregate + fit + bootstrap): {min(end_times) - min(elo_times):.3f} s")
    compare_slow_reader(path, min(read_times) / len(battles))


def compare_slow_reader(path: Path, fast_per_battle: float) -> None:
    """The full reader (json.loads per line) on a slice of the same file, side by side."""
    slice_path = path.with_name("slice.jsonl")
    with path.open("rb") as source, slice_path.open("wb") as target:
        target.writelines(line for _, line in zip(range(100_000), source, strict=False))
    slow_times, slow = timed(lambda: read_battles(slice_path), 1)
    per_battle = min(slow_times) / len(slow.records)
    print(
        f"    side by side: read_battles (json.loads per line) {per_battle * 1e6:.2f} us/battle, "
        f"fast path {fast_per_battle * 1e6:.2f} us/battle: {per_battle / fast_per_battle:.1f}x faster\n"
    )


def check_agreement(battles: Battles, sample: int, seed: int) -> None:
    small = synthetic_battles(sample, seed + 1)
    ours = fit_bradley_terry(aggregate(small))
    gap = np.abs(ours - scipy_reference_elo(small)).max()
    print(
        f"agreement: max |ours - scipy per-battle L-BFGS reference| on {sample:,} battles = {gap:.5f} Elo (limit 0.01)"
    )
    fitted = fit_bradley_terry(aggregate(battles))
    truth = np.array([TRUE_ELO[name] for name in battles.models])
    error = np.abs((fitted - fitted.mean()) - (truth - truth.mean())).max()
    print(f"recovery: max |rating - true rating| (both centred) on {len(battles):,} battles = {error:.2f} Elo")


if __name__ == "__main__":
    sys.exit(main())

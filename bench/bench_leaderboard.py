"""Leaderboard speed and agreement: Bradley-Terry fit + bootstrap, and end to end from battle files.

    .venv/bin/python -m bench.bench_leaderboard [--battles 1000000] [--rounds 1000] [--repeat 3]
    .venv/bin/python bench/bench_leaderboard.py   (the same)

Synthetic battles among 8 variants with known true ratings (seeded; 10 % ties, drawn so that a
tie is half a win, as the model assumes), every one anonymous, are written in a temp folder in
three layouts:

- export: what `export --format fastchat` writes (`storage.fastchat.write_battles`, JSON lines,
  model_a, model_b, winner, tstamp first);
- lines: JSON lines with another key order (model_a, model_b, winner, anony, judge, tstamp);
- array: one JSON array as FastChat's clean_battle_data.py writes it (`json.dump(..., indent=2)`,
  its key order, extra fields conv_metadata, dedup_tag and category_tag; ~500 MB at 1M).

Then, each run repeated and the minimum and median printed:

(a) aggregate -> fit -> bootstrap rounds, from the in-memory table (target < 1 s); then the
    same battles read as the database gives them, every pair naming its vote, once with every
    vote two-sided (the draws are exactly those of (a)) and once with 10 % of the battles folded
    into four-way rankings (six pairs, one vote: the bootstrap draws over vote patterns). Those
    rankings are six random battles each, so nearly every one is a pattern of its own: the worst
    case, where the cost grows with the number of distinct multi-way votes
(b) end to end, per layout: `python app.py leaderboard --battles FILE --json` in a fresh process
    (interpreter start and imports included), with its peak memory (targets: < 1 s for JSON
    lines, < 2 s for the array, < 1.5 GB), and the reading alone in this process;

side by side in the same run, the previous reader: the same command run on the code of
BASELINE_COMMIT (the last commit that read battle files with a hand-written regular-expression
scanner and `json.loads`), extracted with `git archive` into a temp folder and run with this
interpreter; the ratio is its time over ours. Then the agreement with an independent scipy
reference (per-battle likelihood, L-BFGS) on a smaller sample, and how close the fit comes to
the true ratings. The machine is printed with its load average, since other work on it shows up
in the timings.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import numpy as np
import scipy

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from arena.ratings import OUTCOMES, Battles, aggregate, bootstrap, fit_bradley_terry, vote_patterns
from storage.fastchat import WINNERS, BattleRecord, write_battles
from storage.fastchat_reader import read_battle_table
from tests.support.bt_reference import scipy_reference_elo

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[1]
BASELINE_COMMIT = "08e126df36efde333289ba971656cf18b0ec8b41"
TARGET_COUNTS_S = 1.0
TARGETS_S = {"export": 1.0, "lines": 1.0, "array": 2.0}
TARGET_PEAK_MB = 1500
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
LAYOUTS = ("export", "lines", "array")


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


def columns(battles: Battles) -> Iterator[tuple[int, str, str, int, float]]:
    """(index, model_a, model_b, outcome code, tstamp) of every battle."""
    assert battles.tstamp is not None
    names = battles.models
    rows = zip(battles.a.tolist(), battles.b.tolist(), battles.outcome.tolist(), battles.tstamp.tolist(), strict=True)
    for index, (a, b, code, stamp) in enumerate(rows):
        yield index, names[a], names[b], code, stamp


# --- the three layouts ------------------------------------------------------------------------------


def write_export(battles: Battles, path: Path) -> None:
    """As `export --format fastchat` writes blind votes."""
    records = (
        BattleRecord(a, b, OUTCOMES[code], t, question_id=f"{i:032x}", judge=f"voter-{i % 5000}", anony=True)
        for i, a, b, code, t in columns(battles)
    )
    write_battles(records, path)


def write_lines(battles: Battles, path: Path) -> None:
    """JSON lines with the keys in another order than our export's."""
    encode = msgspec.json.Encoder().encode
    with path.open("wb") as out:
        for i, a, b, code, t in columns(battles):
            winner = WINNERS[code]
            battle = {
                "model_a": a,
                "model_b": b,
                "winner": winner,
                "anony": True,
                "judge": f"voter-{i % 5000}",
                "tstamp": t,
            }
            out.write(encode(battle) + b"\n")


def clean_battle(index: int, model_a: str, model_b: str, code: int, tstamp: float) -> dict[str, Any]:
    """One battle as FastChat's clean_battle_data.py keeps it: its key order, and the extra fields
    its later versions add (conversation metadata, deduplication and category tags)."""
    return {
        "question_id": f"{index:032x}",
        "model_a": model_a,
        "model_b": model_b,
        "winner": WINNERS[code],
        "judge": f"arena_user_{index % 5000}",
        "turn": 1,
        "anony": True,
        "language": "English",
        "tstamp": tstamp,
        "conv_metadata": {"sum_user_tokens": 18, "sum_assistant_a_tokens": 240, "sum_assistant_b_tokens": 212},
        "dedup_tag": {"high_freq": False},
        "category_tag": {"math_v0.1": {"math": False}},
    }


def write_array(battles: Battles, path: Path) -> None:
    """One JSON array, byte for byte as `json.dump(battles, file, indent=2)` writes it (checked on
    the first items), formatted by msgspec in slices: json.dump with an indent runs json's pure
    Python encoder, ~1 minute for a million battles."""
    items = [clean_battle(*row) for row in columns(battles)]
    check = items[:300]
    if _indented_array(check, slice_size=100) != json.dumps(check, indent=2).encode():
        raise AssertionError("the array writer no longer writes what json.dump(indent=2) writes")
    path.write_bytes(_indented_array(items, slice_size=100_000))


def _indented_array(items: list[dict[str, Any]], slice_size: int) -> bytes:
    encoder = msgspec.json.Encoder()
    parts = []
    for start in range(0, len(items), slice_size):
        text = msgspec.json.format(encoder.encode(items[start : start + slice_size]), indent=2)
        parts.append(text[2:-2])  # without the slice's own "[\n" and "\n]"
    return b"[\n" + b",\n".join(parts) + b"\n]"


WRITERS: dict[str, Callable[[Battles, Path], None]] = {
    "export": write_export,
    "lines": write_lines,
    "array": write_array,
}
SUFFIXES = {"export": "jsonl", "lines": "jsonl", "array": "json"}


def battle_files(folder: Path, battles: Battles, seed: int) -> dict[str, Path]:
    """The battles in each layout; files from an earlier run (--work-dir) are reused."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for layout in LAYOUTS:
        path = folder / f"{layout}-{len(battles)}-seed{seed}.{SUFFIXES[layout]}"
        if not path.exists():
            start = time.perf_counter()
            WRITERS[layout](battles, path)
            took = time.perf_counter() - start
            print(f"setup (not timed): wrote {path.name}, {_mb(path.stat().st_size)} in {took:.1f} s")
        else:
            print(f"setup: reusing {path.name}, {_mb(path.stat().st_size)}")
        paths[layout] = path
    print()
    return paths


# --- measuring ----------------------------------------------------------------------------------------


def timed(run: Callable[[], T], repeat: int) -> tuple[list[float], T]:
    """Seconds of each of `repeat` runs, and the last result."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return times, result


@dataclass(frozen=True)
class Run:
    """One `leaderboard --battles` process: wall seconds; CPU seconds (user + system) and peak
    resident memory, None where GNU time is missing; its JSON output. On a shared machine the
    CPU seconds move less than the wall seconds: they say what the process itself needed."""

    seconds: float
    cpu_seconds: float | None
    peak_mb: float | None
    board: dict[str, Any]


GNU_TIME = Path("/usr/bin/time")


def leaderboard_process(code: Path, path: Path, rounds: int) -> Run:
    """`python app.py leaderboard --battles path --json` in `code` (a checkout), timed from start
    to exit. Its peak RSS comes from GNU time: a process started straight from this one would
    report this one's peak instead (Linux carries the peak over fork and exec)."""
    command = [sys.executable, "app.py", "leaderboard", "--battles", str(path), "--json", "--rounds", str(rounds)]
    with tempfile.NamedTemporaryFile() as peak, tempfile.TemporaryFile() as out:
        wrapper = [str(GNU_TIME), "-f", "%M %U %S", "-o", peak.name] if GNU_TIME.exists() else []
        start = time.perf_counter()
        result = subprocess.run(wrapper + command, cwd=code, stdout=out, stderr=subprocess.PIPE)
        seconds = time.perf_counter() - start
        if result.returncode:
            raise RuntimeError(f"{' '.join(command)} failed in {code}: {result.stderr.decode(errors='replace')}")
        out.seek(0)
        board = json.loads(out.read())
        measured = Path(peak.name).read_text().split()
        if len(measured) != 3:
            return Run(seconds, None, None, board)
        return Run(seconds, float(measured[1]) + float(measured[2]), int(measured[0]) / 1024, board)


def _peak(runs: list[Run]) -> str:
    peaks = [run.peak_mb for run in runs if run.peak_mb is not None]
    return f"{max(peaks):.0f} MB" if peaks else "not measured (no GNU time)"


def _cpu(runs: list[Run]) -> str:
    cpu = [run.cpu_seconds for run in runs if run.cpu_seconds is not None]
    return f"{min(cpu):.3f} s" if cpu else "not measured (no GNU time)"


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
    tables = {"every vote two-sided": with_votes(battles, 0.0), "10 % rankings, worst case": with_votes(battles)}
    for label, table in tables.items():

        def by_votes(table: Battles = table) -> int:
            counts = aggregate(table)
            patterns = vote_patterns(table)
            fit_bradley_terry(counts)
            bootstrap(counts, rounds, seed=0, patterns=patterns)
            return len(patterns.votes)

        times, patterns = timed(by_votes, repeat)
        print(line(f"    with vote ids, {label} ({patterns:,} vote patterns)", times, TARGET_COUNTS_S))
    print()


def with_votes(battles: Battles, ranked_share: float = 0.1) -> Battles:
    """`battles` with a vote id per row: the first `ranked_share` of them six by six as one vote
    each (as a four-way ranking gives six pairs), the rest a vote each."""
    n = len(battles)
    grouped = int(n * ranked_share) // 6 * 6
    vote = np.concatenate([np.arange(grouped) // 6, grouped // 6 + np.arange(n - grouped)])
    return Battles(battles.models, battles.a, battles.b, battles.outcome, battles.tstamp, vote)


def measure_files(paths: dict[str, Path], battles: Battles, args: argparse.Namespace) -> None:
    baseline = baseline_checkout(args.baseline, Path(args.scratch)) if args.baseline else None
    print(f"(b) end to end: python app.py leaderboard --battles FILE --json --rounds {args.rounds}")
    for layout, path in paths.items():
        ours = [leaderboard_process(REPO, path, args.rounds) for _ in range(args.repeat)]
        if any(run.board["battles"] != len(battles) for run in ours):
            raise AssertionError(f"{layout}: rated {ours[0].board['battles']} battles, not {len(battles)}")
        times = [run.seconds for run in ours]
        print(line(f"    {layout} ({_mb(path.stat().st_size)})", times, TARGETS_S[layout]))
        print(f"        CPU (user + system) min {_cpu(ours)}; peak memory {_peak(ours)} (target < {TARGET_PEAK_MB} MB)")
        read_times, table = timed(partial(read_battle_table, path), args.repeat)
        how = "one pass" if table.fast else "entry by entry"
        print(f"        of which reading, in this process: {min(read_times):.3f} s ({how})")
        if baseline is not None:
            before = [leaderboard_process(baseline, path, args.rounds) for _ in range(args.baseline_repeat)]
            same = "same leaderboard" if before[0].board["rows"] == ours[0].board["rows"] else "LEADERBOARDS DIFFER"
            old = min(run.seconds for run in before)
            print(
                f"        previous reader ({args.baseline[:10]}): min {old:.3f} s of {len(before)} (CPU "
                f"{_cpu(before)}), peak {_peak(before)}; ratio {old / min(times):.1f}x ({same})"
            )
    print()


def baseline_checkout(commit: str, scratch: Path) -> Path | None:
    """The code of `commit`, extracted from this repository's history into a temp folder."""
    archive = subprocess.run(["git", "archive", commit], cwd=REPO, capture_output=True)
    if archive.returncode:
        print(f"previous reader: not measured, git cannot give commit {commit} ({archive.stderr.decode().strip()})")
        return None
    target = scratch / f"baseline-{commit[:10]}"
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(target, filter="data")
    return target


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


def line(label: str, times: list[float], target: float | None = None) -> str:
    text = f"{label:<58} min {min(times):7.3f} s   median {statistics.median(times):7.3f} s"
    if target is not None:
        text += f"   target {target:g} s -> {min(times) / target:.2f}x of target"
    return text


def _mb(size: float) -> str:
    return f"{size / 1e6:.0f} MB"


def machine() -> str:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = "/".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (
        f"{os.cpu_count()} CPUs ({usable} usable), load average {load}, {platform.platform()}, "
        f"{platform.processor() or platform.machine()}; Python {platform.python_version()}, "
        f"numpy {np.__version__}, scipy {scipy.__version__}, msgspec {msgspec.__version__}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_leaderboard", description=__doc__.split("\n")[0])
    parser.add_argument("--battles", type=int, default=1_000_000, metavar="N", help="battles (default 1000000)")
    parser.add_argument("--rounds", type=int, default=1000, metavar="R", help="bootstrap rounds (default 1000)")
    parser.add_argument("--repeat", type=int, default=3, metavar="K", help="runs per measurement (default 3)")
    parser.add_argument(
        "--baseline",
        default=BASELINE_COMMIT,
        metavar="COMMIT",
        help="the commit whose reader to compare with (default: the last one with the hand-written scanner; "
        "'' skips it)",
    )
    parser.add_argument(
        "--baseline-repeat", type=int, default=1, metavar="K", help="runs of the previous reader per file (default 1)"
    )
    parser.add_argument(
        "--sample", type=int, default=20_000, metavar="N", help="battles for the scipy agreement check (default 20000)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--work-dir",
        type=Path,
        metavar="DIR",
        help="keep the battle files here and reuse them on the next run (default: a temp folder)",
    )
    args = parser.parse_args(argv)
    if args.battles < 1 or args.rounds < 1 or args.repeat < 1 or args.baseline_repeat < 1:
        parser.error("--battles, --rounds, --repeat and --baseline-repeat must be at least 1")

    print(f"Gemma Arena leaderboard benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M UTC}")
    print(f"machine: {machine()}")
    battles = synthetic_battles(args.battles, args.seed)
    print(
        f"battles: {len(battles):,} among {len(battles.models)} variants (seed {args.seed}), all anonymous, "
        f"{args.rounds} bootstrap rounds, best and median of {args.repeat} runs\n"
    )
    measure_counts(battles, args.rounds, args.repeat)
    with tempfile.TemporaryDirectory(prefix="bench-leaderboard-") as folder:
        args.scratch = folder
        paths = battle_files(args.work_dir or Path(folder), battles, args.seed)
        measure_files(paths, battles, args)
    check_agreement(battles, args.sample, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())

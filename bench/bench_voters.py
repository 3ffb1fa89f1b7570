"""Logged-in voters against the real server: every acknowledged vote stored once, and how long a
battle-and-vote cycle takes.

    .venv/bin/python -m bench.bench_voters [--voters 20] [--seconds 60] [--max-new-tokens 16]
                                           [--call-timeout 60] [--battle-pace lockstep|whole] [--keep]

`python app.py serve` runs in a subprocess on demo:e2b and demo:e4b, behind a users file with one
voter per simulated person, on a fresh database in a temp folder (the demo cache is the user's
own, or GEMMA_ARENA_CACHE). Each voter is a thread with its own logged-in `gradio_client.Client`
(one session) that, with no pause, sends a blind battle (`/battle`, a prompt naming the voter and
a counter) and votes on it with a random outcome (`/vote_a`, `/vote_b`, `/vote_tie`,
`/vote_both_bad`), until the time is up: no cycle starts after the deadline, the ones in flight
finish. The clock starts once every voter is logged in and both variants are loaded.

The server runs with the defaults except `--max-votes-per-minute`, raised (600) because these
voters do not read the answers; a refusal would be an error here. Afterwards the server is
stopped (Ctrl-C) and the database read: each acknowledged vote must be stored exactly once, on
the battle of its prompt, with its voter and outcome; no vote may be stored that was not
acknowledged, no battle voted twice, and each vote's voter is the one its battle was served to.
Exits 1 on any lost, duplicated, wrong or unacknowledged vote, or any error (a call the server
has not answered after `--call-timeout` is one); the temp folder, with the server's log, is then
kept. The voters' threads run on the same cores as the server: their latencies include that.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import os
import platform
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from arena.settings import Settings
from arena.users import add_user
from tests.support.app_process import app_env, kill_group, start_app, wait_for_log, wait_until_served
from tests.support.ui import free_port

if TYPE_CHECKING:
    from gradio_client import Client

VARIANTS = ("demo:e2b", "demo:e4b")
OUTCOMES = ("a", "b", "tie", "both_bad")
MAX_VOTES_PER_MINUTE = 600
ERROR_PAUSE_S = 0.5  # after a refused call, so a dead server does not spin the voters
STOP_WAIT_S = 60.0


@dataclass(frozen=True)
class Cycle:
    """One acknowledged battle and vote; times from `time.perf_counter`."""

    voter: str
    prompt: str
    outcome: str
    sent: float  # /battle request sent
    answered: float  # /battle returned
    acked: float  # /vote_* returned


@dataclass(frozen=True)
class Failure:
    voter: str
    step: str  # "battle" or "vote"
    prompt: str
    message: str


@dataclass
class Run:
    """What the voters saw, gathered from their threads."""

    cycles: list[Cycle] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, item: Cycle | Failure) -> None:
        with self.lock:
            if isinstance(item, Cycle):
                self.cycles.append(item)
            else:
                self.failures.append(item)


@dataclass(frozen=True)
class Stored:
    """A vote in the database, joined with its battle."""

    battle_id: str
    prompt: str
    served_to: str | None
    voter: str | None
    outcome: str | None


# ------------------------------------------------------------------------------------ voters
def vote_until(
    client: Client, name: str, deadline: float, seed: int, max_new_tokens: int, call_timeout_s: float, run: Run
) -> None:
    """One voter's loop: battle, vote, again, until `deadline` (perf_counter); no pause between."""
    rng = random.Random(seed)
    count = 0
    while time.perf_counter() < deadline:
        count += 1
        prompt = f"bench-voters {name} #{count}: tell me about rivers"
        outcome = rng.choice(OUTCOMES)
        sent = time.perf_counter()
        try:
            outputs = call(
                client, call_timeout_s, "/battle", prompt={"text": prompt, "files": []}, max_new_tokens=max_new_tokens
            )
            summary = outputs[-1]
        except Exception as exc:
            run.add(Failure(name, "battle", prompt, _message(exc)))
            time.sleep(ERROR_PAUSE_S)
            continue
        answered = time.perf_counter()
        if not summary.get("can_vote"):
            errors = "; ".join(str(side.get("error")) for side in summary.get("results", []) if side.get("error"))
            run.add(Failure(name, "battle", prompt, f"takes no vote: {errors or summary}"))
            continue
        try:
            call(client, call_timeout_s, f"/vote_{outcome}")
        except Exception as exc:
            run.add(Failure(name, "vote", prompt, _message(exc)))
            time.sleep(ERROR_PAUSE_S)
            continue
        run.add(Cycle(name, prompt, outcome, sent, answered, time.perf_counter()))


def call(client: Client, timeout_s: float, api_name: str, **inputs: Any) -> Any:
    """`client.predict`, given up (and cancelled) after `timeout_s`: a call the server never
    answers is an error here, not a voter that waits forever."""
    job = client.submit(api_name=api_name, **inputs)
    try:
        return job.result(timeout=timeout_s)
    except concurrent.futures.TimeoutError:
        job.cancel()
        raise TimeoutError(f"{api_name} not answered within {timeout_s:g} s") from None


def run_voters(
    url: str, passwords: dict[str, str], seconds: float, max_new_tokens: int, call_timeout_s: float
) -> tuple[Run, float, float]:
    """Log every voter in, start them together, wait for all; (run, start, end) in perf_counter."""
    from gradio_client import Client

    clients = {
        name: Client(url, auth=(name, password), download_files=False, verbose=False)
        for name, password in passwords.items()
    }
    run = Run()
    start = threading.Barrier(len(clients) + 1)
    deadline: list[float] = []

    def voter(index: int, name: str) -> None:
        start.wait()
        vote_until(clients[name], name, deadline[0], index, max_new_tokens, call_timeout_s, run)

    threads = [threading.Thread(target=voter, args=(i, name), name=name) for i, name in enumerate(clients)]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    deadline.append(began + seconds)
    start.wait()
    for thread in threads:
        thread.join()
    ended = time.perf_counter()
    for client in clients.values():
        client.close()
    return run, began, ended


def _message(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()


# ------------------------------------------------------------------------------------ server
def start_server(
    folder: Path, passwords: dict[str, str], options: Sequence[str] = ()
) -> tuple[subprocess.Popen[bytes], str, Path, Path]:
    """`python app.py serve [options]` behind a users file of `passwords`, both variants loaded;
    (process, url, database, log)."""
    users, db, log = folder / "users.toml", folder / "arena.db", folder / "server.log"
    for name, password in passwords.items():
        add_user(users, name, password, "voter")
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = app_env(folder, Settings.from_env().cache_dir)
    process = start_app(
        [
            "serve",
            "--users",
            str(users),
            "--variants",
            *VARIANTS,
            "--db",
            str(db),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--max-votes-per-minute",
            str(MAX_VOTES_PER_MINUTE),
            *options,
        ],
        env,
        log,
    )
    try:
        wait_until_served(url, process, log)
        wait_for_log(log, [f"{spec}: ready" for spec in VARIANTS], process)
    except BaseException:  # pytest.fail's exception is a BaseException
        stop_server(process)
        raise
    return process, url, db, log


def stop_server(process: subprocess.Popen[bytes]) -> float:
    """Ctrl-C the server and wait for it; kill what is left of its process group. Seconds taken."""
    began = time.perf_counter()
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            print(f"# the server did not stop within {STOP_WAIT_S:.0f} s of Ctrl-C: killed")
    kill_group(process)
    return time.perf_counter() - began


# ------------------------------------------------------------------------------------ checks
def stored_votes(db: Path) -> tuple[list[Stored], Counter[str]]:
    """Every stored vote with its battle; and how many battles each prompt opened."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        votes = [
            Stored(*row)
            for row in conn.execute(
                "SELECT b.id, b.prompt, b.voter, v.voter, v.outcome FROM votes v JOIN battles b ON b.id = v.battle_id"
            )
        ]
        battles = Counter(prompt for (prompt,) in conn.execute("SELECT prompt FROM battles"))
    return votes, battles


@dataclass
class Check:
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    unacknowledged: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.wrong or self.unacknowledged)


def check_votes(cycles: Sequence[Cycle], votes: Sequence[Stored], failures: Sequence[Failure] = ()) -> Check:
    """Compare what the voters were told with what the database holds, vote by vote (by prompt)."""
    check = Check()
    by_prompt: dict[str, list[Stored]] = {}
    for vote in votes:
        by_prompt.setdefault(vote.prompt, []).append(vote)
    for battle_id, n in Counter(vote.battle_id for vote in votes).items():
        if n > 1:
            check.duplicated.append(f"battle {battle_id} voted {n} times")
    acked = {cycle.prompt: cycle for cycle in cycles}
    for cycle in cycles:
        found = by_prompt.get(cycle.prompt, [])
        if not found:
            check.lost.append(cycle.prompt)
            continue
        if len(found) > 1:
            check.duplicated.append(f"{cycle.prompt!r} stored {len(found)} times")
        for vote in found:
            if (vote.voter, vote.served_to, vote.outcome) != (cycle.voter, cycle.voter, cycle.outcome):
                check.wrong.append(
                    f"{cycle.prompt!r}: acknowledged {cycle.voter}/{cycle.outcome}, stored "
                    f"served to {vote.served_to}, voter {vote.voter}, outcome {vote.outcome}"
                )
    refused = {failure.prompt for failure in failures if failure.step == "vote"}
    check.unacknowledged = [
        f"{vote.prompt!r} ({vote.voter}/{vote.outcome})"
        + (": its vote call failed" if vote.prompt in refused else ": no vote call")
        for vote in votes
        if vote.prompt not in acked
    ]
    return check


# ------------------------------------------------------------------------------------ report
def quantiles_ms(values: Sequence[float]) -> str:
    if not values:
        return "no samples"
    cuts = statistics.quantiles(values, n=100, method="inclusive") if len(values) > 1 else [values[0]] * 99
    return (
        f"p50 {cuts[49] * 1000:7.0f} ms  p90 {cuts[89] * 1000:7.0f} ms  p99 {cuts[98] * 1000:7.0f} ms  "
        f"max {max(values) * 1000:7.0f} ms  (n={len(values)})"
    )


def machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or platform.machine(),
    )
    import gradio

    return (
        f"# {datetime.now().astimezone():%Y-%m-%d %H:%M %Z} | {platform.node()} | {model} | "
        f"{os.cpu_count()} CPUs | load {' '.join(f'{x:.1f}' for x in os.getloadavg())} | "
        f"Python {platform.python_version()} | gradio {gradio.__version__}"
    )


def report(run: Run, check: Check, votes: Sequence[Stored], battles: Counter[str], began: float) -> None:
    cycles = run.cycles
    print(f"cycles completed (battle + acknowledged vote): {len(cycles)}")
    print(
        f"votes acknowledged: {len(cycles)}   votes stored: {len(votes)}   battles stored: {sum(battles.values())}"
        f" (prompts that opened more than one: {sum(1 for n in battles.values() if n > 1)})"
    )
    print(
        f"lost: {len(check.lost)}   duplicated: {len(check.duplicated)}   wrong voter/outcome: {len(check.wrong)}"
        f"   stored but not acknowledged: {len(check.unacknowledged)}"
    )
    steps = Counter(failure.step for failure in run.failures)
    print(f"errors: {len(run.failures)}" + (f" ({', '.join(f'{n} {s}' for s, n in steps.items())})" if steps else ""))
    for failure in run.failures[:5]:
        print(f"  {failure.voter} {failure.step} {failure.prompt!r}: {failure.message[:300]}")
    for label, items in (
        ("lost", check.lost),
        ("duplicated", check.duplicated),
        ("wrong", check.wrong),
        ("not acknowledged", check.unacknowledged),
    ):
        for item in items[:5]:
            print(f"  {label}: {item}")
    print(f"battle -> acknowledged vote: {quantiles_ms([c.acked - c.sent for c in cycles])}")
    print(f"battle call alone:           {quantiles_ms([c.answered - c.sent for c in cycles])}")
    print(f"vote call alone:             {quantiles_ms([c.acked - c.answered for c in cycles])}")
    per_voter = Counter(c.voter for c in cycles)
    span = max((c.acked for c in cycles), default=began) - began
    print(
        f"throughput: {len(cycles) / span if span else 0.0:.2f} votes/s (start to last acknowledged vote, "
        f"{span:.1f} s); cycles per voter "
        f"min {min(per_voter.values(), default=0)}, max {max(per_voter.values(), default=0)} cycles"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--voters", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0, help="how long voters start new cycles (default 60)")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument(
        "--call-timeout",
        type=float,
        default=60.0,
        help="seconds a /battle or /vote_* call may take before it counts as an error (default 60)",
    )
    parser.add_argument(
        "--battle-pace",
        choices=("lockstep", "whole"),
        help="pass `--battle-pace` to the server (default: leave the server's default)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (database, server log)")
    args = parser.parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

    print(
        f"# {args.voters} logged-in voters x {args.seconds:g} s through gradio_client against `python app.py "
        f"serve --variants {' '.join(VARIANTS)}`; max_new_tokens {args.max_new_tokens}; no think time"
    )
    pace = f"--battle-pace {args.battle_pace}" if args.battle_pace else "the default battle pace"
    print(
        f"# server limits at defaults except --max-votes-per-minute {MAX_VOTES_PER_MINUTE} (default 20); {pace}; "
        f"a call unanswered after {args.call_timeout:g} s is an error"
    )
    print(machine())
    folder = Path(tempfile.mkdtemp(prefix="bench-voters-"))
    passwords = {f"voter{index:02d}": f"bench-password-{index:02d}" for index in range(args.voters)}
    options = ["--battle-pace", args.battle_pace] if args.battle_pace else []
    process, url, db, log = start_server(folder, passwords, options)
    try:
        run, began, ended = run_voters(url, passwords, args.seconds, args.max_new_tokens, args.call_timeout)
    finally:
        stop_s = stop_server(process)
    print(
        f"# voters ran {ended - began:.1f} s (new cycles for {args.seconds:g} s, then the ones in flight); "
        f"server stopped in {stop_s:.1f} s"
    )
    votes, battles = stored_votes(db)
    check = check_votes(run.cycles, votes, run.failures)
    report(run, check, votes, battles, began)
    failed = not check.ok or bool(run.failures)
    if failed or args.keep:
        print(f"# kept: {folder} (server log {log.name}, database {db.name})")
    else:
        shutil.rmtree(folder, ignore_errors=True)
    print("RESULT: " + ("FAILED" if failed else "ok: no vote lost, duplicated or misattributed; no errors"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

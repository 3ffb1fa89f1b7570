"""Time to a judge's next pair of a prompt set, with 100,000 stored answers.

    .venv/bin/python -m bench.bench_judge_queue [--prompts 25000] [--variants 4] [--judgments 20000]

A real SQLite file is filled with a set of `--prompts` prompts, each answered by `--variants`
variants (100,000 answers: 150,000 pairs), and `--judgments` verdicts by 20 judges stored the way
the Judge tab stores them (`storage.judgments.insert_judgment`: a blind battle, its runs, its vote and
the link). Then, side by side in one run:

- `JudgeFlow.next_pair`, what the tab and its API call: the first call builds the in-memory index
  of the set's pairs from the database (`arena.judge_queue`); every later call reads only what was
  stored since (two indexed range reads), picks the pair, reads its prompt and two answers and
  issues a token. Measured for several judges, alternating skips (nothing stored) and verdicts
  (each stored, then picked up by the next call's refresh); only the next_pair call is timed.
- the same question asked of SQL alone (least judged pair this judge has not judged), with the
  indexes the schema has: the alternative to the in-memory index.

- the index's worst case, in memory alone: late in a campaign, every pair judged at least once
  and the judge has judged 95 % of the least judged ones (random picks miss; the bucket is scanned).

Prints p50 / p99 / max per approach against the 50 ms target.
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path
from sqlite3 import connect

from sqlite_utils import Database

from arena.judge_queue import PairIndex
from arena.measure import Result, Stats
from arena.prompt_sets import SetPrompt
from backends.base import Request
from storage import Store, open_store
from storage.judgments import insert_judgment
from storage.sets import add_prompts, answer_values, insert_answer
from ui.judge import JudgeFlow

TARGET_MS = 50.0
SET = "bench"
JUDGES = [f"judge-{n:02d}" for n in range(20)]

#: The least judged pair a judge has not judged, in SQL alone: the judgments counted per pair into
#: a typed temporary table with a primary key (the expression index on set_judgments is not used
#: for a correlated lookup, and an untyped table's column affinity keeps its index out of the join),
#: then every pair of the set (the partial unique index on set_answers) looked up in it and sorted.
SQL_COUNTS = [
    "CREATE TEMP TABLE pair_counts (lo INTEGER, hi INTEGER, n INTEGER, mine INTEGER, PRIMARY KEY (lo, hi))",
    "INSERT INTO temp.pair_counts SELECT min(answer_a, answer_b), max(answer_a, answer_b), COUNT(*), "
    "SUM(judge = :judge) FROM set_judgments WHERE set_name = :set GROUP BY 1, 2",
]
SQL_PICK = """
SELECT a.id, b.id FROM set_answers a INDEXED BY set_answers_once JOIN set_answers b INDEXED BY set_answers_once
    ON b.set_name = a.set_name AND b.prompt_id = a.prompt_id AND b.variant != a.variant AND b.id > a.id
    LEFT JOIN temp.pair_counts c ON c.lo = a.id AND c.hi = b.id
    WHERE a.set_name = :set AND a.error IS NULL AND b.error IS NULL
    AND a.identity_words IS NULL AND b.identity_words IS NULL AND IFNULL(c.mine, 0) = 0
    ORDER BY IFNULL(c.n, 0), random() LIMIT 1
"""


def sql_next_pair(db: Database, judge: str) -> tuple[int, int] | None:
    """The SQL-only pick, on a connection of its own."""
    for statement in SQL_COUNTS:
        db.execute(statement, {"set": SET, "judge": judge})
    row = db.execute(SQL_PICK, {"set": SET}).fetchone()
    db.execute("DROP TABLE temp.pair_counts")
    return None if row is None else (row[0], row[1])


def fill(store: Store, prompts: int, variants: int, judgments: int, rng: random.Random) -> None:
    started = time.perf_counter()
    add_prompts(store, SET, "bench.jsonl", [
        SetPrompt(f"p{n:06d}", n + 1, Request(f"Prompt number {n}: summarise this receipt.", max_new_tokens=256),
                  f"category-{n % 5}", (f"tag-{n % 7}", f"tag-{n % 11}"))
        for n in range(prompts)
    ])
    names = [f"variant-{v}" for v in range(variants)]
    now = time.time()

    def answers(db: Database) -> None:
        for n in range(prompts):
            for variant in names:
                stats = Stats(ttft_s=0.05, tokens_per_s=40.0, total_s=3.0, output_tokens=120, weights_bytes=10**9,
                              memory_kind="cuda", token_source="engine")
                text = f"An answer of {variant} to prompt {n}, about as long as a short paragraph. " * 4
                insert_answer(db, answer_values(SET, f"p{n:06d}", variant, f"demo:{variant}", 0, n, now,
                                                Result(variant, text, stats=stats), ()))

    store.write(answers)
    ids = {}
    with store._read() as db:
        for answer_id, prompt, variant in db.execute("SELECT id, prompt_id, variant FROM set_answers"):
            ids[prompt, variant] = answer_id
    chosen: set[tuple[int, int, str]] = set()  # a judge judges a pair once, whichever side each answer is on
    while len(chosen) < judgments:
        prompt = f"p{rng.randrange(prompts):06d}"
        a, b = sorted(ids[prompt, variant] for variant in rng.sample(names, 2))
        chosen.add((a, b, rng.choice(JUDGES)))
    work = [(a, b, judge) if rng.random() < 0.5 else (b, a, judge) for a, b, judge in sorted(chosen)]

    def judge_all(db: Database) -> None:
        for a, b, judge in work:
            insert_judgment(db, a, b, rng.choice(["a", "b", "tie", "both_bad"]), judge, now)

    store.write(judge_all)
    print(f"filled: {prompts:,} prompts x {variants} variants = {prompts * variants:,} answers, "
          f"{judgments:,} verdicts by {len(JUDGES)} judges, in {time.perf_counter() - started:.1f} s")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(name: str, times_ms: list[float]) -> None:
    verdict = "meets" if percentile(times_ms, 0.99) < TARGET_MS else "MISSES"
    print(f"{name:<44} n={len(times_ms):>5}  p50 {statistics.median(times_ms):8.2f} ms  "
          f"p99 {percentile(times_ms, 0.99):8.2f} ms  max {max(times_ms):8.2f} ms  ({verdict} the {TARGET_MS:g} ms "
          "target at p99)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=25_000)
    parser.add_argument("--variants", type=int, default=4)
    parser.add_argument("--judgments", type=int, default=20_000)
    parser.add_argument("--calls", type=int, default=300, help="next_pair calls per judge")
    parser.add_argument("--judges", type=int, default=6, help="judges measured")
    parser.add_argument("--sql-calls", type=int, default=10, help="SQL-only picks timed")
    args = parser.parse_args(argv)
    print(f"bench_judge_queue on {platform.platform()}, Python {platform.python_version()}")
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.db"
        with open_store(path) as store:
            fill(store, args.prompts, args.variants, args.judgments, rng)
        with open_store(path) as store:
            flow = JudgeFlow(store, rng=random.Random(1))
            started = time.perf_counter()
            flow.next_pair(JUDGES[0], SET)
            print(f"first call (builds the index of {args.prompts * args.variants * (args.variants - 1) // 2:,} "
                  f"pairs): {(time.perf_counter() - started) * 1000:.0f} ms")
            after_skip: list[float] = []
            after_vote: list[float] = []
            for judge in JUDGES[: args.judges]:
                view = flow.next_pair(judge, SET)
                for call in range(args.calls):
                    if call % 2:  # a verdict (stored, not timed), then the next pair
                        flow.vote(judge, view["token"], rng.choice(["a", "b", "tie", "both_bad"]))
                        started = time.perf_counter()
                        view = flow.next_pair(judge, SET)
                        after_vote.append((time.perf_counter() - started) * 1000)
                    else:  # skip answers with the next pair
                        started = time.perf_counter()
                        view = flow.skip(judge, view["token"])
                        after_skip.append((time.perf_counter() - started) * 1000)
                    assert view["token"] is not None
            report("skip -> next pair (in-memory index)", after_skip)
            report("verdict stored -> next pair (in-memory index)", after_vote)
            sql: list[float] = []
            with closing(connect(path)) as conn:
                db = Database(conn, execute_plugins=False)
                for n in range(args.sql_calls):
                    started = time.perf_counter()
                    assert sql_next_pair(db, JUDGES[n % len(JUDGES)]) is not None
                    sql.append((time.perf_counter() - started) * 1000)
            report("the same pick in SQL alone", sql)
            ratio = statistics.median(sql) / statistics.median(after_skip + after_vote)
            print(f"SQL alone / in-memory index, median: {ratio:,.0f}x")
    report("late in a campaign: index pick alone", late_campaign(args.prompts, args.variants, args.judges))
    return 0


def late_campaign(prompts: int, variants: int, judges: int) -> list[float]:
    """The index's worst case: every pair judged once, and each measured judge has judged 95 % of
    them, so random picks mostly miss and the lowest bucket is scanned."""
    index = PairIndex(random.Random(2))
    for n in range(prompts):
        for v in range(variants):
            index.add_answer(n * variants + v, f"p{n}", f"variant-{v}")
    pairs = [(n * variants + a, n * variants + b) for n in range(prompts) for a in range(variants)
             for b in range(a + 1, variants)]
    rng = random.Random(3)
    times = []
    for j in range(judges):
        judge = f"late-{j}"
        for a, b in pairs:
            index.add_judgment(a, b, judge if rng.random() < 0.95 else "someone")
        for _ in range(20):
            started = time.perf_counter()
            served = index.next_pair(judge)
            times.append((time.perf_counter() - started) * 1000)
            assert served is not None
    return times


if __name__ == "__main__":
    sys.exit(main())

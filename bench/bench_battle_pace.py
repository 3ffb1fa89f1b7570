"""What each pace of `ui.streaming.stream_panels` costs a battle, and what it gives away.

Two demo variants of different speed (demo:e2b and demo:31b by default) answer the same request
(Gemma 4's recommended sampling with a fixed seed, so every run generates the same tokens) through
`stream_panels` at each pace, runs alternating in rounds. For each pace:

- first shown: request sent -> first snapshot with any text;
- all shown: request sent -> the last snapshot (both answers whole, results shown);
- gap: per snapshot, how many more tokens one panel shows than the other (mean and max over the
  snapshots before the last): 0 means nothing shown tells which side is faster;
- leads: the share of snapshots in which the faster variant shows more than the slower one.

Ratios are against "own" (each panel at its variant's own speed, as the Compare tab shows it).
Tokens shown are worked out from the text shown and the chunks each backend sent (recorded by a
thin wrapper around each backend's stream).

    .venv/bin/python -m bench.bench_battle_pace [--rounds 3] [--tokens 128] [--specs demo:e2b demo:31b]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from arena.lineup import Lineup
from arena.sampling import RECOMMENDED
from arena.settings import Settings
from backends.base import Backend, Chunk, Request
from bench.bench_fanout import _load, machine
from ui.streaming import PACES, stream_panels
from ui.views import PanelView


class Recorded:
    """A backend whose stream is recorded: (arrival time, text, tokens) of each chunk."""

    def __init__(self, backend: Backend) -> None:
        self.inner = backend
        self.chunks: list[tuple[float, str, int]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def stream(self, request: Request) -> AsyncIterator[Chunk]:
        self.chunks = []
        async for chunk in self.inner.stream(request):
            if chunk.text or chunk.tokens:
                self.chunks.append((time.perf_counter(), chunk.text, chunk.tokens or 1))
            yield chunk


def tokens_in(chunks: list[tuple[float, str, int]], shown: str) -> float:
    """How many tokens `shown` (a prefix of the streamed text) holds, a partly shown chunk in
    proportion, as `ui.streaming` cuts it."""
    count, left = 0.0, len(shown)
    for _, text, tokens in chunks:
        if left >= len(text):
            count, left = count + tokens, left - len(text)
        else:
            return count + (tokens * left / len(text) if text else 0)
    return count


@dataclass
class Run:
    first_shown_s: float
    all_shown_s: float
    gaps: list[float]
    leads: float
    updates: int
    ends_s: tuple[float, ...]  # each variant's last token


@dataclass
class PaceRuns:
    runs: list[Run] = field(default_factory=list)

    def median(self, figure: str) -> float:
        return statistics.median(getattr(run, figure) for run in self.runs)


async def one_run(lineup: Lineup, recorded: list[Recorded], request: Request, pace: str) -> Run:
    panels = [PanelView(title="Model A"), PanelView(title="Model B")]
    started = time.perf_counter()
    snapshots: list[tuple[float, list[PanelView]]] = []
    async for views, _ in stream_panels(lineup.variants, request, panels, pace=pace, timeout_s=600):
        snapshots.append((time.perf_counter() - started, views))
    ends = tuple(r.chunks[-1][0] - started for r in recorded)
    faster = min(range(len(recorded)), key=lambda i: ends[i])
    gaps, leads = [], 0
    for _, views in snapshots[:-1]:
        shown = [tokens_in(r.chunks, v.answer + v.thinking) for r, v in zip(recorded, views, strict=True)]
        gaps.append(max(shown) - min(shown))
        leads += shown[faster] > min(shown)
    first = next((at for at, views in snapshots if any(v.answer or v.thinking for v in views)), snapshots[-1][0])
    return Run(first, snapshots[-1][0], gaps or [0.0], leads / max(1, len(snapshots) - 1), len(snapshots), ends)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--specs", nargs=2, default=["demo:e2b", "demo:31b"], help="the two variants")
    parser.add_argument("--tokens", type=int, default=128, help="new tokens per answer")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each pace, alternating")
    args = parser.parse_args(argv)

    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        cache = Settings.from_env().cache_dir
        lineup = _load(args.specs, Settings(data_dir=data, cache_dir=cache, db_path=data / "a.db"))
        try:
            recorded = []
            for variant in lineup.variants:
                assert variant.backend is not None
                wrapper = Recorded(variant.backend)
                variant.backend = wrapper  # type: ignore[assignment]
                recorded.append(wrapper)
            request = RECOMMENDED.apply(Request(prompt="Which variant fits my laptop?",
                                                max_new_tokens=args.tokens), seed=1234)
            asyncio.run(one_run(lineup, recorded, request, "own"))  # warm-up
            results = {pace: PaceRuns() for pace in PACES}
            for round_ in range(args.rounds):
                order = PACES if round_ % 2 == 0 else tuple(reversed(PACES))
                for pace in order:
                    results[pace].runs.append(asyncio.run(one_run(lineup, recorded, request, pace)))
        finally:
            asyncio.run(lineup.close())

    own = results["own"]
    ends = [statistics.median(run.ends_s[i] for pace in results.values() for run in pace.runs) for i in range(2)]
    print(f"\n{args.specs[0]} vs {args.specs[1]}, {args.tokens} new tokens each, {args.rounds} runs a pace "
          f"(medians); last tokens generated at {ends[0]:.2f} s and {ends[1]:.2f} s\n")
    print("| pace | first shown | x own | all shown | x own | gap mean (tokens) | gap max | faster leads | updates |")
    print("|---|---|---|---|---|---|---|---|---|")
    for pace, runs in results.items():
        gap_mean = statistics.median(statistics.fmean(run.gaps) for run in runs.runs)
        gap_max = max(max(run.gaps) for run in runs.runs)
        first, shown = runs.median("first_shown_s"), runs.median("all_shown_s")
        print(f"| {pace} | {first:.3f} s | {first / own.median('first_shown_s'):.2f} "
              f"| {shown:.3f} s | {shown / own.median('all_shown_s'):.2f} "
              f"| {gap_mean:.1f} | {gap_max:.1f} | {runs.median('leads'):.0%} | {runs.median('updates'):.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Remote variants streaming in parallel: does the fan-out let each run at its own pace?

    .venv/bin/python -m bench.bench_remote [--tokens 100] [--rate 50] [--rounds 3]

Four loopback servers in a separate process stream a fixed answer at a fixed token rate: two
speak Ollama's wire (`ollama:` variants), two the OpenAI one (`openai:` variants). Measured side
by side in one run, through `arena.fanout.run_all`: each variant alone, then all four at once.
If the fan-out overlaps them truly (one task per variant, not round-robin over iterators), all
four together finish in about the time of the slowest alone. Target: within 1.1x.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from arena.fanout import run_all
from arena.lineup import Lineup, create_lineup, load_all
from arena.measure import Result
from arena.settings import Settings
from backends.base import Request
from backends.registry import default_registry

TARGET_RATIO = 1.1


def serve(tokens: int, rate: float, ready: Any, stop: Event) -> None:
    """In the server process: start the four servers, report their addresses, wait for `stop`."""
    from tests.servers.fake_ollama import FakeModel, FakeOllama, Script
    from tests.servers.fake_openai import FakeOpenAI

    answer = tuple(f" t{index}" for index in range(tokens))
    script = Script(answer=answer, thinking=(), interval_s=1.0 / rate)
    servers: list[Any] = [
        FakeOllama([FakeModel("gemma4:e2b")], script=script),
        FakeOllama([FakeModel("gemma4:e4b")], script=script),
        FakeOpenAI("google/gemma-4-26B-A4B-it", tokens=tokens, tokens_per_s=rate),
        FakeOpenAI("google/gemma-4-31B-it", tokens=tokens, tokens_per_s=rate),
    ]
    for server in servers:
        server.__enter__()
    ready.put([servers[0].url, servers[1].url, servers[2].base_url, servers[3].base_url])
    stop.wait()
    for server in servers:
        server.__exit__(None, None, None)


def specs_for(urls: list[str]) -> list[str]:
    ollama_e2b, ollama_e4b, openai_26b, openai_31b = urls
    return [
        f"ollama:gemma4:e2b?host={ollama_e2b}",
        f"ollama:gemma4:e4b?host={ollama_e4b}",
        f"openai:{openai_26b}#google/gemma-4-26B-A4B-it",
        f"openai:{openai_31b}#google/gemma-4-31B-it",
    ]


async def one_round(lineup: Lineup, request: Request) -> tuple[dict[str, float], float, list[Result]]:
    """Each variant alone (its total time), then all at once (wall clock of the whole run)."""
    alone = {}
    for variant in lineup.variants:
        (result,) = await run_all([variant], request, timeout_s=60)
        assert result.ok, result.error
        alone[variant.name] = result.stats.total_s or 0.0
    started = time.perf_counter()
    together = await run_all(lineup.variants, request, timeout_s=60)
    wall = time.perf_counter() - started
    assert all(r.ok for r in together), [r.error for r in together if not r.ok]
    return alone, wall, together


async def bench(urls: list[str], tokens: int, rounds: int) -> list[tuple[dict[str, float], float, list[Result]]]:
    registry = default_registry()
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(Path(folder), Path(folder) / "cache", Path(folder) / "arena.db")
        lineup = create_lineup([registry.parse(s) for s in specs_for(urls)], registry, settings)
        await load_all(lineup)
        unavailable = [f"{v.name}: {v.error}" for v in lineup.variants if not v.available]
        if unavailable:
            raise SystemExit("could not load: " + "; ".join(unavailable))
        request = Request(prompt="Count for me.", max_new_tokens=tokens)
        try:
            await run_all(lineup.variants, request, timeout_s=60)  # warm connections and code paths
            return [await one_round(lineup, request) for _ in range(rounds)]
        finally:
            await lineup.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_remote", description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=100, help="tokens per answer (default 100)")
    parser.add_argument("--rate", type=float, default=50.0, help="tokens per second per server (default 50)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each alone then together (default 3)")
    args = parser.parse_args(argv)

    context = multiprocessing.get_context("spawn")
    ready, stop = context.Queue(), context.Event()
    server = context.Process(target=serve, args=(args.tokens, args.rate, ready, stop), daemon=True)
    server.start()
    try:
        urls = ready.get(timeout=60)
        rounds = asyncio.run(bench(urls, args.tokens, args.rounds))
    finally:
        stop.set()
        server.join(10)

    print(f"bench_remote  {datetime.now(UTC).isoformat(timespec='seconds')}")
    print(f"machine       {platform.node()} {platform.machine()} {os.cpu_count()} CPUs, "
          f"{platform.system()} {platform.release()}, Python {platform.python_version()}")
    print(f"workload      4 variants (2 Ollama wire, 2 OpenAI wire), {args.tokens} tokens each at "
          f"{args.rate:g} tokens/s from loopback servers in another process\n")
    ratios = []
    for number, (alone, wall, together) in enumerate(rounds, 1):
        slowest = max(alone.values())
        ratios.append(wall / slowest)
        print(f"round {number}: slowest alone {slowest:.3f} s, all four together {wall:.3f} s, "
              f"ratio {wall / slowest:.3f}")
        for result in together:
            rate = result.stats.tokens_per_s or 0.0
            print(f"    {result.variant:<72} alone {alone[result.variant]:.3f} s  together "
                  f"{result.stats.total_s or 0:.3f} s  decode {rate:5.1f} tok/s  ({result.stats.token_source})")
    ratio = statistics.median(ratios)
    verdict = "PASS" if ratio <= TARGET_RATIO else "FAIL"
    print(f"\nmedian ratio together / slowest alone: {ratio:.3f} (target <= {TARGET_RATIO}) {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())

"""Benchmarks of the compare core, measured side by side in one run and printed as ratios.

(a) overhead: decode tokens/s through fan-out + measurement (worker process, pipe, parser,
    measuring wrapper) vs plain `model.generate` in a process set up like a worker: same tiny
    model, same thread count, same inputs and sampling, the same tokens (checked). Runs alternate,
    in rounds; the verdict is on the median ratio of the rounds, target >= 0.95. The worst round
    is printed beside the noise floor: how far plain runs fell from the best plain run of their
    own round (the same code against itself), which is what one round can lose to the machine.
(b) parallelism: 2 and 4 variants run concurrently vs the same variants one after the other.
    Reported as a speedup (on 2 CPU cores, 2x is the ceiling).

    python -m bench.bench_fanout                     # the demo variants on the CPU
    python -m bench.bench_fanout --large --device cuda   # (b) on bigger random Gemma 4 configs on a GPU
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import psutil

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from arena.fanout import run_all
from arena.lineup import Lineup, create_lineup, load_all, usable_cores
from arena.settings import Settings
from backends.base import Request
from backends.hf.backend import HFBackend
from backends.hf.options import HFOptions
from backends.hf.worker import prepare_process
from backends.registry import default_registry

# Bigger random-weight Gemma 4 text configs (about 196M and 1.2B parameters) for the GPU run.
LARGE_CONFIGS = {
    "196m": dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=8, num_attention_heads=8,
                 num_key_value_heads=4, head_dim=128),
    "1.2b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=8,
                 num_key_value_heads=4, head_dim=256),
}


def machine() -> str:
    try:
        import torch

        device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
        versions = f"torch {torch.__version__}"
    except ImportError:
        device, versions = "?", ""
    return (
        f"{datetime.date.today()} | {platform.node()} | {usable_cores()} CPU cores ({_cpu_model()}) | "
        f"{device} | Python {platform.python_version()} | {versions} | {_load_average()}"
    )


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            names = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
    except OSError:
        names = []
    return names[0] if names else platform.processor() or "CPU model unknown"


def _load_average() -> str:
    """Whether other work shared the machine: timings on a busy machine are noisier."""
    try:
        one, five, fifteen = os.getloadavg()
        return f"load average {one:.1f} {five:.1f} {fifteen:.1f}"
    except OSError:
        return "load average unknown"


def _load(specs: list[str], settings: Settings) -> Lineup:
    registry = default_registry()
    lineup = create_lineup([registry.parse(s) for s in specs], registry, settings)
    asyncio.run(load_all(lineup))
    broken = [v.error for v in lineup.variants if not v.available]
    if broken:
        raise SystemExit(f"could not load: {broken}")
    return lineup


# ------------------------------------------------------------------ (a) overhead
RUNS_PER_ROUND = 3  # of each side; the best of them counts


def _plain_generate(conn: Connection, options: HFOptions, cache_dir: Path) -> None:
    """A process set up like a variant's worker (same threads, same model loading, same inputs and
    generate() arguments) that runs plain model.generate with a streamer that only reads the clock.
    Answers each request with (decode tokens/s, tokens, text)."""
    prepare_process(options)
    import torch
    from transformers.generation import BaseStreamer

    from backends.hf.engine import Engine

    class Clock(BaseStreamer):
        def __init__(self) -> None:
            self.times: list[float] = []

        def put(self, value: Any) -> None:
            self.times.append(time.perf_counter())

        def end(self) -> None:
            """Nothing to flush."""

    engine = Engine(options, cache_dir)
    engine.load()
    conn.send("loaded")
    while (request := conn.recv()) is not None:
        inputs, kwargs = engine.prepare(request)
        clock = Clock()
        with torch.inference_mode():
            output = engine.model.generate(**inputs, **kwargs, streamer=clock)
        times = clock.times[1:]  # the first put() is the prompt
        answer = output[0, inputs["input_ids"].shape[1]:]
        text = engine.tokenizer.decode(answer, skip_special_tokens=True)
        conn.send(((len(times) - 1) / (times[-1] - times[0]), len(times), text))


def bench_overhead(settings: Settings, tokens: int, rounds: int) -> float:
    """Decode tokens/s as the measuring wrapper reports them through the arena, against plain
    model.generate in a process set up the same way, on the same tokens; returns the median ratio.

    Each round alternates the two, RUNS_PER_ROUND runs each (plain first, then arena first in
    the next round), so that drifting load hits both alike, and compares the best run of each:
    other work on the machine only ever slows a run down, so the best is the closest to what the
    code costs.
    """
    spec = "demo:e2b?threads=1"
    request = Request(prompt="Measure the overhead of the arena.", max_new_tokens=tokens)
    lineup = _load([spec], settings)
    backend = lineup.variants[0].backend
    assert isinstance(backend, HFBackend)
    parent, child = multiprocessing.Pipe()
    plain = multiprocessing.get_context("spawn").Process(
        target=_plain_generate, args=(child, backend.options, settings.cache_dir), daemon=True
    )
    plain.start()
    try:
        assert parent.recv() == "loaded"
        # Where the CPU time goes. Each process idles while the other side runs, so its total over
        # all rounds is what its own runs used.
        processes = {"plain": psutil.Process(plain.pid), "worker": psutil.Process(backend.pid), "app": psutil.Process()}

        def plain_rate() -> float:
            parent.send(request)
            rate, generated, text = parent.recv()
            assert generated == tokens and text == arena_text, "not the same tokens: not comparable"
            return float(rate)

        def arena_rate() -> float:
            result = asyncio.run(run_all(lineup.variants, request))[0]
            assert result.ok and result.stats.tokens_per_s, result.error
            assert result.stats.output_tokens == tokens and result.text == arena_text
            return result.stats.tokens_per_s

        arena_text = asyncio.run(run_all(lineup.variants, request))[0].text  # also warms both up
        plain_rate()
        cpu = {side: -_cpu_seconds(process) for side, process in processes.items()}
        runs: dict[str, list[float]] = {"plain": [], "arena": []}
        best: dict[str, list[float]] = {"plain": [], "arena": []}
        plain_spread: list[float] = []  # the noise floor: plain against itself within a round
        for i in range(rounds):
            order = ["plain", "arena"] * RUNS_PER_ROUND if i % 2 == 0 else ["arena", "plain"] * RUNS_PER_ROUND
            rates: dict[str, list[float]] = {"plain": [], "arena": []}
            for side in order:
                rates[side].append(plain_rate() if side == "plain" else arena_rate())
            for side in runs:
                runs[side] += rates[side]
                best[side].append(max(rates[side]))
            plain_spread.append(min(rates["plain"]) / max(rates["plain"]))
        cpu = {side: seconds + _cpu_seconds(processes[side]) for side, seconds in cpu.items()}
    finally:
        parent.send(None)
        plain.join(10)
        asyncio.run(lineup.close())
    ratios = [a / p for a, p in zip(best["arena"], best["plain"], strict=True)]
    costs = [1000 / a - 1000 / p for a, p in zip(best["arena"], best["plain"], strict=True)]
    ratio, worst = statistics.median(ratios), min(ratios)
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    print(f"(a) overhead, {spec}, {tokens} tokens, {rounds} rounds of {RUNS_PER_ROUND}+{RUNS_PER_ROUND} "
          "interleaved runs, decode rate (best of each side per round):")
    for label, side in (("plain model.generate", "plain"), ("through the arena", "arena")):
        median = statistics.median(runs[side])
        print(f"    {label:22s} {median:7.1f} tok/s = {1000 / median:.3f} ms/token   "
              f"(all {len(runs[side])} runs: min {min(runs[side]):.1f}, max {max(runs[side]):.1f})")
    print(f"    measuring path's cost per token: {statistics.median(costs):+.3f} ms (median of rounds; "
          f"min {min(costs):+.3f}, max {max(costs):+.3f})")
    print(f"    ratio per round: median {ratio:.3f}, IQR {q1:.3f}-{q3:.3f}, min {worst:.3f}, max {max(ratios):.3f}")
    per_token = {side: 1000 * seconds / (RUNS_PER_ROUND * rounds * tokens) for side, seconds in cpu.items()}
    print(f"    CPU per token over whole requests: plain {per_token['plain']:.3f} ms; "
          f"arena {per_token['worker']:.3f} ms in the worker + {per_token['app']:.3f} ms in the app "
          f"({(per_token['worker'] + per_token['app']) / per_token['plain']:.3f}x)")
    print(f"    noise floor: plain against itself, worst run of a round / best of that round: median "
          f"{statistics.median(plain_spread):.3f}, min {min(plain_spread):.3f}")
    print(f"    target >= 0.95 (median of rounds): {_verdict(ratio)}; worst round {worst:.3f} "
          f"({'within' if worst >= min(plain_spread) else 'below'} the noise floor {min(plain_spread):.3f})")
    return ratio


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _verdict(ratio: float) -> str:
    return "met" if ratio >= 0.95 else "NOT met"


# --------------------------------------------------------------- (b) parallelism
def bench_parallel(settings: Settings, specs: list[str], tokens: int, repeats: int) -> float:
    request = Request(prompt="Run side by side.", max_new_tokens=tokens)
    lineup = _load(specs, settings)
    sequential, concurrent = [], []
    try:
        asyncio.run(run_all(lineup.variants, request))  # warm-up
        for _ in range(repeats):
            started = time.perf_counter()
            for variant in lineup.variants:
                assert asyncio.run(run_all([variant], request))[0].ok
            sequential.append(time.perf_counter() - started)
            started = time.perf_counter()
            results = asyncio.run(run_all(lineup.variants, request))
            concurrent.append(time.perf_counter() - started)
            assert all(r.ok for r in results), [r.error for r in results]
    finally:
        asyncio.run(lineup.close())
    speedup = statistics.median(sequential) / statistics.median(concurrent)
    print(f"(b) {len(specs)} variants x {tokens} tokens ({', '.join(specs)}), median of {repeats}:")
    print(f"    one after the other {statistics.median(sequential):7.2f} s   concurrently "
          f"{statistics.median(concurrent):7.2f} s   speedup {speedup:.2f}x")
    return speedup


def build_large(folder: Path, name: str) -> Path:
    """A text-only random-weight Gemma 4 checkpoint of a bigger size, for GPU runs."""
    import torch
    from transformers import Gemma4ForCausalLM, Gemma4TextConfig

    from backends.demo.build import _tokenizer

    target = folder / name
    if (target / "config.json").exists():
        return target
    tokenizer = _tokenizer()
    vocab = len(tokenizer)
    config = Gemma4TextConfig(
        **LARGE_CONFIGS[name], vocab_size=vocab, vocab_size_per_layer_input=vocab,
        hidden_size_per_layer_input=0, max_position_embeddings=8192,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    Gemma4ForCausalLM(config).to(torch.bfloat16).save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


def _fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=128, help="(b): new tokens per variant")
    parser.add_argument("--repeats", type=int, default=3, help="(b): runs of each way")
    parser.add_argument("--overhead-tokens", type=int, default=256, help="(a): new tokens per run")
    parser.add_argument("--rounds", type=int, default=10, help="(a): rounds of 3 plain + 3 arena runs")
    parser.add_argument("--large", action="store_true", help="(b) only, on bigger random configs")
    parser.add_argument("--device", default="", help="cpu or cuda (default: cuda when available)")
    args = parser.parse_args(argv)
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        settings = Settings(data_dir=home, cache_dir=Settings.from_env().cache_dir, db_path=home / "a.db")
        if args.large:
            device = f"&device={args.device}" if args.device else ""
            for name in LARGE_CONFIGS:
                folder = build_large(home, name)
                spec = f"hf:{folder}?dtype=bfloat16{device}"
                pair = [f"{spec}&label={name}-1", f"{spec}&label={name}-2"]
                bench_parallel(settings, pair, args.tokens, args.repeats)
            return 0
        bench_overhead(settings, args.overhead_tokens, args.rounds)
        names = ["demo:e2b", "demo:e4b", "demo:26b-a4b", "demo:31b"]
        bench_parallel(settings, names[:2], args.tokens, args.repeats)
        bench_parallel(settings, names, args.tokens, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())

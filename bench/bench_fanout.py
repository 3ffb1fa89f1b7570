"""Benchmarks of the compare core, measured side by side in one run and printed as ratios.

(a) overhead: decode tokens/s through fan-out + measurement (worker process, pipe, parser,
    measuring wrapper) vs plain `model.generate` on the same tiny model, same thread count,
    in this process. Target: ratio >= 0.95.
(b) parallelism: 2 and 4 variants run concurrently vs the same variants one after the other.
    Reported as a speedup (on 2 CPU cores, 2x is the ceiling).

    python -m bench.bench_fanout                     # the demo variants on the CPU
    python -m bench.bench_fanout --large --device cuda   # (b) on bigger random Gemma 4 configs on a GPU
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from arena.fanout import run_all
from arena.lineup import Lineup, create_lineup, load_all, usable_cores
from arena.settings import Settings
from backends.base import Request
from backends.registry import default_registry

# Bigger random-weight text configs for the GPU run (as measured in reference/gemma4.md).
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
        f"{datetime.date.today()} | {platform.node()} | {usable_cores()} CPU cores | {device} | "
        f"Python {platform.python_version()} | {versions}"
    )


def _load(specs: list[str], settings: Settings) -> Lineup:
    registry = default_registry()
    lineup = create_lineup([registry.parse(s) for s in specs], registry, settings)
    asyncio.run(load_all(lineup))
    broken = [v.error for v in lineup.variants if not v.available]
    if broken:
        raise SystemExit(f"could not load: {broken}")
    return lineup


# ------------------------------------------------------------------ (a) overhead
def raw_decode_rate(folder: Path, request: Request, threads: int) -> float:
    """Plain model.generate in this process; a streamer that only reads the clock."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from transformers.generation import BaseStreamer

    from backends.demo.structure import DemoStructure
    from backends.hf.engine import special_token_ids
    from backends.hf.inputs import chat_messages

    torch.set_num_threads(threads)
    processor = AutoProcessor.from_pretrained(folder)
    model = AutoModelForImageTextToText.from_pretrained(folder).eval()
    text = processor.apply_chat_template(chat_messages(request), add_generation_prompt=True, tokenize=False)
    inputs = processor(text=text, return_tensors="pt", add_special_tokens=False)
    length = inputs["input_ids"].shape[1]
    special = special_token_ids(processor.tokenizer)

    class Clock(BaseStreamer):
        def __init__(self) -> None:
            self.times: list[float] = []

        def put(self, value: Any) -> None:
            self.times.append(time.perf_counter())

        def end(self) -> None:
            """Nothing to flush."""

    clock = Clock()
    with torch.inference_mode():
        model.generate(
            **inputs, max_new_tokens=request.max_new_tokens, do_sample=False, streamer=clock,
            logits_processor=[DemoStructure(length, {}, special)],
        )
    tokens = clock.times[1:]  # the first put() is the prompt
    return (len(tokens) - 1) / (tokens[-1] - tokens[0])


def bench_overhead(settings: Settings, tokens: int, repeats: int) -> float:
    from backends.demo.build import ensure_built

    request = Request(prompt="Measure the overhead of the arena.", max_new_tokens=tokens)
    folder = ensure_built(settings.cache_dir, "e2b")
    lineup = _load(["demo:e2b?threads=1"], settings)
    raw, arena = [], []
    try:
        asyncio.run(run_all(lineup.variants, request))  # warm-up
        raw_decode_rate(folder, request, threads=1)
        for _ in range(repeats):  # interleaved, so drift in machine load hits both alike
            raw.append(raw_decode_rate(folder, request, threads=1))
            result = asyncio.run(run_all(lineup.variants, request))[0]
            assert result.ok and result.stats.tokens_per_s, result.error
            arena.append(result.stats.tokens_per_s)
    finally:
        asyncio.run(lineup.close())
    ratio = statistics.median(arena) / statistics.median(raw)
    print(f"(a) overhead, demo:e2b, {tokens} tokens, 1 thread, median of {repeats}:")
    print(f"    raw model.generate      {statistics.median(raw):8.1f} tok/s   (runs: {_fmt(raw)})")
    print(f"    fan-out + measurement   {statistics.median(arena):8.1f} tok/s   (runs: {_fmt(arena)})")
    print(f"    ratio {ratio:.3f}  (target >= 0.95: {'met' if ratio >= 0.95 else 'NOT met'})")
    return ratio


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
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
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
        bench_overhead(settings, args.tokens, args.repeats)
        names = ["demo:e2b", "demo:e4b", "demo:26b-a4b", "demo:31b"]
        bench_parallel(settings, names[:2], args.tokens, args.repeats)
        bench_parallel(settings, names, args.tokens, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())

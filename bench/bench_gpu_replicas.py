"""Full-size random-weight Gemma 4 replicas on a GPU: measured memory and decode speed against
`arena.hardware`'s estimates (issue 12, point 4). Run it on a machine with a GPU:

    python -m bench.bench_gpu_replicas [--variants E2B E4B 26B-A4B 31B] [--contexts 1024 8192]
                                       [--tokens 64] [--quantize none 4bit]

Each variant's text stack is built from `arena.gemma4_variants` (published and guessed
dimensions, each marked there) as `Gemma4ForCausalLM` with random weights, directly on the
device in bf16 (no download, no checkpoint). Measured, per variant and precision:
- weights: `torch.cuda.memory_allocated` after the build, against the estimate of the same text
  config (`estimate_for_config`);
- request peak at each context: allocation peak above the loaded baseline while generating from
  a prompt of that many tokens, against the KV cache estimate;
- decode tokens/s (batch 1, plain `generate`, greedy).
4-bit builds the model in bf16, saves it to a temporary folder (the disk must hold it: ~10 GB for
E2B, ~16 GB for E4B, ~50-60 GB for 26B A4B and 31B) and loads it back through bitsandbytes NF4, as a
real checkpoint loads; it needs the bitsandbytes package. A variant is skipped, with the reason
printed, when that is missing or memory or disk runs out.

`--device cpu --shrink 8` runs the same code on a CPU with every stack 8x shallower and no KV
sharing: a dry run of the code paths (checked so on 2026-12-01); its figures, process memory on
a CPU, mean nothing for the real variants.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import platform
import sys
import time
from typing import Any

from arena.gemma4_sizes import split_config
from arena.gemma4_variants import VARIANTS
from arena.hardware import estimate_for_config
from arena.units import format_bytes


def text_config(name: str, shrink: int) -> dict[str, Any]:
    text, _, _ = split_config(VARIANTS[name].config())
    text = dict(text)
    if shrink > 1:
        layers = max(2, int(text["num_hidden_layers"]) // shrink)
        text["num_hidden_layers"] = layers
        if text.get("layer_types"):
            text["layer_types"] = list(text["layer_types"])[:layers]
            text["layer_types"][-1] = "full_attention"
        text["num_kv_shared_layers"] = 0  # a shallower stack cannot keep the real sharing pattern
    return text


def build(text: dict[str, Any], device: str, quantize: str) -> Any:
    """The random-weight text stack on `device`: built there in bf16, or (4-bit) built, saved to a
    temporary folder and loaded back through bitsandbytes, as a real checkpoint would be."""
    import tempfile

    import torch
    from transformers import Gemma4ForCausalLM, Gemma4TextConfig

    config = Gemma4TextConfig(**text)
    if quantize != "4bit":
        with torch.device(device):
            return Gemma4ForCausalLM(config).to(torch.bfloat16).eval()
    from transformers import BitsAndBytesConfig

    with tempfile.TemporaryDirectory(prefix="gemma4-replica-") as folder:
        with torch.device(device):
            Gemma4ForCausalLM(config).to(torch.bfloat16).save_pretrained(folder)
        gc.collect()
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
        quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                          bnb_4bit_compute_dtype=torch.bfloat16)
        return Gemma4ForCausalLM.from_pretrained(folder, quantization_config=quantization, device_map=device,
                                                 dtype=torch.bfloat16).eval()


def allocated(device: str) -> int:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
        return int(torch.cuda.memory_allocated(device))
    import psutil

    return int(psutil.Process().memory_info().rss)


def measure(model: Any, device: str, context: int, tokens: int, vocab: int) -> tuple[int, float]:
    """(request peak above the loaded baseline, decode tokens/s) for a prompt of `context` tokens."""
    import torch

    prompt = torch.randint(0, vocab, (1, context), device=device)
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    before = allocated(device)
    with torch.no_grad():
        model.generate(prompt, max_new_tokens=1, do_sample=False)  # the prompt's pass alone
        start = time.perf_counter()
        model.generate(prompt, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False)
        elapsed = time.perf_counter() - start
    peak = int(torch.cuda.max_memory_allocated(device)) if device.startswith("cuda") else allocated(device)
    return max(0, peak - before), tokens / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--contexts", nargs="+", type=int, default=[1024, 8192])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--quantize", nargs="+", default=["none", "4bit"], choices=["none", "4bit"])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--shrink", type=int, default=1, help="divide every stack's depth (CPU dry runs)")
    args = parser.parse_args(argv)

    import torch

    card = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else platform.processor()
    print(f"# {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC | {card} | torch {torch.__version__} | "
          f"shrink {args.shrink}", flush=True)
    print("variant | precision | weights measured | estimated | ratio | context | request peak | KV estimate "
          "| decode tok/s", flush=True)
    for name in args.variants:
        text = text_config(name, args.shrink)
        for quantize in args.quantize:
            dtype = "int4" if quantize == "4bit" else "bf16"
            try:
                base = allocated(args.device)
                model = build(text, args.device, quantize)
                weights = allocated(args.device) - base
            except (ImportError, OSError, RuntimeError, ValueError, NotImplementedError) as exc:  # no bnb, no room
                print(f"{name} | {dtype} | skipped: {type(exc).__name__}: {str(exc)[:160]}", flush=True)
                gc.collect()
                torch.cuda.empty_cache() if args.device.startswith("cuda") else None
                continue
            for context in args.contexts:
                est = estimate_for_config({"text_config": text}, dtype=dtype, context_tokens=context, name=name)
                try:
                    peak, rate = measure(model, args.device, context, args.tokens, int(text["vocab_size"]))
                except RuntimeError as exc:
                    print(f"{name} | {dtype} | context {context} failed: {str(exc)[:160]}", flush=True)
                    continue
                print(f"{name} | {dtype} | {format_bytes(weights)} | {format_bytes(est.weights.total)} | "
                      f"{weights / est.weights.total:.2f} | {context} | {format_bytes(peak)} | "
                      f"{format_bytes(est.kv.total)} | {rate:.1f}", flush=True)
            del model
            gc.collect()
            if args.device.startswith("cuda"):
                torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())

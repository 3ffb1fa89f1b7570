"""Whether each voted variant fits this machine: its spec turned into a memory estimate
(`arena.hardware`) and assessed against the machine (`arena.machine.probe` gives it).

Which estimate a spec gets:

- `hf:` a Gemma 4 checkpoint this app knows (`arena.gemma4_variants.find_architecture`):
  `estimate(...)` at int4 for `quantize=4bit`, int8 for `quantize=8bit`, else bf16;
- `ollama:` a Gemma 4 tag it knows, served from this machine: int4 (Ollama's default Gemma
  tags are 4-bit GGUF; counted with bitsandbytes' rules, which keep MoE experts at bf16, so the
  26B A4B's figure is high); its `num_ctx` sets the context when given;
- `demo:` the demo build's own `config.json` through `estimate_for_config`, the same dtype rule
  as `hf:`, if it was built in the cache folder (never built here: a report reads, it does not
  generate models);
- anything else (a fine-tune, a local path, an `openai:` server, an Ollama server elsewhere):
  "unknown", with why.

Reads files (a demo's `config.json`) but asks nothing of the system: the machine comes in.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from arena.errors import ArenaError
from arena.gemma4_variants import find_architecture
from arena.hardware import Dtype, Estimate, Machine, assess, estimate, estimate_for_config
from arena.report import UNKNOWN_FIT

DEFAULT_CONTEXT_TOKENS = 8192
_QUANTIZED: dict[str, Dtype] = {"4bit": "int4", "8bit": "int8"}
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def fit_verdicts(
    specs: Mapping[str, str | None],
    machine: Machine,
    cache_dir: Path,
    context_tokens: int = DEFAULT_CONTEXT_TOKENS,
) -> dict[str, str]:
    """Variant -> its fit on `machine` ("fits: ...", "fits with offload: ...", "does not fit:
    ..." or "unknown (why)"), from each variant's spec (None: unknown)."""
    return {variant: fit_verdict(spec, machine, cache_dir, context_tokens) for variant, spec in specs.items()}


def fit_verdict(spec: str | None, machine: Machine, cache_dir: Path, context_tokens: int) -> str:
    """One spec's fit on `machine`, as one line (see `fit_verdicts`)."""
    found = spec_estimate(spec, cache_dir, context_tokens)
    if isinstance(found, str):
        return f"{UNKNOWN_FIT} ({found})"
    fit = assess(found, machine)
    return f"{fit.verdict}: {fit.reason}; {found.name} {found.dtype}, {found.context_tokens:,}-token context"


def spec_estimate(spec: str | None, cache_dir: Path, context_tokens: int) -> Estimate | str:
    """The memory estimate for a stored spec, or why there is none."""
    from backends.registry import VariantSpec

    if not spec:
        return "no spec recorded"
    try:
        parsed = VariantSpec.parse(spec)
    except ArenaError:
        return "the spec does not parse"
    dtype = _QUANTIZED.get(parsed.options.get("quantize", ""), "bf16")
    if parsed.prefix == "demo":
        return _demo_estimate(parsed.target, dtype, cache_dir, context_tokens)
    if parsed.prefix == "ollama":
        return _ollama_estimate(parsed.target, parsed.options, context_tokens)
    if parsed.prefix == "openai":
        return "served by an OpenAI-compatible server: its memory is the server's"
    arch = find_architecture(f"{parsed.prefix}:{parsed.target}") if parsed.prefix == "hf" else None
    if arch is None:
        return "not a Gemma 4 checkpoint this app knows"
    return estimate(arch, dtype, context_tokens)


def _demo_estimate(name: str, dtype: Dtype, cache_dir: Path, context_tokens: int) -> Estimate | str:
    from backends.demo.build import model_dir

    config = model_dir(cache_dir, name) / "config.json"
    try:
        loaded = json.loads(config.read_text())
    except (OSError, ValueError):
        return f"demo:{name} is not built in {cache_dir} yet"
    return estimate_for_config(loaded, dtype, context_tokens, name=f"demo:{name}")


def _ollama_estimate(tag: str, options: Mapping[str, str], context_tokens: int) -> Estimate | str:
    from backends.ollama.options import OllamaOptions

    try:
        parsed = OllamaOptions.from_spec_options(tag, options)
    except ArenaError:
        return "the Ollama options do not parse"
    host = urlsplit(parsed.host).hostname or ""
    if host not in _LOOPBACK and not host.startswith("127."):
        return f"served by Ollama on {host}, not this machine"
    arch = find_architecture(f"ollama:{tag}")
    if arch is None:
        return "not a Gemma 4 tag this app knows"
    return estimate(arch, "int4", parsed.num_ctx or context_tokens)

"""Which Gemma 4 variant fits a machine: memory estimates with their arithmetic, fit verdicts, and
the seed article's decision guide. Pure: the machine comes in as a value (`arena.machine` probes it).

    est = estimate("E4B", "int4", context_tokens=8192)
    est.total_bytes, est.steps              # the number and how it was reached, line by line
    fit(est, machine)                       # "fits" | "fits with offload" | "does not fit"
    recommend(machine, "coding/reasoning")  # variant, dtype and why

Weights: parameters (computed from the variant's config, `arena.gemma4_sizes`) x bytes per
parameter. int8 and int4 are what the `hf:` backend loads (bitsandbytes through transformers):
only the weights of linear layers are quantized; embedding tables, norms, convolutions and the
MoE experts' tensors stay bf16. KV cache: layers x KV heads x head size x 2 (K and V) x bytes per
value x tokens, where a sliding-window layer holds at most its window and a KV-shared layer
stores nothing. Activations, the CUDA context and allocator slack are covered by the headroom
`usable_bytes` leaves, not estimated.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from arena.gemma4_sizes import FULL, ModelSize, Part, kv_layers, model_size, split_config
from arena.gemma4_variants import VARIANTS, Architecture, Fact, find_architecture
from arena.units import format_bytes

Dtype = Literal["bf16", "int8", "int4"]
DTYPES: tuple[Dtype, ...] = ("bf16", "int8", "int4")
#: Bytes per cached key or value element.
KV_BYTES = {"bf16": 2, "fp16": 2, "fp8": 1, "int8": 1}
#: bitsandbytes NF4 as the hf: backend configures it: blocks of 64 weights, one fp32 absmax a
#: block, no double quantization: 0.5 + 4/64 = 0.5625 bytes (4.5 bits) a weight.
NF4_BLOCK = 64

Verdict = Literal["fits", "fits with offload", "does not fit"]
TASKS = ("chat", "audio", "vision", "coding/reasoning", "agents/tools", "long documents")

GIB = 1024**3
#: Headroom left on each GPU for the runtime: the CUDA context and kernels (~0.5-1 GiB), plus a
#: tenth of the card for activations, the sampling buffers and the allocator's slack.
GPU_RESERVE_BYTES, GPU_RESERVE_FRACTION = 1 * GIB, 0.10
#: Headroom left in RAM: the app, Python and torch themselves, plus a tenth for everything else.
RAM_RESERVE_BYTES, RAM_RESERVE_FRACTION = 2 * GIB, 0.10


@dataclass(frozen=True)
class Gpu:
    name: str
    total_bytes: int
    #: free now, where NVML says; None where unknown (the total is used then)
    free_bytes: int | None = None


@dataclass(frozen=True)
class Machine:
    cpu_cores: int
    ram_total_bytes: int
    #: RAM other programs leave (psutil's `available`); None where unknown (the total is used)
    ram_available_bytes: int | None = None
    gpus: tuple[Gpu, ...] = ()


def usable_bytes(memory_bytes: int, reserve_bytes: int, reserve_fraction: float) -> int:
    return max(0, int(memory_bytes * (1 - reserve_fraction)) - reserve_bytes)


@dataclass(frozen=True)
class WeightsBytes:
    #: what must sit in the memory that computes (GPU, or RAM on a CPU)
    resident: int
    #: what may stay in CPU RAM or on disk: the per-layer-embedding table (E2B, E4B)
    offloadable: int
    steps: tuple[str, ...]

    @property
    def total(self) -> int:
        return self.resident + self.offloadable


@dataclass(frozen=True)
class KvCacheBytes:
    total: int
    steps: tuple[str, ...]


@dataclass(frozen=True)
class Estimate:
    """Memory one variant needs at one dtype and context."""

    name: str
    dtype: Dtype
    context_tokens: int
    batch: int
    weights: WeightsBytes
    kv: KvCacheBytes

    @property
    def total_bytes(self) -> int:
        return self.weights.total + self.kv.total

    @property
    def resident_bytes(self) -> int:
        """Weights that must be resident plus the KV cache."""
        return self.weights.resident + self.kv.total

    @property
    def steps(self) -> tuple[str, ...]:
        total = (
            f"total: weights {format_bytes(self.weights.total)} + KV {format_bytes(self.kv.total)} "
            f"= {format_bytes(self.total_bytes)}",
        )
        return self.weights.steps + self.kv.steps + total


def architecture(variant: str | Architecture) -> Architecture:
    if isinstance(variant, Architecture):
        return variant
    found = find_architecture(variant)
    if found is None:
        raise KeyError(f"unknown Gemma 4 variant {variant!r}: choose from {', '.join(VARIANTS)}")
    return found


def _billions(n: int) -> str:
    return f"{n / 1e9:.2f}B" if n >= 10**7 else f"{n:,}"


def part_bytes(part: Part, dtype: Dtype) -> int:
    """Bytes of one part at `dtype`: linear weights quantized as bitsandbytes does, the rest bf16."""
    rest = (part.params - part.linear) * 2
    if dtype == "int8":  # LLM.int8: int8 weights, one fp32 scale per output row
        return part.linear + 4 * part.linear_rows + rest
    if dtype == "int4":
        return part.linear // 2 + 4 * -(-part.linear // NF4_BLOCK) + rest
    return part.params * 2


def _dtype_rule(dtype: Dtype, linear: int, other: int) -> str:
    if dtype == "bf16":
        return "bf16: 2 bytes a parameter"
    kept = f"the other {_billions(other)} (embedding tables, norms, convolutions, MoE experts) stay bf16, 2 bytes"
    if dtype == "int8":
        return (
            f"int8 = bitsandbytes LLM.int8: the {_billions(linear)} weights of linear layers take 1 byte "
            f"+ one fp32 scale per output row; {kept}"
        )
    return (
        f"int4 = bitsandbytes NF4 (blocks of {NF4_BLOCK}, one fp32 scale a block, no double quantization): "
        f"0.5 + 4/{NF4_BLOCK} = 0.5625 bytes for each of the {_billions(linear)} weights of linear layers; "
        f"{kept}"
    )


def weights_from_size(size: ModelSize, dtype: Dtype = "bf16") -> WeightsBytes:
    parts = {
        "text decoder": size.text_decoder,
        "per-layer-embedding table": size.per_layer_embeddings,
        "vision tower": size.vision,
        "audio tower": size.audio,
        "MoE experts": size.experts,
    }
    present = {name: part for name, part in parts.items() if part.params}
    linear = sum(p.linear for p in present.values())
    steps = [
        "parameters (computed from the config): "
        + " + ".join(f"{name} {_billions(p.params)}" for name, p in present.items())
        + f" = {_billions(size.total)}",
        _dtype_rule(dtype, linear, size.total - linear),
    ]
    if size.num_experts:
        steps.append(
            f"one token runs through {size.top_k_experts} of {size.num_experts} experts: "
            f"{_billions(size.experts_active)} of the expert parameters are active, but all must be loaded"
        )
    resident = {n: p for n, p in present.items() if n != "per-layer-embedding table"}
    resident_bytes = sum(part_bytes(p, dtype) for p in resident.values())
    steps.append(
        "resident: "
        + " + ".join(f"{n} {format_bytes(part_bytes(p, dtype))}" for n, p in resident.items())
        + f" = {format_bytes(resident_bytes)}"
    )
    offload = part_bytes(size.per_layer_embeddings, dtype)
    if offload:
        steps.append(
            f"may stay in CPU RAM or on disk: the per-layer-embedding table, {format_bytes(offload)} "
            "(a lookup of a few rows per token; bitsandbytes does not quantize it)"
        )
    if size.num_experts and dtype != "bf16":
        whole = sum(p.params for p in present.values() if p is not size.per_layer_embeddings)
        steps.append(
            f"bitsandbytes leaves the experts in bf16 ({format_bytes(size.experts.params * 2)}); "
            f"an engine that quantizes them too (llama.cpp/Ollama GGUF, ~4.5 bits) would need about "
            f"{format_bytes(whole * 9 // 16)} for the weights [guessed]"
        )
    return WeightsBytes(resident_bytes, offload, tuple(steps))


def kv_from_text_config(text: dict[str, Any], context_tokens: int, dtype: str = "bf16", batch: int = 1) -> KvCacheBytes:
    if context_tokens < 0 or batch < 1:
        raise ValueError("context_tokens must be >= 0 and batch >= 1")
    per = KV_BYTES[dtype]
    window = int(text.get("sliding_window") or 0)
    layers = kv_layers(text)
    groups = Counter((layer.layer_type, layer.kv_heads, layer.head_dim) for layer in layers if layer.stores_kv)
    steps = [
        f"KV cache per token and layer: 2 (K and V) x KV heads x head size x {per} bytes ({dtype}), x batch {batch}"
    ]
    total = 0
    for (kind, heads, dim), count in sorted(groups.items()):
        if kind == FULL or not window:
            tokens, held = context_tokens, f"{context_tokens:,} tokens"
        else:
            tokens, held = min(context_tokens, window), f"min({context_tokens:,}, window {window:,}) tokens"
        size = count * tokens * 2 * heads * dim * per * batch
        total += size
        label = "full-attention" if kind == FULL else "sliding-window"
        steps.append(
            f"{count} {label} layers: {count} x {held} x 2 x {heads} x {dim} x {per} B"
            + (f" x {batch}" if batch > 1 else "")
            + f" = {format_bytes(size)}"
        )
    shared = sum(not layer.stores_kv for layer in layers)
    if shared:
        steps.append(f"{shared} KV-shared layers store none (they read an earlier layer's cache)")
    if text.get("attention_k_eq_v"):
        steps.append("full-attention layers with K = V weights still cache both (values get their own norm)")
    limit = int(text.get("max_position_embeddings") or 0)
    if limit and context_tokens > limit:
        steps.append(f"note: {context_tokens:,} tokens is more than the model's context of {limit:,}")
    steps.append(f"KV cache: {format_bytes(total)}")
    return KvCacheBytes(total, tuple(steps))


def weights_bytes(variant: str | Architecture, dtype: Dtype = "bf16") -> WeightsBytes:
    """The weights of a Gemma 4 variant (E2B, E4B, 26B A4B, 31B) at `dtype`."""
    return weights_from_size(model_size(architecture(variant).config()), dtype)


def kv_cache_bytes(
    variant: str | Architecture, context_tokens: int, dtype: str = "bf16", batch: int = 1
) -> KvCacheBytes:
    """The KV cache of a Gemma 4 variant holding `context_tokens` tokens for `batch` sequences."""
    text, _, _ = split_config(architecture(variant).config())
    return kv_from_text_config(text, context_tokens, dtype, batch)


def estimate(
    variant: str | Architecture, dtype: Dtype = "bf16", context_tokens: int = 8192, batch: int = 1
) -> Estimate:
    """Weights plus KV cache (bf16: bitsandbytes computes in bf16) of a Gemma 4 variant."""
    arch = architecture(variant)
    return Estimate(
        arch.name,
        dtype,
        context_tokens,
        batch,
        weights_bytes(arch, dtype),
        kv_cache_bytes(arch, context_tokens, "bf16", batch),
    )


def estimate_for_config(
    config: Any, dtype: Dtype = "bf16", context_tokens: int = 8192, batch: int = 1, name: str = "config"
) -> Estimate:
    """The same arithmetic on any Gemma 4 config: a transformers config object or a dict shaped
    like `config.json` (a full `Gemma4Config`, or a text config alone)."""
    text, _, _ = split_config(config)
    return Estimate(
        name,
        dtype,
        context_tokens,
        batch,
        weights_from_size(model_size(config), dtype),
        kv_from_text_config(text, context_tokens, "bf16", batch),
    )


def param_checks(variant: str | Architecture) -> list[str]:
    """Computed parameter counts next to the published ones, one line each."""
    arch = architecture(variant)
    size = model_size(arch.config())
    towers = size.vision.params + size.audio.params
    computed = {
        "total": ("total", size.total),
        "text": ("language model (no vision tower)", size.total - towers),
        "effective": (
            "effective (no per-layer embeddings, no towers)",
            size.total - towers - size.per_layer_embeddings.params,
        ),
        "active": ("active per token", size.text_decoder.params + size.experts_active),
    }
    lines = []
    for fact, measure in arch.published_params:
        label, ours = computed[measure]
        lines.append(
            f"{label}: published {_billions(fact.value)}, computed {_billions(ours)} "
            f"({(ours - fact.value) / fact.value:+.1%})"
        )
    return lines


# --- fitting an estimate on a machine ---------------------------------------------------------------


@dataclass(frozen=True)
class Fit:
    verdict: Verdict
    #: where it would run: "GPU 0", "2 GPUs", "GPU 0 + CPU RAM", "CPU RAM", or "" when it does not fit
    where: str
    reason: str
    steps: tuple[str, ...] = ()


def _seen(gpu: Gpu) -> tuple[int, str]:
    """The GPU memory to plan with: free when known (other processes may hold some), else total."""
    return (gpu.free_bytes, "free") if gpu.free_bytes is not None else (gpu.total_bytes, "total")


def assess(est: Estimate, machine: Machine) -> Fit:
    """Whether `est` fits `machine`, where, and the arithmetic."""
    gpus = [
        (i, g, usable_bytes(_seen(g)[0], GPU_RESERVE_BYTES, GPU_RESERVE_FRACTION)) for i, g in enumerate(machine.gpus)
    ]
    ram_seen = machine.ram_available_bytes if machine.ram_available_bytes is not None else machine.ram_total_bytes
    ram = usable_bytes(ram_seen, RAM_RESERVE_BYTES, RAM_RESERVE_FRACTION)
    steps = [
        f"GPU {i} ({g.name}): {format_bytes(_seen(g)[0])} {_seen(g)[1]} x {1 - GPU_RESERVE_FRACTION:.1f} - "
        f"{format_bytes(GPU_RESERVE_BYTES)} for the runtime = {format_bytes(usable)} usable"
        for i, g, usable in gpus
    ]
    steps.append(
        f"RAM: {format_bytes(ram_seen)} {'available' if machine.ram_available_bytes is not None else 'total'}"
        f" x {1 - RAM_RESERVE_FRACTION:.1f} - {format_bytes(RAM_RESERVE_BYTES)} for the app = "
        f"{format_bytes(ram)} usable"
    )
    need, core, offload = est.total_bytes, est.resident_bytes, est.weights.offloadable
    steps.append(
        f"needs {format_bytes(need)}"
        + (f", of which {format_bytes(offload)} may stay in CPU RAM or on disk" if offload else "")
    )

    def done(verdict: Verdict, where: str, reason: str) -> Fit:
        return Fit(verdict, where, reason, (*steps, f"{verdict}: {reason}"))

    gpu_total = sum(usable for _, _, usable in gpus)
    if gpus:
        best_index, _, best = max(gpus, key=lambda item: item[2])
        if need <= best:
            return done("fits", f"GPU {best_index}", f"{format_bytes(need)} on GPU {best_index}")
        if len(gpus) > 1 and need <= gpu_total:
            return done("fits", f"{len(gpus)} GPUs", f"{format_bytes(need)} split over {len(gpus)} GPUs by layer")
        if offload and core <= gpu_total and offload <= ram:
            return done(
                "fits with offload", "GPU + CPU RAM", "the per-layer-embedding table in CPU RAM, the rest on the GPU"
            )
        if need <= gpu_total + ram:
            if need <= ram:
                return done(
                    "fits with offload",
                    "CPU RAM",
                    "too big for the GPU: runs from CPU RAM, or with some layers on the GPU (slow)",
                )
            return done(
                "fits with offload", "GPU + CPU RAM", "the layers that do not fit on the GPU run from CPU RAM (slow)"
            )
        return done(
            "does not fit", "", f"{format_bytes(need)} > GPU {format_bytes(gpu_total)} + RAM {format_bytes(ram)} usable"
        )
    if need <= ram:
        return done("fits", "CPU RAM", f"{format_bytes(need)} in CPU RAM (no GPU)")
    if offload and core <= ram:
        return done(
            "fits with offload",
            "CPU RAM + disk",
            "the per-layer-embedding table read from disk as needed (memory-mapped), the rest in RAM",
        )
    return done("does not fit", "", f"{format_bytes(need)} > {format_bytes(ram)} of usable RAM (no GPU)")


def fit(est: Estimate, machine: Machine) -> Verdict:
    """The verdict alone: "fits", "fits with offload" or "does not fit" (`assess` says where and why)."""
    return assess(est, machine).verdict


# --- the seed article's decision guide ---------------------------------------------------------------

_SEED_ROWS = {
    "chat": "the guide: 31B when you have an A100-class GPU and want the best, 26B A4B on a 24 GB consumer GPU, "
    "E4B on a laptop, E2B on a phone or Raspberry Pi; start with E4B if unsure",
    "vision": "every variant takes images; the guide picks by hardware: 31B on an A100-class GPU, 26B A4B on a "
    "24 GB GPU, E4B on a laptop, E2B on a phone",
    "audio": "the guide: audio only on E2B and E4B",
    "coding/reasoning": "the guide: 31B for math, coding or reasoning-heavy work",
    "agents/tools": "the guide: 26B A4B for agentic pipelines with many tool calls (few active parameters)",
    "long documents": "the guide: 26B A4B when 256K context is needed on a 24 GB GPU; E2B/E4B reach 128K",
}
_ANY = DTYPES
# Per task, with a GPU: (variant, dtypes the guide's row allows), best first. 31B counts as the
# "A100" pick only at full precision (the guide: "an A100 80GB handles it at full precision").
_WITH_GPU: dict[str, tuple[tuple[str, tuple[Dtype, ...]], ...]] = {
    "chat": (("31B", ("bf16",)), ("26B A4B", _ANY), ("E4B", _ANY), ("E2B", _ANY)),
    "vision": (("31B", ("bf16",)), ("26B A4B", _ANY), ("E4B", _ANY), ("E2B", _ANY)),
    "audio": (("E4B", _ANY), ("E2B", _ANY)),
    "coding/reasoning": (("31B", _ANY), ("26B A4B", _ANY), ("E4B", _ANY), ("E2B", _ANY)),
    "agents/tools": (("26B A4B", _ANY), ("31B", _ANY), ("E4B", _ANY), ("E2B", _ANY)),
    "long documents": (("26B A4B", _ANY), ("31B", _ANY), ("E4B", _ANY), ("E2B", _ANY)),
}
# Without a GPU the guide's rows are "laptop, no GPU: E4B" and "phone, Raspberry Pi: E2B".
_CPU_ONLY: tuple[tuple[str, tuple[Dtype, ...]], ...] = (("E4B", _ANY), ("E2B", _ANY))


@dataclass(frozen=True)
class Recommendation:
    task: str
    #: None when nothing fits
    variant: Architecture | None
    dtype: Dtype | None
    estimate: Estimate | None
    fit: Fit | None
    reasons: tuple[str, ...]
    facts: tuple[Fact, ...] = field(default=())

    @property
    def published(self) -> tuple[Fact, ...]:
        return tuple(f for f in self.facts if f.source == "published")

    @property
    def guessed(self) -> tuple[Fact, ...]:
        return tuple(f for f in self.facts if f.source == "guessed")


def recommend(machine: Machine, task: str, context_tokens: int = 8192) -> Recommendation:
    """The variant and dtype the seed's guide points to for `task` on `machine`: its candidates in
    the guide's order, the first that fits whole (at the best precision that does), else the first
    that fits with offload; variants whose context is shorter than `context_tokens` are skipped."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}: choose from {', '.join(TASKS)}")
    candidates = _WITH_GPU[task] if machine.gpus else _CPU_ONLY
    reasons = [_SEED_ROWS[task]]
    if not machine.gpus and task in ("coding/reasoning", "agents/tools", "long documents"):
        reasons.append(
            f"no GPU here: the guide's pick for {task} is a GPU or server model, so this follows its "
            "'laptop, no GPU' row; serve the bigger variant elsewhere and add it as an openai: variant"
        )
    skipped: list[str] = []
    for wanted in ("fits", "fits with offload"):
        for name, dtypes in candidates:
            arch = VARIANTS[name]
            if context_tokens > arch.context_tokens:
                if wanted == "fits":
                    skipped.append(f"{name}: its context is {arch.context_tokens:,} tokens")
                continue
            for dtype in dtypes:
                est = estimate(arch, dtype, context_tokens)
                result = assess(est, machine)
                if result.verdict == wanted:
                    reasons.extend(skipped)
                    reasons.append(f"{name} {dtype}: {result.verdict} ({result.reason})")
                    return Recommendation(task, arch, dtype, est, result, tuple(reasons), arch.facts)
            if wanted == "fits":
                steps = estimate(arch, dtypes[-1], context_tokens).weights.steps
                note = next((step for step in steps if step.startswith("bitsandbytes leaves")), "")
                skipped.append(f"{name} at {'/'.join(dtypes)}: does not fit whole" + (f"; {note}" if note else ""))
    reasons.extend(skipped)
    reasons.append("nothing fits this machine: run a variant on a server (ollama: or openai:)")
    return Recommendation(task, None, None, None, None, tuple(reasons))

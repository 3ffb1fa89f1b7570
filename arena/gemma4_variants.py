"""The four Gemma 4 variants as memory planning sees them: every number marked published or guessed.

Published: stated by the seed article (a DEV Community guide to choosing a Gemma 4 variant), vLLM's
Gemma 4 recipe, or the defaults of transformers' Gemma 4 config classes, which are documented as
google/gemma-4-e2b-it's. Guessed: everything else, each saying where it comes from; most are the
released configs as third-party code copies them (public test fixtures, gemma.cpp's Gemma 4
configs, NVIDIA Megatron-Bridge's Gemma 4 docs), which no reference here can confirm.

Parameter counts are not stored: `gemma4_sizes.model_size` computes them from these configs,
and `published_params` lists the published totals to check them against.

Note: transformers' default `Gemma4TextConfig()` is not E2B's released text stack: it has 30
layers (hidden 2304, 4 KV heads, no KV sharing) where the seed says 35, and 3.06B parameters
besides its per-layer embeddings where E2B has ~2.3B effective. Its head sizes, window and
per-layer-embedding sizes are used as published; its layer count and widths are not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Source = Literal["published", "guessed"]

SEED = "the Gemma 4 variant guide (DEV Community article)"
NOTES = "vLLM's Gemma 4 recipe"
HF_DEFAULT = "transformers 5.24's default Gemma 4 config (documented for gemma-4-e2b-it)"
THIRD_PARTY = "the released config as third-party code copies it (public test fixtures of Gemma 4 configs)"
GEMMA_CPP = "gemma.cpp's Gemma 4 configs (google/gemma.cpp PR 919)"
NVIDIA = "NVIDIA Megatron-Bridge's Gemma 4 docs"


@dataclass(frozen=True)
class Fact:
    """One number (or list) about a variant, and where it comes from."""

    name: str
    value: Any
    source: Source
    where: str


def _published(name: str, value: Any, where: str) -> Fact:
    return Fact(name, value, "published", where)


def _guessed(name: str, value: Any, where: str) -> Fact:
    return Fact(name, value, "guessed", where)


def _pattern(layers: int, period: int) -> tuple[str, ...]:
    """`period - 1` sliding-window layers, then one full-attention layer, repeated."""
    return tuple("full_attention" if (i + 1) % period == 0 else "sliding_attention" for i in range(layers))


@dataclass(frozen=True)
class Architecture:
    """One Gemma 4 variant: how it is named, what it takes, and its config, fact by fact."""

    name: str
    hf_id: str
    ollama_tag: str
    modalities: tuple[str, ...]
    #: text-stack facts, named by their `Gemma4TextConfig` keys
    text: tuple[Fact, ...]
    #: vision and audio tower facts, named by their config keys; empty for no tower
    vision: tuple[Fact, ...] = ()
    audio: tuple[Fact, ...] = ()
    #: published parameter totals: (fact, what it counts: total, text, effective or active)
    published_params: tuple[tuple[Fact, str], ...] = ()

    def fact(self, name: str) -> Fact:
        for fact in self.text:
            if fact.name == name:
                return fact
        raise KeyError(f"{self.name} has no fact {name!r}")

    @property
    def context_tokens(self) -> int:
        return int(self.fact("max_position_embeddings").value)

    @property
    def facts(self) -> tuple[Fact, ...]:
        """Every fact, the towers' prefixed with `vision.` / `audio.`."""
        return (
            self.text
            + tuple(Fact(f"vision.{f.name}", f.value, f.source, f.where) for f in self.vision)
            + tuple(Fact(f"audio.{f.name}", f.value, f.source, f.where) for f in self.audio)
            + tuple(fact for fact, _ in self.published_params)
        )

    def config(self) -> dict[str, Any]:
        """The variant as a `Gemma4Config`-shaped dict, for `gemma4_sizes`."""

        def table(facts: tuple[Fact, ...]) -> dict[str, Any]:
            return {f.name: list(f.value) if isinstance(f.value, tuple) else f.value for f in facts}

        return {
            "text_config": table(self.text),
            "vision_config": table(self.vision) if self.vision else None,
            "audio_config": table(self.audio) if self.audio else None,
        }


def _hf_default_towers(where: str, source: Source) -> tuple[tuple[Fact, ...], tuple[Fact, ...]]:
    vision = (
        ("hidden_size", 768),
        ("intermediate_size", 3072),
        ("num_hidden_layers", 16),
        ("num_attention_heads", 12),
        ("num_key_value_heads", 12),
        ("head_dim", 64),
        ("patch_size", 16),
        ("position_embedding_size", 10_240),
    )
    audio = (
        ("hidden_size", 1024),
        ("num_hidden_layers", 12),
        ("num_attention_heads", 8),
        ("subsampling_conv_channels", (128, 32)),
        ("conv_kernel_size", 5),
        ("output_proj_dims", 1536),
    )
    return (tuple(Fact(k, v, source, where) for k, v in vision), tuple(Fact(k, v, source, where) for k, v in audio))


def _large_vision() -> tuple[Fact, ...]:
    where = "the 26B A4B / 31B vision tower as third-party code copies its config (ollama's Gemma 4 tests)"
    values = (
        ("hidden_size", 1152),
        ("intermediate_size", 4304),
        ("num_hidden_layers", 27),
        ("num_attention_heads", 16),
        ("num_key_value_heads", 16),
        ("head_dim", 72),
        ("patch_size", 16),
        ("position_embedding_size", 10_240),
    )
    return tuple(_guessed(k, v, where) for k, v in values)


def _common_text(context: int) -> tuple[Fact, ...]:
    return (
        _published("vocab_size", 262_144, HF_DEFAULT),
        _published("head_dim", 256, HF_DEFAULT),
        _published("global_head_dim", 512, HF_DEFAULT),
        _published("max_position_embeddings", context, SEED),
    )


_E2B_VISION, _E2B_AUDIO = _hf_default_towers(HF_DEFAULT, "published")
_E4B_VISION, _E4B_AUDIO = _hf_default_towers("assumed the same towers as E2B's (transformers' defaults)", "guessed")

E2B = Architecture(
    name="E2B",
    hf_id="google/gemma-4-E2B-it",
    ollama_tag="gemma4:e2b",
    modalities=("text", "image", "audio"),
    text=(
        *_common_text(131_072),
        _published("num_hidden_layers", 35, SEED),
        _guessed("hidden_size", 1536, GEMMA_CPP),
        _guessed("intermediate_size", 6144, GEMMA_CPP),
        _guessed("use_double_wide_mlp", True, f"{GEMMA_CPP}: 12288 wide on the KV-shared layers"),
        _guessed("num_attention_heads", 8, THIRD_PARTY),
        _guessed("num_key_value_heads", 1, THIRD_PARTY),
        _guessed("layer_types", _pattern(35, 5), f"{GEMMA_CPP}: 4 sliding, then 1 full"),
        _published("sliding_window", 512, f"{HF_DEFAULT}; the seed says 512-1024"),
        _guessed(
            "num_kv_shared_layers",
            20,
            "chosen so the computed counts match the published ~5.1B total and ~2.3B effective",
        ),
        _published("hidden_size_per_layer_input", 256, HF_DEFAULT),
        _published("vocab_size_per_layer_input", 262_144, HF_DEFAULT),
    ),
    vision=_E2B_VISION,
    audio=_E2B_AUDIO,
    published_params=(
        (_published("params_total", 5_100_000_000, f"{SEED}: ~5.1B total with PLE"), "total"),
        (_published("params_effective", 2_300_000_000, f"{SEED}: ~2.3B effective"), "effective"),
    ),
)

E4B = Architecture(
    name="E4B",
    hf_id="google/gemma-4-E4B-it",
    ollama_tag="gemma4:e4b",
    modalities=("text", "image", "audio"),
    text=(
        *_common_text(131_072),
        _published("num_hidden_layers", 42, SEED),
        _guessed("hidden_size", 2560, f"{NVIDIA}; {GEMMA_CPP}"),
        _guessed("intermediate_size", 10240, f"{NVIDIA}; {GEMMA_CPP}"),
        _guessed("num_attention_heads", 8, NVIDIA),
        _guessed("num_key_value_heads", 2, NVIDIA),
        _guessed("layer_types", _pattern(42, 6), f"{GEMMA_CPP}: 5 sliding, then 1 full"),
        _published("sliding_window", 512, f"{HF_DEFAULT}; the seed says 512-1024"),
        _guessed("num_kv_shared_layers", 18, f"{NVIDIA}: KV cache shared across the last 18 layers"),
        _published("hidden_size_per_layer_input", 256, HF_DEFAULT),
        _published("vocab_size_per_layer_input", 262_144, HF_DEFAULT),
    ),
    vision=_E4B_VISION,
    audio=_E4B_AUDIO,
    published_params=(
        (_published("params_total", 8_000_000_000, f"{SEED}: ~8B total"), "total"),
        (_published("params_effective", 4_500_000_000, f"{SEED}: ~4.5B effective"), "effective"),
    ),
)

A4B = Architecture(
    name="26B A4B",
    hf_id="google/gemma-4-26B-A4B-it",
    ollama_tag="gemma4:26b",
    modalities=("text", "image"),
    text=(
        *_common_text(262_144),
        _published("num_hidden_layers", 30, f"{SEED}: ~30 layers"),
        _guessed("hidden_size", 2816, THIRD_PARTY),
        _guessed("intermediate_size", 2112, f"{THIRD_PARTY}: the dense MLP beside the experts"),
        _guessed("num_attention_heads", 16, THIRD_PARTY),
        _guessed("num_key_value_heads", 8, f"{THIRD_PARTY}; {NVIDIA}"),
        _guessed("num_global_key_value_heads", 2, f"{THIRD_PARTY}; {NVIDIA}"),
        _guessed("attention_k_eq_v", True, f"{THIRD_PARTY}; {NVIDIA}"),
        _guessed("layer_types", _pattern(30, 6), f"{THIRD_PARTY}: 5 sliding, then 1 full"),
        _guessed("sliding_window", 1024, f"{THIRD_PARTY}; the seed says 512-1024"),
        _guessed("num_kv_shared_layers", 0, THIRD_PARTY),
        _published("hidden_size_per_layer_input", 0, f"{SEED}: per-layer embeddings only on the edge variants"),
        _published("enable_moe_block", True, SEED),
        _published("num_experts", 128, NOTES),
        _published("top_k_experts", 8, NOTES),
        _guessed("moe_intermediate_size", 704, THIRD_PARTY),
    ),
    vision=_large_vision(),
    published_params=(
        (_published("params_total", 25_200_000_000, f"{SEED}: 25.2B total (the language model)"), "text"),
        (_published("params_active", 3_800_000_000, f"{SEED}: ~3.8B active per token"), "active"),
    ),
)

DENSE_31B = Architecture(
    name="31B",
    hf_id="google/gemma-4-31B-it",
    ollama_tag="gemma4:31b",
    modalities=("text", "image"),
    text=(
        *_common_text(262_144),
        _guessed("num_hidden_layers", 60, THIRD_PARTY),
        _guessed("hidden_size", 5376, THIRD_PARTY),
        _guessed("intermediate_size", 21504, THIRD_PARTY),
        _guessed("num_attention_heads", 32, THIRD_PARTY),
        _guessed("num_key_value_heads", 16, THIRD_PARTY),
        _guessed("num_global_key_value_heads", 4, THIRD_PARTY),
        _guessed("attention_k_eq_v", True, THIRD_PARTY),
        _guessed("layer_types", _pattern(60, 6), f"{THIRD_PARTY}: 5 sliding, then 1 full"),
        _guessed("sliding_window", 1024, f"{THIRD_PARTY}; the seed says 512-1024"),
        _guessed("num_kv_shared_layers", 0, THIRD_PARTY),
        _published("hidden_size_per_layer_input", 0, f"{SEED}: per-layer embeddings only on the edge variants"),
    ),
    vision=_large_vision(),
    published_params=((_published("params_total", 31_000_000_000, f"{SEED}: 31B dense"), "total"),),
)

#: The four variants, smallest first.
VARIANTS: Mapping[str, Architecture] = {a.name: a for a in (E2B, E4B, A4B, DENSE_31B)}


def _names(arch: Architecture) -> set[str]:
    short = arch.name.lower().replace(" ", "-")
    return {
        arch.name.lower(),
        short,
        short.split("-")[0],
        arch.hf_id.lower(),
        arch.ollama_tag,
        f"hf:{arch.hf_id.lower()}",
        f"ollama:{arch.ollama_tag}",
    }


_BY_NAME = {name: arch for arch in VARIANTS.values() for name in _names(arch)}


def find_architecture(text: str) -> Architecture | None:
    """The variant named by `text` (E4B, 26b-a4b, google/gemma-4-E4B-it, gemma4:e4b, a `hf:` or
    `ollama:` spec of one of those, options after `?` ignored), or None. Exact names only: a
    fine-tune or a quantized tag is not guessed at."""
    return _BY_NAME.get(text.strip().split("?", 1)[0].lower())

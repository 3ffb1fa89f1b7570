"""How big a Gemma 4 model is, from its config alone: parameters by part, and the KV cache layout.

Pure arithmetic over a config dict (the shape of `config.json`, or `Gemma4Config.to_dict()`),
written to count exactly what transformers' `Gemma4ForConditionalGeneration` builds
(transformers 5.24, `models/gemma4/modeling_gemma4.py`): tests compare it with the parameter
count of real models built from the same configs. Nothing here imports torch or transformers.

Each part also counts the weights that sit in `nn.Linear` layers, because that is all
bitsandbytes quantizes: embedding tables, norms, convolutions and the MoE experts' 3-D tensors
(checked: transformers 5.24 leaves `Gemma4TextExperts` in bf16 under 4- and 8-bit) stay as loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SLIDING, FULL = "sliding_attention", "full_attention"

# Defaults of transformers' config classes, for keys a config leaves out.
_TEXT_DEFAULTS: dict[str, Any] = {
    "vocab_size": 262_144,
    "hidden_size": 2304,
    "intermediate_size": 9216,
    "num_hidden_layers": 30,
    "num_attention_heads": 8,
    "num_key_value_heads": 4,
    "head_dim": 256,
    "global_head_dim": 512,
    "num_global_key_value_heads": None,
    "sliding_window": 512,
    "layer_types": None,
    "vocab_size_per_layer_input": 262_144,
    "hidden_size_per_layer_input": 256,
    "attention_k_eq_v": False,
    "num_kv_shared_layers": 0,
    "enable_moe_block": False,
    "use_double_wide_mlp": False,
    "num_experts": None,
    "top_k_experts": None,
    "moe_intermediate_size": None,
    "tie_word_embeddings": True,
    "max_position_embeddings": 131_072,
}
_VISION_DEFAULTS: dict[str, Any] = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 16,
    "num_attention_heads": 12,
    "num_key_value_heads": 12,
    "head_dim": 64,
    "patch_size": 16,
    "position_embedding_size": 10_240,
}
_AUDIO_DEFAULTS: dict[str, Any] = {
    "hidden_size": 1024,
    "num_hidden_layers": 12,
    "num_attention_heads": 8,
    "subsampling_conv_channels": [128, 32],
    "conv_kernel_size": 5,
    "output_proj_dims": 1536,
}


@dataclass(frozen=True)
class Part:
    """Parameters of one part of a model."""

    params: int = 0
    #: of which weights of `nn.Linear` layers (what bitsandbytes quantizes)
    linear: int = 0
    #: output rows of those layers (LLM.int8 keeps one fp32 scale per row)
    linear_rows: int = 0

    def __add__(self, other: Part) -> Part:
        return Part(self.params + other.params, self.linear + other.linear, self.linear_rows + other.linear_rows)

    def times(self, n: int) -> Part:
        return Part(self.params * n, self.linear * n, self.linear_rows * n)


def _linear(n_in: int, n_out: int, bias: bool = False) -> Part:
    return Part(n_in * n_out + (n_out if bias else 0), n_in * n_out, n_out)


def _plain(n: int) -> Part:
    return Part(n, 0, 0)


@dataclass(frozen=True)
class ModelSize:
    """A model's parameters split the way memory planning needs them."""

    #: the language model minus the two parts below: token embeddings, attention, dense MLPs,
    #: norms, MoE routers, the per-layer-embedding projections
    text_decoder: Part
    #: the per-layer-embedding table (E2B/E4B): a lookup of a few rows per token, which an
    #: engine may keep in CPU RAM or on disk
    per_layer_embeddings: Part
    vision: Part
    audio: Part
    #: MoE expert weights, all of them (26B A4B)
    experts: Part
    num_experts: int = 0
    top_k_experts: int = 0

    @property
    def total(self) -> int:
        return sum(
            p.params for p in (self.text_decoder, self.per_layer_embeddings, self.vision, self.audio, self.experts)
        )

    @property
    def experts_active(self) -> int:
        """Expert parameters one token runs through (top-k of the experts)."""
        return self.experts.params * self.top_k_experts // self.num_experts if self.num_experts else 0


@dataclass(frozen=True)
class KvLayer:
    """One decoder layer as the KV cache sees it."""

    index: int
    layer_type: str
    kv_heads: int
    head_dim: int
    #: False for a KV-shared layer, which reads an earlier layer's cache and stores none
    stores_kv: bool


def config_dict(config: Any) -> dict[str, Any]:
    """A plain dict from a transformers config object (anything with `to_dict()`) or a mapping."""
    if isinstance(config, Mapping):
        return dict(config)
    to_dict = getattr(config, "to_dict", None)
    if to_dict is None:
        raise TypeError(f"not a config: {type(config).__name__} (give a dict or a transformers config)")
    return dict(to_dict())


def split_config(config: Any) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any] | None]:
    """(text, vision, audio) configs with defaults filled in; a text-only config gives no towers."""
    raw = config_dict(config)
    if "text_config" in raw:
        text = {**_TEXT_DEFAULTS, **config_dict(raw["text_config"] or {})}
        if "tie_word_embeddings" in raw:
            text["tie_word_embeddings"] = raw["tie_word_embeddings"]
        vision = raw.get("vision_config")
        audio = raw.get("audio_config")
        return (
            text,
            None if vision is None else {**_VISION_DEFAULTS, **config_dict(vision)},
            None if audio is None else {**_AUDIO_DEFAULTS, **config_dict(audio)},
        )
    return {**_TEXT_DEFAULTS, **raw}, None, None


def layer_types(text: Mapping[str, Any]) -> list[str]:
    """Sliding or full attention per layer: the config's list, else transformers' 5:1 default;
    the last layer is always full."""
    n = int(text["num_hidden_layers"])
    types = list(text.get("layer_types") or [SLIDING if (i + 1) % 6 else FULL for i in range(n)])
    if types:
        types[-1] = FULL
    return types


def kv_layers(text: Mapping[str, Any]) -> list[KvLayer]:
    """Each layer's KV heads, head size and whether it stores its own KV, as transformers builds
    them: full-attention layers take `global_head_dim` (and `num_global_key_value_heads` when
    `attention_k_eq_v`), unless the config carries explicit `per_layer_config` overrides; the last
    `num_kv_shared_layers` layers reuse an earlier layer's cache."""
    types = layer_types(text)
    overrides = text.get("per_layer_config")
    per_layer = {int(k): dict(v) for k, v in overrides.items()} if isinstance(overrides, Mapping) else None
    first_shared = len(types) - int(text.get("num_kv_shared_layers") or 0)
    layers = []
    for index, kind in enumerate(types):
        heads, dim = int(text["num_key_value_heads"]), int(text["head_dim"])
        if per_layer is not None:
            heads = int(per_layer.get(index, {}).get("num_key_value_heads", heads))
            dim = int(per_layer.get(index, {}).get("head_dim", dim))
        elif kind == FULL:
            dim = int(text.get("global_head_dim") or 512)
            if text.get("attention_k_eq_v") and text.get("num_global_key_value_heads") is not None:
                heads = int(text["num_global_key_value_heads"])
        layers.append(KvLayer(index, kind, heads, dim, stores_kv=index < first_shared))
    return layers


def _text_parts(text: Mapping[str, Any]) -> tuple[Part, Part, Part]:
    """(decoder, per-layer-embedding table, experts) of the language model."""
    hidden, vocab = int(text["hidden_size"]), int(text["vocab_size"])
    heads = int(text["num_attention_heads"])
    ple_dim = int(text.get("hidden_size_per_layer_input") or 0)
    moe = bool(text.get("enable_moe_block"))
    layers = kv_layers(text)
    n = len(layers)
    decoder = _plain(vocab * hidden + hidden)  # token embeddings (lm_head tied) + final norm
    if not text.get("tie_word_embeddings", True):
        decoder += _linear(hidden, vocab)
    ple_table = Part()
    if ple_dim:
        ple_table = _plain(int(text["vocab_size_per_layer_input"]) * n * ple_dim)
        decoder += _linear(hidden, n * ple_dim) + _plain(ple_dim)
    experts = Part()
    for layer in layers:
        dim = layer.head_dim
        decoder += _linear(hidden, heads * dim) + _plain(dim) + _linear(heads * dim, hidden)  # q, q_norm, o
        if layer.stores_kv:
            decoder += _linear(hidden, layer.kv_heads * dim) + _plain(dim)  # k, k_norm (v_norm has no weight)
            if not (text.get("attention_k_eq_v") and layer.layer_type == FULL):
                decoder += _linear(hidden, layer.kv_heads * dim)  # v
        wide = 2 if text.get("use_double_wide_mlp") and not layer.stores_kv else 1
        inter = int(text["intermediate_size"]) * wide
        decoder += _linear(hidden, inter).times(2) + _linear(inter, hidden) + _plain(4 * hidden)
        if ple_dim:
            decoder += _linear(hidden, ple_dim) + _linear(ple_dim, hidden) + _plain(hidden)
        if moe:
            n_exp, moe_inter = int(text["num_experts"]), int(text["moe_intermediate_size"])
            decoder += _linear(hidden, n_exp) + _plain(hidden + n_exp) + _plain(3 * hidden)  # router, 3 norms
            experts += _plain(n_exp * 3 * moe_inter * hidden)  # gate_up and down, per expert
    return decoder, ple_table, experts


def _vision_part(vision: Mapping[str, Any], text_hidden: int) -> Part:
    h, inter = int(vision["hidden_size"]), int(vision["intermediate_size"])
    heads, kv, dim = int(vision["num_attention_heads"]), int(vision["num_key_value_heads"]), int(vision["head_dim"])
    layer = (
        _linear(h, heads * dim)
        + _linear(h, kv * dim).times(2)
        + _linear(heads * dim, h)
        + _plain(2 * dim)
        + _linear(h, inter).times(2)
        + _linear(inter, h)
        + _plain(4 * h)
    )
    patch = int(vision["patch_size"])
    embedder = _linear(3 * patch * patch, h) + _plain(2 * int(vision["position_embedding_size"]) * h)
    return embedder + layer.times(int(vision["num_hidden_layers"])) + _linear(h, text_hidden)


def _audio_part(audio: Mapping[str, Any], text_hidden: int) -> Part:
    h, heads = int(audio["hidden_size"]), int(audio["num_attention_heads"])
    c0, c1 = (int(c) for c in audio["subsampling_conv_channels"])
    out = int(audio["output_proj_dims"])
    subsample = _plain(9 * c0 + c0 + 9 * c0 * c1 + c1) + _linear((c0 // 4) * c1, h)  # two convs + norms, proj
    feed_forward = _linear(h, 4 * h) + _linear(4 * h, h) + _plain(2 * h)
    attention = _linear(h, h).times(5) + _plain(h // heads)  # q, k, v, post, relative_k; per_dim_scale
    light_conv = _linear(h, 2 * h) + _linear(h, h) + _plain(h * int(audio["conv_kernel_size"]) + 2 * h)
    layer = feed_forward.times(2) + attention + light_conv + _plain(3 * h)
    return (
        subsample
        + layer.times(int(audio["num_hidden_layers"]))
        + _linear(h, out, bias=True)
        + _linear(out, text_hidden)
    )


def model_size(config: Any) -> ModelSize:
    """Parameters by part of the model a Gemma 4 config describes (a full `Gemma4Config` with its
    towers, or a text config alone)."""
    text, vision, audio = split_config(config)
    decoder, ple_table, experts = _text_parts(text)
    hidden = int(text["hidden_size"])
    moe = bool(text.get("enable_moe_block"))
    return ModelSize(
        text_decoder=decoder,
        per_layer_embeddings=ple_table,
        vision=_vision_part(vision, hidden) if vision else Part(),
        audio=_audio_part(audio, hidden) if audio else Part(),
        experts=experts,
        num_experts=int(text["num_experts"]) if moe else 0,
        top_k_experts=int(text["top_k_experts"]) if moe else 0,
    )

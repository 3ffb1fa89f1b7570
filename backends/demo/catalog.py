"""The four built-in demo variants: tiny random-weight Gemma 4 models standing in for the real ones.

They are built from the real transformers Gemma 4 classes, so loading, processing, MoE routing,
streaming and generation are the real code; only the weights are random, so their answers are
random tokens. Sizes keep the real variants' proportions (total parameters roughly 5 : 8 : 25 : 31),
so speed and memory differ visibly. Plain data: importing this module imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Bump when the generated files change, so caches built by an older version are rebuilt.
BUILD_VERSION = 2

RANDOM_WEIGHTS_NOTE = "random-weight stand-in: its answers are random tokens, not Gemma's"


@dataclass(frozen=True)
class DemoVariant:
    name: str
    stands_for: str  # the real variant's Hugging Face id
    summary: str
    text: dict[str, Any]
    vision: dict[str, Any] | None = None
    audio: dict[str, Any] | None = None
    image_soft_tokens: int = 70  # one of 70, 140, 280, 560, 1120
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def description(self) -> str:
        return f"tiny {self.summary} ({RANDOM_WEIGHTS_NOTE}; stands in for {self.stands_for})"


_VISION_SMALL = dict(
    hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
    num_key_value_heads=2, head_dim=16,
)
_VISION_LARGE = dict(
    hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
    num_key_value_heads=2, head_dim=32,
)
# The first subsampling channel count must equal the 128 mel bins of the feature extractor.
_AUDIO = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2, subsampling_conv_channels=[128, 32],
    output_proj_dims=64,
)

VARIANTS: dict[str, DemoVariant] = {
    v.name: v
    for v in (
        DemoVariant(
            name="e2b",
            stands_for="google/gemma-4-E2B-it",
            summary="edge model with per-layer embeddings, vision and audio towers",
            text=dict(
                hidden_size=64, intermediate_size=256, num_hidden_layers=4, num_attention_heads=2,
                num_key_value_heads=1, head_dim=32, global_head_dim=32, hidden_size_per_layer_input=48,
            ),
            vision=_VISION_SMALL,
            audio=_AUDIO,
        ),
        DemoVariant(
            name="e4b",
            stands_for="google/gemma-4-E4B-it",
            summary="edge model with per-layer embeddings, vision and audio towers",
            text=dict(
                hidden_size=96, intermediate_size=512, num_hidden_layers=6, num_attention_heads=2,
                num_key_value_heads=1, head_dim=48, global_head_dim=48, hidden_size_per_layer_input=48,
            ),
            vision=_VISION_SMALL,
            audio=_AUDIO,
        ),
        DemoVariant(
            name="26b-a4b",
            stands_for="google/gemma-4-26B-A4B-it",
            summary="mixture-of-experts model (16 experts, top 2 active) with a vision tower",
            text=dict(
                hidden_size=128, intermediate_size=256, num_hidden_layers=5, num_attention_heads=4,
                num_key_value_heads=2, head_dim=32, global_head_dim=32, hidden_size_per_layer_input=0,
                enable_moe_block=True, num_experts=16, top_k_experts=2, moe_intermediate_size=128,
            ),
            vision=_VISION_LARGE,
        ),
        DemoVariant(
            name="31b",
            stands_for="google/gemma-4-31B-it",
            summary="dense model with a vision tower",
            text=dict(
                hidden_size=192, intermediate_size=768, num_hidden_layers=10, num_attention_heads=4,
                num_key_value_heads=2, head_dim=48, global_head_dim=48, hidden_size_per_layer_input=0,
            ),
            vision=_VISION_LARGE,
        ),
    )
}

#: Shared by every demo variant's text config (vocab ids are filled in by the builder).
TEXT_COMMON: dict[str, Any] = dict(
    max_position_embeddings=8192,
    sliding_window=256,
    final_logit_softcapping=30.0,
)

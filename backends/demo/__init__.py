"""`demo:` variants: the built-in tiny random-weight Gemma 4 stand-ins (see `catalog`).

They run through the `hf:` backend like any checkpoint; their files are generated on first use
in the cache folder.
"""

from __future__ import annotations

from arena.errors import SpecError
from backends.base import Capabilities
from backends.demo.catalog import RANDOM_WEIGHTS_NOTE, VARIANTS, DemoVariant
from backends.hf import HFBackend, options_for
from backends.hf.options import HFOptions
from backends.registry import BackendContext, Registry, VariantSpec

__all__ = ["RANDOM_WEIGHTS_NOTE", "VARIANTS", "expected_capabilities", "register"]


def expected_capabilities(variant: DemoVariant) -> Capabilities:
    modalities = {"text"} | ({"image"} if variant.vision else set()) | ({"audio"} if variant.audio else set())
    return Capabilities(
        modalities=frozenset(modalities),  # type: ignore[arg-type]
        tools=True,
        thinking=True,
        context_length=None,
    )


def _create(spec: VariantSpec, context: BackendContext) -> HFBackend:
    variant = VARIANTS.get(spec.target)
    if variant is None:
        raise SpecError(
            f"unknown demo variant {spec.target!r}: choose from "
            + ", ".join(f"demo:{name}" for name in VARIANTS)
        )
    hf_options = HFOptions.from_spec_options(
        f"demo:{variant.name}", options_for(spec, context), demo=variant.name
    )
    return HFBackend(spec.label, hf_options, context.settings.cache_dir, expected_capabilities(variant))


def register(registry: Registry) -> None:
    registry.register(
        "demo",
        _create,
        summary=f"built-in tiny Gemma 4 stand-ins ({RANDOM_WEIGHTS_NOTE}): "
        + ", ".join(VARIANTS),
        example="demo:e2b",
        local_compute=True,
    )

"""`hf:` variants: Hugging Face transformers models run in a worker process each.

    hf:google/gemma-4-E4B-it
    hf:google/gemma-4-31B-it?quantize=4bit&device_map=auto&max_memory=0=70GiB,cpu=120GiB
    hf:/path/to/a/local/checkpoint?dtype=bfloat16&device=cuda:1

Options are listed in `backends.hf.options.HFOptions`.
"""

from __future__ import annotations

from backends.hf.backend import HFBackend
from backends.hf.options import HFOptions
from backends.registry import BackendContext, Registry, VariantSpec

__all__ = ["HFBackend", "HFOptions", "options_for", "register"]


def options_for(spec: VariantSpec, context: BackendContext) -> dict[str, str]:
    """The spec's options, with the CPU threads the caller assigned unless the spec sets its own."""
    options = dict(spec.options)
    if context.cpu_threads and "threads" not in options:
        options["threads"] = str(context.cpu_threads)
    return options


def _create(spec: VariantSpec, context: BackendContext) -> HFBackend:
    options = HFOptions.from_spec_options(spec.target, options_for(spec, context))
    return HFBackend(spec.label, options, context.settings.cache_dir)


def register(registry: Registry) -> None:
    registry.register(
        "hf",
        _create,
        summary="a transformers checkpoint (Hub id or local folder), in its own worker process",
        example="hf:google/gemma-4-E4B-it?dtype=bfloat16&quantize=4bit",
        local_compute=True,
    )

"""`openai:` variants: a model on an OpenAI-compatible server (vLLM, llama.cpp, LM Studio, TGI).

    openai:http://127.0.0.1:8000/v1#google/gemma-4-31B-it
    openai:http://gpu-box:8000/v1#google/gemma-4-31B-it?modalities=text,image&tools=true&thinking=true

The target is BASE_URL#MODEL. The protocol cannot tell what a model takes, so capabilities are
declared by options (text only unless told); see `backends.openai_compat.options.OpenAIOptions`.
"""

from __future__ import annotations

from backends.openai_compat.backend import OpenAICompatBackend
from backends.openai_compat.options import OpenAIOptions
from backends.registry import BackendContext, Registry, VariantSpec

__all__ = ["OpenAICompatBackend", "OpenAIOptions", "register"]


def _create(spec: VariantSpec, context: BackendContext) -> OpenAICompatBackend:
    return OpenAICompatBackend(spec.label, OpenAIOptions.from_spec_options(spec.target, spec.options))


def register(registry: Registry) -> None:
    registry.register(
        "openai",
        _create,
        summary="a model on an OpenAI-compatible server (vLLM, llama.cpp, LM Studio...): BASE_URL#MODEL",
        example="openai:http://127.0.0.1:8000/v1#google/gemma-4-31B-it?modalities=text,image",
        local_compute=False,
    )

"""`ollama:` variants: a model on an Ollama server, through the official `ollama` client.

    ollama:gemma4:e4b
    ollama:gemma4:31b?host=http://gpu-box:11434&num_ctx=8192&keep_alive=30m

The target is everything after the first colon (Ollama's own tag). Options are listed in
`backends.ollama.options.OllamaOptions`; `discover(host)` lists the models a server has pulled.
"""

from __future__ import annotations

from backends.ollama.backend import OllamaBackend
from backends.ollama.discover import LocalModel, discover
from backends.ollama.options import DEFAULT_HOST, OllamaOptions
from backends.registry import BackendContext, Registry, VariantSpec

__all__ = ["DEFAULT_HOST", "LocalModel", "OllamaBackend", "OllamaOptions", "discover", "register"]


def _create(spec: VariantSpec, context: BackendContext) -> OllamaBackend:
    return OllamaBackend(spec.label, OllamaOptions.from_spec_options(spec.target, spec.options))


def register(registry: Registry) -> None:
    registry.register(
        "ollama",
        _create,
        summary="a model on an Ollama server (host= or OLLAMA_HOST, default http://127.0.0.1:11434)",
        example="ollama:gemma4:e4b?num_ctx=8192",
        local_compute=False,
    )

"""How a variant is run: the Backend protocol, its values, and the registry of spec prefixes."""

from __future__ import annotations

from backends.base import (
    Backend,
    Capabilities,
    Chunk,
    LoadReport,
    Media,
    MemoryReport,
    Request,
    Tool,
    ToolCall,
    Usage,
)
from backends.registry import BackendContext, Registry, VariantSpec, default_registry

__all__ = [
    "Backend",
    "BackendContext",
    "Capabilities",
    "Chunk",
    "LoadReport",
    "Media",
    "MemoryReport",
    "Registry",
    "Request",
    "Tool",
    "ToolCall",
    "Usage",
    "VariantSpec",
    "default_registry",
]

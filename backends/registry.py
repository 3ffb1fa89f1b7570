"""Variant specs (`prefix:target?option=value&...`) and the registry that turns them into backends.

Backends register themselves by prefix through a callback (`register(registry)` in each backend
module); nothing here knows the list of backends, and nothing keys behaviour on model names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode

from arena.errors import SpecError

if TYPE_CHECKING:
    from arena.settings import Settings
    from backends.base import Backend


@dataclass(frozen=True)
class VariantSpec:
    """A parsed spec string. `options` come from the `?a=b&c=d` suffix or from a config file."""

    prefix: str
    target: str
    options: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def parse(cls, text: str, options: Mapping[str, object] | None = None) -> VariantSpec:
        text = text.strip()
        prefix, sep, rest = text.partition(":")
        if not sep or not prefix or not rest:
            raise SpecError(
                f"variant spec {text!r} is not of the form PREFIX:TARGET (e.g. demo:e2b, "
                "hf:google/gemma-4-E4B-it, ollama:gemma4:e4b, openai:http://host:8000/v1#model)"
            )
        target, merged = rest, dict[str, str]()
        head, qmark, query = rest.rpartition("?")
        if qmark and query and all("=" in part for part in query.split("&")):
            target = head
            merged.update(parse_qsl(query, keep_blank_values=True, strict_parsing=False))
        for key, value in (options or {}).items():
            merged[key] = _option_text(value)
        return cls(prefix=prefix.lower(), target=target, options=MappingProxyType(merged))

    @property
    def label(self) -> str:
        """How the variant is named everywhere (UI, stats, votes): the spec without options,
        unless a `label` option names it."""
        return self.options.get("label") or f"{self.prefix}:{self.target}"

    def __str__(self) -> str:
        opts = {k: v for k, v in self.options.items()}
        return f"{self.prefix}:{self.target}" + (f"?{urlencode(opts)}" if opts else "")


def _option_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return ",".join(f"{k}={v}" for k, v in value.items())
    return str(value)


@dataclass(frozen=True)
class BackendContext:
    """What a backend factory may use besides its spec."""

    settings: Settings
    #: CPU threads this variant should use (the caller splits the cores among in-process variants).
    cpu_threads: int | None = None


Factory = Callable[[VariantSpec, BackendContext], "Backend"]


@dataclass(frozen=True)
class _Entry:
    factory: Factory
    summary: str
    example: str
    local_compute: bool


class Registry:
    """Maps spec prefixes to backend factories."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def register(
        self, prefix: str, factory: Factory, *, summary: str, example: str, local_compute: bool
    ) -> None:
        """Add a backend kind. `local_compute` says whether it computes on this machine (and so
        shares its CPU cores with the other local variants)."""
        if prefix in self._entries:
            raise ValueError(f"backend prefix {prefix!r} is already registered")
        self._entries[prefix] = _Entry(factory, summary, example, local_compute)

    @property
    def prefixes(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def describe(self) -> list[tuple[str, str, str]]:
        return [(p, e.summary, e.example) for p, e in self._entries.items()]

    def parse(self, text: str | VariantSpec, options: Mapping[str, object] | None = None) -> VariantSpec:
        spec = text if isinstance(text, VariantSpec) else VariantSpec.parse(text, options)
        if spec.prefix not in self._entries:
            known = ", ".join(f"{p}:" for p in self._entries)
            raise SpecError(f"unknown variant spec {str(spec)!r}: known prefixes are {known}")
        return spec

    def computes_locally(self, spec: VariantSpec) -> bool:
        return self._entries[self.parse(spec).prefix].local_compute

    def create(self, spec: str | VariantSpec, context: BackendContext) -> Backend:
        parsed = self.parse(spec)
        return self._entries[parsed.prefix].factory(parsed, context)


def default_registry() -> Registry:
    """The registry with every backend this project ships."""
    from backends import demo, hf, ollama, openai_compat

    registry = Registry()
    for module in (demo, hf, ollama, openai_compat):
        module.register(registry)
    return registry

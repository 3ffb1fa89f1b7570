"""Parsing the options of remote variants (spec `?a=b` or TOML keys), checked at the boundary."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

import httpx

from arena.errors import SpecError
from backends.base import Modality

_MODALITIES: tuple[Modality, ...] = ("text", "image", "audio")


@dataclass(frozen=True)
class Timeouts:
    """How long to wait for a server.

    - `connect_s`: to open a connection; a server that is down answers at once (refused), so
      this only bites on an unreachable host or a dropped packet.
    - `read_s`: the longest silence between two pieces of an answer (not the whole answer):
      a big model's first token after a long prompt comes after the longest silence.
    """

    connect_s: float = 5.0
    read_s: float = 120.0

    def httpx(self, read_s: float | None = None) -> httpx.Timeout:
        """The httpx timeout; `read_s` overrides the read timeout (e.g. while a model loads)."""
        read = self.read_s if read_s is None else read_s
        return httpx.Timeout(read, connect=self.connect_s)

    @classmethod
    def from_options(cls, options: Mapping[str, str], where: str) -> Timeouts:
        default = cls()
        return cls(
            connect_s=parse_seconds(options, "connect_timeout", default.connect_s, where),
            read_s=parse_seconds(options, "read_timeout", default.read_s, where),
        )


def reject_unknown(options: Mapping[str, str], known: Collection[str], where: str) -> None:
    """Raise SpecError naming any option not in `known`, so a typo is not silently ignored."""
    unknown = set(options) - set(known)
    if unknown:
        raise SpecError(
            f"unknown option(s) {', '.join(sorted(unknown))} for {where}; known: {', '.join(sorted(known))}"
        )


def parse_bool(options: Mapping[str, str], name: str, default: bool, where: str) -> bool:
    text = options.get(name)
    if text is None:
        return default
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise SpecError(f"{where}: {name}={text!r} must be true or false")


def parse_int(options: Mapping[str, str], name: str, where: str, minimum: int = 1) -> int | None:
    text = options.get(name)
    if text is None or not text.strip():
        return None
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise SpecError(f"{where}: {name}={text!r} must be a whole number of at least {minimum}")
    return value


def parse_seconds(options: Mapping[str, str], name: str, default: float, where: str) -> float:
    text = options.get(name)
    if text is None or not text.strip():
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise SpecError(f"{where}: {name}={text!r} must be a number of seconds above 0")
    return value


def parse_modalities(options: Mapping[str, str], where: str) -> frozenset[Modality] | None:
    """`modalities=text,image,audio` (text is always included); None when not given."""
    text = options.get("modalities")
    if text is None:
        return None
    found: set[Modality] = {"text"}
    for part in filter(None, (p.strip().lower() for p in text.split(","))):
        if part not in _MODALITIES:
            raise SpecError(f"{where}: modalities={text!r}: {part!r} is not one of {', '.join(_MODALITIES)}")
        found.add(part)  # type: ignore[arg-type]  # checked against _MODALITIES just above
    return frozenset(found)

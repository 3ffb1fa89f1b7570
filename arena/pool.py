"""Which variants may be in memory at once: a budget per memory pool and the decision to load,
to unload the least recently used first, or to refuse. Pure: sizes and times come in as values.

A pool is where weights live: "cpu" (RAM) or a GPU by index ("0", "1"...). A variant served
elsewhere (an Ollama or OpenAI-compatible server) takes no pool here. What a variant takes is
its estimate (`arena.hardware`) until it is loaded, then the weights its backend measured.

    budget = Budget.parse("cpu=16GiB,0=20GiB")
    plan = plan_load("e4b", Footprint(9 * GIB, "0"), loaded, budget, evict=False)
    plan.action, plan.unload, plan.message
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Literal

from arena.errors import UsageError
from arena.units import format_bytes

CPU = "cpu"
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str) -> int:
    """Bytes in `24GiB`, `20GB` (10^9), `512MiB`, `16G` (GiB) or a plain number of bytes."""
    found = _SIZE.match(text)
    unit = found.group(2).lower() if found else ""
    if found is None or unit not in _UNITS:
        raise UsageError(f"{text.strip()!r} is not a size: write it like 24GiB, 512MiB or 20GB")
    return int(float(found.group(1)) * _UNITS[unit])


def pool_of(device: str) -> str:
    """The pool a device's memory is counted in: "cpu" (also mps: unified memory) or a GPU index;
    "" for none (served elsewhere)."""
    device = device.strip().lower()
    if not device:
        return ""
    if device in ("cuda", "gpu"):
        return "0"
    if device.startswith("cuda:"):
        device = device.removeprefix("cuda:")
    return device if device.isdigit() else CPU


def pool_name(pool: str) -> str:
    return "RAM" if pool == CPU else f"GPU {pool}"


@dataclass(frozen=True)
class Budget:
    """Bytes each pool may hold; a pool not listed is not limited."""

    caps: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def parse(cls, text: str) -> Budget:
        """`--max-memory`: `24GiB` (RAM) or `cpu=16GiB,0=20GiB` (RAM and GPU 0)."""
        caps: dict[str, int] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            device, sep, amount = part.rpartition("=") if "=" in part else ("cpu", "=", part)
            pool = pool_of(device)
            if not sep or not pool or (pool == CPU and device.strip().lower() not in ("cpu", "ram")):
                raise UsageError(f"--max-memory part {part!r} must look like 24GiB, cpu=16GiB or 0=20GiB")
            caps[pool] = parse_size(amount)
        if not caps:
            raise UsageError("--max-memory needs a size, e.g. 24GiB or cpu=16GiB,0=20GiB")
        return cls(MappingProxyType(caps))

    def over(self, default: Budget) -> Budget:
        """This budget, with `default`'s caps for the pools it does not name."""
        return replace(self, caps=MappingProxyType({**default.caps, **self.caps}))

    def cap(self, pool: str) -> int | None:
        return self.caps.get(pool)

    def describe(self) -> str:
        if not self.caps:
            return "no memory budget"
        return ", ".join(f"{pool_name(pool)} {format_bytes(cap)}" for pool, cap in sorted(self.caps.items()))


@dataclass(frozen=True)
class Footprint:
    """What one variant takes of one pool: estimated before loading, measured after."""

    bytes: int
    #: "cpu", a GPU index, or "" for a variant served elsewhere (it takes nothing here)
    pool: str
    #: `time.monotonic()` of its last answer (0: never): the least recent is unloaded first
    last_used: float = 0.0
    measured: bool = False

    @property
    def local(self) -> bool:
        return bool(self.pool) and self.bytes > 0

    def describe(self) -> str:
        return f"{format_bytes(self.bytes)} {'measured' if self.measured else 'estimated'}"


@dataclass(frozen=True)
class Plan:
    action: Literal["load", "evict", "refuse"]
    #: "evict": the variants to unload first, least recently used first
    unload: tuple[str, ...] = ()
    #: why, in a line (for "refuse": what was asked, what holds the memory, and what to do)
    message: str = ""

    @property
    def allowed(self) -> bool:
        return self.action != "refuse"


def plan_load(name: str, need: Footprint, loaded: Mapping[str, Footprint], budget: Budget, *,
              evict: bool = False) -> Plan:
    """Whether `name` (needing `need`) may load next to `loaded` within `budget`: at once, after
    unloading the least recently used variants of its pool (only when `evict`), or not at all."""
    cap = budget.cap(need.pool)
    if not need.local or cap is None:
        return Plan("load")
    where = pool_name(need.pool)
    if need.bytes > cap:
        return Plan("refuse", message=(
            f"{name} needs {need.describe()} but the {where} budget is {format_bytes(cap)}: "
            f"raise --max-memory ({_flag(need.pool)}=...) or pick a smaller variant (quantize=4bit)"))
    sharing = sorted(((n, f) for n, f in loaded.items() if f.local and f.pool == need.pool and n != name),
                     key=lambda item: item[1].last_used)
    used = sum(f.bytes for _, f in sharing)
    if used + need.bytes <= cap:
        return Plan("load", message=f"{name} ({need.describe()}) fits in {where}: "
                                    f"{format_bytes(used + need.bytes)} of {format_bytes(cap)}")
    victims: list[str] = []
    freed = 0
    for other, footprint in sharing:  # least recently used first
        if used - freed + need.bytes <= cap:
            break
        victims.append(other)
        freed += footprint.bytes
    if evict:
        return Plan("evict", tuple(victims), f"unloaded {', '.join(victims)} (least recently used) to fit {name} "
                                             f"({need.describe()}) in the {where} budget of {format_bytes(cap)}")
    holding = ", ".join(f"{n} {f.describe()}" for n, f in sharing)
    return Plan("refuse", message=(
        f"{name} needs {need.describe()} but {where} already holds {format_bytes(used)} of its "
        f"{format_bytes(cap)} budget ({holding}): unload {', '.join(victims)} first, raise --max-memory "
        f"({_flag(need.pool)}=...), or start the app with --evict lru"))


def _flag(pool: str) -> str:
    return CPU if pool == CPU else pool

"""The set of variants a session compares: created from specs, loaded concurrently with progress.

A variant that fails to load stays in the lineup as unavailable, with the reason, so the others
work and the UI can say why it is missing. `Variant.state` is the one answer to "can it answer
now?" (see `arena.variant_state`).

Loading keeps to a memory budget (`MemoryPolicy`, decided by `arena.pool.plan_load`): at start
the variants are admitted in order and one that would not fit is unavailable with the reason;
later a variant can be unloaded (`Lineup.unload`) and loaded again (`Lineup.load`), then
unloading the least recently used ones first when the policy says `evict`.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from arena.errors import ArenaError, UsageError
from arena.pool import CPU, Budget, Footprint, Plan, plan_load, pool_of
from arena.settings import Settings
from arena.variant_fits import DEFAULT_CONTEXT_TOKENS, spec_estimate
from arena.variant_state import Supervised, VariantState
from backends.base import Backend, LoadReport
from backends.registry import BackendContext, Registry, VariantSpec

#: Called with (variant name, fraction or None, message) as each variant loads.
LoadProgress = Callable[[str, float | None, str], None]


def _quiet(name: str, fraction: float | None, message: str) -> None:
    """A LoadProgress that ignores what it is told."""


@dataclass
class Variant:
    spec: VariantSpec
    backend: Backend | None = None
    report: LoadReport | None = None
    #: Why loading failed; the variant then stays unavailable.
    load_error: str | None = None
    #: The last progress of loading: (fraction or None, what it is doing).
    progress: tuple[float | None, str] = (0.0, "waiting to load")
    #: Unloaded on request: its backend is closed until it is loaded again.
    unloaded: bool = False
    #: `time.monotonic()` of its last answer (0: none yet): the least recent is unloaded first.
    last_used: float = 0.0

    @property
    def name(self) -> str:
        return self.spec.label

    @property
    def state(self) -> VariantState:
        """Loading, ready, restarting (its worker stopped), unavailable or unloaded: what every view reads."""
        if self.unloaded:
            return VariantState("unloaded", "load it on the Variants tab")
        if self.backend is None or self.load_error is not None:
            return VariantState("unavailable", self.load_error or f"{self.name} has no backend")
        if self.report is None:
            return VariantState("loading", self.progress[1], fraction=self.progress[0])
        if isinstance(self.backend, Supervised):
            return self.backend.state
        return VariantState("ready", self.progress[1])

    @property
    def available(self) -> bool:
        """Ready to answer now."""
        return self.state.ready

    @property
    def error(self) -> str | None:
        """Why it cannot answer now (None when ready or still loading)."""
        state = self.state
        if state.phase == "unavailable":
            return state.detail
        if state.phase == "unloaded":
            return f"{self.name} is unloaded: load it on the Variants tab"
        if state.phase == "restarting":
            return f"{self.name} is {state.label()} after its worker stopped ({state.detail}): try again soon"
        return None

    @property
    def load_s(self) -> float | None:
        return self.report.load_s if self.report else None

    @property
    def weights_bytes(self) -> int | None:
        return self.report.weights_bytes if self.report else None


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class MemoryPolicy:
    """How much the variants may hold (`arena.pool`), and how a variant's share is estimated."""

    budget: Budget = field(default_factory=Budget)
    #: Make room for a variant loaded on request by unloading the least recently used ones.
    evict: bool = False
    #: The pool of a local variant whose spec names no device: "0" where there is a GPU.
    default_pool: str = CPU
    #: Where the demo variants are built (their estimates read its config.json).
    cache_dir: Path | None = None
    context_tokens: int = DEFAULT_CONTEXT_TOKENS


#: Creates a fresh backend for a spec (a closed backend does not load again).
BackendFactory = Callable[[VariantSpec], Backend]
#: Whether a spec computes on this machine (an Ollama or OpenAI server's memory is not ours).
Locality = Callable[[VariantSpec], bool]


class Lineup:
    def __init__(self, variants: Sequence[Variant], *, memory: MemoryPolicy | None = None,
                 create: BackendFactory | None = None, computes_locally: Locality | None = None) -> None:
        self.variants = list(variants)
        self.memory = memory or MemoryPolicy()
        self._create = create
        self._local = computes_locally or (lambda spec: True)

    @property
    def names(self) -> list[str]:
        return [v.name for v in self.variants]

    @property
    def available(self) -> list[Variant]:
        """The variants ready to answer now."""
        return [v for v in self.variants if v.available]

    @property
    def settled(self) -> bool:
        """No variant is loading or restarting."""
        return all(v.state.settled for v in self.variants)

    def get(self, name: str) -> Variant:
        for variant in self.variants:
            if variant.name == name:
                return variant
        raise UsageError(f"no variant named {name!r} is loaded; loaded: {', '.join(self.names)}")

    async def close(self) -> None:
        await asyncio.gather(
            *(v.backend.close() for v in self.variants if v.backend is not None), return_exceptions=True
        )

    # ------------------------------------------------------------------ memory
    def footprint(self, variant: Variant) -> Footprint:
        """What `variant` takes of which pool: its measured weights once loaded, else its estimate
        (0 where there is none: a fine-tune, a demo not built yet); nothing when served elsewhere."""
        if not self._local(variant.spec):
            return Footprint(0, "")
        report = variant.report
        if report is not None and report.weights_bytes is not None:
            pool = pool_of(report.device) or self.memory.default_pool
            return Footprint(report.weights_bytes, pool, variant.last_used, measured=True)
        pool = pool_of(variant.spec.options.get("device", "")) or self.memory.default_pool
        cache_dir = self.memory.cache_dir or Path(".")
        found = spec_estimate(str(variant.spec), cache_dir, self.memory.context_tokens)
        return Footprint(0 if isinstance(found, str) else found.total_bytes, pool, variant.last_used)

    @property
    def holding(self) -> list[Variant]:
        """The variants that hold memory now: loading, ready or restarting."""
        return [v for v in self.variants if v.state.phase in ("loading", "ready", "restarting")]

    def plan(self, variant: Variant, *, evict: bool | None = None) -> Plan:
        """Whether `variant` may load next to the variants holding memory now (`arena.pool.plan_load`)."""
        loaded = {v.name: self.footprint(v) for v in self.holding if v is not variant}
        return plan_load(variant.name, self.footprint(variant), loaded, self.memory.budget,
                         evict=self.memory.evict if evict is None else evict)

    def used_bytes(self) -> dict[str, int]:
        """Pool -> bytes the variants holding memory take (measured where loaded, else estimated)."""
        used: dict[str, int] = {}
        for variant in self.holding:
            footprint = self.footprint(variant)
            if footprint.local:
                used[footprint.pool] = used.get(footprint.pool, 0) + footprint.bytes
        return used

    def mark_used(self, names: Iterable[str], now: float | None = None) -> None:
        """These variants just answered: the last to be unloaded to make room."""
        now = time.monotonic() if now is None else now
        for variant in self.variants:
            if variant.name in names:
                variant.last_used = now

    async def unload(self, name: str) -> str:
        """Close `name`'s backend and free its memory; battles no longer draw it. Returns its status."""
        variant = self.get(name)
        if variant.unloaded:
            return f"{name} is already unloaded"
        variant.unloaded = True
        variant.report, variant.progress = None, (None, "unloaded")
        if variant.backend is not None:
            await variant.backend.close()  # an answer being generated ends with an error
        return f"{name}: unloaded"

    async def load(self, name: str, progress: LoadProgress = _quiet) -> str:
        """Load `name` again (unloaded, or unavailable after a failure or a refusal) within the
        budget, first unloading the least recently used variants when the policy allows it.
        Raises UsageError, before anything is unloaded, when it would not fit. Returns its status."""
        variant = self.get(name)
        if variant.state.phase in ("loading", "ready", "restarting"):
            return f"{name} is already {variant.state.label()}"
        if self._create is None:
            raise UsageError(f"{name} cannot be loaded again in this lineup: restart the app")
        plan = self.plan(variant)
        if not plan.allowed:
            raise UsageError(plan.message)
        for other in plan.unload:
            await self.unload(other)
        if variant.backend is not None:
            await variant.backend.close()  # a failed load's leftovers
        variant.backend, variant.report, variant.load_error = self._create(variant.spec), None, None
        variant.unloaded, variant.progress = False, (0.0, "waiting to load")
        await _load(variant, progress)
        note = f" ({plan.message})" if plan.unload else ""
        return f"{name}: {variant.state.label()}: {variant.error or variant.progress[1]}{note}"


def create_lineup(
    specs: Sequence[VariantSpec], registry: Registry, settings: Settings, cores: int | None = None,
    memory: MemoryPolicy | None = None,
) -> Lineup:
    """Create (not load) a backend per spec. Raises SpecError/UsageError for bad specs, before
    anything is started. CPU cores are split evenly among the variants that compute locally, so
    worker processes don't oversubscribe them."""
    names = [s.label for s in specs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UsageError(
            f"{', '.join(twice)} listed twice: give each copy its own label (e.g. ?label=e2b-4bit)"
        )
    local = sum(1 for s in specs if registry.computes_locally(s))
    threads = max(1, (cores or usable_cores()) // max(1, local))
    context = BackendContext(settings=settings, cpu_threads=threads)
    memory = memory or MemoryPolicy(cache_dir=settings.cache_dir)
    return Lineup([Variant(spec, backend=registry.create(spec, context)) for spec in specs], memory=memory,
                  create=lambda spec: registry.create(spec, context), computes_locally=registry.computes_locally)


async def load_all(lineup: Lineup, progress: LoadProgress = _quiet) -> Lineup:
    """Load every variant concurrently; failures are recorded on the variant, not raised. The
    variants are first admitted in order within the memory budget: one that would not fit next
    to those before it is left unavailable, with the estimate and the budget, and not loaded."""
    admitted: dict[str, Footprint] = {}
    to_load = []
    for variant in lineup.variants:
        if variant.state.phase != "loading":  # unloaded, or already failed
            continue
        need = lineup.footprint(variant)
        plan = plan_load(variant.name, need, admitted, lineup.memory.budget, evict=False)
        if plan.allowed:
            admitted[variant.name] = need
            to_load.append(variant)
        else:
            variant.load_error = f"not loaded: {plan.message}"
            variant.progress = (None, f"unavailable: {variant.load_error}")
            progress(variant.name, *variant.progress)
    await asyncio.gather(*(_load(v, progress) for v in to_load))
    return lineup


async def _load(variant: Variant, progress: LoadProgress) -> None:
    """Load one variant; a failure is recorded on it (unavailable, with why), not raised."""

    def report(fraction: float | None, message: str) -> None:
        variant.progress = (fraction, message)
        progress(variant.name, fraction, message)

    assert variant.backend is not None
    try:
        loaded = await variant.backend.load(report)
        variant.progress = (1.0, f"ready in {loaded.load_s:.1f} s")
        variant.report = loaded
        progress(variant.name, *variant.progress)
    except ArenaError as exc:
        variant.load_error = str(exc)
        report(None, f"unavailable: {exc}")
    except Exception as exc:  # one broken variant must not stop the others loading
        variant.load_error = f"{variant.name} failed to load: {type(exc).__name__}: {exc}"
        report(None, f"unavailable: {variant.load_error}")

"""The set of variants a session compares: created from specs, loaded concurrently with progress.

A variant that fails to load stays in the lineup as unavailable, with the reason, so the others
work and the UI can say why it is missing. `Variant.state` is the one answer to "can it answer
now?" (see `arena.variant_state`).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from arena.errors import ArenaError, UsageError
from arena.settings import Settings
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

    @property
    def name(self) -> str:
        return self.spec.label

    @property
    def state(self) -> VariantState:
        """Loading, ready, restarting (its worker stopped) or unavailable: what every view reads."""
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


class Lineup:
    def __init__(self, variants: Sequence[Variant]) -> None:
        self.variants = list(variants)

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


def create_lineup(
    specs: Sequence[VariantSpec], registry: Registry, settings: Settings, cores: int | None = None
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
    return Lineup([Variant(spec, backend=registry.create(spec, context)) for spec in specs])


async def load_all(lineup: Lineup, progress: LoadProgress = _quiet) -> Lineup:
    """Load every variant concurrently; failures are recorded on the variant, not raised."""

    def report(variant: Variant, fraction: float | None, message: str) -> None:
        variant.progress = (fraction, message)
        progress(variant.name, fraction, message)

    async def load(variant: Variant) -> None:
        assert variant.backend is not None
        try:
            loaded = await variant.backend.load(lambda fraction, message: report(variant, fraction, message))
            variant.progress = (1.0, f"ready in {loaded.load_s:.1f} s")
            variant.report = loaded
            progress(variant.name, *variant.progress)
        except ArenaError as exc:
            variant.load_error = str(exc)
            report(variant, None, f"unavailable: {exc}")
        except Exception as exc:  # one broken variant must not stop the others loading
            variant.load_error = f"{variant.name} failed to load: {type(exc).__name__}: {exc}"
            report(variant, None, f"unavailable: {variant.load_error}")

    await asyncio.gather(*(load(v) for v in lineup.variants))
    return lineup

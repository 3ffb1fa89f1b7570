"""How a variant is doing: loading, ready, restarting, unavailable or unloaded (by a user, to free
its memory: `ui.services.ArenaServices.unload_variant`; it loads again on request).

`arena.lineup.Variant.state` is the one place that answers it; the Variants tab, the Compare
tab's notes and the drawing of blind battles all read it, so they cannot disagree. A backend that
looks after a worker of its own (the transformers backend) reports its state through
`Supervised`; a remote backend has no worker, and is ready once loaded.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

Phase = Literal["loading", "ready", "restarting", "unavailable", "unloaded"]


@dataclass(frozen=True)
class VariantState:
    phase: Phase
    #: loading: the current step; restarting and unavailable: why.
    detail: str = ""
    #: loading, and restarting once a try is under way: how far loading got, when known.
    fraction: float | None = None
    #: restarting: this try's number (from 1) and how many tries are allowed.
    attempt: int = 0
    attempts: int = 0
    #: restarting: `time.monotonic()` of the next try; None while a try is under way.
    retry_at: float | None = None

    @property
    def ready(self) -> bool:
        return self.phase == "ready"

    @property
    def settled(self) -> bool:
        """Ready, unavailable or unloaded: nothing will change until something happens to the variant."""
        return self.phase in ("ready", "unavailable", "unloaded")

    def label(self, now: float | None = None) -> str:
        """A short status for a table: `loading 40%`, `restarting (try 2 of 3, next in 2 s)`..."""
        if self.phase == "loading":
            return "loading" + ("" if self.fraction is None else f" {self.fraction:.0%}")
        if self.phase == "restarting":
            if self.retry_at is None:
                loading = "" if self.fraction is None else f", loading {self.fraction:.0%}"
                return f"restarting (try {self.attempt} of {self.attempts}{loading})"
            wait_s = max(0, math.ceil(self.retry_at - (time.monotonic() if now is None else now)))
            return f"restarting (try {self.attempt} of {self.attempts}, next in {wait_s} s)"
        return self.phase


@runtime_checkable
class Supervised(Protocol):
    """A backend that runs a worker of its own and can say whether it is up (once loaded)."""

    @property
    def state(self) -> VariantState: ...

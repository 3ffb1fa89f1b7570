"""What the web UI works with: the variants, the vote store, and loading them in the background.

Built by `cli/serve.py` from settings; handlers receive it, nothing is global. How each variant is
doing (loading, ready, restarting, unavailable, unloaded) is `Variant.state`, read from the lineup.
Variants are loaded and unloaded here at run time, one change at a time, within the lineup's
memory budget (`arena.lineup.MemoryPolicy`).
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Iterable

from arena.errors import UsageError
from arena.limits import DEFAULT_LIMITS, Limits
from arena.lineup import Lineup, LoadProgress, Variant, load_all
from arena.pool import pool_name
from arena.units import format_bytes
from storage import Store


class ArenaServices:
    def __init__(
        self,
        lineup: Lineup,
        store: Store,
        *,
        voter: str = "local",
        timeout_s: float = 120.0,
        seed: int | None = None,
        battle_pace: str = "lockstep",
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self.lineup = lineup
        self.store = store
        self.voter = voter
        self.timeout_s = timeout_s
        # Draws the battles' pairs and sides. Without a seed (production) it is the system's
        # randomness: a seeded generator's next pairs could be worked out from earlier reveals.
        self.rng = random.Random(seed) if seed is not None else random.SystemRandom()
        #: How battle answers stream ("lockstep", "whole", or "own"): see `ui.streaming`.
        self.battle_pace = battle_pace
        #: What one request may ask (prompt length, uploads, tokens...): checked before any work.
        self.limits = limits
        self._loader: threading.Thread | None = None
        #: One load or unload at a time: each plans against what the others left in memory.
        self._changing = threading.Lock()

    def start_loading(self, progress: LoadProgress | None = None) -> None:
        """Load every variant in the background; the page is served meanwhile and shows progress
        (each variant's `state`); `progress` is told too."""
        if self._loader is None:
            loading = load_all(self.lineup, progress) if progress else load_all(self.lineup)
            self._loader = threading.Thread(target=asyncio.run, args=(loading,), name="variant loader", daemon=True)
            self._loader.start()

    def wait_loaded(self, timeout_s: float | None = None) -> bool:
        if self._loader is not None:
            self._loader.join(timeout_s)
        return not self.loading

    @property
    def loading(self) -> bool:
        """The first loading of the variants is still going on."""
        return self._loader is not None and self._loader.is_alive()

    @property
    def names(self) -> list[str]:
        return self.lineup.names

    def variant(self, name: str) -> Variant:
        return self.lineup.get(name)

    def load_variant(self, name: str) -> str:
        """Load `name` (unloaded, or unavailable) now, within the memory budget; returns its status.
        Raises UsageError when it would not fit (with the estimate, what is loaded, the budget
        and what to do), or while the first loading is still going on. Blocks until it is loaded."""
        with self._change(name):
            return asyncio.run(self.lineup.load(name))

    def unload_variant(self, name: str) -> str:
        """Unload `name`, freeing its memory: battles no longer draw it and Compare says so, until
        it is loaded again. Returns its status."""
        with self._change(name):
            return asyncio.run(self.lineup.unload(name))

    def _change(self, name: str) -> threading.Lock:
        self.lineup.get(name)  # an unknown name is refused with the names there are
        if self.loading:
            raise UsageError("the variants are still loading: load or unload one once they are done")
        return self._changing

    def mark_used(self, names: Iterable[str]) -> None:
        """These variants just answered (the least recently used is unloaded first)."""
        self.lineup.mark_used(set(names))

    def memory_summary(self) -> str:
        """What the variants hold in each pool against its budget, in a line."""
        used = self.lineup.used_bytes()
        budget = self.lineup.memory.budget
        pools = sorted(set(used) | set(budget.caps))
        if not pools:
            return "Memory: no local variant holds any; no budget."
        parts = []
        for pool in pools:
            cap = budget.cap(pool)
            parts.append(f"{pool_name(pool)} {format_bytes(used.get(pool, 0))}"
                         + (f" of {format_bytes(cap)}" if cap is not None else " (no budget)"))
        return "Memory held by the variants: " + "; ".join(parts) + "."

    def close_variants(self) -> None:
        """End every variant's worker, all at once (`Lineup.close`); answers being generated fail,
        and a variant still loading stops and is recorded as unavailable. Idempotent."""
        asyncio.run(self.lineup.close())

    def close(self) -> None:
        """End the variants, then close the store."""
        self.close_variants()
        self.store.close()

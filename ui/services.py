"""What the web UI works with: the variants, the vote store, and loading them in the background.

Built by `cli/serve.py` from settings; handlers receive it, nothing is global. How each variant is
doing (loading, ready, restarting, unavailable) is `Variant.state`, read from the lineup.
"""

from __future__ import annotations

import asyncio
import random
import threading

from arena.limits import DEFAULT_LIMITS, Limits
from arena.lineup import Lineup, LoadProgress, Variant, load_all
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

    def close_variants(self) -> None:
        """End every variant's worker, all at once (`Lineup.close`); answers being generated fail,
        and a variant still loading stops and is recorded as unavailable. Idempotent."""
        asyncio.run(self.lineup.close())

    def close(self) -> None:
        """End the variants, then close the store."""
        self.close_variants()
        self.store.close()

"""What the web UI works with: the loaded variants, the vote store, and how loading is going.

Built by `cli/serve.py` from settings; handlers receive it, nothing is global.
"""

from __future__ import annotations

import asyncio
import random
import threading
from dataclasses import dataclass

from arena.lineup import Lineup, Variant, load_all
from storage import Store


@dataclass
class LoadStatus:
    fraction: float | None = 0.0
    message: str = "waiting to load"
    done: bool = False


class ArenaServices:
    def __init__(
        self,
        lineup: Lineup,
        store: Store,
        *,
        voter: str = "local",
        timeout_s: float = 120.0,
        seed: int | None = None,
    ) -> None:
        self.lineup = lineup
        self.store = store
        self.voter = voter
        self.timeout_s = timeout_s
        self.rng = random.Random(seed)
        self.status = {v.name: LoadStatus() for v in lineup.variants}
        self._loader: threading.Thread | None = None

    def start_loading(self) -> None:
        """Load every variant in the background; the page is served meanwhile and shows progress."""
        if self._loader is None:
            self._loader = threading.Thread(target=lambda: asyncio.run(load_all(self.lineup, self._progress)),
                                            name="variant loader", daemon=True)
            self._loader.start()

    def wait_loaded(self, timeout_s: float | None = None) -> bool:
        if self._loader is not None:
            self._loader.join(timeout_s)
        return not self.loading

    @property
    def loading(self) -> bool:
        return self._loader is not None and self._loader.is_alive()

    def _progress(self, name: str, fraction: float | None, message: str) -> None:
        variant = self.lineup.get(name)
        done = variant.available or variant.error is not None
        self.status[name] = LoadStatus(fraction, message, done)

    @property
    def names(self) -> list[str]:
        return self.lineup.names

    def variant(self, name: str) -> Variant:
        return self.lineup.get(name)

    def close(self) -> None:
        asyncio.run(self.lineup.close())
        self.store.close()

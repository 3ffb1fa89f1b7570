"""The Gradio web UI: Compare, Battle, Leaderboard, Variants and Export tabs.

    services = ArenaServices(lineup, store)
    app = ArenaApp(services)
    app.blocks.launch(...)
"""

from __future__ import annotations

__all__ = ["ArenaApp", "ArenaServices"]


def __getattr__(name: str) -> object:
    # Importing gradio takes seconds: only when the UI is actually used.
    if name == "ArenaApp":
        from ui.app import ArenaApp

        return ArenaApp
    if name == "ArenaServices":
        from ui.services import ArenaServices

        return ArenaServices
    raise AttributeError(name)

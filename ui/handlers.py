"""What every tab's handlers share: the services, who calls, votes under the per-user limits,
and the session of one browser.

`Handlers` is the base of `ui.app.ArenaApp` and of its tab mixins (`ui.lookup_tabs`,
`ui.judge_tab`, `ui.history_tab`): each handler finds its caller with `_caller` and records a
vote with `_counted_vote`, so a rule about callers or votes is kept in one place.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import gradio as gr

from ui.access import Access, AccessDenied, Caller
from ui.battle import BattleState
from ui.compare import MAX_PANELS, CompareState, ComparisonOutcome
from ui.layout import Panel
from ui.services import ArenaServices
from ui.views import PanelView

T = TypeVar("T")


@dataclass
class Session:
    """One browser's state (a gr.State: it never reaches the browser). Kept in `SessionRegistry`
    under a key the browser holds, so a reload finds its conversations again."""

    compare: CompareState = field(default_factory=CompareState)
    battle: BattleState = field(default_factory=BattleState)
    #: The last streamed panels of each tab, for the step that finishes them.
    compare_outcome: ComparisonOutcome | None = None
    battle_outcome: ComparisonOutcome | None = None
    #: The logged-in user the session was first used by: nobody else may use it.
    owner: str | None = None
    #: The tab a conversation from History was just opened in (its panels are drawn next).
    opened: str | None = None
    #: The battle ids of the History table's rows, as last listed for this session.
    history_ids: list[str] = field(default_factory=list)
    #: Set by Stop while a tab's answers stream (`asyncio.Event`s of the server's loop).
    compare_stop: asyncio.Event | None = None
    battle_stop: asyncio.Event | None = None

    def __deepcopy__(self, memo: dict[int, Any]) -> Session:
        # gr.State deep-copies its initial value for each new page: a fresh Session is that copy
        return Session()


class Handlers:
    services: ArenaServices
    access: Access
    session: Any  # the page's gr.State holding a Session

    def _mark_used(self, outcome: ComparisonOutcome | None) -> None:
        """The variants that answered are the last to be unloaded to make room (`--evict lru`)."""
        if outcome is not None:
            self.services.mark_used(r.variant for r in outcome.results if r is not None and r.ok)

    def _caller(self, session: Session, request: gr.Request | None, profile: gr.OAuthProfile | None = None) -> Caller:
        """Who sends this event; a session first used by one logged-in user is theirs alone
        (another user who got hold of its id is refused)."""
        caller = self.access.caller(request, profile)
        if self.access.logins:
            if session.owner is None:
                session.owner = caller.key
            elif session.owner != caller.key:
                raise AccessDenied("this session belongs to another user: reload the page")
        return caller

    def _counted_vote(self, caller: Caller, record: Callable[[], T]) -> T:
        """Record a vote of a caller who may vote, under their per-user rate limit; a vote the
        store refuses is not counted."""
        self.access.require_vote(caller)
        self.access.count_vote(caller)
        try:
            return record()
        except BaseException:
            self.access.refund_vote(caller)
            raise

    @staticmethod
    def _panels(panels: list[Any], views: list[PanelView], expect_thinking: bool = False) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for i, panel in enumerate(panels[:MAX_PANELS]):
            out |= panel.show(views[i] if i < len(views) else None, expect_thinking)
        return out

    @staticmethod
    def _live(views: list[PanelView], panels: int) -> list[str]:
        """The streaming step's values: answer and thinking of each panel, in `live_outputs` order."""
        return [text for i in range(panels) for text in Panel.live(views[i] if i < len(views) else None)]


def progress_on(component: Any = None) -> dict[str, Any]:
    """An event's progress keywords: Gradio's spinner and timer on `component` alone, or (None) on
    nothing. See `ArenaApp._wire` for why no event shows it on all its outputs."""
    if component is None:
        return {"show_progress": "hidden", "show_progress_on": []}
    return {"show_progress": "full", "show_progress_on": [component]}

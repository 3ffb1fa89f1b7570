"""The History tab's handlers: a person's past conversations, and opening one to vote on it.

A mixin of `ui.app.ArenaApp`; the logic is `ui.history.HistoryFlow`. History is kept per
person (`Access.require_own`): a name many people share sees none.
"""

from __future__ import annotations

import asyncio
from typing import Any

import gradio as gr

from arena.errors import ArenaError, UsageError
from ui.errors import user_error
from ui.handlers import Handlers, Session
from ui.history import HistoryFlow, entry_json, row
from ui.layout import HistoryTab


class HistoryHandlers(Handlers):
    history: HistoryTab
    history_result: Any
    history_flow: HistoryFlow

    async def list_history(self, session: Session, request: gr.Request | None = None,
                           profile: gr.OAuthProfile | None = None) -> dict[Any, Any]:
        try:
            caller = self._caller(session, request, profile)
            self.access.require_own(caller, "History")
        except UsageError as exc:
            raise user_error(exc, action="history") from exc
        entries = await asyncio.to_thread(self.history_flow.entries, caller.name)
        session.history_ids = [entry.battle_id for entry in entries]
        return {self.session: session, self.history.table: [row(entry) for entry in entries],
                self.history_result: [entry_json(entry) for entry in entries]}

    async def show_history(self, session: Session, request: gr.Request | None = None,
                           profile: gr.OAuthProfile | None = None) -> dict[Any, Any]:
        """The History tab as it opens: the list, or (a caller whose name many share) why there is none."""
        try:
            return await self.list_history(session, request, profile) | {self.history.message: ""}
        except gr.Error as exc:
            return {self.history.message: str(exc.message)}

    def pick_history(self, session: Session, event: gr.SelectData, request: gr.Request | None = None,
                     profile: gr.OAuthProfile | None = None) -> dict[Any, Any]:
        index = event.index[0] if isinstance(event.index, (list, tuple)) else event.index
        if not isinstance(index, int) or not 0 <= index < len(session.history_ids):
            return {}
        battle_id = session.history_ids[index]
        try:
            caller = self._caller(session, request, profile)
            self.access.require_own(caller, "History")
            view = self.history_flow.conversation_html(battle_id, caller.name)
        except UsageError as exc:
            raise user_error(exc, action="history") from exc
        return {self.history.battle_id: battle_id, self.history.view: view}

    def open_history(self, session: Session, battle_id: str | None = None, request: gr.Request | None = None,
                     profile: gr.OAuthProfile | None = None) -> dict[Any, Any]:
        """Open one of your past conversations (`battle_id` from `/history`) in its tab: vote on it
        there, or ask a follow-up; returns what was done."""
        try:
            caller = self._caller(session, request, profile)
            self.access.require_own(caller, "History")
            opened = self.history_flow.open(battle_id or "", caller.name, session.compare, session.battle)
        except ArenaError as exc:
            raise user_error(exc, action="opening a conversation") from exc
        session.opened = opened.tab
        return {self.session: session, self.history.message: opened.message}

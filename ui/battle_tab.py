"""The Battle tab's handlers: a blind pair, turn after turn, one vote, the reveal on the panels.
A mixin of `ui.app.ArenaApp`; the logic (and what keeps it blind) is `ui.battle.BattleFlow`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import gradio as gr

from arena.errors import ArenaError, UsageError
from ui.battle import BattleFlow, BattleState
from ui.errors import user_error
from ui.handlers import Handlers, Session
from ui.layout import BattleTab, FormSettings
from ui.views import PanelView


class BattleHandlers(Handlers):
    battle: BattleTab
    battle_flow: BattleFlow

    def start_battle(self, session: Session, message: dict[str, Any] | None, thinking: bool) -> dict[Any, Any]:
        """The panels as Send starts: a follow-up shows the conversation so far and the prompt;
        a new battle clears both panels (its pair is drawn by the next step)."""
        views = self.battle_flow.pending(session.battle, message)
        return (self._panels(self.battle.panels, views, expect_thinking=bool(thinking)) | self._battle_votes(False)
                | {self.battle.reveal: "", self.battle.buttons.regenerate: gr.Button(interactive=False)})

    def start_regenerate_battle(self, session: Session, thinking: bool) -> dict[Any, Any]:
        views = self.battle_flow.pending(session.battle, None, regenerate=True)
        return (self._panels(self.battle.panels, views, expect_thinking=bool(thinking)) | self._battle_votes(False)
                | {self.battle.reveal: "", self.battle.buttons.regenerate: gr.Button(interactive=False)})

    async def run_battle(
        self, session: Session, prompt: dict[str, Any] | None = None, system: str | None = None,
        max_new_tokens: float | None = None, thinking: bool | None = None, tools: str | None = None,
        request: gr.Request | None = None, profile: gr.OAuthProfile | None = None,
    ) -> AsyncIterator[list[Any]]:
        """A blind battle: two variants drawn at random answer `prompt` ({"text", "files"}) as
        Model A and Model B, sampled as the model family recommends with a seed only the server
        knows. While the last turn is finished and not voted on, `prompt` is a follow-up to the
        same pair (each answers with its own history). Both answers stream at one common pace;
        the last output, set when both have ended, is {"can_vote", "turn", "results": [{"side",
        "text", "thinking", "tool_calls", "error", "error_kind"}]}, with no names or stats and
        error messages redacted until the vote."""
        options = (system, None, None, None, max_new_tokens, None, thinking, tools)
        async for update in self._stream_battle(session, request, profile, prompt, options):
            yield update

    async def regenerate_battle(
        self, session: Session, system: str | None = None, max_new_tokens: float | None = None,
        thinking: bool | None = None, tools: str | None = None, request: gr.Request | None = None,
        profile: gr.OAuthProfile | None = None,
    ) -> AsyncIterator[list[Any]]:
        """Send the battle's last turn again to the same pair (new answers, a new secret seed);
        streams and returns as `/battle` does."""
        options = (system, None, None, None, max_new_tokens, None, thinking, tools)
        async for update in self._stream_battle(session, request, profile, None, options, regenerate=True):
            yield update

    async def _stream_battle(self, session: Session, request: gr.Request | None, profile: gr.OAuthProfile | None,
                             prompt: dict[str, Any] | None, options_of: tuple[Any, ...],
                             regenerate: bool = False) -> AsyncIterator[list[Any]]:
        session.battle_outcome = None
        session.battle_stop = stop = asyncio.Event()
        try:
            caller = self._caller(session, request, profile)
            options = FormSettings.options(*options_of)
            with self.access.generating(caller):
                async for outcome in self.battle_flow.run(session.battle, prompt, options, voter=caller.name,
                                                          regenerate=regenerate, stop=stop):
                    session.battle_outcome = outcome
                    yield [*self._live(outcome.views, len(self.battle.panels)), outcome.summary]
        except ArenaError as exc:
            raise user_error(exc, action="a battle") from exc
        finally:
            session.battle_stop = None
            self._mark_used(session.battle_outcome)

    async def stop_battle(self, session: Session) -> None:
        """Stop the session's battle: both answers end where they are, and the turn takes no vote."""
        if session.battle_stop is not None:
            session.battle_stop.set()

    def finish_battle(self, session: Session) -> dict[Any, Any]:
        views = session.battle_outcome.views if session.battle_outcome else session.battle.views
        state = session.battle
        note = "" if state.can_vote else ("This turn was stopped or had an error and takes no vote: regenerate it, "
                                          "or start a new round.")
        # both thinking boxes show when thinking was asked or either side thought: a side without
        # a trace looks like one with an empty trace
        thinking = state.thinking or any(view.thinking for view in views)
        return (self._panels(self.battle.panels, views, expect_thinking=thinking)
                | self._battle_votes(state.can_vote)
                | {self.session: session, self.battle.reveal: note,
                   self.battle.buttons.regenerate: gr.Button(interactive=self._battle_regenerates(state))})

    @staticmethod
    def _battle_regenerates(state: BattleState) -> bool:
        return (state.conversation is not None and bool(state.conversation.turns)
                and state.phase in ("finished", "errored"))

    def vote_battle(self, outcome: str, session: Session, request: gr.Request | None = None,
                    profile: gr.OAuthProfile | None = None) -> dict[Any, Any]:
        try:
            caller = self._caller(session, request, profile)
            reveal = self._counted_vote(caller, lambda: self.battle_flow.vote(session.battle, outcome,
                                                                               voter=caller.name))
        except UsageError as exc:
            raise user_error(exc, action="a vote") from exc
        return ({self.session: session, self.battle.reveal: reveal,
                 self.battle.buttons.regenerate: gr.Button(interactive=False)} | self._battle_votes(False))

    def reveal_battle(self, session: Session) -> dict[Any, Any]:
        """The panels after the vote: names in their headers, the winner marked, speed and memory."""
        if session.battle.phase != "voted":
            return {}
        revealed = self.battle_flow.revealed(session.battle)
        return self._panels(self.battle.panels, revealed, expect_thinking=session.battle.thinking)

    def _battle_vote_handler(self, outcome: str) -> Callable[..., dict[Any, Any]]:
        """`vote_battle` for one outcome. A function of its own, not functools.partial: Gradio
        finds the gr.Request parameter by the handler's type hints, which a partial hides."""

        def vote(session: Session, request: gr.Request | None = None,
                 profile: gr.OAuthProfile | None = None) -> dict[Any, Any]:
            return self.vote_battle(outcome, session, request, profile)

        return vote

    def new_round(self, session: Session, request: gr.Request | None = None,
                  profile: gr.OAuthProfile | None = None) -> dict[Any, Any]:
        """Forget the session's battle (voted or not) and clear the Battle tab for the next prompt."""
        try:
            self._caller(session, request, profile)
        except UsageError as exc:
            raise user_error(exc, action="a new round") from exc
        self.battle_flow.new_round(session.battle)
        session.battle_outcome = None
        views = [PanelView(title="Model A"), PanelView(title="Model B")]
        return (self._panels(self.battle.panels, views) | self._battle_votes(False)
                | {self.session: session, self.battle.reveal: "", self.battle.prompt: None,
                   self.battle.buttons.regenerate: gr.Button(interactive=False)})

    def _battle_votes(self, enabled: bool) -> dict[Any, Any]:
        return {button: gr.Button(interactive=enabled) for button in self.battle.votes.values()}

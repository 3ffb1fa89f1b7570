"""The Compare tab's handlers: named variants side by side, turn after turn, Stop, Regenerate,
and the votes. A mixin of `ui.app.ArenaApp`; the logic is `ui.compare.CompareFlow`.

Sending is three steps (`ArenaApp._wire`): set the panels up (the conversation so far and the
new prompt), stream (only the answer and thinking of each panel are outputs), then show stats,
chart and votes. The stream's own last output is what an API client gets.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import gradio as gr

from arena.errors import ArenaError, UsageError
from ui import charts
from ui.compare import CompareFlow, CompareState, ranking_from_ranks
from ui.errors import user_error
from ui.handlers import Handlers, Session
from ui.layout import CompareTab, FormSettings


class CompareHandlers(Handlers):
    compare: CompareTab
    compare_flow: CompareFlow

    def preview_compare(self, session: Session, selected: list[str] | None,
                        message: dict[str, Any] | None) -> dict[Any, Any]:
        """What the next Send will do, under it. Typing or picking other variants never touches
        a comparison on the panels (answered, stopped or failed, voted or not); with none shown,
        the panels follow the selection (names, and notes such as "still loading")."""
        state = session.compare
        out: dict[Any, Any] = {self.compare.preview: self.compare_flow.next_send(state, selected or [], message)}
        if not state.shown:
            out |= self._panels(self.compare.panels, self.compare_flow.preview(selected or [], message))
        return out

    def start_compare(self, session: Session, selected: list[str] | None, message: dict[str, Any] | None,
                      thinking: bool) -> dict[Any, Any]:
        """The panels as Send starts: the conversation so far and the new prompt, answers empty."""
        views = self.compare_flow.pending(session.compare, selected or [], message)
        return (self._panels(self.compare.panels, views, expect_thinking=bool(thinking))
                | self._compare_votes(None) | {self.compare.chart: None, self.compare.preview: "",
                                               self.compare.buttons.regenerate: gr.Button(interactive=False)})

    def start_regenerate_compare(self, session: Session, thinking: bool) -> dict[Any, Any]:
        views = self.compare_flow.pending(session.compare, None, None, regenerate=True)
        return (self._panels(self.compare.panels, views, expect_thinking=bool(thinking))
                | self._compare_votes(None) | {self.compare.chart: None,
                                               self.compare.buttons.regenerate: gr.Button(interactive=False)})

    async def run_compare(
        self, session: Session, variants: list[str] | None = None, prompt: dict[str, Any] | None = None,
        system: str | None = None, temperature: float | None = None, top_p: float | None = None,
        top_k: float | None = None, max_new_tokens: float | None = None, seed: str | None = None,
        thinking: bool | None = None, tools: str | None = None, request: gr.Request | None = None,
        profile: gr.OAuthProfile | None = None,
    ) -> AsyncIterator[list[Any]]:
        """Send `prompt` ({"text", "files"}) to `variants` side by side and record the comparison:
        a follow-up turn when the session's conversation has the same variants and no vote yet
        (each variant answers with its own history), else the first turn of a new conversation.
        Streams each panel's answer (HTML) and thinking; the last output, set when all have
        ended, is {"battle_id", "turn", "vote_on", "no_vote", "results": [{"variant", "text",
        "thinking", "tool_calls", "stats", "error", "error_kind"}]}: a variant that failed has
        its error there. `seed` empty: a random one."""
        options_of = (system, temperature, top_p, top_k, max_new_tokens, seed, thinking, tools)
        async for update in self._stream_compare(session, request, profile, variants or [], prompt, options_of):
            yield update

    async def regenerate_compare(
        self, session: Session, system: str | None = None, temperature: float | None = None,
        top_p: float | None = None, top_k: float | None = None, max_new_tokens: float | None = None,
        seed: str | None = None, thinking: bool | None = None, tools: str | None = None,
        request: gr.Request | None = None, profile: gr.OAuthProfile | None = None,
    ) -> AsyncIterator[list[Any]]:
        """Send the last turn of the session's comparison again (new answers, stored beside the
        old ones); streams and returns as `/compare` does."""
        options_of = (system, temperature, top_p, top_k, max_new_tokens, seed, thinking, tools)
        async for update in self._stream_compare(session, request, profile, None, None, options_of,
                                                 regenerate=True):
            yield update

    async def _stream_compare(self, session: Session, request: gr.Request | None,
                              profile: gr.OAuthProfile | None, variants: list[str] | None,
                              prompt: dict[str, Any] | None, options_of: tuple[Any, ...],
                              regenerate: bool = False) -> AsyncIterator[list[Any]]:
        session.compare_outcome = None
        session.compare_stop = stop = asyncio.Event()
        try:
            caller = self._caller(session, request, profile)
            options = FormSettings.options(*options_of)
            with self.access.generating(caller):
                async for outcome in self.compare_flow.run(session.compare, variants or [], prompt, options,
                                                           voter=caller.name, regenerate=regenerate, stop=stop):
                    session.compare_outcome = outcome  # the session is mutated in place: gr.State keeps it
                    yield [*self._live(outcome.views, len(self.compare.panels)), outcome.summary]
        except ArenaError as exc:
            raise user_error(exc, action="a comparison") from exc
        finally:
            session.compare_stop = None
            self._mark_used(session.compare_outcome)

    async def stop_compare(self, session: Session) -> None:
        """Stop the session's comparison: each answer ends where it is, marked stopped, with the
        figures measured so far; a stopped turn takes no vote."""
        if session.compare_stop is not None:
            session.compare_stop.set()

    async def finish_compare(self, session: Session) -> dict[Any, Any]:
        outcome = session.compare_outcome
        if outcome is None:
            return {self.session: session}
        results = [r for r in outcome.results if r is not None]
        chart = await asyncio.to_thread(charts.stats_chart, results) if any(r.ok for r in results) else None
        state = session.compare
        return (self._panels(self.compare.panels, outcome.views) | self._compare_votes(state)
                | {self.session: session, self.compare.chart: chart,
                   self.compare.preview: self.compare_flow.next_send(state, state.variants_picked, None),
                   self.compare.buttons.regenerate: gr.Button(interactive=self._can_regenerate(state))})

    @staticmethod
    def _can_regenerate(state: CompareState) -> bool:
        return state.conversation is not None and bool(state.conversation.turns) and not state.voted

    def clear_compare(self, session: Session, selected: list[str] | None = None,
                      request: gr.Request | None = None, profile: gr.OAuthProfile | None = None) -> dict[Any, Any]:
        """Start a new conversation: the session's comparison is forgotten (what was stored stays,
        in History) and the panels show `selected` again."""
        try:
            self._caller(session, request, profile)
        except UsageError as exc:
            raise user_error(exc, action="a new conversation") from exc
        session.compare.clear()
        session.compare_outcome = None
        return (self._panels(self.compare.panels, self.compare_flow.preview(selected or [], None))
                | self._compare_votes(None)
                | {self.session: session, self.compare.chart: None, self.compare.prompt: None,
                   self.compare.preview: "", self.compare.buttons.regenerate: gr.Button(interactive=False)})

    def vote_best(self, session: Session, best: str | None = None, request: gr.Request | None = None,
                  profile: gr.OAuthProfile | None = None) -> dict[Any, Any]:
        """Vote `best` (a variant name) the best answer of the session's comparison: the vote
        covers its whole conversation; returns the confirmation. A name that did not answer its
        last turn is refused."""
        if not best:
            raise user_error("pick the best answer first", action="a vote")
        return self._compare_vote(session, request, profile, best=str(best))  # not preprocessed: the raw value sent

    def vote_ranking(self, session: Session, rank_1: str | None = None, rank_2: str | None = None,
                     rank_3: str | None = None, rank_4: str | None = None,
                     request: gr.Request | None = None, profile: gr.OAuthProfile | None = None) -> dict[Any, Any]:
        """Rank the answers of the session's comparison (the vote covers its whole conversation):
        `rank_N` is the rank ("1" = best, equal ranks tie) of the Nth variant that answered, in
        the order `/compare` listed them in `vote_on`; returns the confirmation. One parameter per
        rank dropdown (MAX_PANELS of them): named, so an API client can call it with keywords."""
        ranks = (rank_1, rank_2, rank_3, rank_4)
        try:
            ranking = ranking_from_ranks(session.compare.votable, ranks)
        except UsageError as exc:
            raise user_error(exc, action="a vote") from exc
        return self._compare_vote(session, request, profile, ranking=ranking)

    def _compare_vote(self, session: Session, request: gr.Request | None, profile: gr.OAuthProfile | None,
                      **vote: Any) -> dict[Any, Any]:
        try:
            caller = self._caller(session, request, profile)
            message = self._counted_vote(caller, lambda: self.compare_flow.vote(session.compare, voter=caller.name,
                                                                                 **vote))
        except UsageError as exc:
            raise user_error(exc, action="a vote") from exc
        off = gr.Button(interactive=False)
        return {self.session: session, self.compare.vote_message: message,
                self.compare.vote_best: off, self.compare.vote_ranking: off, self.compare.buttons.regenerate: off}

    def after_compare_vote(self, session: Session) -> str:
        """The line under Send once the vote has ended the conversation."""
        state = session.compare
        return self.compare_flow.next_send(state, state.variants_picked, None)

    def _compare_votes(self, state: CompareState | None) -> dict[Any, Any]:
        """Vote controls: enabled once a comparison of 2+ variants is stored and not yet voted;
        otherwise the message says why there is no vote."""
        c = self.compare
        names = list(state.votable) if state else []
        active = bool(names)
        message = state.no_vote if state is not None and not state.voted else ""
        out = {c.best: gr.Radio(choices=names, value=None), c.vote_best: gr.Button(interactive=active),
               c.vote_ranking: gr.Button(interactive=active), c.vote_message: message}
        for i, dropdown in enumerate(c.ranks):
            shown = active and i < len(names)
            out[dropdown] = gr.Dropdown(label=f"rank of {names[i]}" if shown else "", value=None, visible=shown)
        return out

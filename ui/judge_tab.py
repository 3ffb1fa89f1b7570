"""The Judge tab's handlers and wiring: stored pairs of a prompt set judged blind (`ui.judge`).

A mixin of `ui.app.ArenaApp`, as `ui.lookup_tabs` is. Each public endpoint returns plain values
(the pair as JSON: no names, speed or memory before the verdict); a private step after it draws
the tab from that JSON, so an API client and the page get the same thing. The pair's token stays
in the session's `gr.State`; the verdict goes through the store's one vote path, under the
caller's name and per-user vote limit, like every vote.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from arena.errors import ArenaError, UsageError
from ui.errors import user_error
from ui.handlers import Handlers
from ui.judge import JudgeFlow
from ui.judge_layout import SHORTCUTS_JS, JudgeTab

VERDICTS = ("a", "b", "tie", "both_bad")


class JudgeHandlers(Handlers):
    judge: JudgeTab
    judge_result: Any
    judge_flow: JudgeFlow
    judge_tab: Any
    export_dir: Path
    blocks: Any

    def start_judging(self) -> None:
        """Index the stored sets in the background, so the first judge of a set does not wait."""
        threading.Thread(target=self.judge_flow.warm, name="judge index", daemon=True).start()

    def wire_judge(self, session: Any, progress_on: Callable[..., dict[str, Any]]) -> None:
        j = self.judge
        drawn = [j.token, j.status, j.reveal, j.prompt, j.images, j.audio, j.skip, *j.votes.values(),
                 *(o for p in j.panels for o in p.outputs)]
        draw = {"fn": self.draw_judge, "inputs": [self.judge_result], "outputs": drawn, **progress_on(),
                "api_visibility": "private"}
        self.judge_tab.select(self.judge_sets, None, [j.sets], **progress_on(), api_visibility="private")
        j.start.click(self.judge_next, [session, j.sets], [j.token, self.judge_result], **progress_on(j.status),
                      api_name="judge_next", api_description="The next blind pair of prompt set `set_name` for you: "
                      "{token, set, prompt, tags, a: {text, thinking, tool_calls}, b: ..., judged, remaining, "
                      "message}; token None when you have judged every pair.").success(**draw)
        for outcome in VERDICTS:
            j.votes[outcome].click(
                self._verdict_handler(outcome), [session, j.token], [j.token, self.judge_result],
                **progress_on(j.status), api_name=f"judge_vote_{outcome}",
                api_description=f"Your verdict '{outcome}' on the pair you were served (/judge_next): returns "
                "{reveal: {a: {variant, spec, stats}, b: ..., markdown}, next: the next pair}.",
            ).success(**draw)
        j.skip.click(self.judge_skip, [session, j.token], [j.token, self.judge_result], **progress_on(j.status),
                     api_name="judge_skip", api_description="Leave the pair unjudged (nothing is stored); returns "
                     "the next pair.").success(**draw)
        j.refresh_standings.click(self.judge_standings, [j.sets, j.tag], [j.standings, j.tag],
                                  **progress_on(j.standings), api_name="judge_standings",
                                  api_description="Where each variant wins in prompt set `set_name` (of the "
                                  "prompts tagged `tag`): ratings, win rate per tag with intervals, agreement.")
        self.blocks.load(None, None, None, js=SHORTCUTS_JS, **progress_on(), api_visibility="private")

    # ------------------------------------------------------------------ handlers
    async def judge_sets(self) -> Any:
        names = await asyncio.to_thread(self.judge_flow.sets)
        return gr.Dropdown(choices=names, value=names[0] if len(names) == 1 else None)

    async def judge_next(self, session: Any, set_name: str | None = None, request: gr.Request | None = None,
                         profile: gr.OAuthProfile | None = None) -> tuple[Any, dict[str, Any]]:
        """The next blind pair of `set_name` for the caller."""
        return await self._next_view(session, request, profile, "judging",
                                     lambda judge: self.judge_flow.next_pair(judge, set_name or ""))

    async def _next_view(self, session: Any, request: gr.Request | None, profile: gr.OAuthProfile | None,
                         action: str, serve: Callable[[str], dict[str, Any]]) -> tuple[Any, dict[str, Any]]:
        """The pair `serve` gives the caller, as the endpoints return it: (token, {next, reveal})."""
        try:
            caller = self._caller(session, request, profile)
            view = await asyncio.to_thread(serve, caller.name)
        except ArenaError as exc:
            raise user_error(exc, action=action) from exc
        return view["token"], {"next": view, "reveal": None}

    def _verdict_handler(self, outcome: str) -> Callable[..., Any]:
        """`judge_vote` for one verdict: a function of its own, not functools.partial (Gradio finds
        the gr.Request parameter by type hints)."""

        async def verdict(session: Any, token: str | None = None, request: gr.Request | None = None,
                          profile: gr.OAuthProfile | None = None) -> tuple[Any, dict[str, Any]]:
            return await self.judge_vote(outcome, session, token, request, profile)

        return verdict

    async def judge_vote(self, outcome: str, session: Any, token: str | None, request: gr.Request | None,
                         profile: gr.OAuthProfile | None) -> tuple[Any, dict[str, Any]]:
        try:
            caller = self._caller(session, request, profile)
            if not token:
                raise UsageError("take a pair first (Judge this set), then give your verdict")
            reveal = await asyncio.to_thread(
                self._counted_vote, caller, lambda: self.judge_flow.vote(caller.name, token, outcome))
            view = await asyncio.to_thread(self.judge_flow.next_pair, caller.name, reveal["set"])
        except ArenaError as exc:
            raise user_error(exc, action="a verdict") from exc
        return view["token"], {"next": view, "reveal": _reveal_json(reveal)}

    async def judge_skip(self, session: Any, token: str | None = None, request: gr.Request | None = None,
                         profile: gr.OAuthProfile | None = None) -> tuple[Any, dict[str, Any]]:
        return await self._next_view(session, request, profile, "a skip",
                                     lambda judge: self.judge_flow.skip(judge, token or ""))

    async def judge_standings(self, set_name: str | None = None, tag: str | None = None) -> tuple[str, Any]:
        try:
            if not set_name:
                raise UsageError("choose a prompt set first")
            standings = await asyncio.to_thread(self.judge_flow.standings, set_name, tag=tag or None)
        except ArenaError as exc:
            raise user_error(exc, action="standings") from exc
        return standings["markdown"], gr.Dropdown(choices=["", *standings["tags"]], value=tag or "")

    def draw_judge(self, result: dict[str, Any] | None) -> dict[Any, Any]:
        """The tab from an endpoint's JSON: the next pair, with the reveal of the one just judged."""
        if not result:
            return {}
        view = result["next"]
        images, audio = self.judge_flow.media_files(view, self.export_dir / "judge-media")
        if result.get("reveal"):
            return self.judge.after_vote(result["reveal"], view, images, audio)
        return self.judge.show(view, images, audio)


def _reveal_json(reveal: dict[str, Any]) -> dict[str, Any]:
    """The reveal as an API client gets it (the set's name travels apart)."""
    return {key: value for key, value in reveal.items() if key != "set"}

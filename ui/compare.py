"""The Compare tab's logic: named variants side by side, then a vote for the best or a ranking.

Plain async methods over plain values; `ui.app` maps them onto Gradio components, and tests call
them without a server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from arena.conversation import Conversation, ConversationTurn
from arena.errors import StorageError, UsageError
from arena.limits import DEFAULT_LIMITS, Limits
from arena.measure import Result
from arena.requests import AUDIO_SUFFIXES, IMAGE_SUFFIXES, build_request
from arena.sampling import RECOMMENDED
from backends.base import Request
from ui.services import ArenaServices
from ui.views import STOPPED, PanelView, ShownTurn, conversation_html, md_escape

MAX_PANELS = 4


@dataclass
class CompareState:
    """Per browser session: the conversation being compared, its last turn's stored comparison
    (which a vote refers to, covering the whole conversation), and the variants that answered
    that turn (a vote is about those)."""

    battle_id: str | None = None
    variants: tuple[str, ...] = ()
    voted: bool = False
    conversation: Conversation | None = None
    #: Why the last turn takes no vote, in words for the page ("" when it takes one).
    no_vote: str = ""
    #: The panels as the last turn left them (shown again after a reload).
    views: list[PanelView] = field(default_factory=list)

    @property
    def votable(self) -> tuple[str, ...]:
        """The variants a vote may name now: those that answered in a stored comparison of two
        or more, not yet voted on; none otherwise."""
        if self.battle_id is None or self.voted or len(self.variants) < 2 or self.no_vote:
            return ()
        return self.variants

    @property
    def shown(self) -> bool:
        """A comparison is on the panels (answered, stopped or failed): typing must leave it be."""
        return bool(self.views)

    def follows_up(self, selected: Sequence[str]) -> bool:
        """Whether Send with `selected` continues the conversation rather than starting one: it
        has turns, no vote yet, a variant still in it, and the same variants are picked."""
        conversation = self.conversation
        return (conversation is not None and bool(conversation.turns) and not self.voted
                and bool(conversation.continuing()) and tuple(selected) == conversation.variants)

    @property
    def variants_picked(self) -> tuple[str, ...]:
        """The variants of the conversation on the panels (none without one)."""
        return self.conversation.variants if self.conversation is not None else ()

    def clear(self) -> None:
        self.battle_id, self.variants, self.voted, self.conversation = None, (), False, None
        self.no_vote, self.views = "", []


@dataclass(frozen=True)
class FormOptions:
    """The Settings accordion's values. Sampling starts at Gemma 4's recommended values: the
    answers people get from these models, not greedy ones a battle could be matched against."""

    system: str = ""
    temperature: float = RECOMMENDED.temperature
    top_p: float = RECOMMENDED.top_p
    top_k: int = RECOMMENDED.top_k or 0
    max_new_tokens: int = 256
    seed: int | None = None
    thinking: bool = False
    tools: str = ""


@dataclass
class ComparisonOutcome:
    """One update of a comparison or battle. The last one of a run carries `summary`: what an
    API client gets in the endpoint's own result (each variant's answer and error)."""

    views: list[PanelView]
    results: list[Result | None] = field(default_factory=list)
    summary: dict[str, Any] | None = None


def request_from_form(message: dict[str, Any] | str | None, options: FormOptions,
                      limits: Limits = DEFAULT_LIMITS) -> Request:
    """A Request from the multimodal box ({"text", "files"}) and the settings, checked against
    `limits` before anything is read (attachments are told apart by content)."""
    message = as_message(message)
    return build_request(
        message.get("text") or "",
        system=options.system,
        files=[_path(f) for f in message.get("files") or []],
        max_new_tokens=options.max_new_tokens,
        temperature=options.temperature,
        top_p=options.top_p,
        top_k=options.top_k,
        seed=options.seed,
        thinking=options.thinking,
        tools=options.tools,
        limits=limits,
    )


def as_message(message: dict[str, Any] | str | None) -> dict[str, Any]:
    """The multimodal box's value; a plain string (API callers) is the text alone."""
    if isinstance(message, str):
        return {"text": message, "files": []}
    return message or {}


def _path(item: Any) -> str:
    if isinstance(item, dict):  # gradio's FileData as a dict
        return str(item.get("path") or "")
    return str(item)


def modalities_of(message: dict[str, Any] | str | None) -> set[str]:
    """Which media a not-yet-sent message carries, judged by file type (nothing is read)."""
    found = set()
    for item in as_message(message).get("files") or []:
        suffix = "." + _path(item).rsplit(".", 1)[-1].lower()
        if suffix in IMAGE_SUFFIXES:
            found.add("image")
        elif suffix in AUDIO_SUFFIXES:
            found.add("audio")
    return found


class CompareFlow:
    def __init__(self, services: ArenaServices) -> None:
        self.services = services

    def preview(self, selected: Sequence[str], message: dict[str, Any] | str | None) -> list[PanelView]:
        """The panels before sending: names, and a warning where a variant cannot take the input
        (audio to 26B/31B) or is not loaded, so nobody waits for an answer that will not come."""
        wanted = modalities_of(message)
        views = []
        for name in list(selected)[:MAX_PANELS]:
            variant = self.services.variant(name)
            views.append(PanelView(title=name, note=self._readiness(variant, wanted),
                                   placeholder="The answer appears here."))
        return views

    def _readiness(self, variant: Any, wanted: set[str]) -> str:
        state = variant.state
        if state.phase == "unavailable":
            return f"**Unavailable:** {md_escape(state.detail)}"
        if state.phase == "restarting":
            return (f"**{md_escape(state.label().capitalize())}** after its worker stopped "
                    f"({md_escape(state.detail)}): it will answer once it is back.")
        if state.phase == "loading":
            return f"**Still loading** ({md_escape(state.detail)}): it will answer once ready."
        if state.phase == "unloaded":
            return "**Unloaded:** load it on the Variants tab to compare it."
        missing = wanted - set(variant.backend.capabilities.modalities)  # type: ignore[union-attr]
        if missing:
            return f"**Cannot take {' or '.join(sorted(missing))}**: this variant will be skipped for this prompt."
        return ""

    def next_send(self, state: CompareState, selected: Sequence[str], message: dict[str, Any] | str | None) -> str:
        """One line under Send saying what it will do: a follow-up or a new conversation, and
        which variants will be skipped or are still loading. Typing changes this line only."""
        if not 1 <= len(selected) <= MAX_PANELS:
            return f"Pick 1 to {MAX_PANELS} variants to compare."
        notes = [f"{md_escape(v.title)}: {v.note}" for v in self.preview(selected, message) if v.note]
        if state.follows_up(selected):
            conversation = state.conversation
            assert conversation is not None
            gone = [f"{md_escape(name)} (failed turn {turn})" for name, turn in conversation.left_out().items()]
            line = f"Send asks turn {len(conversation.turns) + 1} of this conversation."
            if gone:
                line += f" Left out: {', '.join(gone)}."
        elif state.shown:
            why = "the vote ended this conversation" if state.voted else "other variants are picked"
            line = "Send starts a new conversation" + (f" ({why})." if state.conversation else ".")
        else:
            line = ""
        if len(selected) == 1:
            notes.append("one variant alone is no comparison: pick two or more to vote")
        return "  \n".join(part for part in [line, *notes] if part)

    async def run(
        self, state: CompareState, selected: Sequence[str], message: dict[str, Any] | None, options: FormOptions,
        *, voter: str | None = None, regenerate: bool = False, stop: asyncio.Event | None = None,
    ) -> AsyncIterator[ComparisonOutcome]:
        """Send a turn to the selected variants: a follow-up when the session's conversation goes
        on with the same variants (`CompareState.follows_up`), else the first turn of a new one.
        `regenerate` sends the conversation's last turn again instead (a new answer from each
        variant, recorded beside the old one). Every turn of two or more variants that answered
        is recorded, pointing at the turn before it."""
        from ui.streaming import stream_panels

        if regenerate:
            conversation = state.conversation
            if conversation is None or not conversation.turns:
                raise UsageError("there is no turn to regenerate: send a prompt first")
            if state.voted:
                raise UsageError("this conversation has your vote: start a new conversation")
            request = conversation.regenerate_last()
            selected = conversation.variants
        else:
            if not 1 <= len(selected) <= MAX_PANELS:
                raise UsageError(f"pick 1 to {MAX_PANELS} variants to compare")
            request = request_from_form(message, options, self.services.limits)
            if not state.follows_up(selected):
                state.conversation = Conversation(tuple(selected), mode="named")
            conversation = state.conversation
            assert conversation is not None
        sending = conversation.continuing()
        variants = [self.services.variant(name) for name in sending]
        state.battle_id, state.variants, state.voted, state.no_vote = None, (), False, ""
        panels = self._conversation_views(conversation, request)
        positions = [conversation.variants.index(name) for name in sending]
        while any(not v.state.settled for v in variants):  # loading, or restarting after its worker stopped
            yield ComparisonOutcome(self._with_notes(panels, sending, request))  # "still loading (40%: ...)"
            await asyncio.sleep(0.5)
        results: list[Result | None] = []
        requests = [conversation.request_for(name, request) for name in sending]
        async for shown, results in stream_panels(variants, requests, [panels[i] for i in positions],
                                                  timeout_s=self.services.timeout_s, stop=stop):
            for i, view in zip(positions, shown, strict=True):
                panels[i] = view
            state.views = panels
            yield ComparisonOutcome(list(panels), self._full(results, positions, len(panels)))
        finished = [r for r in results if r is not None]
        stopped = any(r.error_kind == STOPPED for r in finished)
        if len(finished) == len(variants) >= 2:  # one variant alone is no comparison to vote on
            specs = [(v.name, str(v.spec)) for v in variants]
            state.battle_id = await asyncio.to_thread(
                self.services.store.record_comparison, request, specs, finished,
                mode="named", voter=voter or self.services.voter, parent_id=conversation.parent_id,
            )
        if len(finished) == len(variants):
            conversation.add_turn(request, {r.variant: r for r in finished}, state.battle_id)
        state.variants = tuple(r.variant for r in finished if r.ok)  # the vote is on those that answered
        state.no_vote = no_vote_reason(len(sending), state.variants, stopped)
        state.views = list(panels)
        yield ComparisonOutcome(list(panels), self._full(results, positions, len(panels)),
                                summary=comparison_summary(state, results))

    @staticmethod
    def _full(results: Sequence[Result | None], positions: Sequence[int], size: int) -> list[Result | None]:
        full: list[Result | None] = [None] * size
        for i, result in zip(positions, results, strict=False):
            full[i] = result
        return full

    def _with_notes(self, panels: list[PanelView], sending: Sequence[str], request: Request) -> list[PanelView]:
        wanted = {str(m) for m in request.modalities} - {"text"}
        return [replace(view, note=self._readiness(self.services.variant(view.title), wanted))
                if view.title in sending else view for view in panels]

    @staticmethod
    def _conversation_views(conversation: Conversation, request: Request) -> list[PanelView]:
        return conversation_views(conversation.variants, conversation.turns, request.prompt,
                                  attachment_names(request))

    def pending(self, state: CompareState, selected: Sequence[str] | None, message: dict[str, Any] | str | None,
                *, regenerate: bool = False) -> list[PanelView]:
        """The panels as Send (or Regenerate) starts: the conversation so far with the prompt
        being sent, answers empty; for a new conversation, the selection's names and notes."""
        conversation = state.conversation
        if regenerate:
            if conversation is None or not conversation.turns:
                return state.views
            last = conversation.turns[-1].request
            return conversation_views(conversation.variants, conversation.turns[:-1], last.prompt,
                                      attachment_names(last))
        selected = list(selected or [])
        if conversation is not None and state.follows_up(selected):
            message = as_message(message)
            names = tuple(Path(_path(f)).name for f in message.get("files") or [])
            return conversation_views(conversation.variants, conversation.turns, message.get("text") or "", names)
        return self.preview(selected, message)

    def vote(
        self, state: CompareState, *, best: str | None = None, ranking: Sequence[Sequence[str]] | None = None,
        voter: str | None = None,
    ) -> str:
        """Record the vote on the last comparison; return what to tell the user."""
        if state.no_vote and not state.voted:
            raise UsageError(state.no_vote)
        if state.battle_id is None:
            raise UsageError("compare some variants first, then vote on their answers")
        if state.voted:
            raise UsageError("this comparison already has your vote: send a new prompt to vote again")
        if len(state.variants) < 2:
            raise UsageError("fewer than two variants answered in your last comparison: there is nothing to vote on")
        named = [best] if best is not None else [name for tier in ranking or [] for name in tier]
        strangers = [name for name in named if name not in state.variants]
        if strangers:
            raise UsageError(f"{', '.join(map(repr, strangers))} did not answer in your last comparison: "
                             f"vote on {', '.join(state.variants)}")
        try:
            self.services.store.record_vote(state.battle_id, best=best, ranking=ranking,
                                            voter=voter or self.services.voter)
        except StorageError as exc:
            raise UsageError(str(exc)) from exc
        state.voted = True
        turns = len(state.conversation.turns) if state.conversation is not None else 1
        covers = f" It covers the whole conversation ({turns} turns)." if turns > 1 else ""
        if best is not None:
            return f"Vote recorded: **{md_escape(best)}** is best.{covers}"
        tiers = " > ".join(" = ".join(md_escape(n) for n in tier) for tier in ranking or [])
        return f"Ranking recorded: {tiers}.{covers}"

def conversation_views(variants: Sequence[str], turns: Sequence[ConversationTurn], prompt: str,
                       attachments: Sequence[str]) -> list[PanelView]:
    """A panel per variant of a conversation: its earlier turns (its own answers) and the new
    prompt above an empty answer; a variant that failed a turn is left out, and says since when."""
    views = []
    for name in variants:
        missed = next((n for n, turn in enumerate(turns, 1) if not turn.answered(name)), None)
        shown = [ShownTurn(t.request.prompt, attachment_names(t.request), t.results[name].text)
                 for t in turns[: (missed or len(turns) + 1) - 1]]
        if missed is not None:
            views.append(PanelView(title=name, history=conversation_html(shown), status="skipped",
                                   note=f"**Left out:** it did not answer turn {missed}, so it has no "
                                        "history to answer a later one from."))
            continue
        shown.append(ShownTurn(prompt, tuple(attachments)))
        views.append(PanelView(title=name, history=conversation_html(shown) if len(shown) > 1 else ""))
    return views


def no_vote_reason(sent: int, answered: Sequence[str], stopped: bool) -> str:
    """Why a finished turn takes no vote, in words for the page; "" when it takes one."""
    if stopped:
        return "You stopped this turn, so it takes no vote: regenerate it, or send a new prompt."
    if sent < 2:
        return "Only one variant answered this, so there is nothing to vote on: pick two or more variants."
    if len(answered) < 2:
        return "Fewer than two variants answered, so there is nothing to vote on: send again or pick others."
    return ""


def attachment_names(request: Request) -> tuple[str, ...]:
    return tuple(m.name or m.kind for m in (*request.images, *request.audio))


def comparison_summary(state: CompareState, results: Sequence[Result | None]) -> dict[str, Any]:
    """What `/compare` returns to an API client once it ends: each variant's answer, thinking,
    tool calls, stats and error (as the CLI's `compare --json` has them), the id the comparison
    was recorded under (None when it was not) and the variants a vote may name."""
    return {
        "battle_id": state.battle_id,
        "turn": len(state.conversation.turns) if state.conversation is not None else 0,
        "vote_on": list(state.votable),
        "no_vote": state.no_vote,
        "results": [r.to_json() for r in results if r is not None],
    }


def ranking_from_ranks(names: Sequence[str], ranks: Sequence[Any]) -> list[list[str]]:
    """Tiers from per-variant rank picks (1 = best; equal numbers tie; every variant needs one)."""
    if len(ranks) < len(names) or any(r in (None, "") for r in ranks[: len(names)]):
        raise UsageError("give every shown variant a rank (1 = best; equal ranks are a tie)")
    tiers: dict[int, list[str]] = {}
    for name, rank in zip(names, ranks, strict=False):
        tiers.setdefault(int(rank), []).append(name)
    return [tiers[r] for r in sorted(tiers)]

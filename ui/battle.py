"""The Battle tab's logic: a blind pair, answers streamed as Model A and Model B, one vote, reveal.

Identities stay on the server: the session state (kept in gr.State, never sent to the browser)
and the store hold them; panels are titled only "Model A" and "Model B" until the vote is
recorded. The store enforces the battle's phase, so a vote sent early, twice, or on an errored
battle is refused whatever the browser does. A side's error message is shown with every name,
spec and server address in the lineup taken out (`redact`): "demo:31b cannot take audio" or
"Ollama at http://gpu-box:11434 answered 500" would say which model is which.

Nothing else may tell them apart either:
- the answers: every battle samples with Gemma 4's recommended settings and a secret seed
  (`arena.sampling.for_battle`), kept in the stored request only, so a named Compare of the same
  prompt does not reproduce them; the form's temperature, top-p and seed do not apply;
- the pair: drawn at random among the variants that take the whole request (attachments, tools,
  thinking), favouring pairs with fewer votes (`arena.battles`);
- the speed: both panels stream in lockstep (`services.battle_pace`, see `ui.streaming`), and
  the stats wait for the vote;
- the thinking: when thinking is asked, both sides can think, and both carry a trace (maybe empty).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from arena.battles import Pairing, battle_candidates, draw_pair
from arena.conversation import Conversation, ConversationTurn
from arena.errors import StorageError, UsageError
from arena.lineup import Variant
from arena.measure import Result
from arena.sampling import for_battle
from backends.base import Request
from ui.compare import (
    ComparisonOutcome,
    FormOptions,
    as_message,
    attachment_names,
    conversation_views,
    request_from_form,
)
from ui.services import ArenaServices
from ui.views import PanelView, md_escape, stats_markdown

SIDES = ("Model A", "Model B")
#: What stands in a battle's error message for a name, spec or server address.
HIDDEN = "[hidden]"
_ADDRESS = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+|\b[\w.-]+:\d{2,5}\b", re.IGNORECASE)
OUTCOME_TEXT = {"a": "Model A is better", "b": "Model B is better", "tie": "Tie", "both_bad": "Both are bad"}


@dataclass
class BattleState:
    """Per browser session. `phase`: idle, streaming, finished, errored, voted."""

    battle_id: str | None = None
    pairing: Pairing | None = None
    phase: str = "idle"
    #: Each side's stats, kept back until the vote: speed and memory would give the models away.
    stats: tuple[str, ...] = ()
    #: Who the battle was served to: the vote is theirs.
    voter: str | None = None
    #: Whether the request asked for thinking: then both panels show a thinking box, empty or not.
    thinking: bool = False
    #: The battle's turns so far (its variants are the pair; it never reaches the browser).
    conversation: Conversation | None = None
    #: The panels as the last turn left them (anonymous; shown again after a reload).
    views: list[PanelView] = field(default_factory=list)
    #: The vote cast, once cast (the reveal marks the winner with it), and the reveal's text.
    outcome: str | None = None
    reveal: str = ""

    @property
    def can_vote(self) -> bool:
        return self.phase == "finished"

    @property
    def follows_up(self) -> bool:
        """Whether Send asks the same pair a follow-up: a finished turn, not yet voted on."""
        return self.phase == "finished" and self.conversation is not None and bool(self.conversation.turns)


class BattleFlow:
    def __init__(self, services: ArenaServices) -> None:
        self.services = services

    async def run(
        self, state: BattleState, message: dict[str, Any] | str | None, options: FormOptions, *,
        voter: str | None = None, regenerate: bool = False, stop: asyncio.Event | None = None,
    ) -> AsyncIterator[ComparisonOutcome]:
        """Send a turn: a follow-up to the same pair when the last turn finished and has no vote
        (`BattleState.follows_up`), else the first turn of a new battle with a new pair drawn.
        `regenerate` sends the last turn again (new answers, a new secret seed). Each turn is
        recorded with `voter` (default: the services' voter), pointing at the turn before it.
        The form's system prompt, max new tokens, thinking and tools apply; its sampling and seed
        do not (see the module docstring)."""
        from ui.streaming import stream_panels

        if regenerate:
            if state.conversation is None or not state.conversation.turns or state.phase in ("voted", "streaming"):
                raise UsageError("there is no finished turn to regenerate: send a prompt first")
            # a new secret seed: the same answers again would let a regenerate be matched
            request = for_battle(state.conversation.regenerate_last())
        else:
            # The ignored fields are left out before building, so a value they would refuse does
            # not stop a battle.
            request = for_battle(request_from_form(
                message, replace(options, temperature=0.0, top_p=1.0, top_k=0, seed=None), self.services.limits))
        if regenerate or state.follows_up:
            conversation = state.conversation
            assert conversation is not None and state.pairing is not None
            pairing = state.pairing
        else:
            while self.services.loading:  # the pair is drawn among all loaded variants
                yield ComparisonOutcome([PanelView(title=side, note="Waiting for the variants to load...")
                                         for side in SIDES])
                await asyncio.sleep(0.5)
            pairing = await self._draw(request)
            conversation = Conversation((pairing.a, pairing.b), mode="blind")
        variants = [self.services.variant(pairing.a), self.services.variant(pairing.b)]
        specs = [(v.name, str(v.spec)) for v in variants]
        voter = voter or self.services.voter
        battle_id = await asyncio.to_thread(
            self.services.store.open_battle, request, specs, mode="blind", voter=voter,
            parent_id=conversation.parent_id,
        )
        state.battle_id, state.pairing, state.phase, state.stats = battle_id, pairing, "streaming", ()
        state.voter, state.thinking, state.conversation, state.outcome = voter, request.thinking, conversation, None
        results: list[Result | None] = []
        views = self._turn_views(conversation, request)
        requests = [conversation.request_for(name, request) for name in (pairing.a, pairing.b)]
        async for shown, results in stream_panels(variants, requests, views, timeout_s=self.services.timeout_s,
                                                  pace=self.services.battle_pace, stop=stop):
            views = [self._anonymous(v, r) for v, r in zip(shown, results, strict=True)]
            state.views = views
            yield ComparisonOutcome(views, results)
        finished = [r for r in results if r is not None]
        state.stats = tuple(stats_markdown(r.stats) for r in finished)
        state.phase = await asyncio.to_thread(self.services.store.finish_battle, battle_id, finished)
        if len(finished) == 2:
            conversation.add_turn(request, {r.variant: r for r in finished}, battle_id)
        state.views = views
        yield ComparisonOutcome(views, results, summary=self.summary(state, results))

    async def _draw(self, request: Request) -> Pairing:
        """A pair among all loaded variants that take `request`, favouring pairs with fewer votes."""
        offered = {v.name: v.backend.capabilities for v in self.services.lineup.available if v.backend is not None}
        candidates = battle_candidates(offered, request)
        votes = await asyncio.to_thread(self.services.store.battle_counts, voted_only=True)
        return draw_pair(candidates, votes, self.services.rng)

    @staticmethod
    def _turn_views(conversation: Conversation, request: Request) -> list[PanelView]:
        return turn_views(conversation.variants, conversation.turns, request.prompt, attachment_names(request))

    def pending(self, state: BattleState, message: dict[str, Any] | str | None, *,
                regenerate: bool = False) -> list[PanelView]:
        """The panels as Send (or Regenerate) starts: a follow-up's conversation so far with the
        prompt being sent; a new battle's two empty panels."""
        conversation = state.conversation
        if conversation is not None and conversation.turns and regenerate:
            last = conversation.turns[-1].request
            return turn_views(conversation.variants, conversation.turns[:-1], last.prompt, attachment_names(last))
        if conversation is not None and state.follows_up:
            message = as_message(message)
            names = tuple(Path(str(f.get("path") if isinstance(f, dict) else f)).name
                          for f in message.get("files") or [])
            return turn_views(conversation.variants, conversation.turns, message.get("text") or "", names)
        return [PanelView(title=side) for side in SIDES]

    def summary(self, state: BattleState, results: Sequence[Result | None]) -> dict[str, Any]:
        """What `/battle` returns to an API client once it ends: each side's answer, thinking, tool
        calls and error, and whether the battle takes a vote. Nothing that tells the models apart:
        no names, specs or stats (those come with the reveal), and error messages redacted."""
        sides = []
        for side, result in zip(SIDES, results, strict=False):
            if result is None:
                continue
            sides.append({
                "side": side,
                "text": result.text,
                "thinking": result.thinking,
                "tool_calls": [call.to_json() for call in result.tool_calls],
                "error": None if result.error is None else self.redact(result.error),
                "error_kind": result.error_kind,
            })
        turns = len(state.conversation.turns) if state.conversation is not None else 0
        return {"can_vote": state.can_vote, "turn": turns, "results": sides}

    def redact(self, message: str) -> str:
        """`message` without what would tell the models apart: the lineup's names, specs, model
        names and engine prefixes, and every server address."""
        return redact(message, _identifiers(self.services.lineup.variants))

    def _anonymous(self, view: PanelView, result: Result | None) -> PanelView:
        """Before the vote a panel shows the answer only: stats (speed, memory) would tell which
        model is which, and so would an error message that names its model or server."""
        if view.status == "error" and result is not None:
            why = md_escape(self.redact(result.error or "unknown error"))
            return replace(view, stats="", note=f"**Error:** {why}  \nThis model failed to answer, so this battle "
                                                 "takes no vote. Start a new round.")
        if view.status == "stopped":  # how many tokens each side had made would say which is faster
            return replace(view, stats="", note="**Stopped:** the answer is cut short; this turn takes no vote.")
        return replace(view, stats="")

    def vote(self, state: BattleState, outcome: str, *, voter: str | None = None) -> str:
        """Record the one vote of this battle by `voter` (default: whom the battle was served to)
        and return the reveal (names, after the vote only)."""
        if state.battle_id is None or state.pairing is None:
            raise UsageError("send a prompt first: the vote is on the two answers")
        voter = voter or state.voter or self.services.voter
        try:
            self.services.store.record_vote(state.battle_id, outcome, voter=voter)
        except StorageError as exc:
            raise UsageError(str(exc)) from exc
        state.phase, state.outcome = "voted", outcome
        stored = self.services.store.battle(state.battle_id)
        flagged = stored.identity_words if stored is not None and stored.flagged else ()
        state.reveal = reveal(state, outcome, flagged)
        return state.reveal

    def revealed(self, state: BattleState) -> list[PanelView]:
        """The panels after the vote: each side's name in its header, the winner marked (a tie
        or both bad marks both), and each side's speed and memory."""
        assert state.pairing is not None
        marks = {"a": ("🏆 winner", ""), "b": ("", "🏆 winner"), "tie": ("🤝 tie", "🤝 tie"),
                 "both_bad": ("👎 both bad", "👎 both bad")}.get(state.outcome or "", ("", ""))
        views = state.views or [PanelView(title=side) for side in SIDES]
        shown = []
        for i, (view, side, name) in enumerate(zip(views, SIDES, (state.pairing.a, state.pairing.b), strict=False)):
            stats = state.stats[i] if i < len(state.stats) else ""
            badge = f" · {marks[i]}" if marks[i] else ""
            shown.append(replace(view, title=f"{side}: {name}", badge=badge, stats=stats))
        return shown

    def new_round(self, state: BattleState) -> None:
        state.battle_id, state.pairing, state.phase, state.stats = None, None, "idle", ()
        state.voter, state.thinking, state.conversation, state.views, state.outcome = None, False, None, [], None
        state.reveal = ""


def turn_views(variants: Sequence[str], turns: Sequence[ConversationTurn], prompt: str,
               attachments: Sequence[str]) -> list[PanelView]:
    """Model A and Model B with their earlier turns (each its own answers) and the new prompt:
    the Compare tab's panels (`conversation_views`) under the sides' names."""
    views = conversation_views(variants, turns, prompt, attachments)
    return [replace(view, title=side) for side, view in zip(SIDES, views, strict=True)]


def reveal(state: BattleState, outcome: str, flagged: Sequence[str] = ()) -> str:
    """The names and stats of both sides, after the vote; and, for a battle where an answer named
    a model family or maker (`flagged`: the words), that it stays out of the ratings."""
    assert state.pairing is not None
    lines = [f"**Your vote:** {OUTCOME_TEXT[outcome]}"]
    for side, name, stats in zip(SIDES, (state.pairing.a, state.pairing.b), state.stats, strict=False):
        lines.append(f"**{side}** was **{md_escape(name)}**: {stats}")
    if flagged:
        lines.append(f"This battle is flagged: an answer names {md_escape(', '.join(flagged))}, which can give a "
                     "model away, so it stays out of the ratings (as in the reference arenas).")
    return "  \n".join(lines)


def redact(message: str, identifiers: Iterable[str]) -> str:
    """`message` with each of `identifiers` (whole words, any case, longest first) and every
    server address (`scheme://...`, `host:port`) replaced by HIDDEN."""
    for word in sorted({i for i in identifiers if i}, key=len, reverse=True):
        message = re.sub(rf"(?<!\w){re.escape(word)}(?!\w)", HIDDEN, message, flags=re.IGNORECASE)
    return _ADDRESS.sub(HIDDEN, message)


def _identifiers(variants: Iterable[Variant]) -> set[str]:
    """Every way a message may name one of `variants`: label, spec, engine prefix, model name
    (and its last path part: `gemma-4-E4B-it` of `google/gemma-4-E4B-it`), backend name."""
    words = set()
    for variant in variants:
        spec = variant.spec
        words |= {variant.name, str(spec), f"{spec.prefix}:{spec.target}", spec.prefix, spec.target,
                  spec.target.rstrip("/").rsplit("/", 1)[-1]}
        if variant.backend is not None:
            words.add(variant.backend.name)
    return words


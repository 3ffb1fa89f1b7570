"""The History tab's logic: a person's past conversations, and opening one to vote on it later.

A conversation is read back from the votes database (`Store.conversation`) into the state the
Compare or Battle tab keeps for a live one, so voting on it later (or asking a follow-up) takes
the same path as voting right after it streamed: the store checks every vote the same way.

A blind battle stays blind: until it has a vote, its row says "Model A vs Model B" and opening it
shows the anonymous panels; names and stats come with the vote, as in a live battle.
"""

from __future__ import annotations

import datetime
import html
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from arena.battles import Pairing
from arena.conversation import Conversation
from arena.errors import UsageError
from arena.measure import Result
from backends.base import Media, Request
from storage.conversations import HistoryEntry, StoredAnswer, StoredConversation, StoredTurn
from storage.queries import stored_request
from ui.battle import SIDES, BattleState, turn_views
from ui.compare import CompareState, conversation_views
from ui.markdown import answer_html
from ui.services import ArenaServices
from ui.views import PanelView, stats_markdown

COLUMNS = ["when (UTC)", "kind", "turns", "first prompt", "variants", "vote"]
OUTCOME_WORDS = {"a": "A is better", "b": "B is better", "tie": "tie", "both_bad": "both bad"}


def iso(seconds: float) -> str:
    """A time as ISO 8601 UTC to the second."""
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def hidden(entry: HistoryEntry) -> bool:
    """Whether the entry's variants are still secret: a blind battle without a vote."""
    return entry.mode == "blind" and entry.vote is None


def vote_words(entry: HistoryEntry) -> str:
    if entry.vote is None:
        return "not yet: open it to vote" if entry.votable else "none"
    vote = entry.vote
    if vote.outcome is not None:
        return OUTCOME_WORDS.get(vote.outcome, vote.outcome)
    if vote.best is not None:
        return f"best: {vote.best}"
    return "ranked"


def row(entry: HistoryEntry) -> list[Any]:
    variants = " vs ".join(SIDES) + " (hidden until you vote)" if hidden(entry) else ", ".join(entry.variants)
    prompt = entry.prompt if len(entry.prompt) <= 80 else entry.prompt[:79] + "…"
    kind = "blind battle" if entry.mode == "blind" else "comparison"
    return [iso(entry.started_at), kind, entry.turns, prompt, variants, vote_words(entry)]


def entry_json(entry: HistoryEntry) -> dict[str, Any]:
    """What `/history` returns of one conversation: nothing of a blind battle's pair before its vote."""
    return {
        "battle_id": entry.battle_id,
        "conversation": entry.conversation,
        "kind": "blind" if entry.mode == "blind" else "named",
        "started_at": iso(entry.started_at),
        "last_turn_at": iso(entry.created_at),
        "turns": entry.turns,
        "prompt": entry.prompt,
        "variants": [] if hidden(entry) else list(entry.variants),
        "vote": vote_words(entry) if entry.vote is not None else None,
        "can_vote": entry.votable,
    }


@dataclass
class Opened:
    """A conversation opened from History: which tab takes it, and what to say."""

    tab: str
    message: str


class HistoryFlow:
    def __init__(self, services: ArenaServices) -> None:
        self.services = services

    def entries(self, voter: str | None, limit: int = 100) -> list[HistoryEntry]:
        return self.services.store.history(voter, limit=limit)

    def conversation_html(self, battle_id: str, voter: str | None) -> str:
        """One conversation as the History tab shows it: every turn's prompt and each side's answer
        (named only where the names may be seen)."""
        stored = self._stored(battle_id, voter)
        blind = stored.last.mode == "blind" and stored.vote is None
        names = list(stored.turns[0].variants)
        parts = []
        for turn in stored.turns:
            parts.append(f'<div class="turn-user"><span class="turn-label">You, turn {turn.turn}:</span> '
                         f"{_escape(turn.prompt)}</div>")
            for i, name in enumerate(names):
                answer = turn.answers.get(name)
                if answer is None:
                    continue
                label = SIDES[i] if blind else name
                text = answer.text if answer.ok else f"[error] {answer.error_kind or 'failed'}"
                parts.append(f'<div class="turn-answer"><strong>{_escape(label)}</strong>{answer_html(text)}</div>')
        return f'<div class="history">{"".join(parts)}</div>'

    def open(self, battle_id: str, voter: str | None, compare: CompareState, battle: BattleState) -> Opened:
        """Put a stored conversation into the session's Compare state (a comparison) or Battle
        state (a blind battle), as if it had just streamed there: its vote, or a follow-up, goes
        the usual way. Only the voter it was served to may open it."""
        stored = self._stored(battle_id, voter)
        last = stored.last
        conversation = rebuild(stored, self.services.store.media)
        if last.mode == "blind":
            pairing = Pairing(*last.variants)
            results = [_result(last.answers[name]) for name in last.variants if name in last.answers]
            battle.battle_id, battle.pairing, battle.voter = last.battle_id, pairing, last.voter
            battle.phase = "voted" if stored.vote is not None else last.phase
            battle.stats = tuple(stats_markdown(r.stats) for r in results)
            battle.conversation, battle.outcome, battle.reveal = conversation, None, ""
            battle.thinking = bool(last.request.get("thinking"))
            previous = conversation.turns[:-1]
            views = turn_views(conversation.variants, previous, last.prompt, ())
            battle.views = [PanelView(title=v.title, history=v.history).with_result(r)
                            for v, r in zip(views, results, strict=False)]
            battle.views = [_anonymous(v) for v in battle.views]
            if stored.vote is not None:
                return Opened("battle", "This battle already has its vote.")
            return Opened("battle", f"Opened in the Battle tab: {len(stored.turns)} turn(s); vote there.")
        compare.clear()
        compare.conversation = conversation
        compare.battle_id = last.battle_id
        compare.variants = tuple(name for name in last.variants if name in last.answers and last.answers[name].ok)
        compare.voted = stored.vote is not None
        previous = conversation.turns[:-1]
        views = conversation_views(conversation.variants, previous, last.prompt, ())
        compare.views = [view.with_result(_result(last.answers[view.title])) if view.title in last.answers else view
                         for view in views]
        if compare.voted:
            return Opened("compare", "This comparison already has its vote.")
        return Opened("compare", "Opened in the Compare tab: vote there, or ask a follow-up.")

    def _stored(self, battle_id: str, voter: str | None) -> StoredConversation:
        if not battle_id or not battle_id.strip():
            raise UsageError("pick a conversation in the History table first")
        stored = self.services.store.conversation(battle_id.strip())
        if stored is None or (voter is not None and stored.last.voter != voter):
            # someone else's conversation reads the same as none: ids are not a way in
            raise UsageError(f"there is no conversation {battle_id.strip()[:40]!r} of yours: pick one in History")
        return stored


def rebuild(stored: StoredConversation, media: Callable[[str], Media | None]) -> Conversation:
    """A live Conversation from a stored one: every turn's request (its attachments' bytes from
    the store) and each side's answer."""
    conversation = Conversation(stored.turns[0].variants, mode=stored.last.mode)
    for turn in stored.turns:
        results = {name: _result(answer) for name, answer in turn.answers.items() if name in conversation.continuing()}
        conversation.add_turn(request_of(turn, media), results, turn.battle_id)
    return conversation


def request_of(turn: StoredTurn, media: Callable[[str], Media | None]) -> Request:
    """The turn's Request as it was sent (without history), attachments read back from the store
    (a missing one is left out: the conversation is still shown and voted on)."""
    found = {sha: stored for sha in turn.media if (stored := media(sha)) is not None}
    return stored_request({**turn.request, "prompt": turn.prompt}, found)


def _result(answer: StoredAnswer) -> Result:
    return Result(variant=answer.variant, text=answer.text, thinking=answer.thinking, tool_calls=answer.tool_calls,
                  stats=answer.stats, error=answer.error, error_kind=answer.error_kind)


def _anonymous(view: PanelView) -> PanelView:
    """A blind battle's panel before its vote: the answer alone (as `BattleFlow._anonymous`)."""
    return replace(view, stats="", note="" if view.status == "done" else "**Error:** this model failed to answer.")


def _escape(text: str) -> str:
    return html.escape(text)

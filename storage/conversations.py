"""Reading conversations of several turns back: one conversation's turns, a person's past
conversations (history), and the stored bytes of attachments.

A conversation is a chain of battles linked by `parent_id` (m004, `storage.migrations`): turn 1
has none, each later turn names the one before. Regenerating a turn stores a sibling (another
battle with the same parent); the one created last supersedes the others. A vote is on one
turn's battle and covers the conversation up to it; none follows it.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from arena.errors import StorageError
from arena.measure import Stats
from arena.votes import Vote
from backends.base import Media, ToolCall, Turn
from storage.queries import CHAIN_SQL, STAT_COLUMNS, read_battle, vote_from_row, voted_in_chain
from storage.records import VoteRejected, check_votable


@dataclass(frozen=True)
class StoredAnswer:
    """One side's run at one turn: its answer, thinking, tool calls, error and figures."""

    variant: str
    spec: str | None
    text: str
    thinking: str
    tool_calls: tuple[ToolCall, ...]
    error: str | None
    error_kind: str | None
    stats: Stats

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class StoredTurn:
    """One turn: its battle, the user's message (`request` is the turn's own `Request.describe()`,
    `media` the SHA-256 of its images then audio, in that order), who it was served to, and each
    side's answer by variant (a side still answering has none yet). `vote` is the vote on this
    turn, if any."""

    battle_id: str
    turn: int
    created_at: float
    prompt: str
    request: Mapping[str, Any]
    media: tuple[str, ...]
    mode: str
    voter: str | None
    variants: tuple[str, ...]
    answers: Mapping[str, StoredAnswer]
    vote: Vote | None

    @property
    def phase(self) -> str:
        """'served' until every side answered, then 'errored' if one failed, else 'finished'."""
        if len(self.answers) < len(self.variants):
            return "served"
        return "finished" if all(answer.ok for answer in self.answers.values()) else "errored"


@dataclass(frozen=True)
class StoredConversation:
    """The turns from the first to a given battle, oldest first."""

    turns: tuple[StoredTurn, ...]

    @property
    def id(self) -> str:
        """The conversation's name: its first turn's battle id."""
        return self.turns[0].battle_id

    @property
    def last(self) -> StoredTurn:
        return self.turns[-1]

    @property
    def vote(self) -> Vote | None:
        """The conversation's vote (on one of these turns), if it has one."""
        return next((turn.vote for turn in self.turns if turn.vote is not None), None)

    def history_for(self, variant: str, media: Callable[[str], Media | None]) -> tuple[Turn, ...]:
        """Every turn as `variant` saw it, oldest first: the `Request.history` of the turn that
        follows (`request.with_history(...)`), each with that variant's own answer. `media` gives
        an attachment's bytes by SHA-256 (`Store.media`). StorageError when the variant has no
        answer at some turn, or an attachment's bytes are not stored."""
        turns = []
        for turn in self.turns:
            answer = turn.answers.get(variant)
            if answer is None or not answer.ok:
                raise StorageError(
                    f"{variant} has no answer at turn {turn.turn} of conversation {self.id}: continue it with "
                    "the variants that answered every turn"
                )
            attachments: dict[str, list[Media]] = {"image": [], "audio": []}
            for kind, field in (("image", "images"), ("audio", "audio")):
                for item in turn.request.get(field) or ():
                    found = media(item["sha256"])
                    if found is None:
                        raise StorageError(
                            f"the {kind} {item.get('name') or item['sha256'][:12]} of turn {turn.turn} is not "
                            "stored, so the conversation cannot be continued: start a new one"
                        )
                    attachments[kind].append(Media(found.kind, found.data, found.mime, item.get("name") or ""))
            turns.append(Turn(turn.prompt, answer.text, tuple(attachments["image"]), tuple(attachments["audio"])))
        return tuple(turns)


@dataclass(frozen=True)
class HistoryEntry:
    """One past conversation, by its last turn (`battle_id`: continue it, or vote on it).
    `variants` are the last turn's sides: a view hides them for a blind battle without a vote.
    `vote` is the conversation's vote; `votable` says whether the store would take one now (the
    last turn finished, no failed answer it cannot do without, no vote in the conversation)."""

    battle_id: str
    conversation: str
    mode: str
    voter: str | None
    created_at: float
    started_at: float
    turns: int
    prompt: str
    variants: tuple[str, ...]
    phase: str
    vote: Vote | None
    votable: bool

    @property
    def has_vote(self) -> bool:
        return self.vote is not None


_RUN_COLUMNS = "r.text, r.thinking, r.tool_calls, r.error, r.error_kind, r.server, " + ", ".join(
    f"r.{name}" for name in STAT_COLUMNS
)


def read_conversation(db: Database, battle_id: str) -> StoredConversation | None:
    """The conversation from its first turn to `battle_id`, or None if there is no such battle."""
    rows = db.conn.execute(
        CHAIN_SQL + "SELECT b.id, b.turn, b.created_at, b.prompt, b.request, b.mode, b.voter, "
        "v.outcome, v.best, v.ranking, v.id IS NOT NULL, s.variant, s.spec, r.id IS NOT NULL, "
        f"{_RUN_COLUMNS} FROM chain c JOIN battles b ON b.id = c.id JOIN sides s ON s.battle_id = b.id "
        "LEFT JOIN runs r ON r.battle_id = s.battle_id AND r.position = s.position "
        "LEFT JOIN votes v ON v.battle_id = b.id ORDER BY c.depth DESC, s.position",
        [battle_id],
    ).fetchall()
    if not rows:
        return None
    return StoredConversation(tuple(_turn(list(group)) for _, group in itertools.groupby(rows, key=lambda row: row[0])))


def _turn(rows: list[tuple[Any, ...]]) -> StoredTurn:
    battle_id, turn, created_at, prompt, request_json, mode, voter, outcome, best, ranking, voted = rows[0][:11]
    request = json.loads(request_json)
    variants = tuple(row[11] for row in rows)
    answers = {}
    for variant, spec, ran, text, thinking, tool_calls, error, error_kind, server, *stats in (row[11:] for row in rows):
        if not ran:
            continue
        values = dict(zip(STAT_COLUMNS, stats, strict=True))
        answers[variant] = StoredAnswer(
            variant=variant,
            spec=spec,
            text=text,
            thinking=thinking,
            tool_calls=tuple(ToolCall(call["name"], call["arguments"]) for call in json.loads(tool_calls)),
            error=error,
            error_kind=error_kind,
            stats=Stats(**{**values, "stalled": bool(values["stalled"])}, server=json.loads(server or "{}")),
        )
    return StoredTurn(
        battle_id=battle_id,
        turn=turn,
        created_at=created_at,
        prompt=prompt,
        request=request,
        media=tuple(item["sha256"] for field in ("images", "audio") for item in request.get(field) or ()),
        mode=mode,
        voter=voter,
        variants=variants,
        answers=answers,
        vote=vote_from_row(variants, outcome, best, ranking) if voted else None,
    )


def read_media(db: Database, sha256: str) -> Media | None:
    """The stored bytes of an attachment, or None."""
    row = db.conn.execute("SELECT kind, data, mime FROM media WHERE sha256 = ?", [sha256]).fetchone()
    return None if row is None else Media(row[0], bytes(row[1]), row[2])


# A battle ends a conversation shown in history when no later turn follows it and no sibling (a
# regeneration of the same turn) was created after it. battles_by_parent answers both.
_LAST_TURN = (
    "NOT EXISTS (SELECT 1 FROM battles c WHERE c.parent_id = b.id) AND (b.parent_id IS NULL OR NOT EXISTS ("
    "SELECT 1 FROM battles s WHERE s.parent_id = b.parent_id "
    "AND (s.created_at > b.created_at OR (s.created_at = b.created_at AND s.rowid > b.rowid))))"
)


def read_history(
    db: Database, voter: str | None, *, limit: int = 50, before: float | None = None
) -> list[HistoryEntry]:
    """`voter`'s conversations (everyone's with None), newest last turn first, at most `limit`,
    only those whose last turn was served strictly before `before` (the `created_at` of the
    last entry of the page before) if given."""
    where: list[str] = []
    params: list[Any] = []
    if voter is not None:
        where.append("voter = ?")  # battles_by_voter (voter, created_at) gives them in order
        params.append(voter)
    if before is not None:
        where.append("created_at < ?")
        params.append(before)
    # Newest first, then tested for being a last turn only until the page is full: a subquery that
    # streams in order (the index's, for one voter), so the tests do not run on every battle.
    newest = (
        "SELECT id, parent_id, created_at, rowid AS rowid FROM battles "
        f"{'WHERE ' + ' AND '.join(where) if where else ''} ORDER BY created_at DESC, rowid DESC LIMIT -1"
    )
    ids = [
        row[0] for row in db.conn.execute(f"SELECT b.id FROM ({newest}) b WHERE {_LAST_TURN} LIMIT ?", [*params, limit])
    ]
    return [_entry(db, battle_id) for battle_id in ids]


def _entry(db: Database, battle_id: str) -> HistoryEntry:
    battle = read_battle(db, battle_id)
    assert battle is not None  # read in the same snapshot
    first_id, started_at, prompt = db.conn.execute(
        CHAIN_SQL + "SELECT b.id, b.created_at, b.prompt FROM chain c JOIN battles b ON b.id = c.id "
        "ORDER BY c.depth DESC LIMIT 1",
        [battle_id],
    ).fetchone()
    voted = battle_id if battle.vote is not None else voted_in_chain(db, battle_id)
    vote = battle.vote
    if vote is None and voted is not None:
        earlier = read_battle(db, voted)
        vote = None if earlier is None else earlier.vote
    try:
        check_votable(battle_id, battle)
        votable = voted is None
    except VoteRejected:
        votable = False
    return HistoryEntry(
        battle_id=battle_id,
        conversation=first_id,
        mode=battle.mode,
        voter=battle.voter,
        created_at=battle.created_at,
        started_at=started_at,
        turns=battle.turn,
        prompt=prompt,
        variants=battle.variants,
        phase=battle.phase,
        vote=vote,
        votable=votable,
    )

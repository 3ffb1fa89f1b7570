"""Writing battles, runs and votes. Each function runs inside a write transaction it is given.

The checks that make a vote valid (the battle exists, every answer finished, none failed, no
vote yet, the voter is the one the battle was served to, no later turn and no vote on an earlier
one) run in the same transaction as the insert, so two concurrent votes on one battle can never
both be accepted: the server enforces the battle's phase, not the UI.

Conversations (m004): a follow-up turn is a battle whose `parent_id` names the turn before it.
Its rules are checked in the transaction that stores it (`insert_battle`): the parent finished,
its chain holds no vote (a vote ends a conversation), the mode and the person served are the
parent's, and every variant answered there (sides are matched by name, not position). A vote is
refused on a battle that has a later turn, or whose earlier turns hold a vote.

Each run's answer and thinking are checked for names of model families and makers
(`arena.identity`) as they are recorded; what is found goes into `identity_flags`, and the battle
is flagged.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from sqlite_utils import Database

from arena.errors import StorageError
from arena.identity import identity_words
from arena.measure import Result
from arena.votes import Vote, check_vote
from backends.base import Media
from storage.queries import CHAIN_SQL, StoredBattle, has_later_turn, read_battle, voted_in_chain

MAX_SIDES = 8
MODES = ("blind", "named")


#: (battle id, position, words found) of a run whose answer names a model family or maker.
Flag = tuple[str, int, tuple[str, ...]]


class VoteRejected(StorageError):
    """A vote that the battle cannot take (unknown, unfinished, errored, already voted, bad vote)."""


class BattleRejected(StorageError):
    """A battle or its results that cannot be recorded as given."""


@dataclass(frozen=True)
class NewBattle:
    """Everything stored about a battle when it is served."""

    id: str
    created_at: float
    mode: str
    voter: str | None
    variants: tuple[tuple[str, str | None], ...]  # (label, spec) per position
    prompt: str
    request_json: str
    has_image: bool
    has_audio: bool
    source: str = "arena"
    source_ref: str | None = None
    language: str | None = None
    #: The turn before this one in its conversation (None: a first turn).
    parent_id: str | None = None
    #: Its number in the conversation: None until stored (`insert_battle` counts it from the parent).
    turn: int | None = None

    def check(self) -> None:
        """Raise BattleRejected unless the battle can be stored."""
        if self.mode not in MODES:
            raise BattleRejected(f"unknown battle mode {self.mode!r}: expected blind or named")
        labels = [label for label, _ in self.variants]
        if not 2 <= len(labels) <= MAX_SIDES:
            raise BattleRejected(f"a battle has 2 to {MAX_SIDES} variants, not {len(labels)}")
        if len(set(labels)) != len(labels) or not all(labels):
            raise BattleRejected(f"variant labels in a battle must be distinct and non-empty: {labels}")


def insert_battle(db: Database, battle: NewBattle) -> NewBattle:
    """Store a served battle and its sides, after the rules of a follow-up turn (the module
    docstring) when it has a parent; return it as stored, its `turn` counted."""
    battle.check()
    turn = follow_up_turn(db, battle)
    if battle.turn is not None and battle.turn != turn:
        raise BattleRejected(f"battle {battle.id} says it is turn {battle.turn}, but it follows turn {turn - 1}")
    battle = replace(battle, turn=turn)
    db.conn.execute(
        "INSERT INTO battles (id, created_at, mode, voter, sides, prompt, request, has_image, has_audio, "
        "source, source_ref, language, parent_id, turn) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            battle.id,
            battle.created_at,
            battle.mode,
            battle.voter,
            len(battle.variants),
            battle.prompt,
            battle.request_json,
            int(battle.has_image),
            int(battle.has_audio),
            battle.source,
            battle.source_ref,
            battle.language,
            battle.parent_id,
            turn,
        ],
    )
    db.conn.executemany(
        "INSERT INTO sides (battle_id, position, variant, spec) VALUES (?, ?, ?, ?)",
        [(battle.id, position, label, spec) for position, (label, spec) in enumerate(battle.variants)],
    )
    return battle


def follow_up_turn(db: Database, battle: NewBattle) -> int:
    """The turn number `battle` takes: 1 without a parent, else the parent's + 1 once the rules of
    a follow-up hold (BattleRejected says which does not)."""
    if battle.parent_id is None:
        return 1
    parent_id = battle.parent_id
    parent = read_battle(db, parent_id)
    if parent is None:
        raise BattleRejected(
            f"no battle {parent_id!r} to follow up: it was never served here; start a new conversation"
        )
    if voted_in_chain(db, parent_id) is not None:
        raise BattleRejected(f"this conversation has a vote (battle {parent_id} or a turn before it): start a new one")
    if parent.phase == "served":
        raise BattleRejected(
            f"battle {parent_id} is still answering: send the next message once every answer is complete"
        )
    if battle.mode != parent.mode:
        raise BattleRejected(
            f"battle {parent_id} is {parent.mode}, so its follow-up turns are {parent.mode} too, not {battle.mode}"
        )
    if battle.voter != parent.voter:
        # the other voter's name is theirs: not said
        raise BattleRejected(
            f"battle {parent_id} was served to someone else, and only they can continue it: start a conversation "
            "of your own"
        )
    missing = [label for label, _ in battle.variants if label not in parent.answered]
    if missing and parent.mode == "blind":
        # which side failed would tell a blind voter something: not said
        raise BattleRejected(
            f"battle {parent_id} cannot be continued: a follow-up goes on with the sides that answered, and one "
            "did not; start a new battle"
        )
    if missing:
        raise BattleRejected(
            f"{', '.join(missing)} did not answer in battle {parent_id}: a follow-up goes on with the variants "
            f"that answered there ({', '.join(parent.answered) or 'none'})"
        )
    return parent.turn + 1


def insert_media(db: Database, media: Iterable[Media]) -> list[Media]:
    """Store the bytes of attachments (by SHA-256; one already stored is left as it is); return
    those that were new."""
    stored = []
    for item in media:
        cursor = db.conn.execute(
            "INSERT OR IGNORE INTO media (sha256, kind, mime, data) VALUES (?, ?, ?, ?)",
            [item.sha256, item.kind, item.mime, item.data],
        )
        if cursor.rowcount:
            stored.append(item)
    return stored


def insert_runs(
    db: Database, battle_id: str, results: Sequence[Result], recorded_at: float, flags: Sequence[Flag] | None = None
) -> str:
    """Store one run per side (results in position order) and their `flags` (by default found
    here: `find_flags`); return the battle's new phase."""
    battle = read_battle(db, battle_id)
    if battle is None:
        raise BattleRejected(f"no battle {battle_id!r} to finish: open it first")
    if battle.phase != "served":
        raise BattleRejected(f"battle {battle_id} is already {battle.phase}: its results are recorded")
    if len(results) != len(battle.variants):
        raise BattleRejected(
            f"battle {battle_id} has {len(battle.variants)} variants but {len(results)} results were given"
        )
    db.conn.executemany(
        "INSERT INTO runs (battle_id, position, recorded_at, text, thinking, tool_calls, error, error_kind, "
        "ttft_s, tokens_per_s, total_s, input_tokens, output_tokens, peak_memory_bytes, load_s, "
        "weights_bytes, memory_kind, token_source, server, request_peak_bytes, queue_wait_s, stalled) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [_run_values(battle_id, position, result, recorded_at) for position, result in enumerate(results)],
    )
    insert_flags(db, inherited_flags(db, battle_id, result_flags(battle_id, results) if flags is None else flags))
    return "errored" if any(not result.ok for result in results) else "finished"


def inherited_flags(db: Database, battle_id: str, flags: Sequence[Flag]) -> list[Flag]:
    """`flags` of a turn, with the words of every flagged earlier turn of its conversation added
    (on its first side): a model that named itself in turn 1 is known in turn 3 too, so a vote
    cast after it must stay out of the ratings like one cast right after turn 1. Idempotent: a
    replayed journal, whose flags already hold them, gets the same rows."""
    earlier = db.conn.execute(
        CHAIN_SQL + "SELECT f.words FROM chain c JOIN identity_flags f ON f.battle_id = c.id WHERE c.depth > 0",
        [battle_id],
    ).fetchall()
    if not earlier:
        return list(flags)
    words = {word for (found,) in earlier for word in json.loads(found)}
    first = [found for _, position, found in flags if position == 0]
    merged = tuple(sorted(words.union(*first)))
    return [(battle_id, 0, merged), *(flag for flag in flags if flag[1] != 0)]


def find_flags(runs: Iterable[tuple[str, int, str, str]]) -> list[Flag]:
    """The flags of `runs` ((battle id, position, text, thinking)): one for each whose answer or
    thinking names a model family or maker. Pure: callers find them before taking the write lock."""
    return [
        (battle_id, position, words)
        for battle_id, position, text, thinking in runs
        if (words := identity_words(text, thinking))
    ]


def result_flags(battle_id: str, results: Sequence[Result]) -> list[Flag]:
    """`find_flags` of a battle's results, in position order."""
    return find_flags((battle_id, position, result.text, result.thinking) for position, result in enumerate(results))


def insert_flags(db: Database, flags: Iterable[Flag]) -> set[str]:
    """Store `flags` (of runs already stored); return the ids of the battles flagged."""
    rows = [(battle_id, position, json.dumps(words, ensure_ascii=False)) for battle_id, position, words in flags]
    db.conn.executemany("INSERT INTO identity_flags (battle_id, position, words) VALUES (?, ?, ?)", rows)
    return {battle_id for battle_id, _, _ in rows}


def _run_values(battle_id: str, position: int, result: Result, recorded_at: float) -> tuple[object, ...]:
    s = result.stats
    return (
        battle_id,
        position,
        recorded_at,
        result.text,
        result.thinking,
        json.dumps([call.to_json() for call in result.tool_calls]),
        result.error,
        result.error_kind,
        s.ttft_s,
        s.tokens_per_s,
        s.total_s,
        s.input_tokens,
        s.output_tokens,
        s.peak_memory_bytes,
        s.load_s,
        s.weights_bytes,
        s.memory_kind,
        s.token_source,
        json.dumps(dict(s.server)),
        s.request_peak_bytes,
        s.queue_wait_s,
        int(bool(s.stalled)),
    )


def insert_vote(db: Database, battle_id: str, vote: Vote, voter: str | None, created_at: float) -> int:
    """Store the one vote on a finished battle; return the vote's id. `voter` None means the
    person the battle was served to; anyone else is refused when the battle was served to someone
    (a blind battle is voted on by the one who saw it, a comparison by the one who ran it)."""
    battle = read_battle(db, battle_id)
    check_votable(battle_id, battle)
    assert battle is not None
    if has_later_turn(db, battle_id):
        raise VoteRejected(
            f"battle {battle_id} is not the last turn of its conversation: vote on its last turn, which covers "
            "the whole conversation"
        )
    if battle.parent_id is not None and voted_in_chain(db, battle.parent_id) is not None:
        raise VoteRejected(
            "this conversation has a vote on an earlier turn (one vote per conversation): start a new one"
        )
    if battle.voter is not None and voter is not None and voter != battle.voter:
        # the other voter's name is theirs: not said
        raise VoteRejected(
            f"battle {battle_id} was served to another voter, and only they can vote on it (one vote per "
            "person per battle): start a round of your own to vote"
        )
    try:
        check_vote(battle.voted_on, vote, reveal=battle.mode != "blind")
    except ValueError as exc:
        raise VoteRejected(f"vote on battle {battle_id} rejected: {exc}") from exc
    best = None if vote.best is None else battle.variants.index(vote.best)
    ranking = (
        None
        if vote.ranking is None
        else json.dumps([[battle.variants.index(label) for label in tier] for tier in vote.ranking])
    )
    cursor = db.conn.execute(
        "INSERT INTO votes (battle_id, created_at, voter, outcome, best, ranking) VALUES (?, ?, ?, ?, ?, ?)",
        [battle_id, created_at, battle.voter if voter is None else voter, vote.outcome, best, ranking],
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def check_votable(battle_id: str, battle: StoredBattle | None) -> None:
    """Raise VoteRejected unless the battle exists, is finished and has no vote. An errored battle
    takes no vote, except a named comparison in which two or more variants answered: its vote is
    on those (see StoredBattle.voted_on)."""
    if battle is None:
        raise VoteRejected(f"no battle {battle_id!r}: it was never served here; start a new round")
    if battle.phase == "served":
        raise VoteRejected(f"battle {battle_id} is not finished: vote once every answer is complete")
    if battle.phase == "errored" and (battle.mode == "blind" or len(battle.voted_on) < 2):
        # A blind battle must not reveal who failed: errors often name the variant.
        failed = (
            ""
            if battle.mode == "blind"
            else " ({})".format("; ".join(f"{variant}: {error}" for variant, error in battle.errors))
        )
        raise VoteRejected(f"battle {battle_id} cannot be voted on because an answer failed{failed}: start a new round")
    if battle.vote is not None:
        raise VoteRejected(f"battle {battle_id} already has its vote (one vote per battle): start a new round")

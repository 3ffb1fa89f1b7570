"""Judged pairs of a prompt set: what the judge queue reads, and a verdict stored through the
store's one vote path.

A judged pair becomes a blind battle (source 'set') with the two answers as its runs, and its
vote, in one transaction through the same functions as every battle and vote
(`storage.records`): ratings, exports and per-voter views count it like any blind battle.
`set_judgments` links it to its set, prompt and answers; `source_ref` names them too (set,
prompt, variant and repeat of each side), so the link can be rebuilt (`relink_judgments`).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlite_utils import Database

from arena.errors import UsageError
from arena.prompt_sets import labels_of
from arena.set_ratings import SetVote
from arena.votes import Vote
from storage.records import NewBattle, VoteRejected, insert_battle, insert_runs, insert_vote
from storage.sets import StoredAnswer, StoredPrompt, _answers, _prompts, canonical

if TYPE_CHECKING:
    from storage.store import Store


@dataclass(frozen=True)
class QueueRows:
    """What was stored for a set since the marks: answers as (id, prompt id, variant, judgeable)
    and judgments as (answer shown first, answer shown second, judge); then the new marks."""

    answers: list[tuple[int, str, str, bool]]
    judgments: list[tuple[int, int, str]]
    marks: tuple[int, int]


def queue_rows(store: Store, name: str, marks: tuple[int, int] = (0, 0)) -> QueueRows:
    """Answers and judgments of set `name` stored after `marks` (from the last QueueRows): what
    the judge queue adds to its index. Two indexed range reads."""
    with store._read() as db:
        answers = [
            (answer_id, prompt_id, variant, bool(judgeable))
            for answer_id, prompt_id, variant, judgeable in db.execute(
                "SELECT id, prompt_id, variant, error IS NULL AND identity_words IS NULL FROM set_answers "
                "WHERE set_name = ? AND id > ? ORDER BY id",
                [name, marks[0]],
            )
        ]
        judgments = db.execute(
            "SELECT rowid, answer_a, answer_b, judge FROM set_judgments WHERE set_name = ? AND rowid > ? "
            "ORDER BY rowid",
            [name, marks[1]],
        ).fetchall()
    return QueueRows(
        answers,
        [(a, b, judge) for _, a, b, judge in judgments],
        (answers[-1][0] if answers else marks[0], judgments[-1][0] if judgments else marks[1]),
    )


def read_pair(store: Store, answer_a: int, answer_b: int) -> tuple[StoredPrompt, StoredAnswer, StoredAnswer]:
    """The prompt and the two answers of a pair, in the order given."""
    with store._read() as db:
        found = {answer.id: answer for answer in _answers(db, "a.id IN (?, ?)", [answer_a, answer_b])}
        if answer_a not in found or answer_b not in found:
            raise UsageError("that pair is not stored here: take the next pair")
        first = found[answer_a]
        prompt = _prompts(db, first.set_name, first.prompt_id)[0]
    return prompt, first, found[answer_b]


@dataclass(frozen=True)
class Judged:
    battle_id: str
    vote_id: int


def record_judgment(store: Store, answer_a: int, answer_b: int, outcome: str, judge: str) -> Judged:
    """Store `judge`'s verdict on two answers of one prompt, shown in this order, as a blind
    battle with its vote, in one transaction (`insert_judgment`)."""
    now = time.time()
    return store.write(lambda db: insert_judgment(db, answer_a, answer_b, outcome, judge, now))


def insert_judgment(db: Database, answer_a: int, answer_b: int, outcome: str, judge: str, now: float) -> Judged:
    """Inside a write transaction: the blind battle (source 'set') whose runs are the two stored
    answers, its vote through `insert_vote` (the store's one vote path, with all its checks) and
    the link to the set. Refuses (VoteRejected) an unknown verdict, answers of different prompts
    or of one variant, failed or self-naming answers, and a pair this judge judged already."""
    if not judge:
        raise VoteRejected("a judgment needs a judge's name")
    if outcome not in ("a", "b", "tie", "both_bad"):
        raise VoteRejected(f"unknown verdict {outcome!r}: expected a, b, tie or both_bad")
    found = {answer.id: answer for answer in _answers(db, "a.id IN (?, ?)", [answer_a, answer_b])}
    first, second = found.get(answer_a), found.get(answer_b)
    if first is None or second is None or answer_a == answer_b:
        raise VoteRejected("that pair is not stored here: take the next pair")
    if (first.set_name, first.prompt_id) != (second.set_name, second.prompt_id) or first.variant == second.variant:
        raise VoteRejected("a pair is two variants' answers to one prompt: take the next pair")
    if not (first.judgeable and second.judgeable):
        raise VoteRejected("one of these answers failed or names its model, so it is not judged blind: take "
                           "the next pair")
    if db.execute("SELECT 1 FROM set_judgments WHERE min(answer_a, answer_b) = ? AND max(answer_a, answer_b) = ? "
                  "AND judge = ?", [min(answer_a, answer_b), max(answer_a, answer_b), judge]).fetchone():
        raise VoteRejected("you have judged this pair already (one verdict per judge per pair): take the next pair")
    prompt = db.execute("SELECT text, request FROM set_prompts WHERE set_name = ? AND prompt_id = ?",
                        [first.set_name, first.prompt_id]).fetchone()
    request = {**json.loads(prompt[1]), "seeds": [first.seed, second.seed]}
    battle = NewBattle(
        id=uuid.uuid4().hex,
        created_at=now,
        mode="blind",
        voter=judge,
        variants=((first.variant, first.spec), (second.variant, second.spec)),
        prompt=prompt[0],
        request_json=canonical(request),
        has_image=bool(request["images"]),
        has_audio=bool(request["audio"]),
        source="set",
        source_ref=canonical({"set": first.set_name, "prompt": first.prompt_id,
                              "a": [first.variant, first.repeat], "b": [second.variant, second.repeat]}),
    )
    insert_battle(db, battle)
    insert_runs(db, battle.id, [first.result, second.result], now)
    vote_id = insert_vote(db, battle.id, Vote(outcome=outcome), judge, now)
    db.conn.execute(
        "INSERT INTO set_judgments (battle_id, set_name, prompt_id, answer_a, answer_b, judge) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [battle.id, first.set_name, first.prompt_id, answer_a, answer_b, judge],
    )
    return Judged(battle.id, vote_id)


def set_votes(store: Store, name: str, *, judge: str | None = None, include_flagged: bool = False) -> list[SetVote]:
    """Every verdict on pairs of set `name` (by `judge` if given), in voting order, with the
    labels (tags and category) of its prompt; flagged battles left out unless asked."""
    where, params = "j.set_name = ?", [name]
    if judge is not None:
        where += " AND v.voter = ?"
        params.append(judge)
    if not include_flagged:
        where += " AND NOT EXISTS (SELECT 1 FROM identity_flags f WHERE f.battle_id = j.battle_id)"
    with store._read() as db:
        rows = db.execute(
            "SELECT v.id, v.voter, sa.variant, sb.variant, v.outcome, p.tags, p.category, v.created_at, "
            "j.answer_a, j.answer_b, j.prompt_id FROM set_judgments j JOIN votes v ON v.battle_id = j.battle_id "
            "JOIN sides sa ON sa.battle_id = j.battle_id AND sa.position = 0 "
            "JOIN sides sb ON sb.battle_id = j.battle_id AND sb.position = 1 "
            "JOIN set_prompts p ON p.set_name = j.set_name AND p.prompt_id = j.prompt_id "
            f"WHERE {where} ORDER BY v.created_at, v.id",
            params,
        ).fetchall()
    return [
        SetVote(str(vote_id), voter, a, b, outcome, labels_of(json.loads(tags), category), created_at, answer_a,
                answer_b, prompt_id)
        for vote_id, voter, a, b, outcome, tags, category, created_at, answer_a, answer_b, prompt_id in rows
    ]


def relink_judgments(db: Database) -> int:
    """Link every set battle that has no `set_judgments` row (a database restored from its
    journal, which holds battles and votes but not the set tables) to its answers, from the
    battle's `source_ref`, where the set and both answers are stored. Returns how many were
    linked. Call inside a write transaction."""
    linked = 0
    for battle_id, ref, voter in db.execute(
        "SELECT b.id, b.source_ref, b.voter FROM battles b WHERE b.source = 'set' AND b.source_ref IS NOT NULL "
        "AND NOT EXISTS (SELECT 1 FROM set_judgments j WHERE j.battle_id = b.id) "
        "AND EXISTS (SELECT 1 FROM votes v WHERE v.battle_id = b.id)"
    ).fetchall():
        try:
            link = json.loads(ref)
            ids = [
                db.execute("SELECT id FROM set_answers WHERE set_name = ? AND prompt_id = ? AND variant = ? AND "
                           "repeat = ? AND error IS NULL", [link["set"], link["prompt"], *link[side]]).fetchone()
                for side in ("a", "b")
            ]
        except (ValueError, KeyError, TypeError):
            continue
        if None in ids or not voter:
            continue
        cursor = db.conn.execute(
            "INSERT OR IGNORE INTO set_judgments (battle_id, set_name, prompt_id, answer_a, answer_b, judge) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [battle_id, link["set"], link["prompt"], ids[0][0], ids[1][0], voter],
        )
        linked += cursor.rowcount
    return linked

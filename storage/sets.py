"""Prompt sets in the votes database: their prompts, every variant's answers, and judged pairs.

Functions over a `Store`: writes go through its writer (`Store.write`: group commit, and the
journal for what a judgment stores as a battle), reads through a read snapshot. The tables are
m005's (`storage.migrations`).

- A set is stored once; running `generate` again adds the prompts new to the file (after bad
  rows were fixed, say) and refuses a prompt whose id is stored with other content.
- Each answer is committed alone as it finishes, so a killed run loses only the answers being
  generated; a failed attempt is kept as a record, and tried again by the next run.
- A judged pair becomes a blind battle (source 'set') with the two answers as its runs, and its
  vote, in one transaction through the same functions as every battle and vote
  (`storage.records`): ratings, exports and per-voter views count it like any blind battle.
  `set_judgments` links it to its set, prompt and answers; `source_ref` names them too (set,
  prompt, variant and repeat of each side), so the link can be rebuilt (`relink_judgments`).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlite_utils import Database

from arena.errors import UsageError
from arena.identity import identity_words
from arena.measure import Result, Stats
from arena.prompt_sets import SetPrompt, labels_of
from arena.set_ratings import SetVote
from arena.votes import Vote
from backends.base import Media, Request, Tool, ToolCall
from storage.queries import STAT_COLUMNS
from storage.records import NewBattle, VoteRejected, insert_battle, insert_media, insert_runs, insert_vote

if TYPE_CHECKING:
    from storage.store import Store

_ANSWER_COLUMNS = ("id", "set_name", "prompt_id", "variant", "spec", "repeat", "seed", "recorded_at", "text",
                   "thinking", "tool_calls", "error", "error_kind", *STAT_COLUMNS, "server", "identity_words")


class SetConflict(UsageError):
    """Stored content of a set differs from what is being added under the same name."""


class UnknownSet(UsageError):
    """No prompt set of that name is stored."""


@dataclass(frozen=True)
class StoredPrompt:
    """A prompt as stored: `request` is `Request.describe()` (media by hash)."""

    set_name: str
    id: str
    line: int
    text: str
    request: dict[str, Any]
    category: str | None
    tags: tuple[str, ...]

    @property
    def labels(self) -> tuple[str, ...]:
        return labels_of(self.tags, self.category)


@dataclass(frozen=True)
class StoredAnswer:
    """One attempt of a variant at a prompt of a set (`result.error` set when it failed)."""

    id: int
    set_name: str
    prompt_id: str
    variant: str
    spec: str | None
    repeat: int
    seed: int | None
    recorded_at: float
    result: Result
    identity_words: tuple[str, ...] = ()

    @property
    def judgeable(self) -> bool:
        """Whether it may be shown blind: it answered, and names no model family or maker."""
        return self.result.ok and not self.identity_words


@dataclass(frozen=True)
class SetInfo:
    """A stored set and how far it is: prompts, answers that succeeded, failed attempts (not
    counting prompts a variant cannot take), judgments, and the variants that answered."""

    name: str
    created_at: float
    source: str
    prompts: int
    answers: int
    failed: int
    judgments: int
    variants: tuple[str, ...]


@dataclass(frozen=True)
class AddedPrompts:
    added: int
    already_stored: int


# -- prompts ----------------------------------------------------------------------------------


def add_prompts(store: Store, name: str, source: str, prompts: Sequence[SetPrompt]) -> AddedPrompts:
    """Store the set `name` (read from `source`) with `prompts` and their media, in one
    transaction. Prompts already stored with the same content are left; a prompt whose id is
    stored with other content refuses the whole call (SetConflict), storing nothing."""
    check_name(name)
    rows = [_prompt_row(name, prompt) for prompt in prompts]
    media = [m for prompt in prompts for m in (*prompt.request.images, *prompt.request.audio)]

    def job(db: Database) -> AddedPrompts:
        if not db.execute("SELECT 1 FROM prompt_sets WHERE name = ?", [name]).fetchone():
            db.conn.execute("INSERT INTO prompt_sets (name, created_at, source) VALUES (?, ?, ?)",
                            [name, time.time(), source])
        new = check_prompts(db, name, [_content(row) for row in rows])
        db.conn.executemany(
            "INSERT INTO set_prompts (set_name, prompt_id, line, text, request, category, tags) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [row for row in rows if row[1] in new],
        )
        insert_media(db, media)
        return AddedPrompts(len(new), len(rows) - len(new))

    return store.write(job)


def check_name(name: str) -> str:
    if not name or not name.strip() or name != name.strip():
        raise UsageError(f"the set name {name!r} is empty or has spaces around it: give a plain name (--set NAME)")
    return name


def _prompt_row(name: str, prompt: SetPrompt) -> tuple[Any, ...]:
    return (name, prompt.id, prompt.line, prompt.text, canonical(prompt.request.describe()), prompt.category,
            json.dumps(list(prompt.tags), ensure_ascii=False))


def _content(row: tuple[Any, ...]) -> PromptContent:
    """What must match for a prompt row to be the one stored: all but the set name and the line."""
    return (row[1], row[3], row[4], row[5], row[6])


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


#: (prompt id, text, request JSON, category, tags JSON) of a prompt to add.
PromptContent = tuple[str, str, str, str | None, str]


def check_prompts(db: Database, name: str, prompts: Sequence[PromptContent]) -> set[str]:
    """The ids of `prompts` not stored in set `name` yet; SetConflict if any stored one differs."""
    stored = {
        row[0]: row
        for row in db.execute("SELECT prompt_id, text, request, category, tags FROM set_prompts WHERE set_name = ?",
                              [name])
    }
    changed = []
    for prompt in prompts:
        old = stored.get(prompt[0])
        if old is not None and tuple(old) != prompt:
            changed.append(f"{prompt[0]!r} ({_difference(old, prompt)})")
    if changed:
        shown = "; ".join(changed[:5]) + (f"; and {len(changed) - 5} more" if len(changed) > 5 else "")
        raise SetConflict(
            f"the set {name!r} is stored with other content for {len(changed)} prompt(s): {shown}. A stored set "
            "never changes: keep the prompts and options it was generated with, or store the new ones under "
            "another name (--set NEW_NAME)"
        )
    return {prompt[0] for prompt in prompts if prompt[0] not in stored}


def _difference(old: Sequence[Any], new: Sequence[Any]) -> str:
    if old[1] != new[1]:
        return "its text"
    if old[3] != new[3] or old[4] != new[4]:
        return "its category or tags"
    before, after = json.loads(old[2]), json.loads(new[2])
    keys = sorted(key for key in {*before, *after} if before.get(key) != after.get(key))
    return ", ".join(f"{key} {_short(before.get(key))} -> {_short(after.get(key))}" for key in keys)


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


def set_infos(store: Store) -> list[SetInfo]:
    """Every stored set, by name, with its counts."""
    with store._read() as db:
        return _infos(db, None)


def set_info(store: Store, name: str) -> SetInfo:
    """The stored set `name`, or UnknownSet naming the sets there are."""
    with store._read() as db:
        found = _infos(db, name)
        if found:
            return found[0]
        names = [row[0] for row in db.execute("SELECT name FROM prompt_sets ORDER BY name")]
    there = f"stored sets: {', '.join(names)}" if names else "no set is stored yet"
    raise UnknownSet(f"there is no prompt set {name!r} in {store.path} ({there}): generate it with "
                     "`python app.py generate --prompts FILE`, or import its bundle")


def _infos(db: Database, name: str | None) -> list[SetInfo]:
    where, params = ("WHERE s.name = ?", [name]) if name is not None else ("", [])
    rows = db.execute(
        "SELECT s.name, s.created_at, s.source, "
        "(SELECT COUNT(*) FROM set_prompts p WHERE p.set_name = s.name), "
        "(SELECT COUNT(*) FROM set_answers a WHERE a.set_name = s.name AND a.error IS NULL), "
        "(SELECT COUNT(*) FROM set_answers a WHERE a.set_name = s.name AND a.error IS NOT NULL "
        "AND a.error_kind IS NOT 'UnsupportedInput'), "
        "(SELECT COUNT(*) FROM set_judgments j WHERE j.set_name = s.name), "
        "(SELECT json_group_array(DISTINCT variant) FROM set_answers a WHERE a.set_name = s.name) "
        f"FROM prompt_sets s {where} ORDER BY s.name",
        params,
    ).fetchall()
    return [
        SetInfo(name, created_at, source, prompts, answers, failed, judgments, tuple(sorted(json.loads(variants))))
        for name, created_at, source, prompts, answers, failed, judgments, variants in rows
    ]


def read_prompts(store: Store, name: str) -> list[StoredPrompt]:
    """The prompts of set `name` in file order."""
    with store._read() as db:
        return _prompts(db, name)


def _prompts(db: Database, name: str, prompt_id: str | None = None) -> list[StoredPrompt]:
    """The prompts of set `name` in file order (only `prompt_id`'s, if given)."""
    where, params = ("set_name = ?", [name]) if prompt_id is None else ("set_name = ? AND prompt_id = ?",
                                                                         [name, prompt_id])
    return [
        StoredPrompt(name, prompt_id, line, text, json.loads(request), category, tuple(json.loads(tags)))
        for prompt_id, line, text, request, category, tags in db.execute(
            f"SELECT prompt_id, line, text, request, category, tags FROM set_prompts WHERE {where} "
            "ORDER BY line, prompt_id",
            params,
        )
    ]


def read_requests(store: Store, name: str) -> list[tuple[StoredPrompt, Request]]:
    """Each prompt of set `name` with the Request it is generated from (media read back by hash)."""
    with store._read() as db:
        prompts = _prompts(db, name)
        hashes = {item["sha256"] for p in prompts for kind in ("images", "audio") for item in p.request[kind]}
        media = _media(db, hashes)
    return [(prompt, request_of(prompt.request, media)) for prompt in prompts]


def read_media(store: Store, hashes: Iterable[str]) -> dict[str, Media]:
    """The stored attachments among `hashes`, by hash (those not stored are left out)."""
    with store._read() as db:
        return _media(db, set(hashes))


def _media(db: Database, hashes: set[str]) -> dict[str, Media]:
    found: dict[str, Media] = {}
    ordered = sorted(hashes)
    for start in range(0, len(ordered), 500):  # SQLite caps the parameters of one statement
        chunk = ordered[start : start + 500]
        for sha, kind, mime, data in db.execute(
            f"SELECT sha256, kind, mime, data FROM media WHERE sha256 IN ({', '.join('?' * len(chunk))})", chunk
        ):
            found[sha] = Media(kind=kind, data=data, mime=mime)
    return found


def request_of(described: dict[str, Any], media: dict[str, Media]) -> Request:
    """A Request back from `Request.describe()` and the media it names."""

    def attached(kind: str) -> tuple[Media, ...]:
        found = []
        for item in described[kind]:
            if item["sha256"] not in media:
                raise UsageError(f"the media {item['sha256'][:12]}... of a stored prompt is missing from the "
                                 "database: import the set's bundle again")
            found.append(Media(kind=media[item["sha256"]].kind, data=media[item["sha256"]].data, mime=item["mime"],
                               name=item.get("name", "")))
        return tuple(found)

    return Request(
        prompt=described["prompt"],
        system=described.get("system"),
        images=attached("images"),
        audio=attached("audio"),
        max_new_tokens=described["max_new_tokens"],
        temperature=described["temperature"],
        top_p=described["top_p"],
        top_k=described.get("top_k"),
        seed=described.get("seed"),
        thinking=described.get("thinking", False),
        tools=tuple(Tool.from_json(tool) for tool in described.get("tools", [])),
    )


# -- answers ----------------------------------------------------------------------------------


def answered(store: Store, name: str) -> set[tuple[str, str, int]]:
    """(prompt id, variant, repeat) of every answer of set `name` that succeeded: not asked again."""
    with store._read() as db:
        return {
            (prompt_id, variant, repeat)
            for prompt_id, variant, repeat in db.execute(
                "SELECT prompt_id, variant, repeat FROM set_answers WHERE set_name = ? AND error IS NULL", [name]
            )
        }


def refused(store: Store, name: str) -> set[tuple[str, str, int]]:
    """(prompt id, variant, repeat) of the prompts of set `name` a variant cannot take (their
    media): recorded once as an attempt with error kind UnsupportedInput, and not asked again."""
    with store._read() as db:
        return {
            (prompt_id, variant, repeat)
            for prompt_id, variant, repeat in db.execute(
                "SELECT prompt_id, variant, repeat FROM set_answers WHERE set_name = ? "
                "AND error_kind = 'UnsupportedInput'", [name]
            )
        }


def record_answer(
    store: Store, name: str, prompt_id: str, variant: str, spec: str | None, repeat: int, seed: int | None,
    result: Result,
) -> int:
    """Commit one answer (or failed attempt) on its own, so a killed run loses only the ones in
    flight; return its id. An answer that names a model family or maker is kept, with the words
    (never shown blind)."""
    words = identity_words(result.text, result.thinking)
    row = answer_values(name, prompt_id, variant, spec, repeat, seed, time.time(), result, words)
    return store.write(lambda db: insert_answer(db, row))


def answer_values(
    name: str, prompt_id: str, variant: str, spec: str | None, repeat: int, seed: int | None, recorded_at: float,
    result: Result, words: Sequence[str],
) -> tuple[Any, ...]:
    """The values of a set_answers row (without its id), in `_ANSWER_COLUMNS` order."""
    stats = result.stats.to_json()
    return (
        name, prompt_id, variant, spec, repeat, seed, recorded_at, result.text, result.thinking,
        json.dumps([call.to_json() for call in result.tool_calls], ensure_ascii=False), result.error,
        result.error_kind, *(int(stats[c]) if c == "stalled" else stats[c] for c in STAT_COLUMNS),
        json.dumps(stats["server"]), json.dumps(list(words), ensure_ascii=False) if words else None,
    )


def insert_answer(db: Database, values: tuple[Any, ...]) -> int:
    cursor = db.conn.execute(
        f"INSERT INTO set_answers ({', '.join(_ANSWER_COLUMNS[1:])}) VALUES ({', '.join('?' * len(values))})",
        values,
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def read_answers(store: Store, name: str, *, failed: bool = False) -> list[StoredAnswer]:
    """The answers of set `name` that succeeded (with `failed`: every attempt), by id."""
    with store._read() as db:
        return _answers(db, "a.set_name = ?" + ("" if failed else " AND a.error IS NULL"), [name])


def _answers(db: Database, where: str, params: Sequence[Any]) -> list[StoredAnswer]:
    columns = ", ".join(f"a.{column}" for column in _ANSWER_COLUMNS)
    return [answer_of(row) for row in db.execute(f"SELECT {columns} FROM set_answers a WHERE {where} ORDER BY a.id",
                                                  list(params))]


def answer_of(row: Sequence[Any]) -> StoredAnswer:
    value = dict(zip(_ANSWER_COLUMNS, row, strict=True))
    figures: dict[str, Any] = {c: bool(value[c]) if c == "stalled" else value[c] for c in STAT_COLUMNS}
    stats = Stats(**figures, server=json.loads(value["server"]))
    calls = tuple(ToolCall(call["name"], call["arguments"]) for call in json.loads(value["tool_calls"]))
    result = Result(value["variant"], value["text"], value["thinking"], calls, stats, value["error"],
                    value["error_kind"])
    words = tuple(json.loads(value["identity_words"])) if value["identity_words"] else ()
    return StoredAnswer(value["id"], value["set_name"], value["prompt_id"], value["variant"], value["spec"],
                        value["repeat"], value["seed"], value["recorded_at"], result, words)


# -- judging -----------------------------------------------------------------------------------


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

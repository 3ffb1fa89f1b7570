"""Prompt sets in the votes database: their prompts and every variant's answers (the judged
pairs are `storage.judgments`).

Functions over a `Store`: writes go through its writer (`Store.write`: group commit, and the
journal for what a judgment stores as a battle), reads through a read snapshot. The tables are
m005's (`storage.migrations`).

- A set is stored once; running `generate` again adds the prompts new to the file (after bad
  rows were fixed, say) and refuses a prompt whose id is stored with other content.
- Each answer is committed alone as it finishes, so a killed run loses only the answers being
  generated; a failed attempt is kept as a record, and tried again by the next run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlite_utils import Database

from arena.errors import UsageError
from arena.identity import identity_words
from arena.measure import Result, Stats
from arena.prompt_sets import SetPrompt, labels_of
from backends.base import Media, Request, ToolCall
from storage.queries import STAT_COLUMNS, stored_request
from storage.records import insert_media

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
    return [(prompt, stored_request(prompt.request, media, _missing_media)) for prompt in prompts]


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


def _missing_media(item: Mapping[str, Any]) -> None:
    raise UsageError(f"the media {item['sha256'][:12]}... of a stored prompt is missing from the database: "
                     "import the set's bundle again")


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

"""The votes database's schema, as append-only numbered migrations (`sqlite_utils.Migrations`).

Never edit or reorder an applied migration: append `m002_...` and so on. `tests/test_store_schema.py`
pins the resulting schema, so every change to it is deliberate.

Records are append-only, and triggers make SQLite itself refuse an UPDATE or DELETE: a battle's
phase is derived, never stored (served until every side has a run; errored if a run has an error;
finished otherwise), and a vote is one row per battle.

m002 adds `identity_flags`: one row per run whose answer or thinking names a model family or
maker (`arena.identity`), with the words found. A battle with any such row is flagged, and
ratings leave it out unless asked. Runs recorded before m002 are checked once, when it is applied.

m003 adds to `runs` the figures that make memory and timings honest: `request_peak_bytes` (the
request's peak above what was in use before it; the variant's own memory is weights + this),
`queue_wait_s` (time waiting in line for the engine, apart from TTFT) and `stalled` (a long gap
between chunks, or a timeout). Older runs keep NULL and 0: their `peak_memory_bytes` was the
worker's lifetime peak (`memory_kind` rss-peak, cuda-peak), not the model's own.

m004 adds conversations of several turns. Each turn is a battle of its own, with `parent_id`
naming the turn before it (NULL for a first turn) and `turn` its number (1 for a first turn; every
battle stored before m004 is one). Every variant of a later turn is a side of the turn before it
that answered there (matched by name: a variant that failed a turn is left out of the later
ones), so a side's conversation is each turn's prompt and that side's answer, following
`parent_id` back. Regenerating a turn stores a sibling: another battle with the same
parent. A vote is on one turn's battle and covers the conversation up to it. `media` keeps the
bytes of attachments by SHA-256 (the stored requests name them by hash), so a conversation can be
continued after a reload, and a prompt set's media exported.

m005 adds prompt sets (`storage.sets`): `prompt_sets` (one row per set: its name, when, and the
file it was first read from), `set_prompts` (each prompt: its id and line in the file, text,
request as JSON with media by hash and the generation options, category and tags; a prompt id is
stored once, and the same id with other content is refused), `set_answers` (every attempt of a
variant at a prompt, numbered by `repeat`, with its seed, the run's fields and stats as `runs`
has them, and the model names it contains (`arena.identity`); each is committed alone as it
finishes; the partial unique index keeps one successful answer per set, prompt, variant and
repeat, while failed attempts stay as records and are tried again) and `set_judgments` (the link
from a judged pair's blind battle, source 'set', to its set, prompt and two answers, and its
judge; the unique index on the unordered pair and the judge: a judge judges a pair once).
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from arena.errors import StorageError
from arena.identity import identity_words
from storage.db import write_transaction

migrations = Migrations("gemma_arena")

_INITIAL = [
    """
    CREATE TABLE battles (
        id TEXT PRIMARY KEY,
        created_at REAL NOT NULL,
        mode TEXT NOT NULL CHECK (mode IN ('blind', 'named')),
        voter TEXT,
        sides INTEGER NOT NULL CHECK (sides BETWEEN 2 AND 8),
        prompt TEXT NOT NULL,
        request TEXT NOT NULL,
        has_image INTEGER NOT NULL CHECK (has_image IN (0, 1)),
        has_audio INTEGER NOT NULL CHECK (has_audio IN (0, 1)),
        source TEXT NOT NULL,
        source_ref TEXT,
        language TEXT
    )""",
    """
    CREATE TABLE sides (
        battle_id TEXT NOT NULL REFERENCES battles (id),
        position INTEGER NOT NULL CHECK (position >= 0),
        variant TEXT NOT NULL,
        spec TEXT,
        PRIMARY KEY (battle_id, position),
        UNIQUE (battle_id, variant)
    )""",
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        battle_id TEXT NOT NULL,
        position INTEGER NOT NULL,
        recorded_at REAL NOT NULL,
        text TEXT NOT NULL,
        thinking TEXT NOT NULL,
        tool_calls TEXT NOT NULL,
        error TEXT,
        error_kind TEXT,
        ttft_s REAL,
        tokens_per_s REAL,
        total_s REAL,
        input_tokens INTEGER,
        output_tokens INTEGER,
        peak_memory_bytes INTEGER,
        load_s REAL,
        weights_bytes INTEGER,
        memory_kind TEXT NOT NULL,
        token_source TEXT NOT NULL,
        server TEXT NOT NULL,
        UNIQUE (battle_id, position),
        FOREIGN KEY (battle_id, position) REFERENCES sides (battle_id, position)
    )""",
    """
    CREATE TABLE votes (
        id INTEGER PRIMARY KEY,
        battle_id TEXT NOT NULL UNIQUE REFERENCES battles (id),
        created_at REAL NOT NULL,
        voter TEXT,
        outcome TEXT CHECK (outcome IN ('a', 'b', 'tie', 'both_bad')),
        best INTEGER,
        ranking TEXT,
        CHECK ((outcome IS NOT NULL) + (best IS NOT NULL) + (ranking IS NOT NULL) = 1)
    )""",
    "CREATE INDEX votes_by_time ON votes (created_at, id)",
]

APPEND_ONLY_TABLES = ("battles", "sides", "runs", "votes")  # m001's; m002 adds identity_flags


@migrations()
def m001_initial(db: Database) -> None:
    for statement in _INITIAL:
        db.execute(textwrap.dedent(statement).strip())
    for table in APPEND_ONLY_TABLES:
        for action in ("UPDATE", "DELETE"):
            _append_only(db, table, action)


_IDENTITY_FLAGS = """
    CREATE TABLE identity_flags (
        battle_id TEXT NOT NULL,
        position INTEGER NOT NULL,
        words TEXT NOT NULL,
        PRIMARY KEY (battle_id, position),
        FOREIGN KEY (battle_id, position) REFERENCES runs (battle_id, position)
    )"""


@migrations()
def m002_identity_flags(db: Database) -> None:
    db.execute(textwrap.dedent(_IDENTITY_FLAGS).strip())
    for action in ("UPDATE", "DELETE"):
        _append_only(db, "identity_flags", action)
    # the runs already stored are checked once, here
    flags = [
        (battle_id, position, json.dumps(words, ensure_ascii=False))
        for battle_id, position, text, thinking in db.execute("SELECT battle_id, position, text, thinking FROM runs")
        if (words := identity_words(text, thinking))
    ]
    db.conn.executemany("INSERT INTO identity_flags (battle_id, position, words) VALUES (?, ?, ?)", flags)


@migrations()
def m003_run_memory_and_waits(db: Database) -> None:
    # ADD COLUMN rewrites no row, so the append-only triggers are not involved
    db.execute("ALTER TABLE runs ADD COLUMN request_peak_bytes INTEGER")
    db.execute("ALTER TABLE runs ADD COLUMN queue_wait_s REAL")
    db.execute("ALTER TABLE runs ADD COLUMN stalled INTEGER NOT NULL DEFAULT 0 CHECK (stalled IN (0, 1))")


_MEDIA = """
    CREATE TABLE media (
        sha256 TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('image', 'audio')),
        mime TEXT NOT NULL,
        data BLOB NOT NULL
    )"""


@migrations()
def m004_conversations(db: Database) -> None:
    db.execute("ALTER TABLE battles ADD COLUMN parent_id TEXT REFERENCES battles (id)")
    db.execute("ALTER TABLE battles ADD COLUMN turn INTEGER NOT NULL DEFAULT 1 CHECK (turn >= 1)")
    db.execute("CREATE INDEX battles_by_parent ON battles (parent_id)")
    db.execute("CREATE INDEX battles_by_voter ON battles (voter, created_at)")
    db.execute("CREATE INDEX battles_by_time ON battles (created_at)")  # everyone's history, for admins
    db.execute(textwrap.dedent(_MEDIA).strip())
    for action in ("UPDATE", "DELETE"):
        _append_only(db, "media", action)


_PROMPT_SETS = [
    """
    CREATE TABLE prompt_sets (
        name TEXT PRIMARY KEY,
        created_at REAL NOT NULL,
        source TEXT NOT NULL
    )""",
    """
    CREATE TABLE set_prompts (
        set_name TEXT NOT NULL REFERENCES prompt_sets (name),
        prompt_id TEXT NOT NULL,
        line INTEGER NOT NULL,
        text TEXT NOT NULL,
        request TEXT NOT NULL,
        category TEXT,
        tags TEXT NOT NULL,
        PRIMARY KEY (set_name, prompt_id)
    )""",
    """
    CREATE TABLE set_answers (
        id INTEGER PRIMARY KEY,
        set_name TEXT NOT NULL,
        prompt_id TEXT NOT NULL,
        variant TEXT NOT NULL,
        spec TEXT,
        repeat INTEGER NOT NULL CHECK (repeat >= 0),
        seed INTEGER,
        recorded_at REAL NOT NULL,
        text TEXT NOT NULL,
        thinking TEXT NOT NULL,
        tool_calls TEXT NOT NULL,
        error TEXT,
        error_kind TEXT,
        ttft_s REAL,
        tokens_per_s REAL,
        total_s REAL,
        input_tokens INTEGER,
        output_tokens INTEGER,
        peak_memory_bytes INTEGER,
        load_s REAL,
        weights_bytes INTEGER,
        memory_kind TEXT NOT NULL,
        token_source TEXT NOT NULL,
        server TEXT NOT NULL,
        request_peak_bytes INTEGER,
        queue_wait_s REAL,
        stalled INTEGER NOT NULL DEFAULT 0 CHECK (stalled IN (0, 1)),
        identity_words TEXT,
        FOREIGN KEY (set_name, prompt_id) REFERENCES set_prompts (set_name, prompt_id)
    )""",
    "CREATE UNIQUE INDEX set_answers_once ON set_answers (set_name, prompt_id, variant, repeat) WHERE error IS NULL",
    "CREATE INDEX set_answers_by_set ON set_answers (set_name, id)",
    """
    CREATE TABLE set_judgments (
        battle_id TEXT PRIMARY KEY REFERENCES battles (id),
        set_name TEXT NOT NULL REFERENCES prompt_sets (name),
        prompt_id TEXT NOT NULL,
        answer_a INTEGER NOT NULL REFERENCES set_answers (id),
        answer_b INTEGER NOT NULL REFERENCES set_answers (id),
        judge TEXT NOT NULL,
        CHECK (answer_a != answer_b)
    )""",
    # a judge judges a pair once, whichever side each answer was shown on
    "CREATE UNIQUE INDEX set_judgments_once ON set_judgments (min(answer_a, answer_b), max(answer_a, answer_b), judge)",
    "CREATE INDEX set_judgments_by_set ON set_judgments (set_name)",
]


@migrations()
def m005_prompt_sets(db: Database) -> None:
    for statement in _PROMPT_SETS:
        db.execute(textwrap.dedent(statement).strip())
    for table in ("prompt_sets", "set_prompts", "set_answers", "set_judgments"):
        for action in ("UPDATE", "DELETE"):
            _append_only(db, table, action)


def _append_only(db: Database, table: str, action: str) -> None:
    db.execute(
        f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} are append-only'); END"
    )


class NewerSchema(StorageError):
    """The database was written by a newer Gemma Arena (it has migrations this one lacks)."""


def known_migrations() -> list[str]:
    """The names of every migration this version knows, in order."""
    return [migration.name for migration in migrations.pending(Database(memory=True, execute_plugins=False))]


def apply_migrations(db: Database, path: Path) -> None:
    """Bring the schema up to date, or refuse a database from a newer version.

    All pending migrations run in one write transaction taken up front, so two processes opening
    a fresh file at once cannot both try to create the tables.
    """
    check_not_newer(db, path)
    if not migrations.pending(db):
        return
    with write_transaction(db):
        check_not_newer(db, path)
        migrations.apply(db)


def check_not_newer(db: Database, path: Path) -> None:
    """Raise NewerSchema if `db` has applied migrations this version does not know."""
    known = set(known_migrations())
    unknown = [m.name for m in migrations.applied(db) if m.name not in known]
    if unknown:
        raise NewerSchema(
            f"the votes database {path} was written by a newer Gemma Arena (schema changes "
            f"{', '.join(unknown)} are unknown to this version): upgrade gemma-arena, or point "
            "--db / GEMMA_ARENA_DB at another file"
        )

"""The votes database's schema: pinned, migrated idempotently, and never silently downgraded."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
from sqlite_utils import Database

from arena.settings import Settings
from storage import NewerSchema, open_store
from storage.migrations import known_migrations, migrations

# Changing this string is changing the schema: do it only together with a new migration.
EXPECTED_SCHEMA = """\
CREATE INDEX battles_by_parent ON battles (parent_id);
CREATE INDEX battles_by_time ON battles (created_at);
CREATE INDEX battles_by_voter ON battles (voter, created_at);
CREATE UNIQUE INDEX "idx__sqlite_migrations_migration_set_name"
    ON "_sqlite_migrations" ("migration_set", "name");
CREATE INDEX set_answers_by_set ON set_answers (set_name, id);
CREATE UNIQUE INDEX set_answers_once ON set_answers (set_name, prompt_id, variant, repeat) WHERE error IS NULL;
CREATE INDEX set_judgments_by_set ON set_judgments (set_name);
CREATE UNIQUE INDEX set_judgments_once ON set_judgments (min(answer_a, answer_b), max(answer_a, answer_b), judge);
CREATE INDEX votes_by_time ON votes (created_at, id);
CREATE TABLE "_sqlite_migrations" (
   "id" INTEGER PRIMARY KEY,
   "migration_set" TEXT,
   "name" TEXT,
   "applied_at" TEXT
);
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
, parent_id TEXT REFERENCES battles (id), turn INTEGER NOT NULL DEFAULT 1 CHECK (turn >= 1));
CREATE TABLE identity_flags (
    battle_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    words TEXT NOT NULL,
    PRIMARY KEY (battle_id, position),
    FOREIGN KEY (battle_id, position) REFERENCES runs (battle_id, position)
);
CREATE TABLE media (
    sha256 TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('image', 'audio')),
    mime TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE prompt_sets (
    name TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    source TEXT NOT NULL
);
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
    server TEXT NOT NULL, request_peak_bytes INTEGER, queue_wait_s REAL, stalled INTEGER NOT NULL DEFAULT 0 CHECK (stalled IN (0, 1)),
    UNIQUE (battle_id, position),
    FOREIGN KEY (battle_id, position) REFERENCES sides (battle_id, position)
);
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
);
CREATE TABLE set_judgments (
    battle_id TEXT PRIMARY KEY REFERENCES battles (id),
    set_name TEXT NOT NULL REFERENCES prompt_sets (name),
    prompt_id TEXT NOT NULL,
    answer_a INTEGER NOT NULL REFERENCES set_answers (id),
    answer_b INTEGER NOT NULL REFERENCES set_answers (id),
    judge TEXT NOT NULL,
    CHECK (answer_a != answer_b)
);
CREATE TABLE set_prompts (
    set_name TEXT NOT NULL REFERENCES prompt_sets (name),
    prompt_id TEXT NOT NULL,
    line INTEGER NOT NULL,
    text TEXT NOT NULL,
    request TEXT NOT NULL,
    category TEXT,
    tags TEXT NOT NULL,
    PRIMARY KEY (set_name, prompt_id)
);
CREATE TABLE sides (
    battle_id TEXT NOT NULL REFERENCES battles (id),
    position INTEGER NOT NULL CHECK (position >= 0),
    variant TEXT NOT NULL,
    spec TEXT,
    PRIMARY KEY (battle_id, position),
    UNIQUE (battle_id, variant)
);
CREATE TABLE votes (
    id INTEGER PRIMARY KEY,
    battle_id TEXT NOT NULL UNIQUE REFERENCES battles (id),
    created_at REAL NOT NULL,
    voter TEXT,
    outcome TEXT CHECK (outcome IN ('a', 'b', 'tie', 'both_bad')),
    best INTEGER,
    ranking TEXT,
    CHECK ((outcome IS NOT NULL) + (best IS NOT NULL) + (ranking IS NOT NULL) = 1)
);
CREATE TRIGGER battles_no_delete BEFORE DELETE ON battles BEGIN SELECT RAISE(ABORT, 'battles are append-only'); END;
CREATE TRIGGER battles_no_update BEFORE UPDATE ON battles BEGIN SELECT RAISE(ABORT, 'battles are append-only'); END;
CREATE TRIGGER identity_flags_no_delete BEFORE DELETE ON identity_flags BEGIN SELECT RAISE(ABORT, 'identity_flags are append-only'); END;
CREATE TRIGGER identity_flags_no_update BEFORE UPDATE ON identity_flags BEGIN SELECT RAISE(ABORT, 'identity_flags are append-only'); END;
CREATE TRIGGER media_no_delete BEFORE DELETE ON media BEGIN SELECT RAISE(ABORT, 'media are append-only'); END;
CREATE TRIGGER media_no_update BEFORE UPDATE ON media BEGIN SELECT RAISE(ABORT, 'media are append-only'); END;
CREATE TRIGGER prompt_sets_no_delete BEFORE DELETE ON prompt_sets BEGIN SELECT RAISE(ABORT, 'prompt_sets are append-only'); END;
CREATE TRIGGER prompt_sets_no_update BEFORE UPDATE ON prompt_sets BEGIN SELECT RAISE(ABORT, 'prompt_sets are append-only'); END;
CREATE TRIGGER runs_no_delete BEFORE DELETE ON runs BEGIN SELECT RAISE(ABORT, 'runs are append-only'); END;
CREATE TRIGGER runs_no_update BEFORE UPDATE ON runs BEGIN SELECT RAISE(ABORT, 'runs are append-only'); END;
CREATE TRIGGER set_answers_no_delete BEFORE DELETE ON set_answers BEGIN SELECT RAISE(ABORT, 'set_answers are append-only'); END;
CREATE TRIGGER set_answers_no_update BEFORE UPDATE ON set_answers BEGIN SELECT RAISE(ABORT, 'set_answers are append-only'); END;
CREATE TRIGGER set_judgments_no_delete BEFORE DELETE ON set_judgments BEGIN SELECT RAISE(ABORT, 'set_judgments are append-only'); END;
CREATE TRIGGER set_judgments_no_update BEFORE UPDATE ON set_judgments BEGIN SELECT RAISE(ABORT, 'set_judgments are append-only'); END;
CREATE TRIGGER set_prompts_no_delete BEFORE DELETE ON set_prompts BEGIN SELECT RAISE(ABORT, 'set_prompts are append-only'); END;
CREATE TRIGGER set_prompts_no_update BEFORE UPDATE ON set_prompts BEGIN SELECT RAISE(ABORT, 'set_prompts are append-only'); END;
CREATE TRIGGER sides_no_delete BEFORE DELETE ON sides BEGIN SELECT RAISE(ABORT, 'sides are append-only'); END;
CREATE TRIGGER sides_no_update BEFORE UPDATE ON sides BEGIN SELECT RAISE(ABORT, 'sides are append-only'); END;
CREATE TRIGGER votes_no_delete BEFORE DELETE ON votes BEGIN SELECT RAISE(ABORT, 'votes are append-only'); END;
CREATE TRIGGER votes_no_update BEFORE UPDATE ON votes BEGIN SELECT RAISE(ABORT, 'votes are append-only'); END;"""  # noqa: E501

REPO = Path(__file__).resolve().parent.parent


def schema_of(path: Path) -> str:
    with closing(sqlite3.connect(path)) as conn:
        rows = conn.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY type, name").fetchall()
    return ";\n".join(row[0] for row in rows) + ";"


def applied_migrations(path: Path) -> list[str]:
    with closing(sqlite3.connect(path)) as conn:
        return [row[0] for row in conn.execute("SELECT name FROM _sqlite_migrations ORDER BY id")]


def test_schema_is_pinned(settings: Settings) -> None:
    open_store(settings.db_path).close()
    assert schema_of(settings.db_path) == EXPECTED_SCHEMA


def test_migrations_are_numbered_and_append_only_in_name() -> None:
    names = known_migrations()
    assert names and all(re.fullmatch(r"m\d{3}_[a-z0-9_]+", name) for name in names)
    assert names == sorted(names)


def test_opening_again_applies_nothing_twice_and_keeps_the_schema(settings: Settings) -> None:
    open_store(settings.db_path).close()
    first = schema_of(settings.db_path)
    open_store(settings.db_path).close()
    open_store(settings.db_path).close()
    with Database(settings.db_path) as db:
        migrations.apply(db)
        migrations.apply(db)
    assert schema_of(settings.db_path) == first
    assert applied_migrations(settings.db_path) == known_migrations()


def test_identity_flags_migration_checks_the_runs_stored_before_it(settings: Settings) -> None:
    settings.db_path.parent.mkdir(parents=True)
    with Database(settings.db_path) as db:
        migrations.apply(db, stop_before="m002_identity_flags")  # a database of the version before
        db.execute(
            "INSERT INTO battles (id, created_at, mode, voter, sides, prompt, request, has_image, has_audio, source) "
            "VALUES ('old', 1.0, 'blind', 'ann', 2, 'who are you?', '{}', 0, 0, 'arena')"
        )
        for position, (variant, text) in enumerate([("x", "I am ChatGPT, made by OpenAI."), ("y", "A plain answer.")]):
            db.execute("INSERT INTO sides (battle_id, position, variant) VALUES ('old', ?, ?)", [position, variant])
            db.execute(
                "INSERT INTO runs (battle_id, position, recorded_at, text, thinking, tool_calls, memory_kind, "
                "token_source, server) VALUES ('old', ?, 2.0, ?, '', '[]', '', '', '{}')",
                [position, text],
            )
        db.execute("INSERT INTO votes (battle_id, created_at, voter, outcome) VALUES ('old', 3.0, 'ann', 'a')")
        db.conn.commit()
    with open_store(settings.db_path) as store:
        battle = store.battle("old")
        assert battle is not None and battle.flagged and battle.identity_words == ("ChatGPT", "OpenAI")
        assert store.pair_outcomes() == [] and store.flagged_votes() == 1
        assert len(store.pair_outcomes(include_flagged=True)) == 1
    assert applied_migrations(settings.db_path) == known_migrations()
    with closing(sqlite3.connect(settings.db_path)) as conn, pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM identity_flags")


def test_run_memory_migration_keeps_older_runs_and_their_figures(settings: Settings) -> None:
    settings.db_path.parent.mkdir(parents=True)
    with Database(settings.db_path) as db:
        migrations.apply(db, stop_before="m003_run_memory_and_waits")  # a database of the version before
        db.execute(
            "INSERT INTO battles (id, created_at, mode, voter, sides, prompt, request, has_image, has_audio, source) "
            "VALUES ('old', 1.0, 'named', 'ann', 2, 'hi', '{}', 0, 0, 'arena')"
        )
        for position in range(2):
            db.execute("INSERT INTO sides (battle_id, position, variant) VALUES ('old', ?, ?)",
                       [position, f"v{position}"])
            db.execute(
                "INSERT INTO runs (battle_id, position, recorded_at, text, thinking, tool_calls, peak_memory_bytes, "
                "memory_kind, token_source, server) VALUES ('old', ?, 2.0, 'a', '', '[]', 800, 'rss-peak', '', '{}')",
                [position],
            )
        db.conn.commit()
    with open_store(settings.db_path) as store:
        assert [s.median_peak_memory_bytes for s in store.speed_by_variant()] == [800, 800]
    with closing(sqlite3.connect(settings.db_path)) as conn:
        rows = conn.execute("SELECT request_peak_bytes, queue_wait_s, stalled FROM runs").fetchall()
        assert rows == [(None, None, 0), (None, None, 0)]
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("UPDATE runs SET stalled = 1")


def test_database_from_a_newer_version_is_refused_untouched(settings: Settings) -> None:
    open_store(settings.db_path).close()
    with closing(sqlite3.connect(settings.db_path)) as conn, conn:
        conn.execute(
            "INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
            "VALUES ('gemma_arena', 'm999_from_the_future', '2030-01-01')"
        )
    before = schema_of(settings.db_path)
    with pytest.raises(NewerSchema, match=r"newer Gemma Arena.*m999_from_the_future.*upgrade gemma-arena"):
        open_store(settings.db_path)
    assert schema_of(settings.db_path) == before


# Imports once, then for each round: says it is ready, waits for that round's go file, opens that
# round's new database file the moment it appears, and says how it went.
OPEN_ON_SIGNAL = """
import os, sys, time
from storage import open_store
folder, rounds = sys.argv[1], int(sys.argv[2])
for n in range(rounds):
    print("ready", flush=True)
    while not os.path.exists(os.path.join(folder, f"go-{n}")):
        time.sleep(0.0002)
    try:
        open_store(os.path.join(folder, f"fresh-{n}.db")).close()
        print("ok", flush=True)
    except Exception as exc:
        print(f"failed: {type(exc).__name__}: {exc}", flush=True)
"""
PROCESSES, ROUNDS = 16, 20


def test_processes_opening_a_fresh_file_at_once_create_the_schema_once(tmp_path: Path) -> None:
    """Switching a new file to WAL answers BUSY at once while another connection holds a lock,
    which failed 1 opening in 4 of 6 processes before it was retried (storage/db.py)."""
    children = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_ON_SIGNAL, str(tmp_path), str(ROUNDS)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    failures = []
    try:
        for n in range(ROUNDS):
            for child in children:
                assert child.stdout is not None and child.stdout.readline() == "ready\n", child.stderr
            (tmp_path / f"go-{n}").touch()
            outcomes = [child.stdout.readline().strip() for child in children if child.stdout is not None]
            failures += [f"round {n}: {outcome}" for outcome in outcomes if outcome != "ok"]
            path = tmp_path / f"fresh-{n}.db"
            assert applied_migrations(path) == known_migrations()
            assert schema_of(path) == EXPECTED_SCHEMA
    finally:
        for child in children:
            child.kill()
            child.communicate()
    assert failures == [], f"{len(failures)} of {PROCESSES * ROUNDS} openings failed: {failures[:5]}"

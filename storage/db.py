"""Opening the votes database and turning SQLite's failures into errors a user can act on.

Every connection gets the same pragmas: WAL (readers never block the writer), `synchronous=FULL`
(a committed transaction survives a crash or power cut, so an acknowledged vote is durable),
foreign keys on, and a busy timeout so concurrent writers wait for each other instead of failing.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlite_utils import Database

from arena.errors import StorageError

DEFAULT_BUSY_TIMEOUT_S = 5.0


class StoreBusy(StorageError):
    """Another program held the database locked for longer than the busy timeout."""


class StoreReadOnly(StorageError):
    """The database file or its folder cannot be written."""


class StoreUnavailable(StorageError):
    """The database cannot be opened or is damaged."""


def connect(path: Path, *, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S) -> Database:
    """A new connection to `path` with the store's pragmas. Use it from one thread only.

    `check_same_thread` is off only so that `Store.close()` can close every thread's connection.
    """
    with sqlite_errors(path):
        conn = sqlite3.connect(str(path), timeout=busy_timeout_s, check_same_thread=False)
        try:
            db = Database(conn, execute_plugins=False)
            db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            db.enable_wal()
            db.execute("PRAGMA synchronous = FULL")
            db.execute("PRAGMA foreign_keys = ON")
        except BaseException:
            conn.close()
            raise
    return db


@contextmanager
def write_transaction(db: Database) -> Iterator[Database]:
    """BEGIN IMMEDIATE ... COMMIT: take the write lock up front, so a transaction that reads
    before it writes never fails midway because another writer committed in between."""
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        if db.conn.in_transaction:
            db.conn.execute("ROLLBACK")
        raise
    db.conn.execute("COMMIT")


@contextmanager
def read_snapshot(db: Database) -> Iterator[Database]:
    """One read transaction, so several queries see the same committed state."""
    db.conn.execute("BEGIN")
    try:
        yield db
    finally:
        if db.conn.in_transaction:
            db.conn.execute("COMMIT")


@contextmanager
def sqlite_errors(path: Path) -> Iterator[None]:
    """Re-raise SQLite's errors as StorageError subclasses whose message says what to do."""
    try:
        yield
    except sqlite3.Error as exc:
        raise describe_error(exc, path) from exc


def describe_error(exc: sqlite3.Error, path: Path) -> StorageError:
    """The StorageError a user should see for `exc` raised while using the database at `path`."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = None if code is None else code & 0xFF
    text = str(exc)
    if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "locked" in text:
        return StoreBusy(
            f"the votes database {path} stayed locked by another program past the busy timeout: "
            "close the other program (or wait for it) and try again"
        )
    if primary == sqlite3.SQLITE_READONLY or "readonly" in text or _read_only(path):
        return StoreReadOnly(
            f"the votes database {path} is read-only (the file or its folder cannot be written): "
            "make it writable, or point --db / GEMMA_ARENA_DB at a writable file"
        )
    if primary == sqlite3.SQLITE_CANTOPEN:
        return StoreUnavailable(
            f"cannot open the votes database {path}: check that its folder exists and is writable, "
            "or point --db / GEMMA_ARENA_DB elsewhere"
        )
    if primary in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return StoreUnavailable(
            f"{path} is not a Gemma Arena votes database or is damaged ({text}): "
            "point --db at the right file, or restore it from a backup"
        )
    if primary == sqlite3.SQLITE_FULL:
        return StoreUnavailable(f"the disk holding {path} is full: free some space and try again")
    return StoreUnavailable(f"the votes database {path} failed: {text}")


def _read_only(path: Path) -> bool:
    """Whether an existing database file, or its folder (where WAL keeps its files), is read-only."""
    return path.exists() and not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK))

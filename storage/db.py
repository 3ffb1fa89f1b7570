"""Opening the votes database and turning SQLite's failures into errors a user can act on.

Every connection gets the same pragmas: WAL (readers never block the writer), `synchronous=FULL`
(a committed transaction survives a crash or power cut, so an acknowledged vote is durable),
foreign keys on, and a busy timeout so concurrent writers wait for each other instead of failing.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# sqlite_utils imports pandas whenever it is installed (gradio installs it), only to store pandas
# values, which this project never passes; that import alone added ~0.2 s to the start of every
# command (`leaderboard --battles` included). So sqlite_utils is imported with pandas hidden,
# unless something has loaded pandas already; code that imports pandas later gets it as usual.
_HIDE_PANDAS = "pandas" not in sys.modules
if _HIDE_PANDAS:
    sys.modules["pandas"] = None  # type: ignore[assignment]  # `import pandas` raises ImportError
try:
    from sqlite_utils import Database
finally:
    if _HIDE_PANDAS:
        del sys.modules["pandas"]

from arena.errors import StorageError  # noqa: E402

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
            _enable_wal(db, deadline=time.monotonic() + busy_timeout_s)
            db.execute("PRAGMA synchronous = FULL")
            db.execute("PRAGMA foreign_keys = ON")
        except BaseException:
            conn.close()
            raise
    return db


def _enable_wal(db: Database, *, deadline: float) -> None:
    """Switch a new file to WAL, waiting for other connections as a write would.

    The switch needs the file to itself, and SQLite answers it with SQLITE_BUSY at once, without
    calling the busy handler, while any other connection holds a lock. That happens whenever
    several processes open a new file together (each one's first statements hold a shared lock):
    1 opening in 4 failed with 6 processes. So it is retried until the busy timeout, as the busy
    handler would. Once the file is in WAL mode (a setting kept in the file) this returns at once.
    """
    while True:
        try:
            db.enable_wal()
            return
        except sqlite3.OperationalError as exc:
            if not _busy(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.005)


def _busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return (code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)) or "locked" in str(exc)


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
    if _busy(exc):
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

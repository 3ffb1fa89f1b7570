"""How write jobs reach the database: one commit per job, or group commit.

A job is a function `(db) -> value` that writes inside the transaction it is given. `run(job)`
returns only after the transaction holding the job has committed (with `synchronous=FULL`), so a
returned value is durable.

Group commit: callers in many threads hand their jobs to one writer thread, which runs every job
waiting in the queue inside one transaction (each in its own savepoint, so a rejected job undoes
only itself), commits once, then wakes each caller. One fsync is shared by the whole batch.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Protocol, TypeVar

from sqlite_utils import Database

from arena.errors import StorageError
from storage.db import describe_error, write_transaction

T = TypeVar("T")
Job = Callable[[Database], T]


class Writer(Protocol):
    def run(self, job: Job[T]) -> T:
        """Run `job` in a write transaction; return its value once that transaction committed."""
        ...

    def close(self) -> None: ...


class DirectWriter:
    """One transaction and one commit per job, on the calling thread's own connection."""

    def __init__(self, connection: Callable[[], Database], path: Path) -> None:
        self._connection = connection
        self._path = path

    def run(self, job: Job[T]) -> T:
        try:
            with write_transaction(self._connection()) as db:
                return job(db)
        except sqlite3.Error as exc:
            raise describe_error(exc, self._path) from exc

    def close(self) -> None:
        """Nothing to stop: connections belong to the store."""


class _Task:
    __slots__ = ("future", "job")

    def __init__(self, job: Job[object]) -> None:
        self.job = job
        self.future: Future[object] = Future()


_STOP = object()


class GroupCommitWriter:
    """One writer thread that commits queued jobs in batches of up to `max_batch`."""

    def __init__(self, connect: Callable[[], Database], path: Path, *, max_batch: int = 512) -> None:
        self._connect = connect
        self._path = path
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    def run(self, job: Job[T]) -> T:
        task = _Task(job)
        with self._lock:
            if self._closed:
                raise StorageError("the vote store is closed: open it again to record more")
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="gemma-arena-writer", daemon=True)
                self._thread.start()
            self._queue.put(task)
        return task.future.result()  # type: ignore[return-value]

    def close(self) -> None:
        """Finish the queued jobs, then stop the writer thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
            self._queue.put(_STOP)
        if thread is not None:
            thread.join()

    def _loop(self) -> None:
        db: Database | None = None
        tasks: list[_Task] = []
        try:
            while True:
                first = self._queue.get()
                if first is _STOP:
                    return
                batch = [first]
                while len(batch) < self._max_batch:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        self._queue.put(_STOP)  # stop after this batch
                        break
                    batch.append(item)
                tasks = [task for task in batch if isinstance(task, _Task)]
                try:
                    if db is None:
                        db = self._connect()
                    self._commit(db, tasks)
                except Exception as exc:  # the batch failed as a whole: nothing in it committed
                    self._fail(tasks, exc)
        finally:
            # Whatever ended the thread, no caller may wait forever on a job it will not run.
            with self._lock:
                self._closed = True
            leftovers = list(tasks)
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(item, _Task):
                    leftovers.append(item)
            self._fail(leftovers, StorageError("the vote store's writer stopped"))
            if db is not None:
                db.close()

    def _fail(self, tasks: list[_Task], exc: Exception) -> None:
        for task in tasks:
            if not task.future.done():
                task.future.set_exception(self._batch_error(exc))

    def _batch_error(self, exc: Exception) -> StorageError:
        """A fresh error per caller (one exception object must not be raised in many threads)."""
        if isinstance(exc, sqlite3.Error):
            return describe_error(exc, self._path)
        return StorageError(f"recording to {self._path} failed: {exc}")

    def _commit(self, db: Database, tasks: list[_Task]) -> None:
        conn = db.conn
        results: list[tuple[_Task, object]] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for task in tasks:
                conn.execute("SAVEPOINT job")
                try:
                    value = task.job(db)
                except Exception as exc:
                    if not conn.in_transaction:
                        raise  # the error ended the whole transaction: fail the batch
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    task.future.set_exception(
                        describe_error(exc, self._path) if isinstance(exc, sqlite3.Error) else exc
                    )
                else:
                    conn.execute("RELEASE job")
                    results.append((task, value))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        for task, value in results:  # acknowledged only now, after COMMIT returned
            task.future.set_result(value)

"""The app's side of a transformers variant: one worker process per variant, spoken to over a pipe.

Why a process per variant (ARCHITECTURE.md): two models generating in two threads of one process
ran 2-3x slower than one after the other on an H100, while two processes overlapped; a process
also gives per-variant memory figures, crash isolation (an OOM kills the worker, not the app) and
a clean unload (end the process). A reader thread per worker hands each message to the asyncio
queue of the request it belongs to, so the backend works from whichever event loop calls it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import multiprocessing
import signal
import threading
from collections.abc import AsyncIterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from arena.errors import GenerationError, LoadError, WorkerDied
from backends.base import Capabilities, Chunk, LoadReport, MemoryReport, ProgressFn, Request, no_progress
from backends.hf.options import HFOptions
from backends.hf.worker import run_worker

_LOAD = 0  # the message key of the loading phase; requests are numbered from 1


class HFBackend:
    """A transformers model in its own worker process (or thread, with `in_process=true`)."""

    #: A worker that has not stopped this long after a cancel is hung (or stopped) and is ended.
    cancel_grace_s = 5.0

    def __init__(
        self,
        name: str,
        options: HFOptions,
        cache_dir: Path,
        expected: Capabilities | None = None,
    ) -> None:
        self._name = name
        self.options = options
        self._cache_dir = cache_dir
        self._expected = expected or Capabilities()
        self._report: LoadReport | None = None
        self._memory: MemoryReport | None = None
        self._conn: Connection | None = None
        self._process: Any = None  # multiprocessing.Process or threading.Thread
        self._sinks: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Queue[tuple[Any, ...]]]] = {}
        self._sinks_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._dead: str | None = None
        self._closing = False
        self._reapers: set[asyncio.Task[None]] = set()

    @property
    def name(self) -> str:
        return self._name

    @property
    def capabilities(self) -> Capabilities:
        return self._report.capabilities if self._report else self._expected

    @property
    def pid(self) -> int | None:
        """The worker's process id (None for in-process variants and before loading)."""
        return getattr(self._process, "pid", None)

    @property
    def load_report(self) -> LoadReport | None:
        return self._report

    # ----------------------------------------------------------------- loading
    async def load(self, progress: ProgressFn = no_progress) -> LoadReport:
        if self._report is not None:
            return self._report
        parent, child = multiprocessing.Pipe()
        self._conn = parent
        if self.options.in_process:
            self._process = threading.Thread(
                target=run_worker, args=(child, self.options, self._cache_dir, True),
                name=f"variant {self._name}", daemon=True,
            )
        else:
            context = multiprocessing.get_context("spawn")  # fork is unsafe once torch has threads
            self._process = context.Process(
                target=run_worker, args=(child, self.options, self._cache_dir),
                name=f"gemma-arena {self._name}", daemon=True,
            )
        sink = self._open_sink(_LOAD)
        progress(0.0, f"starting worker for {self._name}")
        self._process.start()
        if not self.options.in_process:
            child.close()
        threading.Thread(target=self._read, name=f"reader {self._name}", daemon=True).start()
        try:
            while True:
                message = await sink.get()
                if message[0] == "progress":
                    progress(message[1], message[2])
                elif message[0] == "loaded":
                    self._report, self._memory = message[1], message[2]
                    return self._report
                elif message[0] == "load_error" or message[0] == "died":
                    raise LoadError(f"{self._name} failed to load: {message[1]}")
        except BaseException:
            await self.close()
            raise
        finally:
            self._close_sink(_LOAD)

    # -------------------------------------------------------------- generation
    async def stream(self, request: Request) -> AsyncIterator[Chunk]:
        if self._dead is not None:
            raise WorkerDied(f"{self._name} is not running: {self._dead}. Reload the variant to use it again")
        if self._report is None:
            raise LoadError(f"{self._name} is not loaded yet")
        request_id = next(self._ids)
        sink = self._open_sink(request_id)
        finished = False
        try:
            self._send(("generate", request_id, request))
            while True:
                message = await sink.get()
                kind = message[0]
                if kind == "chunk":
                    yield message[2]
                elif kind == "done":
                    finished = True
                    self._memory = message[3]
                    yield Chunk(usage=message[2])
                    return
                elif kind == "error":
                    finished = True
                    raise GenerationError(message[2])
                elif kind == "died":
                    finished = True
                    raise WorkerDied(f"{self._name} stopped: {message[1]}")
        finally:
            if finished or self._dead is not None:
                self._close_sink(request_id)
            else:  # closed early (stop button, timeout): cancel, and end the worker if it is stuck
                with contextlib.suppress(WorkerDied):
                    self._send(("cancel", request_id))
                task = asyncio.get_running_loop().create_task(self._reap(request_id, sink))
                self._reapers.add(task)
                task.add_done_callback(self._reapers.discard)

    async def _reap(self, request_id: int, sink: asyncio.Queue[tuple[Any, ...]]) -> None:
        try:
            async with asyncio.timeout(self.cancel_grace_s):
                while (await sink.get())[0] not in ("done", "error", "died"):
                    pass
        except TimeoutError:
            self._end_worker(
                f"it did not stop within {self.cancel_grace_s:g} s of a cancel and was ended "
                "(hung or stopped)"
            )
        finally:
            self._close_sink(request_id)

    async def memory(self) -> MemoryReport:
        if self._memory is not None:
            return self._memory
        weights = self._report.weights_bytes if self._report else None
        return MemoryReport(peak_bytes=None, weights_bytes=weights, kind="unknown")

    async def close(self) -> None:
        if self._process is None or self._closing:
            return
        self._closing = True
        if self._dead is None:
            with contextlib.suppress(WorkerDied):
                self._send(("shutdown",))
        process = self._process
        if not self.options.in_process:
            await asyncio.get_running_loop().run_in_executor(None, process.join, 5)
            if process.is_alive():
                process.kill()
                await asyncio.get_running_loop().run_in_executor(None, process.join, 5)
        self._dead = self._dead or "it was unloaded"

    # ---------------------------------------------------------------- plumbing
    def _send(self, message: tuple[Any, ...]) -> None:
        assert self._conn is not None
        try:
            with self._send_lock:
                self._conn.send(message)
        except (BrokenPipeError, OSError) as exc:
            raise WorkerDied(f"{self._name} is not running: {self._dead or 'its worker is gone'}") from exc

    def _open_sink(self, key: int) -> asyncio.Queue[tuple[Any, ...]]:
        queue: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        with self._sinks_lock:
            self._sinks[key] = (asyncio.get_running_loop(), queue)
        return queue

    def _close_sink(self, key: int) -> None:
        with self._sinks_lock:
            self._sinks.pop(key, None)

    def _deliver(self, key: int, message: tuple[Any, ...]) -> None:
        with self._sinks_lock:
            sink = self._sinks.get(key)
        if sink is not None:
            loop, queue = sink
            with contextlib.suppress(RuntimeError):  # that event loop has closed
                loop.call_soon_threadsafe(queue.put_nowait, message)

    def _read(self) -> None:
        assert self._conn is not None
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                break
            key = _LOAD if message[0] in ("progress", "loaded", "load_error") else message[1]
            self._deliver(key, message)
        self._dead = self._dead or self._exit_reason()
        with self._sinks_lock:
            keys = list(self._sinks)
        for key in keys:
            self._deliver(key, ("died", self._dead))

    def _exit_reason(self) -> str:
        if self._closing:
            return "it was unloaded"
        process = self._process
        if self.options.in_process:
            return "its in-process worker thread ended"
        process.join(2)
        code = process.exitcode
        if code is None:
            return "its worker closed the connection"
        if code < 0:
            name = signal.Signals(-code).name
            hint = " (often the system's out-of-memory killer)" if -code == signal.SIGKILL else ""
            return f"its worker process was killed by {name}{hint}"
        return f"its worker process exited with code {code}"

    def _end_worker(self, reason: str) -> None:
        self._dead = reason
        if not self.options.in_process and self._process is not None and self._process.is_alive():
            self._process.kill()

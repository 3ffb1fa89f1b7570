"""The app's side of a transformers variant: one worker process per variant, spoken to over a pipe.

Why a process per variant: two models generating in two threads of one process
ran 2-3x slower than one after the other on an H100, while two processes overlapped; a process
also gives per-variant memory figures, crash isolation (an OOM kills the worker, not the app) and
a clean unload (end the process). A reader thread per worker hands each message to the asyncio
queue of the request it belongs to, so the backend works from whichever event loop calls it.

A worker that stops unexpectedly (the out-of-memory killer, a crash, a hang ended after a cancel)
fails the requests it was serving and is started again after a pause that doubles each time
(`restart_delays_s`); after as many tries as there are pauses without staying up for
`stable_after_s`, the variant is unavailable with the reason. `state` says which, for the UI.
Closing never restarts anything.

With `zero_gpu=true` (a ZeroGPU Space) the worker is a thread of the app, and each answer is one
call of a `@spaces.GPU` generator (`backends.hf.worker.ZeroGPU`), made here, before launch.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import multiprocessing
import signal
import threading
import time
from collections.abc import AsyncIterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from arena.errors import GenerationError, LoadError, WorkerDied
from arena.variant_state import VariantState
from backends.base import Capabilities, Chunk, LoadReport, MemoryReport, ProgressFn, Request, no_progress
from backends.hf.options import HFOptions
from backends.hf.worker import ZeroGPU, run_worker

_LOAD = 0  # the message key of the loading phase; requests are numbered from 1


def _run_worker_process(conn: Connection, options: HFOptions, cache_dir: Path) -> None:
    """A worker process's entry point. Ctrl-C in a terminal reaches the whole process group: the
    app handles it and ends its workers itself, so a worker must not die of it first (mid-answer,
    with a traceback, and looking to the app like a crash to restart from)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    run_worker(conn, options, cache_dir)


class _Worker:
    """One start of a variant's worker: its process (or thread) and pipe. A restart makes a new one."""

    def __init__(self, process: Any, conn: Connection, in_process: bool) -> None:
        self.process = process
        self.conn = conn
        self.in_process = in_process
        self.send_lock = threading.Lock()
        #: Why the app ended it (unloaded; hung after a cancel), set before ending it.
        self.ended: str | None = None
        #: Why it is gone, set once its pipe has closed.
        self.gone: str | None = None
        #: `time.monotonic()` when its model was loaded; None while loading.
        self.ready_at: float | None = None

    @property
    def pid(self) -> int | None:
        return getattr(self.process, "pid", None)

    def kill(self) -> None:
        if not self.in_process and self.process.is_alive():
            self.process.kill()


class HFBackend:
    """A transformers model in its own worker process (or thread, with `in_process=true`)."""

    #: A worker that has not stopped this long after a cancel is hung (or stopped) and is ended.
    cancel_grace_s = 5.0
    #: The pauses before each automatic restart of a worker that stopped; their number caps the tries.
    restart_delays_s: tuple[float, ...] = (1.0, 2.0, 4.0)
    #: A worker that stayed up this long before it stopped starts the count of tries afresh.
    stable_after_s = 60.0
    #: On close, how long a worker gets to stop by itself before it is killed.
    shutdown_grace_s = 2.0

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
        self._worker: _Worker | None = None
        self._state = VariantState("loading", "not started")
        #: Guards the worker's lifecycle: starting one, its end, restarts, closing.
        self._lock = threading.Lock()
        self._closing = False
        self._closed = threading.Event()  # wakes a restart waiting out its pause
        self._restarts = 0  # tries since the worker last stayed up
        self._sinks: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Queue[tuple[Any, ...]], _Worker]] = {}
        self._sinks_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._reapers: set[asyncio.Task[None]] = set()
        #: ZeroGPU's decorated generator: decorated now, as ZeroGPU counts them when Gradio launches.
        self._gpu = ZeroGPU(options.gpu_duration) if options.zero_gpu else None

    @property
    def name(self) -> str:
        return self._name

    @property
    def capabilities(self) -> Capabilities:
        return self._report.capabilities if self._report else self._expected

    @property
    def pid(self) -> int | None:
        """The current worker's process id (None for in-process variants and before loading)."""
        return self._worker.pid if self._worker else None

    @property
    def state(self) -> VariantState:
        """Loading, ready, restarting after its worker stopped, or unavailable (with the reason)."""
        return self._state

    @property
    def load_report(self) -> LoadReport | None:
        return self._report

    # ----------------------------------------------------------------- loading
    async def load(self, progress: ProgressFn = no_progress) -> LoadReport:
        if self._report is not None:
            return self._report
        try:
            self._report = await self._start(progress)
        except BaseException:
            await self.close()
            raise
        return self._report

    async def _start(self, progress: ProgressFn, note: str = "") -> LoadReport:
        """Start a worker and wait until its model is loaded; from then on it serves requests."""
        parent, child = multiprocessing.Pipe()
        if self.options.in_process:
            process: Any = threading.Thread(
                target=run_worker, args=(child, self.options, self._cache_dir, True, self._gpu),
                name=f"variant {self._name}", daemon=True,
            )
        else:
            context = multiprocessing.get_context("spawn")  # fork is unsafe once torch has threads
            process = context.Process(
                target=_run_worker_process, args=(child, self.options, self._cache_dir),
                name=f"gemma-arena {self._name}", daemon=True,
            )
        worker = _Worker(process, parent, self.options.in_process)
        sink = self._open_sink(_LOAD, worker)
        progress(0.0, f"starting worker for {self._name}")
        try:
            with self._lock:  # close() either sees this worker or stops it from starting
                if self._closing:
                    raise LoadError(f"{self._name} was unloaded")
                self._worker = worker
                process.start()
            if not self.options.in_process:
                child.close()
            threading.Thread(target=self._read, args=(worker,), name=f"reader {self._name}", daemon=True).start()
            while True:
                message = await sink.get()
                if message[0] == "progress":
                    progress(message[1], message[2])
                elif message[0] == "loaded":
                    with self._lock:
                        if worker.gone is not None:  # it died right after: _on_death took it as loading
                            raise LoadError(f"{self._name} failed to load: {worker.gone}")
                        worker.ready_at = time.monotonic()
                        self._memory = message[2]
                        if not self._closing:
                            self._state = VariantState("ready", note)
                    return message[1]  # type: ignore[no-any-return]
                elif message[0] == "load_error" or message[0] == "died":
                    raise LoadError(f"{self._name} failed to load: {message[1]}")
        except BaseException:
            worker.ended = worker.ended or "it failed to load"
            worker.kill()
            raise
        finally:
            self._close_sink(_LOAD)

    # -------------------------------------------------------------- generation
    async def stream(self, request: Request) -> AsyncIterator[Chunk]:
        if self._report is None:
            raise LoadError(f"{self._name} is not loaded yet")
        state, worker = self._state, self._worker
        if not state.ready or worker is None:
            raise WorkerDied(self._not_ready(state))
        request_id = next(self._ids)
        sink = self._open_sink(request_id, worker)
        if worker.gone is not None:  # it ended before the sink was open, so no "died" will reach it
            self._close_sink(request_id)
            raise WorkerDied(f"{self._name} stopped: {worker.gone}")
        finished = False
        try:
            self._send(worker, ("generate", request_id, request))
            while True:
                message = await sink.get()
                kind = message[0]
                if kind == "started":  # the worker took it up: the wait in line ends here
                    yield Chunk(started=True)
                elif kind == "chunks":  # several to a message (backends/hf/outbox.py)
                    for chunk in message[2]:
                        yield chunk
                elif kind == "done":
                    finished = True
                    self._memory = message[3]
                    usage = message[2]
                    if usage.memory is None:  # a ZeroGPU answer reports its memory beside the usage
                        usage = dataclasses.replace(usage, memory=message[3])
                    yield Chunk(usage=usage)
                    return
                elif kind == "error":
                    finished = True
                    raise GenerationError(message[2])
                elif kind == "died":
                    finished = True
                    raise WorkerDied(f"{self._name} stopped: {message[1]}")
        finally:
            if finished or worker.gone is not None:
                self._close_sink(request_id)
            else:  # closed early (stop button, timeout): cancel, and end the worker if it is stuck
                with contextlib.suppress(WorkerDied):
                    self._send(worker, ("cancel", request_id))
                task = asyncio.get_running_loop().create_task(self._reap(worker, request_id, sink))
                self._reapers.add(task)
                task.add_done_callback(self._reapers.discard)

    async def _reap(self, worker: _Worker, request_id: int, sink: asyncio.Queue[tuple[Any, ...]]) -> None:
        try:
            async with asyncio.timeout(self.cancel_grace_s):
                while (await sink.get())[0] not in ("done", "error", "died"):
                    pass
        except TimeoutError:
            self._end_worker(
                worker,
                f"it did not stop within {self.cancel_grace_s:g} s of a cancel and was ended (hung or stopped)",
            )
        finally:
            self._close_sink(request_id)

    def _not_ready(self, state: VariantState) -> str:
        if state.phase == "restarting":
            return (f"{self._name} is restarting after its worker stopped ({state.detail}): "
                    "try again in a few seconds")
        if state.phase == "unavailable":
            return f"{self._name} is unavailable: {state.detail}"
        return f"{self._name} is not loaded yet"

    async def memory(self) -> MemoryReport:
        if self._memory is not None:
            return self._memory
        weights = self._report.weights_bytes if self._report else None
        return MemoryReport(peak_bytes=None, weights_bytes=weights, kind="unknown")

    async def close(self) -> None:
        """End the worker: cancel what it runs, ask it to stop, kill it if it has not within
        `shutdown_grace_s`. Pending and future restarts are called off. Idempotent."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            self._closed.set()
            self._state = VariantState("unavailable", "it was unloaded")
            worker = self._worker
        if worker is None:
            return
        worker.ended = worker.ended or "it was unloaded"
        if worker.gone is None:
            with self._sinks_lock:
                running = [key for key, sink in self._sinks.items() if sink[2] is worker and key != _LOAD]
            with contextlib.suppress(WorkerDied):
                for request_id in running:  # an answer being generated stops at its next token
                    self._send(worker, ("cancel", request_id))
                self._send(worker, ("shutdown",))
        if worker.in_process:
            return  # a thread cannot be ended; it stops after its current answer
        if not await _exited(worker.process, self.shutdown_grace_s):
            worker.kill()
            await _exited(worker.process, self.shutdown_grace_s)

    # ---------------------------------------------------------------- restarts
    def _on_death(self, worker: _Worker, reason: str) -> str:
        """What follows the end of `worker`; returns what to tell the requests it was serving."""
        with self._lock:
            if self._closing or worker is not self._worker or worker.ready_at is None:
                return ""  # unloading, or it died while loading: whoever loads it says so
            if time.monotonic() - worker.ready_at >= self.stable_after_s:
                self._restarts = 0
            return self._schedule_restart(reason)

    def _schedule_restart(self, reason: str) -> str:
        """Start the next try after its pause, or give up. Called with the lock held."""
        tries = len(self.restart_delays_s)
        if self._restarts >= tries:
            self._state = VariantState(
                "unavailable",
                f"{reason}; it did not stay up after {tries} automatic restart(s). See the app's log "
                "(free memory if it ran out), then restart the app",
            )
            return "it is not restarted again"
        delay = self.restart_delays_s[self._restarts]
        self._restarts += 1
        self._state = VariantState("restarting", reason, attempt=self._restarts, attempts=tries,
                                   retry_at=time.monotonic() + delay)
        threading.Thread(target=self._restart, args=(delay, reason), name=f"restart {self._name}",
                         daemon=True).start()
        return f"restarting it (try {self._restarts} of {tries})"

    def _restart(self, delay_s: float, reason: str) -> None:
        """One try at starting the worker again, in a thread of its own."""
        if self._closed.wait(delay_s):
            return

        def progress(fraction: float | None, message: str) -> None:
            with self._lock:
                if self._state.phase == "restarting":
                    self._state = dataclasses.replace(self._state, fraction=fraction)

        with self._lock:
            if self._closing:
                return
            self._state = dataclasses.replace(self._state, retry_at=None, fraction=0.0)
        try:
            asyncio.run(self._start(progress, note=f"restarted after: {reason}"))
        except Exception as exc:
            failure = str(exc) if isinstance(exc, LoadError) else f"{self._name}: {type(exc).__name__}: {exc}"
            with self._lock:
                if not self._closing:
                    self._schedule_restart(failure)

    # ---------------------------------------------------------------- plumbing
    def _send(self, worker: _Worker, message: tuple[Any, ...]) -> None:
        try:
            with worker.send_lock:
                worker.conn.send(message)
        except (BrokenPipeError, OSError) as exc:
            raise WorkerDied(f"{self._name} is not running: {worker.gone or 'its worker is gone'}") from exc

    def _open_sink(self, key: int, worker: _Worker) -> asyncio.Queue[tuple[Any, ...]]:
        queue: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        with self._sinks_lock:
            self._sinks[key] = (asyncio.get_running_loop(), queue, worker)
        return queue

    def _close_sink(self, key: int) -> None:
        with self._sinks_lock:
            self._sinks.pop(key, None)

    def _deliver(self, key: int, message: tuple[Any, ...]) -> None:
        with self._sinks_lock:
            sink = self._sinks.get(key)
        if sink is not None:
            loop, queue, _ = sink
            with contextlib.suppress(RuntimeError):  # that event loop has closed
                loop.call_soon_threadsafe(queue.put_nowait, message)

    def _read(self, worker: _Worker) -> None:
        while True:
            try:
                message = worker.conn.recv()
            except (EOFError, OSError):
                break
            key = _LOAD if message[0] in ("progress", "loaded", "load_error") else message[1]
            self._deliver(key, message)
        reason = worker.ended or self._exit_reason(worker)
        worker.gone = reason
        next_step = self._on_death(worker, reason)
        with self._sinks_lock:
            keys = [key for key, sink in self._sinks.items() if sink[2] is worker]
        for key in keys:
            self._deliver(key, ("died", f"{reason}; {next_step}" if next_step else reason))
        worker.conn.close()

    def _exit_reason(self, worker: _Worker) -> str:
        process = worker.process
        if worker.in_process:
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

    def _end_worker(self, worker: _Worker, reason: str) -> None:
        """End a hung worker; it is then restarted like one that died."""
        worker.ended = worker.ended or reason
        if worker.in_process:  # a thread cannot be ended: the variant is lost until the app restarts
            with self._lock:
                if worker is self._worker and not self._closing:
                    self._state = VariantState("unavailable", f"{reason}; an in-process variant cannot be "
                                                              "restarted: restart the app")
            return
        worker.kill()


async def _exited(process: Any, timeout_s: float) -> bool:
    """Wait up to `timeout_s` for a worker process to end; whether it did."""
    deadline = time.monotonic() + timeout_s
    while process.is_alive():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.02)
    return True

"""The loop a variant's worker runs: load the model, then answer requests sent over a pipe.

Messages from the app: ("generate", id, Request), ("cancel", id), ("shutdown",).
Messages to the app:   ("progress", fraction, text), ("loaded", LoadReport), ("load_error", text),
                       ("chunks", id, [Chunk, ...]), ("done", id, Usage, MemoryReport), ("error", id, text).
A worker answers one request at a time, in the order received. An answer's chunks travel several
to a message (`backends/hf/outbox.py` says why, and why the timings stay exact).

On a ZeroGPU Space an in-process worker generates through `ZeroGPU` below: the GPU is lent one
call of a `@spaces.GPU` function at a time, in a process ZeroGPU forks from the app for it.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import queue
import select
import threading
import traceback
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arena.errors import ArenaError, GenerationError, SpecError
from backends.base import MemoryReport, Request, Usage
from backends.hf.options import HFOptions
from backends.hf.outbox import Outbox

if TYPE_CHECKING:
    from backends.hf.engine import Engine, TokenSink


def run_worker(
    conn: Connection, options: HFOptions, cache_dir: Path, in_process: bool = False, gpu: ZeroGPU | None = None
) -> None:
    """Entry point of the worker process (or thread, for in-process variants). With `gpu` (an
    in-process variant on ZeroGPU) each answer is generated through it."""
    if in_process:  # the app's own process: its threads are the app's to set
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    else:
        prepare_process(options)
    if gpu is not None:
        gpu.enter_cuda_emulation()

    def send(message: tuple[Any, ...]) -> None:
        # If the app went away, the command loop below ends on its next read.
        with contextlib.suppress(BrokenPipeError, OSError):
            conn.send(message)

    can_send = _writable(conn)

    send(("progress", 0.1, "importing torch and transformers"))
    from backends.hf.engine import Engine

    engine = Engine(options, cache_dir)
    try:
        report = engine.load(lambda fraction, text: send(("progress", fraction, text)))
    except ArenaError as exc:
        send(("load_error", str(exc)))
        return
    except Exception as exc:
        send(("load_error", f"{type(exc).__name__}: {exc}"))
        return
    if gpu is not None:
        gpu.engine = engine  # before its first call: ZeroGPU forks the app's process then
    send(("loaded", report, engine.memory()))

    jobs: queue.Queue[tuple[int, Any] | None] = queue.Queue()
    cancelled: dict[int, threading.Event] = {}
    lock = threading.Lock()

    def read_commands() -> None:
        while True:
            try:
                # Wait in poll(), not recv(): a thread blocked in recv() on this socket is woken
                # (for nothing) each time the app reads one of our messages, a context switch
                # that competes with generation.
                conn.poll(None)
                message = conn.recv()
            except (EOFError, OSError):
                message = ("shutdown",)
            if message[0] == "generate":
                with lock:
                    cancelled[message[1]] = threading.Event()
                jobs.put((message[1], message[2]))
            elif message[0] == "cancel":
                with lock:
                    event = cancelled.get(message[1])
                if event is not None:
                    event.set()
            elif message[0] == "shutdown":
                jobs.put(None)
                return

    threading.Thread(target=read_commands, name="worker-commands", daemon=True).start()
    while (job := jobs.get()) is not None:
        request_id, request = job
        with lock:
            event = cancelled[request_id]
        try:
            if event.is_set():
                send(("error", request_id, "cancelled before it started"))
                continue
            # Requests wait in line here: the app reports the wait apart from the answer's timing.
            send(("started", request_id))
            with Outbox(send, can_send, request_id, engine.output_parser()) as outbox:
                if gpu is not None:
                    usage, memory = gpu.answer(request, outbox, event)
                else:
                    usage = engine.generate(request, outbox, event)
                    memory = engine.memory()
            send(("done", request_id, usage, memory))
        except ArenaError as exc:
            send(("error", request_id, str(exc)))
        except Exception as exc:
            send(("error", request_id, f"{type(exc).__name__}: {exc}"))
            traceback.print_exc()
        finally:
            with lock:
                cancelled.pop(request_id, None)


def prepare_process(options: HFOptions) -> None:
    """What a worker process sets before it imports torch (the overhead benchmark's baseline
    process does the same, so both run with the same threads)."""
    if options.threads:
        # Must be set before torch is imported, or OpenMP has already sized its pool.
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(options.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _writable(conn: Connection) -> Callable[[], bool]:
    """Whether `conn` takes a message now without blocking (a few hundred bytes; the socket says
    so while at most a quarter of its buffer is unread)."""
    if not hasattr(select, "poll"):  # Windows: its pipes are not sockets; sends there may wait
        return lambda: True
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLOUT)
    return lambda: bool(poller.poll(0))


class ZeroGPU:
    """Answers generated under ZeroGPU's `@spaces.GPU(duration=...)`, for an in-process variant.

    On a ZeroGPU Space the app's process has no GPU: `spaces` records the model's move to CUDA, and
    each call of a decorated function runs in a process forked from the app, on a GPU lent for
    that call, with the weights moved there. The decorated function is a sync generator (ZeroGPU
    refuses async functions): it yields ("tokens", [ids]) steps as the engine generates them, then
    ("done", Usage, MemoryReport) or ("error", text), so an error crosses with its message (an
    exception would cross as its class name only). Closing it early (a cancel) stops generation.
    Outside ZeroGPU `spaces.GPU` returns the function unchanged, and it runs here the same way.

    Made with the backend, before Gradio launches: ZeroGPU reports the decorated functions at
    launch, and a ZeroGPU Space without one fails to start. One per variant, so the process
    ZeroGPU forks for (and keeps between) its calls always holds that variant's loaded engine.
    """

    def __init__(self, duration_s: int | None) -> None:
        try:  # by name: type checkers see the repo's own spaces/ folder (the Space's files) instead
            GPU = importlib.import_module("spaces").GPU
        except (ImportError, AttributeError) as exc:  # not installed: that folder, a namespace package
            raise SpecError("zero_gpu=true needs the `spaces` package: pip install spaces") from exc
        #: Set by the worker once the model is loaded, before the first call.
        self.engine: Engine | None = None

        def answer_steps(request: Request) -> Iterator[tuple[Any, ...]]:
            if self.engine is None:
                yield ("error", "the model is not loaded yet")
                return
            yield from generation_steps(self.engine, request)

        self.steps = GPU(duration=duration_s)(answer_steps)

    @staticmethod
    def enter_cuda_emulation() -> None:
        """Let the calling thread load a model on ZeroGPU. `spaces` emulates CUDA in the app's
        process through torch modes, which hold per thread: it enters them in the thread that
        imported it (and in threads of its own); the worker thread that loads the model must too."""
        from spaces.config import Config

        if Config.zero_gpu:
            from spaces.zero.torch import enter_mode

            enter_mode()

    def answer(self, request: Request, sink: TokenSink, cancelled: threading.Event) -> tuple[Usage, MemoryReport]:
        """Generate `request` in one GPU call, handing its tokens to `sink` as they come; the
        usage and the GPU process's memory figures. A cancel ends the call at its next step."""
        result: tuple[Usage, MemoryReport] | None = None
        try:
            with contextlib.closing(self.steps(request)) as steps:
                for step in steps:
                    if step[0] == "tokens":
                        sink.put(step[1])
                    elif step[0] == "done":
                        result = (step[1], step[2])
                    else:
                        raise GenerationError(step[1])
                    if cancelled.is_set() and result is None:
                        raise GenerationError("cancelled")
        except GenerationError:
            raise
        except Exception as exc:  # ZeroGPU's own refusals (quota, queue) are gr.Error, with a message
            raise GenerationError(f"ZeroGPU: {getattr(exc, 'message', None) or exc}") from exc
        if result is None:
            raise GenerationError("the GPU call ended without an answer")
        return result


def generation_steps(engine: Engine, request: Request) -> Iterator[tuple[Any, ...]]:
    """One answer as steps: ("tokens", [ids]) while the engine generates (in a thread of its own:
    it hands tokens to a callback), then ("done", Usage, MemoryReport) or ("error", text). Tokens
    that gathered while the last step was taken go as one: on ZeroGPU every step is pickled across
    a process boundary."""
    produced: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
    cancelled = threading.Event()

    def generate() -> None:
        try:
            usage = engine.generate(request, _QueueSink(produced), cancelled)
            produced.put(("done", usage, engine.memory()))
        except ArenaError as exc:
            produced.put(("error", str(exc)))
        except Exception as exc:
            traceback.print_exc()
            produced.put(("error", f"{type(exc).__name__}: {exc}"))

    thread = threading.Thread(target=generate, name="generate", daemon=True)
    thread.start()
    try:
        end: tuple[Any, ...] | None = None
        while end is None:
            ids: list[int] = []
            step = produced.get()
            while True:
                if step[0] != "tokens":
                    end = step
                    break
                ids += step[1]
                try:
                    step = produced.get_nowait()
                except queue.Empty:
                    break
            if ids:
                yield ("tokens", ids)
        yield end
    finally:
        cancelled.set()  # closed early: generation stops at its next token
        thread.join()


class _QueueSink:
    """A TokenSink that queues the token ids for `generation_steps`."""

    def __init__(self, produced: queue.SimpleQueue[tuple[Any, ...]]) -> None:
        self._produced = produced

    def put(self, token_ids: list[int]) -> None:
        self._produced.put(("tokens", list(token_ids)))

    def end(self) -> None:
        """Nothing to flush: every id is queued as it comes, and `generation_steps` learns that
        generation ended from the ("done", ...) or ("error", ...) step that follows."""
        return None

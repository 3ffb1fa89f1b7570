"""The loop a variant's worker runs: load the model, then answer requests sent over a pipe.

Messages from the app: ("generate", id, Request), ("cancel", id), ("shutdown",).
Messages to the app:   ("progress", fraction, text), ("loaded", LoadReport), ("load_error", text),
                       ("chunks", id, [Chunk, ...]), ("done", id, Usage, MemoryReport), ("error", id, text).
A worker answers one request at a time, in the order received. An answer's chunks travel several
to a message (`backends/hf/outbox.py` says why, and why the timings stay exact).
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import threading
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from backends.hf.options import HFOptions
from backends.hf.outbox import Outbox


def run_worker(conn: Connection, options: HFOptions, cache_dir: Path, in_process: bool = False) -> None:
    """Entry point of the worker process (or thread, for in-process variants)."""
    if in_process:  # the app's own process: its threads are the app's to set
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    else:
        prepare_process(options)
    from arena.errors import ArenaError

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
            with Outbox(send, can_send, request_id, engine.output_parser()) as outbox:
                usage = engine.generate(request, outbox, event)
            send(("done", request_id, usage, engine.memory()))
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

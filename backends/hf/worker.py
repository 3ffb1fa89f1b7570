"""The loop a variant's worker runs: load the model, then answer requests sent over a pipe.

Messages from the app: ("generate", id, Request), ("cancel", id), ("shutdown",).
Messages to the app:   ("progress", fraction, text), ("loaded", LoadReport), ("load_error", text),
                       ("chunk", id, Chunk), ("done", id, Usage, MemoryReport), ("error", id, text).
A worker answers one request at a time, in the order received.
"""

from __future__ import annotations

import contextlib
import functools
import os
import queue
import threading
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from backends.hf.options import HFOptions


def run_worker(conn: Connection, options: HFOptions, cache_dir: Path, in_process: bool = False) -> None:
    """Entry point of the worker process (or thread, for in-process variants)."""
    if not in_process and options.threads:
        # Must be set before torch is imported, or OpenMP has already sized its pool.
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(options.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from arena.errors import ArenaError

    def send(message: tuple[Any, ...]) -> None:
        # If the app went away, the command loop below ends on its next read.
        with contextlib.suppress(BrokenPipeError, OSError):
            conn.send(message)

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
            usage = engine.generate(request, functools.partial(_send_chunk, send, request_id), event)
            send(("done", request_id, usage, engine.memory()))
        except ArenaError as exc:
            send(("error", request_id, str(exc)))
        except Exception as exc:
            send(("error", request_id, f"{type(exc).__name__}: {exc}"))
            traceback.print_exc()
        finally:
            with lock:
                cancelled.pop(request_id, None)


def _send_chunk(send: Callable[[tuple[Any, ...]], None], request_id: int, chunk: Any) -> None:
    send(("chunk", request_id, chunk))

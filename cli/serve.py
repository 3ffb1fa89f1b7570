"""`python app.py` / `python app.py serve`: the web UI, on the demo variants unless told otherwise."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from arena.errors import UsageError
from arena.lineup import create_lineup
from arena.settings import Settings
from backends.registry import default_registry
from backends.variant_file import read_variant_file
from cli import EXIT_OK, add_db_argument
from cli.compare import DEFAULT_VARIANTS

if TYPE_CHECKING:
    from ui.app import ArenaApp
    from ui.services import ArenaServices

#: How long the HTTP server gets, once the variants are ended, to finish the events still running
#: and close its streams before it is made to exit.
STOP_EVENTS_S = 3.0


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="serve the web UI (the default command)",
        description="Serve Gemma Arena in the browser. Variants load in the background with visible "
        "progress; one that fails to load is shown as unavailable with the reason.",
    )
    add_serve_arguments(p)
    p.set_defaults(handler=run)


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--variants", nargs="+", metavar="SPEC",
                   help="variant specs (default: the four demo variants)")
    p.add_argument("--config", metavar="FILE", help="a TOML variant file ([[variants]] spec = ..., options)")
    add_db_argument(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--voter", default="local", help="the name your votes are stored under (default: local)")
    p.add_argument("--timeout", type=float, default=120.0, metavar="S",
                   help="stop a variant that produces nothing for this many seconds (default 120)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    registry = default_registry()
    if args.config and args.variants:
        raise UsageError("give --variants or --config, not both")
    if args.config:
        specs = read_variant_file(args.config, registry)
    else:
        specs = [registry.parse(text) for text in (args.variants or DEFAULT_VARIANTS)]
    lineup = create_lineup(specs, registry, settings)

    from storage import open_store
    from ui.app import CSS, ArenaApp
    from ui.services import ArenaServices

    store = open_store(settings.db_path)
    services = ArenaServices(lineup, store, voter=args.voter, timeout_s=args.timeout)
    app: ArenaApp | None = None
    with _sigterm_as_interrupt():
        try:  # from the first worker started on: Ctrl-C at any point ends them all
            services.start_loading(_log_loaded)
            app = ArenaApp(services)
            app.blocks.queue(default_concurrency_limit=8)
            print(f"Gemma Arena: votes in {settings.db_path}", file=sys.stderr, flush=True)
            # run_history off: a blind battle's runs must not be kept in the browser. Not blocking:
            # Gradio's own wait, on Ctrl-C, closes only its HTTP server, which then waits up to 5 s
            # for the open heartbeats and event streams; stop() below ends them first.
            app.blocks.launch(server_name=args.host, server_port=args.port, run_history=False, css=CSS,
                              show_error=True, prevent_thread_lock=True)
            while app.blocks.is_running:
                time.sleep(0.1)
        except KeyboardInterrupt:
            print("Stopping: ending the variants' workers and the server", file=sys.stderr, flush=True)
        finally:
            stop(app, services)
    return EXIT_OK


def stop(app: ArenaApp | None, services: ArenaServices) -> None:
    """Stop serving within seconds, also while variants are answering.

    The variants' workers are ended first: their answers then fail at once, so the events that
    stream them complete. Only then is Gradio closed (its queue, heartbeats, HTTP server): once its
    queue is stopped, an open event stream only reports "server stopped" and stays open until the
    browser leaves, and the HTTP server waits for every open stream. One that is still open after
    `STOP_EVENTS_S` is not waited for.
    """
    services.close_variants()
    if app is None:  # stopped while starting up
        services.close()
        return
    closing = threading.Thread(target=app.blocks.close, kwargs={"verbose": False}, name="close server",
                               daemon=True)
    closing.start()
    closing.join(STOP_EVENTS_S)
    server = getattr(app.blocks, "server", None)
    if closing.is_alive() and server is not None:
        server.force_exit = True  # uvicorn's own "stop waiting for connections" (its second Ctrl-C)
        closing.join(STOP_EVENTS_S)
    services.close()


def _log_loaded(name: str, fraction: float | None, message: str) -> None:
    """One line per variant when it is ready or unavailable, for whoever watches the console."""
    if message.startswith(("ready", "unavailable")):
        print(f"{name}: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (`kill`, a service manager, a container stop) stops the server as Ctrl-C does. By
    default it would end the app at once, and a worker in the middle of an answer would outlive it
    until the answer ends."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


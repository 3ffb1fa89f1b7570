"""`python app.py` / `python app.py serve`: the web UI, on the demo variants unless told otherwise."""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from arena.errors import UsageError
from arena.limits import Limits
from arena.lineup import create_lineup
from arena.settings import Settings
from arena.users import UserDirectory
from backends.registry import default_registry
from backends.variant_file import read_limits_table, read_variant_file
from cli import EXIT_OK, add_db_argument
from cli.compare import DEFAULT_VARIANTS
from cli.limits import add_limit_arguments, limits_from

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
    p.add_argument("--voter", default="local",
                   help="without --users: the name every vote is stored under (default: local)")
    p.add_argument("--users", metavar="FILE",
                   help="log people in from this users file (`python app.py users add NAME`): each vote is "
                        "stored under its voter's name; admins alone export everyone's votes")
    p.add_argument("--no-auth", action="store_true",
                   help="serve a network address (--host) without logins: everyone votes as --voter, "
                        "and nobody can export or discover from the page")
    p.add_argument("--battle-pace", choices=("lockstep", "whole"), default="lockstep",
                   help="how a blind battle shows its answers: lockstep (default) streams both at the slower "
                        "side's pace, whole shows both once both are complete; either way speed gives no side away")
    p.add_argument("--timeout", type=float, default=120.0, metavar="S",
                   help="stop a variant that produces nothing for this many seconds (default 120)")
    add_limit_arguments(p)


def check_exposure(host: str, users: str | None, no_auth: bool) -> None:
    """Refuse to serve a network address without logins unless told to (`--no-auth`): anyone who
    reaches it could vote as anyone and read every prompt."""
    if users and no_auth:
        raise UsageError("give --users FILE or --no-auth, not both")
    if users or no_auth or is_loopback(host):
        return
    raise UsageError(
        f"--host {host} serves the arena to the network without logins: anyone who reaches it could vote "
        "under any name and download every prompt and answer. Give --users FILE (create one with "
        "`python app.py users add NAME --role admin`), or --no-auth if that is really what you want"
    )


def is_loopback(host: str) -> bool:
    """Whether `host` is reachable from this machine only ("localhost", 127.x, ::1)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def run(args: argparse.Namespace, settings: Settings) -> int:
    check_exposure(args.host, args.users, args.no_auth)
    registry = default_registry()
    if args.config and args.variants:
        raise UsageError("give --variants or --config, not both")
    if args.config:
        specs = read_variant_file(args.config, registry)
    else:
        specs = [registry.parse(text) for text in (args.variants or DEFAULT_VARIANTS)]
    limits = limits_from(args, read_limits_table(args.config) if args.config else None)
    users = UserDirectory(args.users) if args.users else None  # a missing or bad file stops here
    lineup = create_lineup(specs, registry, settings)

    from storage import open_store
    from ui.access import Access
    from ui.app import CSS, ArenaApp
    from ui.services import ArenaServices

    store = open_store(settings.db_path)
    services = ArenaServices(lineup, store, voter=args.voter, timeout_s=args.timeout, battle_pace=args.battle_pace,
                             limits=limits)
    # Without logins the one local person is an admin only on this machine's own address.
    access = Access(users.role_of if users else None, local_voter=args.voter, local_admin=is_loopback(args.host),
                    max_concurrent=limits.max_concurrent_per_user, max_votes_per_minute=limits.max_votes_per_minute)
    app: ArenaApp | None = None
    with _sigterm_as_interrupt():
        try:  # from the first worker started on: Ctrl-C at any point ends them all
            services.start_loading(_log_loaded)
            app = ArenaApp(services, access)
            app.blocks.queue(**queue_options(limits))
            print(f"Gemma Arena: votes in {settings.db_path}", file=sys.stderr, flush=True)
            # Not blocking: Gradio's own wait, on Ctrl-C, closes only its HTTP server, which then
            # waits up to 5 s for the open heartbeats and event streams; stop() below ends them first.
            app.blocks.launch(server_name=args.host, server_port=args.port, css=CSS, prevent_thread_lock=True,
                              **launch_options(limits, users))
            while app.blocks.is_running:
                time.sleep(0.1)
        except KeyboardInterrupt:
            print("Stopping: ending the variants' workers and the server", file=sys.stderr, flush=True)
        finally:
            stop(app, services)
    return EXIT_OK


def queue_options(limits: Limits, concurrency: int = 8) -> dict[str, Any]:
    """Gradio's queue: `concurrency` events of a kind at once, and at most `max_queue` waiting
    (one more is refused at once with Gradio's "Queue is full")."""
    return {"default_concurrency_limit": concurrency, "max_size": limits.max_queue}


def launch_options(limits: Limits, users: UserDirectory | None) -> dict[str, Any]:
    """How the app is launched, whatever the address: the login (with a users file), the upload
    size Gradio itself refuses past, and run_history off (a blind battle's runs must not be kept
    in the browser)."""
    return {
        "run_history": False,
        "show_error": True,
        "max_file_size": limits.max_upload_bytes,
        "auth": users.authenticate if users else None,
        "auth_message": "Log in with the name and password an admin of this arena gave you.",
    }


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


"""`python app.py` / `python app.py serve`: the web UI, on the demo variants unless told otherwise.

On a Hugging Face Space (`SPACE_ID` is set; Spaces run `python app.py`) serve binds where the Space
says (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT), reads the bundled `variants.toml` next to app.py,
lets people sign in with Hugging Face (the Space's OAuth app, `hf_oauth: true`) under the rules of
its `[space]` table, and on ZeroGPU runs the local variants in this process under `@spaces.GPU`.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import ipaddress
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from arena.errors import ArenaError, UsageError
from arena.hardware import Gpu
from arena.limits import Limits
from arena.lineup import MemoryPolicy, create_lineup
from arena.pool import CPU, Budget
from arena.settings import Settings
from arena.users import UserDirectory
from backends.registry import Registry, VariantSpec, default_registry
from backends.variant_file import SpaceSettings, read_limits_table, read_space_table, read_variant_file
from cli import EXIT_OK, add_db_argument
from cli.compare import DEFAULT_VARIANTS
from cli.limits import add_limit_arguments, limits_from

if TYPE_CHECKING:
    from storage import Journal, Sync
    from ui.app import ArenaApp
    from ui.services import ArenaServices

#: How long the HTTP server gets, once the variants are ended, to finish the events still running
#: and close its streams before it is made to exit.
STOP_EVENTS_S = 3.0
#: Where app.py is: a Space bundle (`python app.py space-bundle`) puts its variant file there.
APP_ROOT = Path(__file__).resolve().parents[1]
BUNDLED_VARIANTS = "variants.toml"
DEFAULT_PORT = 7860


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
    p.add_argument("--host", help="address to listen on (default 127.0.0.1; on a Hugging Face Space "
                                   "GRADIO_SERVER_NAME, else 0.0.0.0)")
    p.add_argument("--port", type=int, help="port (default 7860; on a Hugging Face Space GRADIO_SERVER_PORT, "
                                            "else 7860)")
    p.add_argument("--voter", default="local",
                   help="without --users: the name every vote is stored under (default: local)")
    p.add_argument("--users", metavar="FILE",
                   help="log people in from this users file (`python app.py users add NAME`): each vote is "
                        "stored under its voter's name; admins alone export everyone's votes")
    p.add_argument("--no-auth", action="store_true",
                   help="serve a network address (--host) without logins: everyone votes as --voter, "
                        "and nobody has the admin actions (exports, discovery, loading variants) in the page")
    p.add_argument("--battle-pace", choices=("lockstep", "whole"), default="lockstep",
                   help="how a blind battle shows its answers: lockstep (default) streams both at the slower "
                        "side's pace, whole shows both once both are complete; either way speed gives no side away")
    p.add_argument("--timeout", type=float, default=120.0, metavar="S",
                   help="stop a variant that produces nothing for this many seconds (default 120)")
    p.add_argument("--max-memory", metavar="SIZE[,cpu=SIZE,0=SIZE]",
                   help="the memory the local variants may hold: 24GiB (RAM) or cpu=16GiB,0=20GiB (RAM and "
                        "GPU 0). A variant that would not fit is refused before loading. Default: the RAM "
                        "available at start and each GPU's free memory, less the headroom `python app.py "
                        "doctor` leaves for the runtime; a pool not named keeps its default")
    p.add_argument("--evict", choices=("off", "lru"), default="off",
                   help="loading a variant on the Variants tab that would not fit: off (default) refuses; "
                        "lru unloads the least recently used variants first")
    add_limit_arguments(p)


def memory_policy(args: argparse.Namespace, settings: Settings, probe_gpus: bool = True) -> MemoryPolicy:
    """The memory budget of `--max-memory` and `--evict` over this machine's default: the RAM
    available now and (where NVML reports them) each GPU's free memory, less `arena.hardware`'s
    headroom. GPUs are read through NVML only: torch would open a CUDA context in this process
    (and on ZeroGPU, `probe_gpus` False, nothing may touch CUDA before launch). Where the GPUs
    are unknown, a variant that names no device is counted once loaded, on the device it reports."""
    import psutil

    from arena.hardware import (
        GPU_RESERVE_BYTES,
        GPU_RESERVE_FRACTION,
        RAM_RESERVE_BYTES,
        RAM_RESERVE_FRACTION,
        usable_bytes,
    )

    given = Budget.parse(args.max_memory) if getattr(args, "max_memory", None) else Budget()
    caps = {CPU: usable_bytes(int(psutil.virtual_memory().available), RAM_RESERVE_BYTES, RAM_RESERVE_FRACTION)}
    gpus = _nvml_gpus() if probe_gpus else None
    for index, gpu in enumerate(gpus or ()):
        seen = gpu.free_bytes if gpu.free_bytes is not None else gpu.total_bytes
        caps[str(index)] = usable_bytes(seen, GPU_RESERVE_BYTES, GPU_RESERVE_FRACTION)
    if gpus or any(pool != CPU for pool in given.caps):
        default_pool = "0"
    elif gpus is not None or not Path("/dev/nvidiactl").exists():  # NVML says none, or no NVIDIA driver
        default_pool = CPU
    else:
        default_pool = ""  # unknown until loaded
    return MemoryPolicy(budget=given.over(Budget(MappingProxyType(caps))), evict=getattr(args, "evict", "off") == "lru",
                        default_pool=default_pool, cache_dir=settings.cache_dir)


def _nvml_gpus() -> tuple[Gpu, ...] | None:
    """This machine's GPUs as NVML sees them; None where NVML is not installed or does not answer."""
    from arena.machine import probe_gpus

    if importlib.util.find_spec("pynvml") is None:
        return None
    gpus, source, _ = probe_gpus()  # NVML first: torch is asked only when NVML fails
    return gpus if source == "NVML" else None


def check_exposure(host: str, users: str | None, no_auth: bool, space: bool = False) -> None:
    """Refuse to serve a network address without logins unless told to (`--no-auth`): anyone who
    reaches it could vote as anyone and read every prompt. On a Hugging Face Space the login is
    Hugging Face's (and the admins are the `[space]` table's), so no users file is needed, or taken."""
    if users and no_auth:
        raise UsageError("give --users FILE or --no-auth, not both")
    if space:
        if users:
            raise UsageError("on a Hugging Face Space people sign in with Hugging Face (hf_oauth: true in the "
                             "Space's README): --users is for a server of your own. Name the admins in the "
                             "variant file's [space] table instead (admins = [\"hf-user\"])")
        return
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


@dataclass(frozen=True)
class SpaceRuntime:
    """What serve reads of a Hugging Face Space it runs in (`SpaceRuntime.detect`: None elsewhere)."""

    space_id: str
    #: The Space has an OAuth app (`hf_oauth: true`, which sets OAUTH_CLIENT_ID and the rest): Gradio
    #: serves "Sign in with Hugging Face" (it serves the real one where SYSTEM=spaces, as on every Space).
    sign_in: bool
    #: ZeroGPU hardware: a GPU is lent per call of a `@spaces.GPU` function, in this process only.
    zero_gpu: bool

    @classmethod
    def detect(cls, environ: Mapping[str, str] = os.environ) -> SpaceRuntime | None:
        space_id = environ.get("SPACE_ID")
        if not space_id:
            return None
        sign_in = bool(environ.get("OAUTH_CLIENT_ID")) and environ.get("SYSTEM") == "spaces"
        return cls(space_id, sign_in=sign_in, zero_gpu=zero_gpu_present(environ))


def zero_gpu_present(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether this is a ZeroGPU Space, as the `spaces` package sees it (`SPACES_ZERO_GPU`).
    Importing `spaces` there also starts its CUDA emulation, which must come before anything
    initializes CUDA: serve asks before any variant is created."""
    try:
        from spaces.config import Config
    except ImportError:  # not installed (the repo's own spaces/ folder is no package)
        if environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "t", "true"):
            raise UsageError("this is a ZeroGPU Space but the `spaces` package is missing: add `spaces` to "
                             "requirements.txt") from None
        return False
    return bool(Config.zero_gpu)


def bind_address(host: str | None, port: int | None, space: SpaceRuntime | None,
                 environ: Mapping[str, str] = os.environ) -> tuple[str, int]:
    """Where to listen: --host / --port when given; on a Space where Spaces expect the app
    (GRADIO_SERVER_NAME, else every address; GRADIO_SERVER_PORT, else 7860); else this machine only."""
    if space is None:
        return host or "127.0.0.1", port or DEFAULT_PORT
    env_port = environ.get("GRADIO_SERVER_PORT", "").strip()
    if port is None and env_port:
        if not env_port.isdigit():
            raise UsageError(f"GRADIO_SERVER_PORT={env_port!r} is not a port number")
        port = int(env_port)
    return host or environ.get("GRADIO_SERVER_NAME") or "0.0.0.0", port or DEFAULT_PORT


def variant_file_of(args: argparse.Namespace, space: SpaceRuntime | None, root: Path = APP_ROOT) -> str | None:
    """The variant file to read: --config; on a Space with neither --config nor --variants, the
    bundled `variants.toml` next to app.py when there is one; else none."""
    if args.config and args.variants:
        raise UsageError("give --variants or --config, not both")
    if args.config:
        return str(args.config)
    bundled = root / BUNDLED_VARIANTS
    if space is not None and not args.variants and bundled.is_file():
        return str(bundled)
    return None


def on_zero_gpu(specs: Sequence[VariantSpec], registry: Registry) -> list[VariantSpec]:
    """On ZeroGPU only this process reaches the GPU: every variant that computes locally runs in
    it, under `@spaces.GPU` (`zero_gpu=true`), unless its spec says otherwise."""
    return [
        VariantSpec(spec.prefix, spec.target, MappingProxyType({**spec.options, "zero_gpu": "true"}))
        if registry.computes_locally(spec) and "zero_gpu" not in spec.options else spec
        for spec in specs
    ]


def space_sign_in(space: SpaceRuntime, settings: SpaceSettings) -> bool:
    """Whether the page gets "Sign in with Hugging Face": when the Space has an OAuth app. A
    `[space]` table that refuses some voters needs one, and the button needs gradio's oauth extra."""
    if not space.sign_in:
        if settings.restricts_voting:
            raise UsageError("the variant file's [space] table refuses votes from people not signed in "
                             "(require_sign_in or organization), but this Space has no sign-in: add "
                             "`hf_oauth: true` to the front matter of its README.md")
        print("Gemma Arena: no sign-in on this Space (add `hf_oauth: true` to its README.md): every vote is "
              "recorded as anonymous", file=sys.stderr, flush=True)
        return False
    if importlib.util.find_spec("authlib") is None or importlib.util.find_spec("itsdangerous") is None:
        raise UsageError("Sign in with Hugging Face needs Gradio's oauth extra (authlib, itsdangerous): add "
                         "`gradio[oauth]` to the Space's requirements.txt")
    return True


def run(args: argparse.Namespace, settings: Settings) -> int:
    space = SpaceRuntime.detect()
    host, port = bind_address(args.host, args.port, space)
    check_exposure(host, args.users, args.no_auth, space=space is not None)
    registry = default_registry()
    config = variant_file_of(args, space)
    if config:
        specs = read_variant_file(config, registry)
    else:
        specs = [registry.parse(text) for text in (args.variants or DEFAULT_VARIANTS)]
    limits = limits_from(args, read_limits_table(config) if config else None)
    space_settings = (read_space_table(config) if config else None) or SpaceSettings()
    sign_in = space_sign_in(space, space_settings) if space else False
    if space and space.zero_gpu:
        specs = on_zero_gpu(specs, registry)
    users = UserDirectory(args.users) if args.users else None  # a missing or bad file stops here
    memory = memory_policy(args, settings, probe_gpus=not (space and space.zero_gpu))
    lineup = create_lineup(specs, registry, settings, memory=memory)

    from storage import open_store
    from ui.access import Access
    from ui.app import ArenaApp
    from ui.errors import log_to_console
    from ui.services import ArenaServices

    log_to_console()

    sync, journal = (start_space_sync(settings, space_settings) if space and space_settings.dataset
                     else (None, None))
    try:
        store = open_store(settings.db_path, journal=journal)
    except BaseException:
        if sync is not None:
            sync.stop()
        raise
    services = ArenaServices(lineup, store, voter=args.voter, timeout_s=args.timeout, battle_pace=args.battle_pace,
                             limits=limits)
    # Without logins the one local person is an admin only on this machine's own address.
    access = Access(users.role_of if users else None, local_voter=args.voter, local_admin=is_loopback(host),
                    space=space_settings if space else None, max_concurrent=limits.max_concurrent_per_user,
                    max_votes_per_minute=limits.max_votes_per_minute)
    app: ArenaApp | None = None
    with _sigterm_as_interrupt():
        try:  # from the first worker started on: Ctrl-C at any point ends them all
            # On ZeroGPU loading waits for the launch: `spaces` packs the weights already moved to
            # CUDA when Gradio launches, and must not find a model half loaded by another thread.
            if not (space and space.zero_gpu):
                services.start_loading(_log_loaded)
            app = ArenaApp(services, access, sign_in=sign_in)
            app.blocks.queue(**queue_options(limits))
            print(f"Gemma Arena: votes in {settings.db_path}{_space_note(space)}; memory budget: "
                  f"{memory.budget.describe()}", file=sys.stderr, flush=True)
            # Not blocking: Gradio's own wait, on Ctrl-C, closes only its HTTP server, which then
            # waits up to 5 s for the open heartbeats and event streams; stop() below ends them first.
            app.launch(server_name=host, server_port=port, prevent_thread_lock=True, **launch_options(limits, users))
            services.start_loading(_log_loaded)  # (started already unless on ZeroGPU)
            app.start_judging()  # the prompt sets' pairs indexed in the background
            while app.blocks.is_running:
                time.sleep(0.1)
        except KeyboardInterrupt:
            print("Stopping: ending the variants' workers and the server", file=sys.stderr, flush=True)
        finally:
            stop(app, services, sync)
    return EXIT_OK


def start_space_sync(settings: Settings, space: SpaceSettings) -> tuple[Sync, Journal]:
    """Votes that outlive the Space's disk (`storage.hub_sync`): the database restored from the
    `[space]` dataset, then every record journaled next to it and pushed there every
    `sync_every_minutes`. Called before the store is opened; the journal is the store's."""
    from storage import Journal, restore, start_sync

    assert space.dataset is not None
    folder = settings.db_path.parent / f"{settings.db_path.stem}-hub-journal"
    report = restore(settings.db_path, space.dataset)
    print(f"Gemma Arena: votes restored from dataset {space.dataset}: {report.summary()}", file=sys.stderr, flush=True)
    for problem in report.problems:
        print(f"warning: {problem}", file=sys.stderr, flush=True)
    sync = start_sync(folder, space.dataset, every_minutes=space.sync_every_minutes)
    return sync, Journal(folder)


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


def stop(app: ArenaApp | None, services: ArenaServices, sync: Sync | None = None) -> None:
    """Stop serving within seconds, also while variants are answering.

    The variants' workers are ended first: their answers then fail at once, so the events that
    stream them complete. Only then is Gradio closed (its queue, heartbeats, HTTP server): once its
    queue is stopped, an open event stream only reports "server stopped" and stays open until the
    browser leaves, and the HTTP server waits for every open stream. One that is still open after
    `STOP_EVENTS_S` is not waited for. Last, on a Space, the votes not pushed yet go to its dataset.
    """
    services.close_variants()
    if app is not None:  # None: stopped while starting up
        closing = threading.Thread(target=app.blocks.close, kwargs={"verbose": False}, name="close server",
                                   daemon=True)
        closing.start()
        closing.join(STOP_EVENTS_S)
        server = getattr(app.blocks, "server", None)
        if closing.is_alive() and server is not None:
            server.force_exit = True  # uvicorn's own "stop waiting for connections" (its second Ctrl-C)
            closing.join(STOP_EVENTS_S)
    services.close()
    if sync is not None:  # after the store: its journal holds every acknowledged vote by now
        try:
            sync.stop()
        except ArenaError as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)


def _space_note(space: SpaceRuntime | None) -> str:
    if space is None:
        return ""
    return f"; Hugging Face Space {space.space_id}" + (" on ZeroGPU" if space.zero_gpu else "")


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


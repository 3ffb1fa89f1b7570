"""`python app.py` / `python app.py serve`: the web UI, on the demo variants unless told otherwise."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from arena.errors import UsageError
from arena.lineup import create_lineup
from arena.settings import Settings
from backends.registry import default_registry
from backends.variant_file import read_variant_file
from cli import EXIT_OK, add_db_argument
from cli.compare import DEFAULT_VARIANTS


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
    services.start_loading()
    app = ArenaApp(services)
    app.blocks.queue(default_concurrency_limit=8)
    print(f"Gemma Arena: votes in {settings.db_path}", file=sys.stderr, flush=True)
    try:
        # run_history off: a blind battle's runs must not be kept in the browser.
        app.blocks.launch(server_name=args.host, server_port=args.port, run_history=False, css=CSS,
                          show_error=True)
    finally:
        services.close()
    return EXIT_OK


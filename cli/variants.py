"""`python app.py variants`: what can be compared, and how to name it."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from typing import Any

from arena.settings import Settings
from backends.demo import VARIANTS
from backends.registry import default_registry
from cli import EXIT_OK, add_db_argument


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "variants",
        help="list the built-in demo variants and the kinds of variant spec",
        description="List the built-in demo variants and every registered spec prefix with an example.",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--discover", action="store_true",
                   help="list the models pulled on an Ollama server, as specs ready to compare")
    p.add_argument("--ollama-host", metavar="URL",
                   help="the Ollama server for --discover (default: OLLAMA_HOST, else http://127.0.0.1:11434)")
    add_db_argument(p, help="the votes database to report (default: GEMMA_ARENA_DB, else the data folder's arena.db)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.discover:
        return discover_ollama(args)
    kinds = [{"prefix": p, "summary": s, "example": e} for p, s, e in default_registry().describe()]
    demos = [
        {"spec": f"demo:{v.name}", "stands_for": v.stands_for, "description": v.description}
        for v in VARIANTS.values()
    ]
    places = {"votes_db": str(settings.db_path), "demo_cache": str(settings.cache_dir)}
    if args.json:
        print(json.dumps({"kinds": kinds, "demo": demos, **places}, indent=2))
        return EXIT_OK
    print("Variant specs:")
    for kind in kinds:
        print(f"  {kind['prefix'] + ':':<8} {kind['summary']}\n           e.g. {kind['example']}")
    print("\nBuilt-in demo variants (generated on first use in the cache folder):")
    for demo in demos:
        print(f"  {demo['spec']:<14} {demo['description']}")
    print(f"\nDemo cache: {settings.cache_dir}\nVotes database: {settings.db_path}")
    return EXIT_OK


def discover_ollama(args: argparse.Namespace) -> int:
    """Print the specs of the models pulled on an Ollama server (RemoteError if it cannot be asked)."""
    from arena.units import format_bytes
    from backends.ollama import DEFAULT_HOST, discover

    host = args.ollama_host or os.environ.get("OLLAMA_HOST") or DEFAULT_HOST
    models = asyncio.run(discover(host))
    if args.json:
        print(json.dumps([m.to_json() for m in models], indent=2))
        return EXIT_OK
    if not models:
        print(f"The Ollama server at {host} has no models: pull one, e.g. `ollama pull gemma4:e4b`")
        return EXIT_OK
    print(f"Models pulled on the Ollama server at {host}:")
    for model in models:
        about = " ".join(filter(None, (model.family, model.parameter_size, model.quantization)))
        print(f"  {model.spec:<40} {format_bytes(model.size_bytes):>10}  {about}")
    return EXIT_OK

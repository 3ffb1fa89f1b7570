"""`python app.py variants`: what can be compared, and how to name it."""

from __future__ import annotations

import argparse
import json
from typing import Any

from arena.settings import Settings
from backends.demo import VARIANTS
from backends.registry import default_registry
from cli import EXIT_OK


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "variants",
        help="list the built-in demo variants and the kinds of variant spec",
        description="List the built-in demo variants and every registered spec prefix with an example.",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    kinds = [{"prefix": p, "summary": s, "example": e} for p, s, e in default_registry().describe()]
    demos = [
        {"spec": f"demo:{v.name}", "stands_for": v.stands_for, "description": v.description}
        for v in VARIANTS.values()
    ]
    if args.json:
        print(json.dumps({"kinds": kinds, "demo": demos}, indent=2))
        return EXIT_OK
    print("Variant specs:")
    for kind in kinds:
        print(f"  {kind['prefix'] + ':':<8} {kind['summary']}\n           e.g. {kind['example']}")
    print("\nBuilt-in demo variants (generated on first use in the cache folder):")
    for demo in demos:
        print(f"  {demo['spec']:<14} {demo['description']}")
    return EXIT_OK

"""`python app.py import`: FastChat clean battles into the votes database."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from arena.settings import Settings
from cli import EXIT_OK, add_db_argument
from storage import open_store
from storage.imports import import_battles, read_fastchat
from storage.set_bundle import import_set, is_set_bundle


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "import",
        help="import FastChat clean battles (JSON or JSONL) as battles, answers and votes, or a prompt set's "
        "bundle (`export --format set`)",
        description="Reads a JSON array (as FastChat's clean_battle_data.py writes it) or JSON lines, keys "
        "in any order. Each battle becomes a stored battle (blind if `anony`, else named) with both "
        "answers and its vote (`judge` as the voter); one whose answers name a model family or maker is "
        "flagged, as a battle recorded here would be. A battle of several turns (conversations with two user "
        "messages or more, the same on both sides) becomes a conversation: one battle per turn, the vote on "
        "the last, as `export --format fastchat` writes them back. Named battles (`anony` false) are left out, as "
        "FastChat's ratings leave them out, unless --include-named; stored as named, they are rated by "
        "`leaderboard --mode named` or `--mode all`. The whole file is one transaction: "
        "by default a file with bad lines (or array items) is refused, naming them, and nothing is "
        "written. Battles already stored (e.g. from an earlier import) are not repeated. A prompt set's bundle "
        "(a .zip from `export --format set`) is imported with its answers and media, to judge them here; "
        "importing it again stores nothing twice.",
    )
    add_db_argument(p)
    p.add_argument("file", type=Path, metavar="FILE",
                   help="FastChat clean battles (JSON array or JSONL), or a prompt set's .zip")
    p.add_argument(
        "--skip-bad",
        action="store_true",
        help="import the good battles and list the bad lines, instead of refusing the file",
    )
    p.add_argument(
        "--include-named",
        action="store_true",
        help="import named battles (anony false) too, stored as named; by default they are left out and counted",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    if is_set_bundle(args.file):  # a prompt set with its answers (`export --format set`)
        with open_store(settings.db_path) as store:
            print(import_set(store, args.file).summary())
        return EXIT_OK
    if args.file.is_file() and args.file.stat().st_size > _LARGE_FILE:  # reading takes a while: say so
        print(f"reading {args.file} ...", file=sys.stderr, flush=True)
    # a refused file creates no database
    battle_file = read_fastchat(args.file, skip_bad=args.skip_bad, include_named=args.include_named)
    with open_store(settings.db_path) as store:
        report = import_battles(store, args.file, battle_file, progress=_progress)
    print(report.summary())
    return EXIT_OK


_LARGE_FILE = 20 * 2**20


def _progress(done: int, total: int) -> None:
    if total <= 20_000:
        return  # a small import is done before anyone would read a progress line
    print(f"storing battles: {done}/{total} ({done / total:.0%})", file=sys.stderr, flush=True)

"""`python app.py export`: the stored votes (with their runs) or the leaderboard, to a file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from arena.errors import UsageError
from arena.settings import Settings
from cli import EXIT_OK, add_db_argument
from cli.leaderboard import add_rating_options, add_vote_filters, build_leaderboard
from storage import open_store
from storage.exports import LEADERBOARD_COLUMNS, VOTE_FORMATS, write_leaderboard_csv
from storage.set_bundle import export_set

FORMATS = (*VOTE_FORMATS, "leaderboard-csv", "set")


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "export",
        help="write the votes (csv, jsonl, FastChat battles), the leaderboard (csv) or a prompt set with its "
        "answers (set) to a file",
        description="csv / jsonl: one record per vote with the battle, the vote and every side's "
        "variant, answer and stats, times in ISO 8601 UTC (2026-12-01T01:39:54.123Z); a vote on a later turn "
        "of a conversation covers the turns before it: `turn` and `conversation` (its first turn's battle id) "
        "say so, and jsonl adds those turns (earlier_turns). fastchat: FastChat clean battles (one per "
        "pairwise outcome; tstamp in epoch seconds, as FastChat has it; conversation_a / conversation_b hold "
        "every turn up to the vote), readable by `leaderboard --battles`, `import` and lmarena's notebooks. "
        "csv, jsonl and fastchat hold every vote (each with its battle's mode; fastchat: anony). "
        f"leaderboard-csv: the Leaderboard tab's table ({', '.join(LEADERBOARD_COLUMNS)}; elo is online "
        "Elo), of the votes --mode and --include-flagged select, as `leaderboard`.",
    )
    add_db_argument(p)
    p.add_argument("--format", required=True, choices=FORMATS, help="what to write")
    p.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="FILE",
        help="the file to write ('-' for standard output); it appears only when complete",
    )
    p.add_argument("--set", dest="set_name", metavar="NAME",
                   help="with --format set: the prompt set to write, with its answers and media, as one .zip "
                        "that `import` reads on another machine (a GPU box generates, a team server judges)")
    add_vote_filters(p)
    add_rating_options(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.format == "set" or args.set_name:
        if args.format != "set" or not args.set_name:
            raise UsageError("a prompt set is exported with --format set --set NAME (`generate` names it)")
        with open_store(settings.db_path, create=False) as store:
            written = export_set(store, args.set_name, args.out)
        print(f"wrote the prompt set {args.set_name} to {written}", file=sys.stderr)
        return EXIT_OK
    if args.format != "leaderboard-csv" and (args.mode is not None or args.include_flagged):
        raise UsageError(
            "--mode and --include-flagged choose what --format leaderboard-csv rates: a vote export holds "
            "every vote, each with its battle's mode"
        )
    if args.format == "leaderboard-csv":
        count = write_leaderboard_csv(build_leaderboard(args, settings).rows, args.out)
        what = "leaderboard rows"
    else:
        with open_store(settings.db_path, create=False) as store:
            count = store.export(args.format, args.out, category=args.category, voter=args.voter)
        what = "battles" if args.format == "fastchat" else "votes"
    if str(args.out) != "-":
        print(f"wrote {count} {what} to {args.out}", file=sys.stderr)
    return EXIT_OK

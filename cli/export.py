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
from storage.exports import VOTE_FORMATS, write_leaderboard_csv

FORMATS = (*VOTE_FORMATS, "leaderboard-csv")


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "export",
        help="write the votes (csv, jsonl, FastChat battles) or the leaderboard (csv) to a file",
        description="csv / jsonl: one record per vote with the battle, the vote and every side's "
        "variant, answer and stats. fastchat: FastChat clean battles (one per pairwise outcome), "
        "readable by `leaderboard --battles` and lmarena's notebooks. csv, jsonl and fastchat hold every vote "
        "(each with its battle's mode; fastchat: anony). leaderboard-csv: rank, variant, rating, ci_low, "
        "ci_high, votes, wins, losses, ties, of the votes --mode and --include-flagged select, as `leaderboard`.",
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
    add_vote_filters(p)
    add_rating_options(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
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

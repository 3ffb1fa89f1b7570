"""`python app.py leaderboard`: ratings from the stored votes (or a FastChat battles file)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arena.errors import UsageError
from arena.ratings import DEFAULT_ROUNDS, Battles, Leaderboard, compute_leaderboard
from arena.settings import Settings
from cli import EXIT_OK, add_db_argument
from storage import CATEGORIES, open_store
from storage.imports import named_note, read_fastchat_table


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "leaderboard",
        help="rank the variants from the stored votes (Bradley-Terry with bootstrap intervals)",
        description="Fit Bradley-Terry ratings (Elo scale) to the votes, with 95% bootstrap intervals, "
        "Rank (UB), votes, wins, losses, ties and online Elo. Votes on more than two variants count as the "
        "pairwise outcomes they imply (best beats each other; ranked tiers).",
    )
    source = p.add_mutually_exclusive_group()
    add_db_argument(source)
    source.add_argument(
        "--battles",
        type=Path,
        metavar="FILE",
        help="rate FastChat clean battles from a JSON array or JSON lines file (keys in any order) "
        "instead of the database",
    )
    add_vote_filters(p)
    add_rating_options(p)
    p.add_argument(
        "--anchor",
        metavar="VARIANT=RATING",
        help="pin one variant at a rating (default: the mean of the listed variants is 1000)",
    )
    p.add_argument("--min-votes", type=int, default=0, metavar="N", help="list only variants with N votes or more")
    p.add_argument(
        "--skip-bad",
        action="store_true",
        help="with --battles: skip bad lines or array items (listed on stderr) instead of refusing the file",
    )
    p.add_argument(
        "--include-named",
        action="store_true",
        help="with --battles: also rate named battles (anony false), which are left out by default, as "
        "FastChat's ratings leave them out",
    )
    p.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    p.set_defaults(handler=run)


def add_vote_filters(p: argparse.ArgumentParser) -> None:
    """--category and --voter, shared with `export`."""
    p.add_argument(
        "--category",
        choices=CATEGORIES,
        default="all",
        help="all votes (default), text-only requests, requests with an image, or with audio",
    )
    p.add_argument("--voter", metavar="V", help="only this voter's votes")


def add_rating_options(p: argparse.ArgumentParser) -> None:
    """--rounds and --seed, shared with `export --format leaderboard-csv`."""
    p.add_argument(
        "--rounds",
        type=int,
        default=DEFAULT_ROUNDS,
        metavar="N",
        help=f"bootstrap rounds for the intervals (default {DEFAULT_ROUNDS}; 0 skips them)",
    )
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the bootstrap (default 0)")


def parse_anchor(text: str | None) -> tuple[str, float] | None:
    """'VARIANT=RATING' -> (variant, rating); the last '=' splits, as labels may hold '='."""
    if text is None:
        return None
    variant, sep, rating = text.rpartition("=")
    try:
        value = float(rating)
    except ValueError:
        value = math.nan
    if not sep or not variant or not math.isfinite(value):
        raise UsageError(f"--anchor {text!r} is not VARIANT=RATING (e.g. --anchor demo:e2b=1000)")
    return variant, value


@dataclass(frozen=True)
class Selection:
    """The battles the arguments select, and how many named battles a file had that were left out."""

    battles: Battles
    named_left_out: int = 0


def select_battles(args: argparse.Namespace, settings: Settings) -> Selection:
    """The battles the arguments select, from the database or a FastChat file."""
    if getattr(args, "battles", None) is None:
        with open_store(settings.db_path, create=False) as store:
            return Selection(Battles.from_pairs(store.pair_outcomes(args.category, args.voter)))
    if args.category != "all":
        raise UsageError("--category needs the database: FastChat battles do not say what a request carried")
    table = read_fastchat_table(
        args.battles,
        voter=args.voter,
        skip_bad=getattr(args, "skip_bad", False),
        include_named=getattr(args, "include_named", False),
    )
    for problem in table.skipped:
        print(f"skipped {problem}", file=sys.stderr)
    return Selection(table.battles, table.named_left_out)


def build_leaderboard(args: argparse.Namespace, settings: Settings, selection: Selection | None = None) -> Leaderboard:
    """The leaderboard the arguments ask for (shared with `export --format leaderboard-csv`), of
    `selection` or else of the battles the arguments select."""
    check_options(args)
    return compute_leaderboard(
        (selection or select_battles(args, settings)).battles,
        rounds=args.rounds,
        seed=args.seed,
        anchor=parse_anchor(getattr(args, "anchor", None)),
        min_votes=getattr(args, "min_votes", 0),
    )


def check_options(args: argparse.Namespace) -> None:
    """Refuse option values that cannot work, before any file is read."""
    if args.rounds < 0:
        raise UsageError("--rounds must be 0 or more")
    if getattr(args, "min_votes", 0) < 0:
        raise UsageError("--min-votes must be 0 or more")
    if getattr(args, "include_named", False) and args.battles is None:
        raise UsageError("--include-named applies to --battles files: the database's leaderboard counts every vote")


def run(args: argparse.Namespace, settings: Settings) -> int:
    check_options(args)
    selection = select_battles(args, settings)
    board = build_leaderboard(args, settings, selection)
    note = named_note(selection.named_left_out, "rates") if selection.named_left_out else None
    if args.json:
        print(json.dumps(to_json(board, args, settings, selection.named_left_out), indent=2))
        if note:
            print(note, file=sys.stderr)
    else:
        print(render_table(board, args) + (f"{note}\n" if note else ""), end="")
    return EXIT_OK


def to_json(
    board: Leaderboard, args: argparse.Namespace, settings: Settings, named_left_out: int = 0
) -> dict[str, Any]:
    """The leaderboard as one JSON document; `named_left_out` counts the named battles of a
    --battles file that were not rated (0 for the database, which rates every vote)."""
    source = {"battles": str(args.battles)} if args.battles is not None else {"db": str(settings.db_path)}
    return {
        "source": source,
        "category": args.category,
        "voter": args.voter,
        "battles": board.battles,
        "named_left_out": named_left_out,
        "rounds": board.rounds,
        "seed": board.seed,
        "anchor": board.anchor,
        "anchor_variant": board.anchor_variant,
        "anchor_rating": board.anchor_rating,
        "min_votes": board.min_votes,
        "preliminary_below": board.preliminary_below,
        "rows": [{name: getattr(row, name) for name in row.__dataclass_fields__} for row in board.rows],
        "hidden": [{"variant": h.variant, "votes": h.votes, "reason": h.reason} for h in board.hidden],
        "groups": [list(group) for group in board.groups],
        "models": list(board.models),
        "win_rate": [[None if math.isnan(x) else x for x in line] for line in board.win_rate.tolist()],
        "battle_count": board.battle_count.tolist(),
    }


def render_table(board: Leaderboard, args: argparse.Namespace) -> str:
    where = f"{args.battles}" if args.battles is not None else "stored votes"
    scope = f"category {args.category}" + (f", voter {args.voter}" if args.voter else "")
    if not board.rows:
        return f"No votes yet ({where}, {scope}): vote in the Battle tab, or import FastChat battles.\n"
    width = max(len("variant"), *(len(row.variant) for row in board.rows))
    lines = [
        f"Leaderboard from {where} ({scope}): {board.battles} pairwise outcomes",
        f"Bradley-Terry ratings, scale: {board.anchor}; 95% CI from {board.rounds} bootstrap rounds "
        f"(seed {board.seed}); rank = 1 + variants whose CI lies above",
        "",
        f"{'rank':>4}  {'variant':<{width}}  {'rating':>7}  {'95% CI':>15}  {'votes':>5}  {'wins':>5}  "
        f"{'losses':>6}  {'ties':>5}  {'both bad':>8}  {'elo':>7}",
    ]
    for row in board.rows:
        mark = " *" if row.preliminary else ""
        lines.append(
            f"{row.rank:>4}  {row.variant:<{width}}  {row.rating:7.1f}  "
            f"{f'{row.ci_low:.1f}..{row.ci_high:.1f}':>15}  {row.votes:>5}  {row.wins:>5}  {row.losses:>6}  "
            f"{row.ties:>5}  {row.both_bad:>8}  {row.elo:7.1f}{mark}"
        )
    if any(row.preliminary for row in board.rows):
        lines.append(f"* preliminary: fewer than {board.preliminary_below} votes")
    lines += [f"hidden: {h.variant} ({h.reason})" for h in board.hidden]
    if len(board.groups) > 1:
        lines.append(
            "note: variants fall into groups never compared with each other; ratings compare only "
            "within a group: " + " | ".join(", ".join(group) for group in board.groups)
        )
    return "\n".join(lines) + "\n"

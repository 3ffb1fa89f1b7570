"""`python app.py leaderboard`: ratings from the stored votes (or a FastChat battles file), and
per-voter views (`--voter NAME`: one voter's leaderboard; `--voters`: how each voter voted)."""

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
from arena.voters import VoterStats, voter_stats
from arena.votes import CastVote, Vote
from cli import EXIT_OK, add_db_argument
from storage import CATEGORIES, open_store
from storage.imports import named_note, read_fastchat, read_fastchat_table
from storage.queries import RATING_MODES


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "leaderboard",
        help="rank the variants from the stored votes (Bradley-Terry with bootstrap intervals)",
        description="Fit Bradley-Terry ratings (Elo scale) to the votes, with 95% bootstrap intervals, "
        "Rank (UB), votes, wins, losses, ties and online Elo. Votes on more than two variants count as the "
        "pairwise outcomes they imply (best beats each other; ranked tiers), and as one vote: the bootstrap "
        "resamples votes with all their pairs. Blind votes only by default (--mode); battles whose answers "
        "named a model family or maker are left out unless --include-flagged. Variants with fewer than 30 "
        "votes are preliminary: a wider interval and a shared last rank.",
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
        help="the same as --mode all: also rate named battles (in a --battles file: anony false), which are "
        "left out by default, as FastChat's ratings leave them out",
    )
    p.add_argument(
        "--voters",
        action="store_true",
        help="also show each voter's votes by kind and how often their decisive votes agree with the "
        "ratings of all voters (with --voter: that voter's row only)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    sets = p.add_argument_group("prompt sets", "the verdicts of a set's judges (`generate`, then the Judge tab)")
    sets.add_argument("--set", dest="set_name", metavar="NAME", help="rate the judged pairs of this prompt set")
    sets.add_argument("--tag", metavar="T", help="with --set: only the prompts tagged T (or of category T)")
    sets.add_argument("--by-tag", action="store_true",
                      help="with --set: also show each variant's win rate per tag, with Wilson 95%% intervals")
    sets.add_argument("--agreement", action="store_true",
                      help="with --set: also show how much the judges agree (per pair, and Krippendorff's alpha)")
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
    """--mode, --include-flagged, --rounds and --seed, shared with `export --format leaderboard-csv`."""
    p.add_argument(
        "--mode",
        choices=RATING_MODES,
        help="which votes to rate: on blind battles (default), on named comparisons (the voter saw the "
        "names), or all; in a --battles file, anony says which",
    )
    p.add_argument(
        "--include-flagged",
        action="store_true",
        help="also rate battles flagged because an answer named a model family or maker (left out by "
        "default: the voter may have learnt who was who); database only",
    )
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


def rating_mode(args: argparse.Namespace) -> str:
    """The mode the arguments ask for: --mode, or 'all' for --include-named, else 'blind'."""
    mode = getattr(args, "mode", None)
    if getattr(args, "include_named", False):
        if mode not in (None, "all"):
            raise UsageError(f"--include-named means --mode all (named battles too): it cannot go with --mode {mode}")
        return "all"
    return mode or "blind"


@dataclass(frozen=True)
class Selection:
    """The battles the arguments select, their mode, and what was left out: battles of a file
    of the other mode, flagged battles of the database."""

    battles: Battles
    mode: str = "blind"
    named_left_out: int = 0
    blind_left_out: int = 0
    flagged_left_out: int = 0

    def notes(self) -> list[str]:
        """One line per kind of battle left out, saying how to keep them."""
        notes = [named_note(self.named_left_out, "rates")] if self.named_left_out else []
        if self.blind_left_out:
            notes.append(f"left out {self.blind_left_out} blind battle(s) (anony true): --mode all rates them too")
        if self.flagged_left_out:
            notes.append(
                f"left out {self.flagged_left_out} flagged battle(s) (an answer named a model family or maker, so "
                "the voter may have known who was who): --include-flagged rates them too"
            )
        return notes


def select_battles(args: argparse.Namespace, settings: Settings) -> Selection:
    """The battles the arguments select, from the database or a FastChat file."""
    mode = rating_mode(args)
    flagged = getattr(args, "include_flagged", False)
    if getattr(args, "battles", None) is None:
        with open_store(settings.db_path, create=False) as store:
            pairs = store.pair_outcomes(args.category, args.voter, mode=mode, include_flagged=flagged)
            left_out = 0 if flagged else store.flagged_votes(args.category, args.voter, mode=mode)
        return Selection(Battles.from_pairs(pairs), mode, flagged_left_out=left_out)
    check_file_options(args)
    table = read_fastchat_table(args.battles, voter=args.voter, skip_bad=getattr(args, "skip_bad", False), mode=mode)
    for problem in table.skipped:
        print(f"skipped {problem}", file=sys.stderr)
    return Selection(table.battles, mode, table.named_left_out, table.blind_left_out)


def select_voters(args: argparse.Namespace, settings: Settings) -> list[VoterStats]:
    """The per-voter rows the arguments ask for (`--voters`), of the same slice as the ratings."""
    mode = rating_mode(args)
    if getattr(args, "battles", None) is None:
        with open_store(settings.db_path, create=False) as store:
            rows = store.voter_stats(args.category, mode=mode, include_flagged=getattr(args, "include_flagged", False))
    else:
        check_file_options(args)
        battle_file = read_fastchat(args.battles, skip_bad=getattr(args, "skip_bad", False), mode=mode)
        rows = voter_stats(
            [
                CastVote(str(n), record.judge, (record.model_a, record.model_b), Vote(outcome=record.outcome))
                for n, record in enumerate(battle_file.records)
            ]
        )
    return [row for row in rows if args.voter is None or row.voter == args.voter]


def check_file_options(args: argparse.Namespace) -> None:
    """Refuse database-only options with --battles."""
    if args.category != "all":
        raise UsageError("--category needs the database: FastChat battles do not say what a request carried")
    if getattr(args, "include_flagged", False):
        raise UsageError(
            "--include-flagged applies to the database: a battles file carries no flags (FastChat's "
            "clean_battle_data.py already drops battles whose answers name a model)"
        )


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
    rating_mode(args)


def run(args: argparse.Namespace, settings: Settings) -> int:
    check_options(args)
    if getattr(args, "set_name", None) is not None:
        return run_set(args, settings)
    if args.tag is not None or args.by_tag or args.agreement:
        raise UsageError("--tag, --by-tag and --agreement are about a prompt set: add --set NAME")
    selection = select_battles(args, settings)
    board = build_leaderboard(args, settings, selection)
    voters = select_voters(args, settings) if args.voters else None
    notes = "".join(f"{note}\n" for note in selection.notes())
    if args.json:
        print(json.dumps(to_json(board, args, settings, selection, voters), indent=2))
        print(notes, file=sys.stderr, end="")
    else:
        print(render_table(board, args, selection) + notes + ("" if voters is None else render_voters(voters)), end="")
    return EXIT_OK


def to_json(
    board: Leaderboard,
    args: argparse.Namespace,
    settings: Settings,
    selection: Selection | None = None,
    voters: list[VoterStats] | None = None,
) -> dict[str, Any]:
    """The leaderboard as one JSON document. `named_left_out` / `blind_left_out` count the
    battles of a --battles file of the other mode, `flagged_left_out` the flagged battles of the
    database, that were not rated; `voters` is there with --voters."""
    selection = selection or Selection(Battles.from_pairs([]), rating_mode(args))
    source = {"battles": str(args.battles)} if args.battles is not None else {"db": str(settings.db_path)}
    document: dict[str, Any] = {
        "source": source,
        "category": args.category,
        "voter": args.voter,
        "mode": selection.mode,
        "include_flagged": bool(getattr(args, "include_flagged", False)),
        "votes": board.votes,
        "battles": board.battles,
        "named_left_out": selection.named_left_out,
        "blind_left_out": selection.blind_left_out,
        "flagged_left_out": selection.flagged_left_out,
        "preliminary": board.preliminary,
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
    if voters is not None:
        document["voters"] = [{name: getattr(row, name) for name in row.__dataclass_fields__} for row in voters]
    return document


_MODE_WORDS = {"blind": "blind votes", "named": "votes on named comparisons", "all": "all votes"}


def render_table(board: Leaderboard, args: argparse.Namespace, selection: Selection | None = None) -> str:
    mode = selection.mode if selection is not None else rating_mode(args)
    where = f"{args.battles}" if args.battles is not None else "stored votes"
    scope = f"category {args.category}, {_MODE_WORDS[mode]}" + (f", voter {args.voter}" if args.voter else "")
    if not board.rows:
        return f"No votes yet ({where}, {scope}): vote in the Battle tab, or import FastChat battles.\n"
    width = max(len("variant"), *(len(row.variant) for row in board.rows))
    lines = [
        f"Leaderboard from {where} ({scope}): {board.votes} votes, {board.battles} pairwise outcomes",
        f"Bradley-Terry ratings, scale: {board.anchor}; 95% CI from {board.rounds} bootstrap rounds of votes "
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
    if board.preliminary:
        lines.append(
            f"* preliminary: fewer than {board.preliminary_below} votes; the interval is at least a Wilson 95% "
            "interval of its score, and all preliminary rows share the last rank"
        )
    lines.append("wins, losses, ties and both bad count pairwise outcomes (a best pick of three is 2 wins)")
    lines += [f"hidden: {h.variant} ({h.reason})" for h in board.hidden]
    if len(board.groups) > 1:
        lines.append(
            "note: variants fall into groups never compared with each other; ratings compare only "
            "within a group: " + " | ".join(", ".join(group) for group in board.groups)
        )
    return "\n".join(lines) + "\n"


def render_voters(rows: list[VoterStats]) -> str:
    """The per-voter table (`--voters`)."""
    if not rows:
        return "\nNo vote in this slice names its voter.\n"
    width = max(len("voter"), *(len(row.voter) for row in rows))
    lines = [
        "",
        f"{'voter':<{width}}  {'votes':>5}  {'A':>4}  {'B':>4}  {'tie':>4}  {'both bad':>8}  {'other':>5}  agreement",
    ]
    for row in rows:
        agreement = "-" if row.agreement is None else f"{row.agreement:.0%} of {row.decisive}"
        lines.append(
            f"{row.voter:<{width}}  {row.votes:>5}  {row.a:>4}  {row.b:>4}  {row.tie:>4}  {row.both_bad:>8}  "
            f"{row.other:>5}  {agreement}"
        )
    lines.append(
        "other: best picks and rankings; agreement: share of decisive votes whose winner is the "
        "leaderboard's favourite among the battle's variants (ratings of all voters)"
    )
    return "\n".join(lines) + "\n"


def run_set(args: argparse.Namespace, settings: Settings) -> int:
    """`leaderboard --set NAME [--tag T] [--by-tag] [--agreement]`: ratings of a set's verdicts."""
    from arena.agreement import agreement_text, disagreements, pair_names, set_agreement
    from arena.set_ratings import set_leaderboard, win_rates, with_tag
    from storage.judgments import set_votes
    from storage.sets import set_info

    if args.battles is not None:
        raise UsageError("--set rates the verdicts stored in the database: it cannot go with --battles")
    if args.category != "all" or rating_mode(args) != "blind":
        raise UsageError("--set rates blind verdicts on the set's prompts: leave out --category, --mode and "
                         "--include-named (use --tag to narrow the prompts)")
    flagged = bool(getattr(args, "include_flagged", False))
    with open_store(settings.db_path, create=False) as store:
        set_info(store, args.set_name)  # an unknown set is refused with the sets there are
        votes = set_votes(store, args.set_name, judge=args.voter, include_flagged=flagged)
    chosen = with_tag(votes, args.tag)
    if args.tag is not None and not chosen and votes:
        tags = sorted({label for vote in votes for label in vote.labels})
        raise UsageError(f"no judged prompt of set {args.set_name} is tagged {args.tag!r}; tags judged: "
                         f"{', '.join(tags) or 'none'}")
    board = set_leaderboard(chosen, rounds=args.rounds, seed=args.seed, anchor=parse_anchor(args.anchor),
                            min_votes=args.min_votes)
    rates = win_rates(chosen) if args.by_tag else None
    agreed = set_agreement(chosen) if args.agreement else None
    selection = Selection(Battles.from_pairs(vote.pair() for vote in chosen))
    if args.json:
        document = to_json(board, args, settings, selection)
        document.update({"set": args.set_name, "tag": args.tag})
        if rates is not None:
            document["by_tag"] = [{name: getattr(row, name) for name in row.__dataclass_fields__} for row in rates]
        if agreed is not None:
            document["agreement"] = {
                "alpha": agreed.alpha, "pairs": agreed.pairs, "verdicts": agreed.verdicts, "judges": agreed.judges,
                "mean_agreement": agreed.mean_agreement,
                "per_pair": [{"answers": list(p.unit), "pair": pair_names(chosen)[p.unit], "judges": p.judges,
                              "agreement": p.agreement} for p in agreed.per_pair],
            }
        print(json.dumps(document, indent=2))
        return EXIT_OK
    scope = f"set {args.set_name}" + (f", tag {args.tag}" if args.tag else "")
    text = render_table(board, args, selection).replace("stored votes", scope, 1)
    if not board.rows:
        text = f"No verdicts yet ({scope}): judge the set's pairs in the Judge tab.\n"
    if rates is not None:
        text += "\n" + render_win_rates(rates)
    if agreed is not None:
        text += "\n" + agreement_text(agreed) + "\n"
        if agreed.per_pair:
            text += "".join(f"  {line}\n" for line in disagreements(agreed, pair_names(chosen), shown=20))
    print(text, end="")
    return EXIT_OK


def render_win_rates(rows: list[Any]) -> str:
    """The win rate per tag per variant (`--by-tag`)."""
    from arena.set_ratings import ALL

    if not rows:
        return "No verdicts to break down by tag.\n"
    tag_width = max(len("tag"), len("all prompts"), *(len(row.tag) for row in rows))
    width = max(len("variant"), *(len(row.variant) for row in rows))
    lines = [f"{'tag':<{tag_width}}  {'variant':<{width}}  {'judged':>6}  {'score':>5}  {'95% interval':>12}  "
             f"{'wins':>4}  {'losses':>6}  {'ties':>4}  {'both bad':>8}"]
    for row in rows:
        tag = "all prompts" if row.tag == ALL else row.tag
        lines.append(f"{tag:<{tag_width}}  {row.variant:<{width}}  {row.judged:>6}  {row.score:>5.0%}  "
                     f"{f'{row.low:.0%}..{row.high:.0%}':>12}  {row.wins:>4}  {row.losses:>6}  {row.ties:>4}  "
                     f"{row.both_bad:>8}")
    lines.append("score: share of judged pairs won, a tie or both bad counting half; interval: Wilson 95%")
    return "\n".join(lines) + "\n"

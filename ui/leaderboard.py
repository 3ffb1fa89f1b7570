"""The Leaderboard tab's logic: ratings from the stored votes, by category and mode, with charts,
and the per-voter table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from arena.rating_tables import BOARD_COLUMNS
from arena.ratings import DEFAULT_PRELIMINARY_BELOW, Battles, Leaderboard, compute_leaderboard
from arena.voters import VoterStats
from storage import VariantSpeed
from ui import charts
from ui.services import ArenaServices
from ui.views import md_escape

#: The table's headers: the leaderboard CSV writes the same columns (`BOARD_COLUMNS`).
COLUMNS = [column.header for column in BOARD_COLUMNS]
VOTER_COLUMNS = ["voter", "votes", "A", "B", "tie", "both bad", "best / ranking", "agreement"]
CATEGORY_LABELS = {"all": "All", "text": "Text only", "image": "With image", "audio": "With audio"}
MODE_LABELS = {"blind": "blind battles", "named": "named comparisons", "all": "blind battles and named comparisons"}


@dataclass
class LeaderboardView:
    table: list[list[Any]]
    summary: str
    ci_chart: Any
    win_rate_chart: Any
    quality_speed_chart: Any
    board: Leaderboard
    speeds: list[VariantSpeed]
    voters: list[list[Any]]
    voter_chart: Any
    flagged_left_out: int = 0


def legend(preliminary_below: int = DEFAULT_PRELIMINARY_BELOW) -> str:
    """What each column of the table means, in Markdown (shown under the table)."""
    return (
        "**How to read the table.** "
        "**rating**: Bradley–Terry strength fitted on all the votes at once, on the Elo scale (400 points "
        "more = expected to win 10 to 1), shifted so the variants average 1000 (the summary says which). "
        "**95% CI**: where the rating lies with 95 % confidence, from re-drawing the votes at random "
        "(bootstrap). **rank**: 1 + the number of variants whose whole interval lies above this one's, so "
        "variants whose intervals overlap, and equal ratings, share a rank. "
        "**votes**: the votes the variant took part in; **wins / losses / ties / both bad**: the pairwise "
        "outcomes those votes imply (a best pick among four is three wins). "
        "**online Elo**: the classic Elo that moves after each vote in turn (K = 4), shown for comparison "
        "with other arenas; it depends on the order of the votes (the latest weigh most, and it moves "
        "slowly), so it can differ from the rating, which weighs every vote the same whenever it was cast. "
        f"**(preliminary)**: fewer than {preliminary_below} votes; its interval is widened to what so few "
        "votes can tell, and the preliminary rows share the rank after all the others."
    )


def table_rows(board: Leaderboard) -> list[list[Any]]:
    """One row per listed variant (`COLUMNS`). When every vote of the slice is a tie the ratings
    are all equal, and so is the rank shown (the ratings' rank would put preliminary rows last)."""
    all_equal = _ties_only(board)
    return [
        [
            1 if all_equal else row.rank,
            row.variant + (" (preliminary)" if row.preliminary else ""),
            round(row.rating, 1),
            f"{row.ci_low:.0f} to {row.ci_high:.0f}",
            row.votes, row.wins, row.losses, row.ties, row.both_bad,
            round(row.elo, 1),
        ]
        for row in board.rows
    ]


def voter_rows(stats: list[VoterStats]) -> list[list[Any]]:
    """The per-voter table, one row per voter (`VOTER_COLUMNS`)."""
    return [
        [
            row.voter, row.votes, row.a, row.b, row.tie, row.both_bad, row.other,
            "-" if row.agreement is None else f"{row.agreement:.0%} of {row.decisive}",
        ]
        for row in stats
    ]


def compute_board(
    services: ArenaServices, category: str = "all", *, mode: str = "blind", voter: str | None = None,
    rounds: int = 1000,
) -> Leaderboard:
    """The ratings of the stored votes in `category` on battles of `mode` (blind by default), by
    `voter` if given, flagged battles left out (what the tab and the CSV export show)."""
    pairs = services.store.pair_outcomes(category, voter, mode=mode)
    return compute_leaderboard(Battles.from_pairs(pairs), rounds=rounds, seed=0)


def build_view(
    services: ArenaServices, category: str = "all", *, mode: str = "blind", voter: str | None = None,
    rounds: int = 1000,
) -> LeaderboardView:
    """Everything the tab shows for one slice: the table, its summary, the charts, and the
    per-voter table (every voter of the slice, whatever `voter`)."""
    board = compute_board(services, category, mode=mode, voter=voter, rounds=rounds)
    flagged = services.store.flagged_votes(category, voter, mode=mode)
    stats = services.store.voter_stats(category, mode=mode)
    speeds = services.store.speed_by_variant()
    return LeaderboardView(
        table=table_rows(board),
        summary=summary(board, category, mode, voter, flagged),
        ci_chart=charts.ci_chart(board),
        win_rate_chart=charts.win_rate_chart(board),
        quality_speed_chart=charts.quality_speed_chart(board, speeds),
        board=board,
        speeds=speeds,
        voters=voter_rows(stats),
        voter_chart=charts.voter_chart(stats),
        flagged_left_out=flagged,
    )


def _ties_only(board: Leaderboard) -> bool:
    """Whether the slice has votes and every one of them is a tie or both bad."""
    return bool(board.rows) and all(row.wins == row.losses == 0 for row in board.rows)


def summary(board: Leaderboard, category: str, mode: str, voter: str | None, flagged: int) -> str:
    """What the table is of and how to read it, in Markdown; for a slice without votes, with one
    vote or with only ties, first what that means for the ratings."""
    who = f" by **{md_escape(voter)}**" if voter else ""
    slice_ = (f"{MODE_LABELS.get(mode, md_escape(mode))} in "
              f"**{CATEGORY_LABELS.get(category, md_escape(category))}**")
    left_out = (
        f" {flagged} flagged battle(s) left out: an answer named a model family or maker, so the voter "
        "may have known who was who."
    ) if flagged else ""
    if not board.rows:
        return (f"**No votes yet** on {slice_}{who}: vote in Battle or Compare, or pick another category, "
                f"votes or voter above.{left_out}")
    text = ""
    if board.votes == 1:
        text += ("**These ratings rest on one vote.** One vote cannot tell how much better one variant is: "
                 "the intervals span most of the scale. Vote more to narrow them. ")
    if _ties_only(board):
        text += ("**Every vote here is a tie or both bad**, so the ratings are all equal and the variants share "
                 "rank 1 (listed by name). ")
    text += (
        f"{board.votes} vote(s){who} on {slice_} ({board.battles} pairwise outcome(s)); "
        f"scale: {md_escape(board.anchor)}; 95 % intervals from {board.rounds} bootstrap rounds of votes; "
        "rank = Rank (UB): variants whose intervals overlap share a rank."
    )
    if board.preliminary:
        text += (
            f" {board.preliminary} variant(s) with fewer than {board.preliminary_below} votes are preliminary: "
            "a wider interval, and the last rank, shared."
        )
    else:
        text += f" Rows with fewer than {board.preliminary_below} votes would be preliminary."
    text += left_out
    if len(board.groups) > 1:
        text += " Some variants were never compared with each other: ratings compare only within a group."
    return text

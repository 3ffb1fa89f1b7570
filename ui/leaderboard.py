"""The Leaderboard tab's logic: ratings from the stored votes, by category, with charts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from arena.ratings import Battles, Leaderboard, compute_leaderboard
from storage import VariantSpeed
from ui import charts
from ui.services import ArenaServices
from ui.views import md_escape

COLUMNS = ["rank", "variant", "rating", "95% CI", "votes", "wins", "losses", "ties", "both bad", "online Elo"]
CATEGORY_LABELS = {"all": "All", "text": "Text only", "image": "With image", "audio": "With audio"}


@dataclass
class LeaderboardView:
    table: list[list[Any]]
    summary: str
    ci_chart: Any
    win_rate_chart: Any
    quality_speed_chart: Any
    board: Leaderboard
    speeds: list[VariantSpeed]


def table_rows(board: Leaderboard) -> list[list[Any]]:
    return [
        [
            row.rank,
            row.variant + (" (preliminary)" if row.preliminary else ""),
            round(row.rating, 1),
            f"{row.ci_low:.0f} to {row.ci_high:.0f}",
            row.votes, row.wins, row.losses, row.ties, row.both_bad,
            round(row.elo, 1),
        ]
        for row in board.rows
    ]


def compute_board(services: ArenaServices, category: str = "all", rounds: int = 1000) -> Leaderboard:
    """The ratings of the stored votes in `category` (what the tab and the CSV export show)."""
    return compute_leaderboard(Battles.from_pairs(services.store.pair_outcomes(category)), rounds=rounds, seed=0)


def build_view(services: ArenaServices, category: str = "all", rounds: int = 1000) -> LeaderboardView:
    board = compute_board(services, category, rounds)
    speeds = services.store.speed_by_variant()
    summary = (
        f"{board.battles} pairwise outcome(s) in **{CATEGORY_LABELS.get(category, category)}**; "
        f"scale: {md_escape(board.anchor)}; 95 % intervals from {board.rounds} bootstrap rounds; "
        "rank = Rank (UB): variants whose intervals overlap share a rank. "
        f"Rows with fewer than {board.preliminary_below} votes are preliminary."
    )
    if len(board.groups) > 1:
        summary += " Some variants were never compared with each other: ratings compare only within a group."
    return LeaderboardView(
        table=table_rows(board),
        summary=summary,
        ci_chart=charts.ci_chart(board),
        win_rate_chart=charts.win_rate_chart(board),
        quality_speed_chart=charts.quality_speed_chart(board, speeds),
        board=board,
        speeds=speeds,
    )

"""Charts, drawn with matplotlib (rendered to images: no script, no network, works offline)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from arena.measure import Result
from arena.ratings import Leaderboard
from arena.voters import VoterStats
from storage import VariantSpeed

_COLOURS = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C"]


def _label(name: str, width: int = 28) -> str:
    """Names as chart labels: a very long one is cut, so the plot keeps its room."""
    return name if len(name) <= width else name[: width - 1] + "…"


def _figure(width: float, height: float, ncols: int = 1) -> tuple[Any, Any]:
    """A figure of its own, not pyplot's: pyplot keeps every figure it made until it is closed,
    and a server drawing charts for every comparison and leaderboard would keep them all."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)
    return fig, axes[0]


def stats_chart(results: Sequence[Result]) -> Any:
    """Bars comparing the variants of one comparison: TTFT, decode speed, total time, and each
    variant's own memory (weights + this request's peak, not its process's total)."""
    measured = [r for r in results if r.ok]
    names = [_label(r.variant) for r in measured]
    panels = [
        ("time to first token (s)", [r.stats.ttft_s for r in measured]),
        ("decode (tokens/s)", [r.stats.tokens_per_s for r in measured]),
        ("total (s)", [r.stats.total_s for r in measured]),
        ("memory: weights + request (MiB)",
         [None if (own := r.stats.own_memory_bytes) is None else own / 2**20 for r in measured]),
    ]
    fig, axes = _figure(11, 2.4, ncols=4)
    for ax, (title, values) in zip(axes, panels, strict=True):
        heights = [0.0 if v is None else float(v) for v in values]
        ax.barh(names, heights, color=_COLOURS[: len(names)])
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=8)
        ax.invert_yaxis()
        for y, value in enumerate(values):
            if value is None:
                ax.text(0, y, " n/a", va="center", fontsize=8)
    return fig


def ci_chart(board: Leaderboard) -> Any:
    """Each variant's rating with its 95 % bootstrap interval."""
    fig, axes = _figure(7, 0.5 + 0.45 * max(1, len(board.rows)))
    ax = axes[0]
    if not board.rows:
        ax.text(0.5, 0.5, "no votes yet", ha="center", va="center")
        ax.set_axis_off()
        return fig
    rows = list(reversed(board.rows))
    y = np.arange(len(rows))
    ratings = np.array([r.rating for r in rows])
    low = ratings - np.array([r.ci_low for r in rows])
    high = np.array([r.ci_high for r in rows]) - ratings
    ax.errorbar(ratings, y, xerr=[low, high], fmt="o", color=_COLOURS[0], ecolor="#888", capsize=4)
    ax.set_yticks(y, [f"{_label(r.variant)} (#{r.rank})" for r in rows], fontsize=8)
    ax.set_xlabel(f"rating (Bradley-Terry, 95 % CI; {board.anchor})", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    return fig


def win_rate_chart(board: Leaderboard) -> Any:
    """Pairwise win rates (row beats column, ties as half) and the battle counts behind them."""
    fig, axes = _figure(10, 0.8 + 0.5 * max(2, len(board.models)), ncols=2)
    names = [_label(m) for m in board.models]
    for ax, matrix, title, fmt in (
        (axes[0], board.win_rate, "win rate of row over column", "{:.0%}"),
        (axes[1], board.battle_count, "battles", "{:.0f}"),
    ):
        if not names:
            ax.set_axis_off()
            continue
        shown = np.where(np.isnan(matrix), 0.5 if ax is axes[0] else 0, matrix)
        ax.imshow(shown, cmap="RdYlGn" if ax is axes[0] else "Blues", vmin=0, vmax=1 if ax is axes[0] else None)
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.set_title(title, fontsize=9)
        for (i, j), value in np.ndenumerate(matrix):
            if i != j and not np.isnan(value):
                ax.text(j, i, fmt.format(value), ha="center", va="center", fontsize=8)
    return fig


def quality_speed_chart(board: Leaderboard, speeds: Sequence[VariantSpeed]) -> Any:
    """Rating (with CI) against median decode speed and against median own memory (weights +
    request peak, `speed_by_variant`), per variant:
    which variant pays on this machine, from the user's own votes and runs."""
    fig, axes = _figure(10, 3.4, ncols=2)
    by_name = {s.variant: s for s in speeds}
    rows = [r for r in board.rows if r.variant in by_name]
    for ax, key, label in (
        (axes[0], "median_tokens_per_s", "median decode speed (tokens/s)"),
        (axes[1], "median_peak_memory_bytes", "median memory: weights + request peak (MiB)"),
    ):
        points = [(r, getattr(by_name[r.variant], key)) for r in rows]
        points = [(r, v / 2**20 if key.endswith("bytes") else v) for r, v in points if v is not None]
        if not points:
            ax.text(0.5, 0.5, "needs votes and measured runs", ha="center", va="center", fontsize=9)
            ax.set_axis_off()
            continue
        for n, (row, x) in enumerate(points):
            ax.errorbar(x, row.rating, yerr=[[row.rating - row.ci_low], [row.ci_high - row.rating]],
                        fmt="o", color=_COLOURS[n % len(_COLOURS)], capsize=4)
            ax.annotate(_label(row.variant), (x, row.rating), textcoords="offset points", xytext=(6, 4), fontsize=8)
        ax.set_xlabel(label, fontsize=9)
        ax.set_ylabel("rating", fontsize=9)
        ax.grid(alpha=0.3)
    return fig


def voter_chart(stats: Sequence[VoterStats], most: int = 20) -> Any:
    """Each voter's votes by kind (stacked bars: A, B, tie, both bad, best / ranking), labelled
    with their agreement with the leaderboard; the `most` busiest voters."""
    shown = list(stats)[:most]
    fig, axes = _figure(7, 0.8 + 0.4 * max(1, len(shown)))
    ax = axes[0]
    if not shown:
        ax.text(0.5, 0.5, "no votes with a voter yet", ha="center", va="center")
        ax.set_axis_off()
        return fig
    names = [_label(row.voter) for row in shown]
    left = np.zeros(len(shown))
    for n, (label, key) in enumerate(
        (("A", "a"), ("B", "b"), ("tie", "tie"), ("both bad", "both_bad"), ("best / ranking", "other"))
    ):
        values = np.array([getattr(row, key) for row in shown], dtype=float)
        ax.barh(names, values, left=left, color=_COLOURS[n], label=label)
        left += values
    for y, row in enumerate(shown):
        agreement = "no decisive vote" if row.agreement is None else f"agrees {row.agreement:.0%}"
        ax.text(left[y], y, f" {agreement}", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("votes (agreement: decisive votes won by the leaderboard's favourite)", fontsize=8)
    ax.tick_params(labelsize=8)
    ax.set_xlim(0, left.max() * 1.35)
    ax.legend(fontsize=7, loc="lower right")
    return fig

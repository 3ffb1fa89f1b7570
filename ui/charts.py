"""Charts, drawn with matplotlib (rendered to images: no script, no network, works offline).

A chart with nothing to show says so inside the figure (`NO_VOTES`, `NO_RUNS`) rather than
drawing empty axes, which a reader takes for a broken page.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from arena.measure import Result
from arena.ratings import Leaderboard
from arena.voters import VoterStats
from storage import VariantSpeed

_COLOURS = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C"]
#: A pairwise matrix's diagonal (a variant against itself): filled, never numbered.
DIAGONAL_COLOUR = "#8c8c8c"
#: A pair never compared: hatched, with a dash, so it cannot be mistaken for a value or the diagonal.
NEVER_COMPARED_HATCH = "///"
NEVER_COMPARED = "—"

NO_VOTES = "No votes yet: vote in Battle or Compare"
NO_RUNS = "No measured answers yet: send a prompt in Compare"
NO_ANSWER = "No variant answered, so there is nothing to measure: see each panel's error"
NO_RUNS_FOR_RATED = "No measured runs of the rated variants yet: send prompts in Compare"
#: The line from a moved point label back to its point.
_LEADER = {"arrowstyle": "-", "color": "#999999", "linewidth": 0.6, "shrinkA": 0, "shrinkB": 3}


def _label(name: str, width: int = 28) -> str:
    """Names as chart labels: a very long one is cut, so the plot keeps its room."""
    return name if len(name) <= width else name[: width - 1] + "…"


def _figure(width: float, height: float, ncols: int = 1, nrows: int = 1) -> tuple[Any, Any]:
    """A figure of its own, not pyplot's: pyplot keeps every figure it made until it is closed,
    and a server drawing charts for every comparison and leaderboard would keep them all. Its
    axes, row after row."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)  # a renderer to measure text with (`_spread_labels`)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes.flatten()


def _say(ax: Any, message: str) -> None:
    """`message` in the middle of `ax`, which is otherwise blank (no frame, no ticks)."""
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=10, color="#555555", transform=ax.transAxes)
    ax.set_axis_off()


def empty_chart(message: str, width: float = 7, height: float = 1.4) -> Any:
    """A figure that only says `message`: what a chart shows when there is nothing to draw."""
    fig, axes = _figure(width, height)
    _say(axes[0], message)
    return fig


def stats_chart(results: Sequence[Result]) -> Any:
    """Bars comparing the variants of one comparison: TTFT, decode speed, total time, and each
    variant's own memory (weights + this request's peak, not its process's total)."""
    measured = [r for r in results if r.ok]
    if not measured:
        return empty_chart(NO_ANSWER if results else NO_RUNS, width=11)
    names = [_label(r.variant) for r in measured]
    panels = [
        ("time to first token (s)", [r.stats.ttft_s for r in measured]),
        ("decode (tokens/s)", [r.stats.tokens_per_s for r in measured]),
        ("total (s)", [r.stats.total_s for r in measured]),
        ("memory: weights + request (MiB)",
         [None if (own := r.stats.own_memory_bytes) is None else own / 2**20 for r in measured]),
    ]
    # two by two, not four in a row: on a phone's 500 px a row of four shrank to an unreadable strip
    fig, axes = _figure(8, 2 * (1.0 + 0.32 * len(names)), ncols=2, nrows=2)
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
    if not board.rows:
        return empty_chart(NO_VOTES)
    fig, axes = _figure(7, 0.5 + 0.45 * len(board.rows))
    ax = axes[0]
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
    """Pairwise win rates (row beats column, over their decisive battles) and the battle counts
    behind them. Every pair that met shows a value, a pair that only tied 50 % with its count; a
    pair never compared is hatched with a dash; the diagonal is grey and unnumbered."""
    if not board.models:
        return empty_chart(NO_VOTES, width=10)
    fig, axes = _figure(10, 0.8 + 0.5 * max(2, len(board.models)), ncols=2)
    names = [_label(m) for m in board.models]
    counts = np.asarray(board.battle_count, dtype=float)
    met = counts > 0
    np.fill_diagonal(met, False)
    ties_only = met & np.isnan(board.win_rate)
    rates = np.where(ties_only, 0.5, board.win_rate)
    _pair_matrix(axes[0], names, np.where(met, rates, np.nan), "RdYlGn", 1.0,
                 "win rate of row over column (ties left out)",
                 lambda i, j: f"50 %\n{counts[i, j]:.0f} tie{'s' if counts[i, j] != 1 else ''}"
                 if ties_only[i, j] else f"{rates[i, j]:.0%}".replace("%", " %"))
    _pair_matrix(axes[1], names, np.where(met, counts, np.nan), "Blues", None, "battles",
                 lambda i, j: f"{counts[i, j]:.0f}")
    return fig


def _pair_matrix(ax: Any, names: list[str], values: np.ndarray, cmap: str, vmax: float | None, title: str,
                 text: Any) -> None:
    """One M x M panel: `values` (NaN: not a pair that met) coloured and labelled by `text(i, j)`;
    the diagonal grey, pairs never compared hatched with a dash."""
    from matplotlib import colormaps
    from matplotlib.patches import Rectangle

    colours = colormaps[cmap].with_extremes(bad="white")
    top = vmax if vmax is not None else max(1.0, float(np.nanmax(values)) if np.isfinite(values).any() else 1.0)
    ax.imshow(np.ma.masked_invalid(values), cmap=colours, vmin=0, vmax=top)
    for (i, j), value in np.ndenumerate(values):
        if i == j:
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor=DIAGONAL_COLOUR, edgecolor="white",
                                   gid="diagonal"))
        elif np.isnan(value):
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor="white", edgecolor="#b0b0b0",
                                   hatch=NEVER_COMPARED_HATCH, linewidth=0, gid="never-compared"))
            ax.text(j, i, NEVER_COMPARED, ha="center", va="center", fontsize=9, color="#777777")
        else:
            ax.text(j, i, text(i, j), ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_title(title, fontsize=9)


def quality_speed_chart(board: Leaderboard, speeds: Sequence[VariantSpeed]) -> Any:
    """Rating (with CI) against median decode speed and against median own memory (weights +
    request peak, `speed_by_variant`), per variant:
    which variant pays on this machine, from the user's own votes and runs. Labels of points
    close together are moved apart (`_spread_labels`), with a line back to their point."""
    if not board.rows:
        return empty_chart(NO_VOTES, width=10)
    # one above the other: side by side, a phone's 500 px left each too small to read
    fig, axes = _figure(7, 6.2, nrows=2)
    by_name = {s.variant: s for s in speeds}
    rows = [r for r in board.rows if r.variant in by_name]
    for ax, key, label in (
        (axes[0], "median_tokens_per_s", "median decode speed (tokens/s)"),
        (axes[1], "median_peak_memory_bytes", "median memory: weights + request peak (MiB)"),
    ):
        points = [(r, getattr(by_name[r.variant], key)) for r in rows]
        points = [(r, v / 2**20 if key.endswith("bytes") else v) for r, v in points if v is not None]
        if not points:
            _say(ax, NO_RUNS_FOR_RATED)
            continue
        labels = []
        for n, (row, x) in enumerate(points):
            ax.errorbar(x, row.rating, yerr=[[row.rating - row.ci_low], [row.ci_high - row.rating]],
                        fmt="o", color=_COLOURS[n % len(_COLOURS)], capsize=4)
            labels.append(ax.annotate(_label(row.variant), (x, row.rating), textcoords="offset points",
                                      xytext=(6, 4), fontsize=8))
        ax.set_xlabel(label, fontsize=9)
        ax.set_ylabel("rating", fontsize=9)
        ax.grid(alpha=0.3)
        _spread_labels(fig, ax, labels)
    return fig


def _spread_labels(fig: Any, ax: Any, labels: list[Any], gap: float = 2.0, rounds: int = 200) -> None:
    """Move point labels apart vertically until no two overlap: each overlapping pair is pushed
    apart by its overlap, half each way, a few hundred rounds at most (a handful of variants
    settle in a few). Moved labels get a thin line to their point. Measured on the laid-out
    figure, in points, so the spacing survives the final draw."""
    if len(labels) < 2:
        return
    fig.draw_without_rendering()  # lays the figure out: label extents are then final
    renderer = fig.canvas.get_renderer()
    to_points = 72.0 / fig.dpi
    boxes = [label.get_window_extent(renderer) for label in labels]
    left = np.array([b.x0 for b in boxes]) * to_points
    right = np.array([b.x1 for b in boxes]) * to_points
    bottom = np.array([b.y0 for b in boxes]) * to_points
    height = np.array([b.height for b in boxes]) * to_points
    shift = np.zeros(len(labels))
    for _ in range(rounds):
        moved = False
        y = bottom + shift
        for i in range(len(labels)):
            for j in range(i + 1, len(labels)):
                if left[i] >= right[j] or left[j] >= right[i]:
                    continue  # side by side: no overlap whatever their heights
                low, high = (i, j) if (y[i], i) <= (y[j], j) else (j, i)
                overlap = y[low] + height[low] + gap - y[high]
                if overlap > 1e-6:
                    shift[low] -= overlap / 2
                    shift[high] += overlap / 2
                    y = bottom + shift
                    moved = True
        if not moved:
            break
    for label, dy in zip(labels, shift, strict=True):
        if abs(dy) > 0.5:
            # matplotlib builds an annotation's line only in its constructor: draw the label anew
            dx, dy0 = label.xyann
            label.remove()
            ax.annotate(label.get_text(), label.xy, textcoords="offset points", xytext=(dx, dy0 + dy),
                        fontsize=label.get_fontsize(), arrowprops=_LEADER)



def voter_chart(stats: Sequence[VoterStats], most: int = 20) -> Any:
    """Each voter's votes by kind (stacked bars: A, B, tie, both bad, best / ranking), labelled
    with their agreement with the leaderboard; the `most` busiest voters."""
    shown = list(stats)[:most]
    if not shown:
        return empty_chart(NO_VOTES)
    fig, axes = _figure(7, 0.8 + 0.4 * len(shown))
    ax = axes[0]
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

"""The decision report's charts, drawn with matplotlib's `Figure` (not pyplot, which would keep
every figure) and turned into PNG bytes: quality against cost, and the pairwise win rates."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from arena.report import Report, ReportRow

_COLOURS = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C"]
_FRONT = "#222222"
GIB = 1024**3


def label(name: str, width: int = 28) -> str:
    """A name as chart text: cut when very long, and `$` escaped so matplotlib never reads it as
    mathematical markup (an unbalanced one would fail the drawing)."""
    short = name if len(name) <= width else name[: width - 1] + "…"
    return short.replace("$", r"\$")


def _figure(width: float, height: float, ncols: int = 1) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots(1, ncols, squeeze=False)[0]


def png_bytes(fig: Any, dpi: int = 100) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def quality_cost_chart(report: Report) -> Any:
    """Rating (95 % interval as error bars) against median decode tokens/s and against memory;
    the Pareto front ringed and joined by a dashed line in each panel."""
    fig, axes = _figure(11, 4.2, ncols=2)
    panels = (
        (axes[0], lambda row: row.median_tokens_per_s, "median decode speed (tokens/s), faster ->"),
        (
            axes[1],
            lambda row: None if row.memory_bytes is None else row.memory_bytes / GIB,
            f"median {report.memory_label} (GiB), <- smaller",
        ),
    )
    colour = {row.variant: _COLOURS[n % len(_COLOURS)] for n, row in enumerate(report.rows)}
    for ax, figure_of, title in panels:
        points = [(row, figure_of(row)) for row in report.rows]
        known: list[tuple[ReportRow, float]] = [(row, float(x)) for row, x in points if x is not None]
        missing = [row.variant for row, x in points if x is None]
        ax.set_xlabel(title, fontsize=9)
        ax.set_ylabel("rating (Bradley-Terry, 95 % interval)", fontsize=9)
        if not known:
            ax.text(
                0.5,
                0.5,
                "no measured runs yet:\nrun the variants in the Compare tab",
                ha="center",
                va="center",
                fontsize=9,
                transform=ax.transAxes,
            )
            ax.set_xticks([])
            continue
        for row, x in known:
            ax.errorbar(
                x,
                row.rating,
                yerr=[[row.rating - row.ci_low], [row.ci_high - row.rating]],
                fmt="o",
                color=colour[row.variant],
                capsize=4,
            )
            ax.annotate(label(row.variant), (x, row.rating), textcoords="offset points", xytext=(6, 4), fontsize=8)
        front = sorted(((x, row.rating) for row, x in known if row.on_front))
        if front:
            xs, ys = zip(*front, strict=True)
            ax.scatter(
                xs,
                ys,
                s=260,
                facecolors="none",
                edgecolors=_FRONT,
                linewidths=1.5,
                label="Pareto front (rating, speed, memory)",
                zorder=3,
            )
            if len(front) > 1:
                ax.plot(xs, ys, linestyle="--", color=_FRONT, linewidth=1, alpha=0.6)
            ax.legend(fontsize=8, loc="best")
        if missing:
            ax.text(
                0.01,
                0.01,
                "not measured: " + ", ".join(label(name, 20) for name in missing),
                transform=ax.transAxes,
                fontsize=7,
                va="bottom",
            )
        ax.grid(alpha=0.3)
    return fig


def win_rate_chart(report: Report) -> Any:
    """How often the row beat the column in their decisive outcomes (ties left out, as in
    `arena.rating_tables.win_rate_matrix`), with the battles behind each cell."""
    board = report.board
    names = [label(name, 20) for name in board.models]
    fig, axes = _figure(1.6 + 0.7 * max(2, len(names)), 1.0 + 0.55 * max(2, len(names)))
    ax = axes[0]
    if not names:
        ax.text(0.5, 0.5, "no votes yet", ha="center", va="center")
        ax.set_axis_off()
        return fig
    shown = np.where(np.isnan(board.win_rate), 0.5, board.win_rate)
    ax.imshow(shown, cmap="RdYlGn", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_title("decisive wins of row over column (battles)", fontsize=9)
    for (i, j), value in np.ndenumerate(board.win_rate):
        battles = board.battle_count[i, j]
        if i != j and battles:
            shown_rate = "ties only" if np.isnan(value) else f"{value:.0%}"
            ax.text(j, i, f"{shown_rate}\n({battles:.0f})", ha="center", va="center", fontsize=7)
    return fig


def report_charts(report: Report) -> dict[str, bytes]:
    """Every chart of the report as PNG bytes, by name (also the file name stem next to a Markdown report)."""
    return {
        "quality-cost": png_bytes(quality_cost_chart(report)),
        "win-rates": png_bytes(win_rate_chart(report)),
    }

"""The decision report: which variant to use, from the votes, the measured runs and this machine.

Pure: the leaderboard, the speed figures and the fit verdicts come in as values
(`cli.report` and `ui.report` gather them; `ui.report_render` draws and writes nothing either).

    report = build_report(board, speeds, fits)
    report.rows                  # rating, interval, win rate, speed, memory, fit, on the front
    report.front                 # the Pareto front over (rating up, tokens/s up, memory down)
    report.recommendation.text   # what the data say, and how sure they are

What the recommendation claims, and no more:

- the top is the variant with the highest rating; every variant whose 95 % interval overlaps the
  top's is called statistically tied with it (overlapping intervals are a tie);
- among the tied, the cheaper one is preferred and named with its figures: the fastest (median
  decode tokens/s) or the smallest (memory) of those measured, by more than `COST_MARGIN`; when
  one is fastest and another smallest, both are named and none is picked; a variant that does not
  fit this machine is not preferred;
- for preliminary variants and intervals wider than `target_width`, how many more votes would
  bring the interval to that width: the width shrinks about as 1/sqrt(votes), so
  `votes_needed = votes * (width / target)**2 - votes`, stated as an estimate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from arena.ratings import Leaderboard, Row
from arena.units import format_bytes

if TYPE_CHECKING:
    from storage.queries import VariantSpeed

DEFAULT_TARGET_WIDTH = 100.0
"""Elo: an interval of +-50, narrow enough to tell apart variants about 100 Elo apart."""

MEMORY_LABEL = "memory: weights + request peak"
"""What the memory figure is (`memory_of`), in a heading; `MEMORY_NOTE` says more."""
MEMORY_NOTE = ("parameters and buffers as loaded, plus the request's peak above the loaded baseline (KV cache, "
               "activations); a server's own figure for remote engines")

UNKNOWN_FIT = "unknown"

COST_MARGIN = 0.10
"""How much faster or smaller one of the tied must be than each other to be called cheaper:
medians of a few runs differ by some per cent from run to run, so closer figures decide nothing."""


def memory_of(speed: VariantSpeed) -> float | None:
    """The one place the report reads a variant's memory figure from its measured runs."""
    return speed.median_peak_memory_bytes


# --- the Pareto front ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParetoPoint:
    """One variant's quality and cost: higher rating and tokens/s are better, less memory is."""

    name: str
    rating: float
    tokens_per_s: float | None = None
    memory_bytes: float | None = None


def dominates(a: ParetoPoint, b: ParetoPoint) -> bool:
    """Whether the data show `a` at least as good as `b` on every figure and better on one.

    A figure known for only one of the two shows nothing (the unknown one might be better), so
    `a` does not dominate `b` then; a figure neither has is left out of the comparison."""
    better = False
    for mine, theirs, sign in (
        (a.rating, b.rating, 1.0),
        (a.tokens_per_s, b.tokens_per_s, 1.0),
        (a.memory_bytes, b.memory_bytes, -1.0),
    ):
        if mine is None and theirs is None:
            continue
        if mine is None or theirs is None:
            return False
        gain = sign * (mine - theirs)
        if gain < 0:
            return False
        better = better or gain > 0
    return better


def pareto_front(points: Sequence[ParetoPoint]) -> tuple[str, ...]:
    """The names of the points no other point dominates (`dominates`), in input order.

    Identical points are both on the front; a variant with a missing figure stays on the front
    unless another beats it on the figures both have and it lacks none of them (see `dominates`)."""
    return tuple(p.name for p in points if not any(dominates(q, p) for q in points if q is not p))


# --- votes needed -------------------------------------------------------------------------------------------


def votes_needed(votes: int, width: float, target: float) -> int:
    """About how many more votes bring an interval of `width` (from `votes` votes) to `target`:
    the width shrinks about as 1/sqrt(votes), so `votes * (width / target)**2 - votes`, rounded
    up; 0 when it is already that narrow. An estimate: later votes may differ from earlier ones."""
    if target <= 0:
        raise ValueError(f"the target interval width must be above 0 Elo, not {target:g}")
    if votes <= 0 or width <= target:
        return 0
    return math.ceil(votes * (width / target) ** 2 - votes - 1e-9)


# --- the report ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportRow:
    """One rated variant. `win_rate`: the share of its pairwise outcomes it won, ties of either
    kind as half; `median_*` and `memory_bytes` over its measured runs (`runs`), None where none
    measured it; `fit`: the verdict on this machine ("fits ...", "fits with offload ...", "does
    not fit ...", or "unknown ..."); `more_votes`: about how many more votes bring its interval
    to the report's target width (and out of preliminary)."""

    variant: str
    rating: float
    ci_low: float
    ci_high: float
    rank: int
    votes: int
    preliminary: bool
    win_rate: float | None
    runs: int
    median_ttft_s: float | None
    median_tokens_per_s: float | None
    memory_bytes: float | None
    fit: str
    on_front: bool
    more_votes: int

    @property
    def ci_width(self) -> float:
        return self.ci_high - self.ci_low

    def overlaps(self, other: ReportRow) -> bool:
        """Whether the two 95 % intervals share any rating: a statistical tie."""
        return self.ci_low <= other.ci_high and other.ci_low <= self.ci_high

    @property
    def point(self) -> ParetoPoint:
        return ParetoPoint(self.variant, self.rating, self.median_tokens_per_s, self.memory_bytes)


@dataclass(frozen=True)
class Recommendation:
    """`top`: the highest rating; `tied`: the variants statistically tied with it (the top first,
    then by rating; just the top when none is); `pick`: the one to use, or None when the data do
    not single one out (no votes, or the fastest and the smallest of the tied differ); `lines`:
    the reasoning, one sentence each, the first the headline."""

    top: str | None
    tied: tuple[str, ...]
    pick: str | None
    lines: tuple[str, ...]

    @property
    def headline(self) -> str:
        return self.lines[0] if self.lines else ""

    @property
    def text(self) -> str:
        return " ".join(self.lines)


@dataclass(frozen=True, eq=False)
class Report:
    """Everything the decision report shows. `rows` in the leaderboard's order; `front` the
    Pareto front's names in that order; `unrated` the measured variants with no vote in this
    slice; `board` the leaderboard behind it (win rates, anchor, bootstrap rounds)."""

    rows: tuple[ReportRow, ...]
    front: tuple[str, ...]
    recommendation: Recommendation
    target_width: float
    board: Leaderboard
    unrated: tuple[str, ...] = ()
    memory_label: str = MEMORY_LABEL
    memory_note: str = MEMORY_NOTE
    #: Where each variant wins in each judged prompt set, as Markdown (`ui.judge.set_report_sections`).
    sets: tuple[str, ...] = ()

    @property
    def notes(self) -> tuple[str, ...]:
        """How to read the figures, one sentence each."""
        board = self.board
        notes = [
            f"Ratings: Bradley-Terry on {board.votes} vote(s) ({board.battles} pairwise outcomes); scale: "
            f"{board.anchor}; 95 % intervals from {board.rounds} bootstrap rounds of votes.",
            "Win rate: the share of a variant's pairwise outcomes it won, ties of either kind counting half.",
            "TTFT, decode tokens/s and memory: medians over each variant's successful runs in named comparisons "
            f"and voted battles (all categories); memory is the {self.memory_label}: {self.memory_note}.",
            "Pareto front: the variants no other beats on rating, decode tokens/s and memory at once; a figure "
            "missing on either side of a comparison shows nothing, so such a variant stays on the front.",
            f"Among statistically tied variants, one is called cheaper when it is more than {COST_MARGIN * 100:.0f} % "
            "faster or smaller than each other.",
        ]
        if board.preliminary:
            notes.append(
                f"Preliminary: fewer than {board.preliminary_below} votes; a wider interval and a shared last rank."
            )
        if len(board.groups) > 1:
            notes.append("Some variants were never compared with each other: ratings compare only within a group.")
        if self.unrated:
            notes.append(f"Measured but without votes in this slice: {', '.join(self.unrated)}.")
        return tuple(notes)


def build_report(
    board: Leaderboard,
    speeds: Sequence[VariantSpeed],
    fits: Mapping[str, str] | None,
    *,
    target_width: float = DEFAULT_TARGET_WIDTH,
) -> Report:
    """The report of the leaderboard's rows with their speed figures (`speeds`, by variant) and
    their fit on this machine (`fits`, variant -> verdict; missing: "unknown")."""
    if not target_width > 0:
        raise ValueError(f"the target interval width must be above 0 Elo, not {target_width:g}")
    by_name = {speed.variant: speed for speed in speeds}
    fits = fits or {}
    rows = [
        _row(row, by_name.get(row.variant), fits.get(row.variant, UNKNOWN_FIT), target_width, board)
        for row in board.rows
    ]
    front = set(pareto_front([row.point for row in rows]))
    rows = [replace(row, on_front=row.variant in front) for row in rows]
    rated = {row.variant for row in rows}
    return Report(
        rows=tuple(rows),
        front=tuple(row.variant for row in rows if row.on_front),
        recommendation=recommend(rows, target_width),
        target_width=target_width,
        board=board,
        unrated=tuple(sorted(name for name in by_name if name not in rated)),
    )


def _row(row: Row, speed: VariantSpeed | None, fit: str, target: float, board: Leaderboard) -> ReportRow:
    outcomes = row.wins + row.losses + row.ties + row.both_bad
    more = votes_needed(row.votes, row.ci_high - row.ci_low, target)
    if row.preliminary:
        more = max(more, board.preliminary_below - row.votes)
    return ReportRow(
        variant=row.variant,
        rating=row.rating,
        ci_low=row.ci_low,
        ci_high=row.ci_high,
        rank=row.rank,
        votes=row.votes,
        preliminary=row.preliminary,
        win_rate=(row.wins + 0.5 * (row.ties + row.both_bad)) / outcomes if outcomes else None,
        runs=0 if speed is None else speed.runs,
        median_ttft_s=None if speed is None else speed.median_ttft_s,
        median_tokens_per_s=None if speed is None else speed.median_tokens_per_s,
        memory_bytes=None if speed is None else memory_of(speed),
        fit=fit,
        on_front=False,
        more_votes=more,
    )


# --- the recommendation -------------------------------------------------------------------------------------


def _interval(row: ReportRow) -> str:
    return f"{row.rating:.0f} (95 % interval {row.ci_low:.0f} to {row.ci_high:.0f})"


def _names(rows: Sequence[ReportRow]) -> str:
    return ", ".join(row.variant for row in rows)


def recommend(rows: Sequence[ReportRow], target_width: float = DEFAULT_TARGET_WIDTH) -> Recommendation:
    """What the rows support: the top by rating, the variants tied with it, the cheaper of the
    tied, and the votes that would narrow the intervals (see the module docstring)."""
    if not rows:
        nothing = "No votes yet: nothing to recommend. Vote in the Battle tab, then build the report again."
        return Recommendation(None, (), None, (nothing,))
    ranked = sorted(rows, key=lambda row: (-row.rating, row.variant))
    top = ranked[0]
    tied = [row for row in ranked if row is top or row.overlaps(top)]
    lines: list[str] = []
    pick: str | None
    if len(tied) == 1:
        pick = top.variant
        others = ranked[1:]
        if others:
            lines.append(
                f"Use {top.variant}: it rates highest, {_interval(top)}, and its interval lies above every "
                f"other variant's (the next: {others[0].variant}, {_interval(others[0])})."
            )
        else:
            lines.append(f"Only {top.variant} is rated: {_interval(top)}; there is nothing to compare it with yet.")
        cheaper = [row for row in ranked[1:] if row.on_front]
        if cheaper:
            lines.append(
                f"Cheaper trade-offs on the Pareto front, at a lower rating: {_names(cheaper)} (see the chart)."
            )
    else:
        lines.append(
            f"Statistically tied: {_names(tied)}. Their 95 % intervals overlap that of {top.variant}, which "
            f"rates highest at {_interval(top)}: the votes do not tell them apart."
        )
        pick, reasons = _cheaper(tied)
        lines.extend(reasons)
    chosen = next((row for row in rows if row.variant == pick), None)
    if chosen is not None and chosen.preliminary:
        lines.append(f"{chosen.variant} has only {chosen.votes} vote(s) (preliminary): treat this as provisional.")
    if chosen is not None and chosen.fit.startswith("does not fit"):
        lines.append(f"Note: by the memory estimate, {chosen.variant} does not fit this machine.")
    lines.extend(_more_votes(tied if len(tied) > 1 else rows, target_width, len(tied) > 1))
    return Recommendation(top.variant, tuple(row.variant for row in tied), pick, tuple(lines))


def _cheaper(tied: Sequence[ReportRow]) -> tuple[str | None, list[str]]:
    """(pick or None, sentences): the clearly fastest and the clearly smallest of the tied
    (`COST_MARGIN`), of those measured; one that does not fit this machine is not preferred."""
    fitting = [row for row in tied if not row.fit.startswith("does not fit")]
    candidates = fitting or list(tied)
    lines = []
    if fitting and len(fitting) < len(tied):
        left_out = [row for row in tied if row not in fitting]
        lines.append(f"Left out of the choice: {_names(left_out)} (does not fit this machine, by the estimate).")
    timed = [row for row in candidates if row.median_tokens_per_s is not None]
    sized = [row for row in candidates if row.memory_bytes is not None]
    fastest = _clear_best(timed, lambda row: row.median_tokens_per_s or 0.0, higher=True)
    smallest = _clear_best(sized, lambda row: row.memory_bytes or 0.0, higher=False)
    pick: str | None = None
    if not timed and not sized:
        lines.append("No speed or memory figures to choose between them on cost.")
    elif fastest is not None and smallest is not None and fastest is not smallest:
        lines.append(
            f"On cost, {fastest.variant} is the fastest ({_speed(fastest)} against "
            f"{_others(timed, fastest, _speed)}) and {smallest.variant} the smallest ({_memory(smallest)} against "
            f"{_others(sized, smallest, _memory)}): pick by what this machine is short of."
        )
    elif fastest is not None or smallest is not None:
        chosen = fastest or smallest
        assert chosen is not None
        what = []
        if chosen is fastest:
            what.append(f"the fastest ({_speed(chosen)} against {_others(timed, chosen, _speed)})")
        if chosen is smallest:
            what.append(f"the smallest ({_memory(chosen)} against {_others(sized, chosen, _memory)})")
        pick = chosen.variant
        lines.append(f"Prefer {chosen.variant}, the cheaper: of the tied it is {' and '.join(what)}.")
    else:
        lines.append(
            f"Their measured speed and memory are within {COST_MARGIN * 100:.0f} % of one another: cost does not tell "
            "them apart either, so as far as these data go any of them will do."
        )
    no_speed = [row for row in candidates if row not in timed]
    no_memory = [row for row in candidates if row not in sized]
    gaps = [f"no speed figure for {_names(no_speed)}"] if no_speed else []
    gaps += [f"no memory figure for {_names(no_memory)}"] if no_memory else []
    if gaps:
        text = "; ".join(gaps)
        lines.append(f"{text[0].upper()}{text[1:]}: run them in the Compare tab to measure them.")
    return pick, lines


def _clear_best(rows: Sequence[ReportRow], value: Callable[[ReportRow], float], *, higher: bool) -> ReportRow | None:
    """The row whose figure beats every other's by more than `COST_MARGIN`, or None (fewer than
    two measured, or none stands out: closer figures are within run-to-run noise)."""
    if len(rows) < 2:
        return None
    best, second = sorted(rows, key=value, reverse=higher)[:2]
    if higher:
        return best if value(best) > value(second) * (1 + COST_MARGIN) else None
    return best if value(best) * (1 + COST_MARGIN) < value(second) else None


def _speed(row: ReportRow) -> str:
    return f"{row.median_tokens_per_s:.1f} tokens/s"


def _memory(row: ReportRow) -> str:
    return format_bytes(row.memory_bytes)


def _others(rows: Sequence[ReportRow], chosen: ReportRow, show: Callable[[ReportRow], str]) -> str:
    return ", ".join(f"{row.variant} {show(row)}" for row in rows if row is not chosen)


def _more_votes(rows: Sequence[ReportRow], target: float, separating: bool) -> list[str]:
    wanting = [row for row in rows if row.more_votes > 0]
    if not wanting:
        return [f"Every interval concerned is at most {target:g} Elo wide."] if separating else []
    each = "; ".join(
        f"{row.variant} about {row.more_votes} more (has {row.votes}, interval {row.ci_width:.0f} Elo wide"
        + (", preliminary" if row.preliminary else "")
        + ")"
        for row in wanting
    )
    purpose = " Whether the tied then separate depends on the gap between them." if separating else ""
    return [
        f"More votes for a {target:g}-Elo interval: {each}. An estimate: an interval narrows about as "
        f"1/sqrt(votes).{purpose}"
    ]

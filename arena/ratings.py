"""Arena ratings: the public surface. Pure functions over a battles table; no SQL, UI or file I/O.

Import everything from here. The pieces live in three modules:

- `arena.rating_tables`: `PairOutcome`, the `Battles` table, `aggregate` (M x M x 3 counts: a wins,
  b wins, tie; both tie kinds count as a tie in ratings and are tallied apart in the rows),
  `win_rate_matrix`, `battle_count_matrix`, `connected_groups`.
- `arena.bradley_terry`: `fit_bradley_terry` and `bootstrap`, Bradley-Terry maximum likelihood on
  the counts (Elo scale, equal to FastChat's `compute_bt`), and the tiny prior that keeps clean
  sweeps and disconnected comparison graphs finite (read its docstring).
- this module: `online_elo` (K=4, time order) and `compute_leaderboard`, which ranks with
  bootstrap intervals and Rank (UB), and treats variants with few votes as preliminary
  (`score_interval`).

A vote is the unit everywhere it matters: the `votes` column counts votes (a ranking of four is
one vote for each of its variants), and the bootstrap resamples votes with all their pairs
together (`vote_patterns`). Variants with no battles are never rated: the leaderboard lists them
as hidden ("no battles").
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from arena.bradley_terry import (
    DEFAULT_PRIOR,
    DEFAULT_ROUNDS,
    ELO_BASE,
    ELO_CENTER,
    ELO_SCALE,
    VotePatterns,
    bootstrap,
    fit_bradley_terry,
    pair_wins,
)
from arena.errors import UsageError
from arena.rating_tables import (
    OUTCOME_CODES,
    OUTCOMES,
    Battles,
    PairOutcome,
    aggregate,
    battle_count_matrix,
    battle_counts,
    connected_groups,
    groups_of,
    merge_ties,
    outcome_counts,
    vote_count,
    vote_patterns,
    votes_per_variant,
    win_rate_matrix,
    win_rates,
)

ONLINE_ELO_K = 4.0
DEFAULT_PRELIMINARY_BELOW = 30
WILSON_Z = 1.959963984540054  # two-sided 95 %
SCORE_CLIP = 0.01  # a preliminary interval's score bounds stay within [1 %, 99 %]: about +-798 Elo

_A_WINS, _B_WINS, _TIE, _BOTH_BAD = (OUTCOME_CODES[name] for name in ("a", "b", "tie", "both_bad"))


# --- online Elo -----------------------------------------------------------------------------------


def time_order(battles: Battles) -> np.ndarray:
    """Row indices in time order: by `tstamp`, then input order; rows without a time go last."""
    if battles.tstamp is None:
        return np.arange(len(battles))
    stamps = battles.tstamp
    if np.all(stamps[1:] >= stamps[:-1]):  # exports come in time order: skip the sort
        return np.arange(len(battles))
    return np.argsort(stamps, kind="stable")  # NaN sorts last


def online_elo(battles: Battles, k: float = ONLINE_ELO_K, *, initial: float = ELO_CENTER) -> dict[str, float]:
    """Sequential Elo in time order (`time_order`): each battle moves both ratings by
    `k * (score - expected)`, a tie of either kind scoring 0.5. Every model starts at `initial`;
    one with no battles stays there. Same rule and order as FastChat's `compute_elo`."""
    m, kinds = len(battles.models), len(OUTCOMES)
    order = time_order(battles)
    # one small int per battle, looked up in a table of (i, j, score): fewer Python objects per step
    codes = (battles.a[order] * m + battles.b[order]) * kinds + battles.outcome[order]
    steps = [(i, j, score) for i in range(m) for j in range(m) for score in (1.0, 0.0, 0.5, 0.5)]
    ratings = [float(initial)] * m
    per_point = math.log(ELO_BASE) / ELO_SCALE
    exp = math.exp
    # a plain loop: each battle depends on the one before, and Python floats beat numpy scalars here
    for code in codes.tolist():
        i, j, score = steps[code]
        rating_i, rating_j = ratings[i], ratings[j]
        change = k * (score - 1.0 / (1.0 + exp(per_point * (rating_j - rating_i))))
        ratings[i] = rating_i + change
        ratings[j] = rating_j - change
    return dict(zip(battles.models, ratings, strict=True))


# --- the leaderboard ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One listed variant. `rating` is the Bradley-Terry fit on all battles; `ci_low`/`ci_high`
    the 2.5 % and 97.5 % bootstrap quantiles (widened for a preliminary row: `score_interval`);
    `rank` is Rank (UB), shared by all preliminary rows; `votes` counts the votes the variant was
    in; `wins`, `losses`, `ties` and `both_bad` count the pairwise outcomes those votes imply (a
    best pick of four is 3 wins), the two tie kinds are one in ratings; `elo` is online Elo;
    `preliminary` flags fewer votes than the leaderboard's `preliminary_below`."""

    variant: str
    rating: float
    ci_low: float
    ci_high: float
    rank: int
    votes: int
    wins: int
    losses: int
    ties: int
    both_bad: int
    elo: float
    preliminary: bool


@dataclass(frozen=True)
class HiddenVariant:
    """A variant left off the rows, and why (no battles, or fewer votes than the minimum)."""

    variant: str
    votes: int
    reason: str


@dataclass(frozen=True, eq=False)
class Leaderboard:
    """Ranked rows plus what a reader needs to trust them.

    `models` are the listed variants in row order; `win_rate` and `battle_count` are indexed like
    it (see `win_rate_matrix`). `anchor` says how the scale was fixed, `groups` the connected
    comparison groups (more than one: ratings compare only within a group), `hidden` what was
    left out and why. `battles` counts pairwise outcomes, `votes` the votes they came from.
    """

    rows: tuple[Row, ...]
    models: tuple[str, ...]
    win_rate: np.ndarray
    battle_count: np.ndarray
    anchor: str
    anchor_variant: str | None
    anchor_rating: float
    rounds: int
    seed: int
    battles: int
    hidden: tuple[HiddenVariant, ...]
    groups: tuple[tuple[str, ...], ...]
    min_votes: int
    preliminary_below: int
    votes: int = 0

    @property
    def preliminary(self) -> int:
        """How many listed rows are preliminary."""
        return sum(row.preliminary for row in self.rows)


def rank_by_upper_bound(ci_low: np.ndarray, ci_high: np.ndarray) -> np.ndarray:
    """Rank (UB): 1 + the number of variants whose lower bound is above this one's upper bound,
    so variants whose intervals overlap share a rank."""
    ci_low, ci_high = np.asarray(ci_low, dtype=float), np.asarray(ci_high, dtype=float)
    return 1 + (ci_low[None, :] > ci_high[:, None]).sum(axis=1)


def compute_leaderboard(
    battles: Battles,
    *,
    rounds: int = DEFAULT_ROUNDS,
    seed: int = 0,
    anchor: tuple[str, float] | None = None,
    min_votes: int = 0,
    preliminary_below: int = DEFAULT_PRELIMINARY_BELOW,
    k: float = ONLINE_ELO_K,
    prior: float = DEFAULT_PRIOR,
) -> Leaderboard:
    """Rate every variant with battles and list those with at least `min_votes` votes.

    Ratings are fitted on all battles (a hidden variant's battles still inform the others).
    `anchor=None` puts the mean of the listed variants at 1000 (of the listed variants that are
    not preliminary, when there are any: a variant rated on a few votes swings wildly from one
    bootstrap round to the next, and would carry every other interval with it);
    `anchor=(variant, rating)` pins one rated variant there (its interval then has zero width).
    Each bootstrap round resamples votes (a multi-way vote's pairs together) and is anchored the
    same way. `rounds=0` skips the bootstrap: intervals collapse onto the ratings and ranks
    follow the ratings.

    Rows with fewer than `preliminary_below` votes are preliminary: their interval is widened to
    at least `score_interval` (a bootstrap over one vote has zero width, which would claim a
    certainty one vote cannot give), and they all share the last rank, 1 + the number of listed
    rows that are not preliminary; the others are ranked (Rank (UB)) among themselves.
    """
    if rounds < 0 or min_votes < 0 or preliminary_below < 0:
        raise UsageError("rounds, min_votes and preliminary_below must be 0 or more")
    counts4 = outcome_counts(battles)
    tally = _tally(counts4)
    votes = votes_per_variant(battles)
    listed = np.flatnonzero(votes >= max(min_votes, 1))
    preliminary = votes < preliminary_below
    settled = listed[~preliminary[listed]]
    reference = settled if settled.size else listed
    pin, target, description = _anchor(battles.models, votes, reference, anchor, len(reference) < len(listed))
    counts = merge_ties(counts4)
    rating, ci_low, ci_high = _rate(
        counts, rounds, seed, prior, lambda fits: _shift(fits, pin, reference, target), vote_patterns(battles)
    )
    low, high = score_interval(counts, rating, votes)
    widen = preliminary & (np.arange(len(votes)) != (-1 if pin is None else pin))
    ci_low = np.where(widen, np.minimum.reduce([ci_low, low, rating]), ci_low)
    ci_high = np.where(widen, np.maximum.reduce([ci_high, high, rating]), ci_high)
    rank = _ranks(listed, preliminary, ci_low, ci_high)
    elo = online_elo(battles, k)
    rows = sorted(
        (
            Row(
                variant=battles.models[i],
                rating=float(rating[i]),
                ci_low=float(ci_low[i]),
                ci_high=float(ci_high[i]),
                rank=rank[i],
                votes=int(votes[i]),
                wins=int(tally[i, 1]),
                losses=int(tally[i, 2]),
                ties=int(tally[i, 3]),
                both_bad=int(tally[i, 4]),
                elo=elo[battles.models[i]],
                preliminary=bool(preliminary[i]),
            )
            for i in rank
        ),
        key=lambda row: (row.preliminary, -row.rating, row.variant),
    )
    order = [battles.models.index(row.variant) for row in rows]
    return Leaderboard(
        rows=tuple(rows),
        models=tuple(row.variant for row in rows),
        win_rate=win_rates(counts4)[np.ix_(order, order)],
        battle_count=battle_counts(counts4)[np.ix_(order, order)],
        anchor=description,
        anchor_variant=None if anchor is None else anchor[0],
        anchor_rating=target,
        rounds=rounds,
        seed=seed,
        battles=len(battles),
        hidden=_hidden(battles.models, votes, min_votes),
        groups=groups_of(battles.models, counts4),
        min_votes=min_votes,
        preliminary_below=preliminary_below,
        votes=vote_count(battles),
    )


def score_interval(
    counts: np.ndarray, rating: np.ndarray, votes: np.ndarray, *, z: float = WILSON_Z, clip: float = SCORE_CLIP
) -> tuple[np.ndarray, np.ndarray]:
    """A 95 % interval (Elo scale) per model from its score alone: what a preliminary row's
    interval is widened to at least.

    The score is the share of its pairwise outcomes a model won (a tie half), from M x M x 3
    `counts`. Its Wilson score interval is taken with n = the model's `votes`, not its pairs
    (the pairs of one ranking are not independent trials), so one vote gives a wide interval.
    Each bound becomes a performance rating: the rating whose expected score against the
    average rating of the model's opponents (weighted by the pairs played, from `rating`) is
    that bound. Bounds are clipped to a score of [`clip`, 1 - `clip`] (about +-798 Elo from the
    opponents for 1 %): a sweep of a few votes has an upper Wilson bound of 1, which no finite
    rating reaches, and a few votes say nothing about gaps wider than that anyway. A model with
    no votes gets its rating as both bounds.
    """
    wins = pair_wins(counts)
    played = wins + wins.T
    pairs = played.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        score = np.where(pairs > 0, wins.sum(axis=1) / pairs, 0.5)
        opponents = np.where(pairs > 0, (played * rating[None, :]).sum(axis=1) / pairs, rating)
        n = np.maximum(votes, 1).astype(np.float64)
        spread = z * z / n
        centre = (score + spread / 2) / (1 + spread)
        half = z / (1 + spread) * np.sqrt(score * (1 - score) / n + spread / (4 * n))
    low, high = (np.clip(bound, clip, 1 - clip) for bound in (centre - half, centre + half))
    points = ELO_SCALE / math.log(ELO_BASE)
    low_elo = opponents + points * np.log(low / (1 - low))
    high_elo = opponents + points * np.log(high / (1 - high))
    unvoted = votes == 0
    return np.where(unvoted, rating, low_elo), np.where(unvoted, rating, high_elo)


def _ranks(listed: np.ndarray, preliminary: np.ndarray, ci_low: np.ndarray, ci_high: np.ndarray) -> dict[int, int]:
    """Model index -> rank for the listed models: Rank (UB) among those that are not
    preliminary; every preliminary one shares the rank after them."""
    settled = listed[~preliminary[listed]]
    rank = dict(zip(settled.tolist(), rank_by_upper_bound(ci_low[settled], ci_high[settled]).tolist(), strict=True))
    last = 1 + len(settled)
    return {i: rank.get(i, last) for i in listed.tolist()}


def _rate(
    counts: np.ndarray,
    rounds: int,
    seed: int,
    prior: float,
    anchored: Callable[[np.ndarray], np.ndarray],
    patterns: VotePatterns,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rating, 2.5 % bound, 97.5 % bound) per model; every bootstrap round anchored on its own."""
    rating = anchored(fit_bradley_terry(counts, prior=prior))
    if rounds == 0:
        return rating, rating, rating
    fits = bootstrap(counts, rounds, seed, prior=prior, patterns=patterns)
    low, high = np.quantile(anchored(fits), [0.025, 0.975], axis=0)
    return rating, low, high


def _tally(counts4: np.ndarray) -> np.ndarray:
    """M x 5 per variant, either side: votes, wins, losses, ties, both bad."""
    as_a, as_b = counts4.sum(axis=1), counts4.sum(axis=0)  # M x 4 each
    wins = as_a[:, _A_WINS] + as_b[:, _B_WINS]
    losses = as_a[:, _B_WINS] + as_b[:, _A_WINS]
    ties = as_a[:, _TIE] + as_b[:, _TIE]
    both_bad = as_a[:, _BOTH_BAD] + as_b[:, _BOTH_BAD]
    return np.stack([wins + losses + ties + both_bad, wins, losses, ties, both_bad], axis=1)


def _anchor(
    models: tuple[str, ...],
    votes: np.ndarray,
    reference: np.ndarray,
    anchor: tuple[str, float] | None,
    settled_only: bool = False,
) -> tuple[int | None, float, str]:
    """(pinned model index or None for the mean of `reference`, target rating, description);
    `settled_only`: the reference leaves the preliminary variants out."""
    if anchor is None:
        if not reference.size:
            return None, ELO_CENTER, "none (no variant is listed)"
        which = "listed variants that are not preliminary" if settled_only else "listed variants"
        return None, ELO_CENTER, f"mean of the {len(reference)} {which} = {ELO_CENTER:g}"
    variant, rating = anchor
    rated = [name for name, n in zip(models, votes.tolist(), strict=True) if n]
    if variant not in rated:
        choices = ", ".join(rated) or "none, there are no battles"
        raise UsageError(f"cannot anchor the scale on {variant!r}: it has no battles. Pick one of: {choices}")
    return models.index(variant), float(rating), f"{variant} pinned at {float(rating):g}"


def _shift(ratings: np.ndarray, pin: int | None, listed: np.ndarray, target: float) -> np.ndarray:
    """Shift ratings (M, or R x M one row at a time) so the pin, or the mean of `listed`, is `target`."""
    if pin is not None:
        reference = ratings[..., pin]
    elif listed.size:
        reference = ratings[..., listed].mean(axis=-1)
    else:
        return ratings
    return ratings + np.expand_dims(target - reference, -1)


def _hidden(models: tuple[str, ...], votes: np.ndarray, min_votes: int) -> tuple[HiddenVariant, ...]:
    hidden = []
    for name, n in zip(models, votes.tolist(), strict=True):
        if n == 0:
            hidden.append(HiddenVariant(name, 0, "no battles"))
        elif n < min_votes:
            hidden.append(HiddenVariant(name, n, f"{n} votes, fewer than the minimum of {min_votes}"))
    return tuple(hidden)


__all__ = [
    "DEFAULT_PRELIMINARY_BELOW",
    "DEFAULT_PRIOR",
    "DEFAULT_ROUNDS",
    "ELO_CENTER",
    "ONLINE_ELO_K",
    "OUTCOMES",
    "OUTCOME_CODES",
    "Battles",
    "HiddenVariant",
    "Leaderboard",
    "PairOutcome",
    "Row",
    "VotePatterns",
    "aggregate",
    "battle_count_matrix",
    "battle_counts",
    "bootstrap",
    "compute_leaderboard",
    "connected_groups",
    "fit_bradley_terry",
    "groups_of",
    "merge_ties",
    "online_elo",
    "outcome_counts",
    "rank_by_upper_bound",
    "score_interval",
    "time_order",
    "vote_count",
    "vote_patterns",
    "votes_per_variant",
    "win_rate_matrix",
    "win_rates",
]

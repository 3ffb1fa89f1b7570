"""Bradley-Terry maximum likelihood on aggregated battle counts, and its bootstrap. numpy only.

The model: P(i beats j) = 1 / (1 + 10^((R_j - R_i) / 400)); a tie is half a win and half a loss;
no intercept, no position term (so which side a variant was shown on does not matter). Ratings
are on the Elo scale, 400 * r + 1000 with r in base-10 log-odds units. On the same battles this
equals FastChat's `compute_bt` (mean at 1000) to well within 0.01 Elo.

Input everywhere is an M x M x 3 count table `[i, j, k]` for model_a = i, model_b = j and
k = 0 a wins, 1 b wins, 2 tie (what `arena.ratings.aggregate` returns).

**The prior.** The maximum-likelihood rating is infinite for a variant that won (or lost) every
battle, and undetermined between groups of variants never compared with each other. We add a tiny
ridge penalty `prior / 2 * sum(theta ** 2)` on the natural-log ratings theta (`prior=1e-6`: a
Gaussian prior with a standard deviation of 1000 natural units, about 170,000 Elo). It moves
ordinary ratings by far less than 0.01 Elo (about 1e-4 Elo on 40 lopsided battles), yet keeps
every rating finite: a variant that won everything lands some 2,300 (3 battles) to 4,200 (300,000
battles) Elo above the rest, read that as "unbounded above", and keeps its top rank. It also pulls
a mean-anchored scale: pin an anchor variant to keep the others' numbers familiar.
The penalty also centres each group of variants never compared with the others on the common
mean: that is how disconnected comparison graphs are placed, and their ratings are not comparable
across groups. A model with no battles stays at the mean.

**Speed.** Everything works on the counts, never on single battles, and the bootstrap fits all
rounds together: one Newton iteration solves R small M x M systems in one numpy call.

**Votes as units.** The bootstrap resamples votes, not pairs: a ranking of four variants adds six
pairs to the counts, all from one judgement, and resampling them one by one would treat six
correlated outcomes as six independent ones (intervals too narrow). Votes that add the same cells
are exchangeable, so a round draws multinomially over the distinct patterns (`VotePatterns`); a
two-sided vote's pattern is a single cell, so a table of two-sided votes draws over its cells
exactly as before.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

ELO_SCALE = 400.0
ELO_BASE = 10.0
ELO_CENTER = 1000.0
DEFAULT_PRIOR = 1e-6
DEFAULT_ROUNDS = 1000
DEFAULT_TOL = 1e-14

_ELO_PER_NATURAL = ELO_SCALE / math.log(ELO_BASE)  # natural-log ratings -> Elo points
_A_WINS, _B_WINS, _TIE = 0, 1, 2
_CELLS_PER_CHUNK = 4_000_000  # bounds bootstrap memory (about 32 MB a temporary) for many models


@dataclass(frozen=True, eq=False)
class VotePatterns:
    """Votes grouped by what each adds to the flattened M x M x 3 counts (`counts.reshape(-1)`).

    `votes[p]` votes have pattern p; pattern p adds `weight[e]` to cell `cell[e]` for every entry e
    with `pattern[e] == p` (entries sorted by pattern). Patterns of one cell with weight one come
    first, in cell order.
    Build them with `arena.ratings.vote_patterns(battles)`, or `one_per_cell(counts)` when every
    battle is a vote of its own.
    """

    votes: np.ndarray
    pattern: np.ndarray
    cell: np.ndarray
    weight: np.ndarray

    @classmethod
    def one_per_cell(cls, counts: np.ndarray) -> VotePatterns:
        """Every battle a vote of its own: one pattern per observed cell."""
        flat = np.asarray(counts).reshape(-1).astype(np.int64)
        observed = np.flatnonzero(flat)
        return cls(flat[observed], np.arange(len(observed)), observed, np.ones(len(observed), dtype=np.int64))

    @classmethod
    def from_groups(cls, single: np.ndarray, grouped: Mapping[tuple[int, ...], int]) -> VotePatterns:
        """`single[c]` votes of the one cell c, and `grouped[cells]` votes adding one to each of
        `cells` (a cell may repeat)."""
        ones = cls.one_per_cell(single)
        votes, patterns, cells, weights = [ones.votes], [ones.pattern], [ones.cell], [ones.weight]
        for index, key in enumerate(sorted(grouped), start=len(ones.votes)):
            cell, weight = np.unique(np.asarray(key, dtype=np.int64), return_counts=True)
            votes.append(np.array([grouped[key]], dtype=np.int64))
            patterns.append(np.full(len(cell), index))
            cells.append(cell)
            weights.append(weight)
        return cls(*(np.concatenate(parts) for parts in (votes, patterns, cells, weights)))

    @property
    def total(self) -> int:
        """How many votes there are."""
        return int(self.votes.sum())


def fit_bradley_terry(
    counts: np.ndarray, *, prior: float = DEFAULT_PRIOR, tol: float = DEFAULT_TOL, max_iter: int = 100
) -> np.ndarray:
    """Maximum-likelihood ratings (Elo scale) from M x M x 3 `counts`, one per model.

    The mean is 1000 (each connected group's mean is 1000, see the module docstring); re-anchor
    by shifting. Newton's method with step halving; see `_fit_natural` for `tol`.
    """
    wins = pair_wins(np.asarray(counts))[None]
    return to_elo(_fit_natural(wins, prior=prior, tol=tol, max_iter=max_iter)[0])


def bootstrap(
    counts: np.ndarray,
    rounds: int = DEFAULT_ROUNDS,
    seed: int = 0,
    *,
    prior: float = DEFAULT_PRIOR,
    tol: float = DEFAULT_TOL,
    max_iter: int = 100,
    patterns: VotePatterns | None = None,
) -> np.ndarray:
    """`rounds` x M ratings (Elo scale, mean 1000), each fitted on resampled votes.

    A round draws as many votes as there are, multinomially over the vote `patterns` (the same as
    resampling the votes with replacement; by default every battle in `counts` is a vote of its
    own), from `numpy.random.default_rng(seed)`, so a seed gives the same rounds every time.
    Rounds are fitted together, starting from the fit on all battles (a resample's optimum is
    close to it), in chunks that bound memory when there are many models.
    """
    counts = np.asarray(counts)
    m = counts.shape[0]
    size = counts.size
    patterns = VotePatterns.one_per_cell(counts) if patterns is None else patterns
    total = patterns.total
    if rounds < 1:
        return np.empty((0, m))
    if total == 0:
        return np.full((rounds, m), ELO_CENTER)
    start = _fit_natural(pair_wins(counts)[None], prior=prior, tol=tol, max_iter=max_iter)
    draws = np.random.default_rng(seed).multinomial(total, patterns.votes / total, size=rounds)
    scatter = _Scatter(patterns, size)
    chunk = max(1, _CELLS_PER_CHUNK // max(size, 1))
    fits = []
    for first in range(0, rounds, chunk):
        resampled = scatter(draws[first : first + chunk])
        wins = pair_wins(resampled.reshape(len(resampled), *counts.shape))
        fits.append(_fit_natural(wins, prior=prior, tol=tol, max_iter=max_iter, start=start))
    return to_elo(np.concatenate(fits))


class _Scatter:
    """Turns drawn votes per pattern (R x P) into counts per cell (R x cells)."""

    def __init__(self, patterns: VotePatterns, size: int) -> None:
        entries = np.bincount(patterns.pattern, minlength=len(patterns.votes))
        single = (entries == 1) & (np.bincount(patterns.pattern, patterns.weight, len(patterns.votes)) == 1)
        self.size = size
        self.single = np.flatnonzero(single)  # patterns of one cell
        first_entry = np.searchsorted(patterns.pattern, self.single)
        self.single_cells = patterns.cell[first_entry]
        grouped = ~single[patterns.pattern]  # entries of the other patterns
        self.grouped = np.unique(patterns.pattern[grouped])
        self.cells = np.unique(patterns.cell[grouped])
        self.matrix_t: Any = None
        if len(self.grouped):
            # cell x pattern weights over the cells the grouped patterns touch, sparse: a pattern
            # touches a few (a ranking of four: 6), and scipy's product skips the zeros (10x
            # faster than a dense one on 17,000 rankings). Imported here: two-sided votes never
            # need it, and a battles file is rated without loading scipy.
            from scipy.sparse import csr_matrix

            rows = np.searchsorted(self.grouped, patterns.pattern[grouped])
            columns = np.searchsorted(self.cells, patterns.cell[grouped])
            weights = patterns.weight[grouped].astype(np.float64)
            self.matrix_t = csr_matrix((weights, (columns, rows)), shape=(len(self.cells), len(self.grouped)))

    def __call__(self, draws: np.ndarray) -> np.ndarray:
        resampled = np.zeros((len(draws), self.size))
        resampled[:, self.single_cells] = draws[:, self.single]
        if self.matrix_t is not None:
            resampled[:, self.cells] += np.asarray(self.matrix_t @ draws[:, self.grouped].T).T
        return resampled


def to_elo(theta: np.ndarray) -> np.ndarray:
    """Natural-log ratings -> Elo scale (400 * base-10 rating + 1000)."""
    return np.asarray(theta) * _ELO_PER_NATURAL + ELO_CENTER


def pair_wins(counts: np.ndarray) -> np.ndarray:
    """(..., M, M) wins `[i, j]` of i over j from either side, a tie counting half to each side.

    Takes (..., M, M, 3) counts; this is where "no position term" happens.
    """
    counts = np.asarray(counts, dtype=np.float64)
    ties = counts[..., _TIE]
    half_ties = 0.5 * (ties + np.swapaxes(ties, -1, -2))
    return counts[..., _A_WINS] + np.swapaxes(counts[..., _B_WINS], -1, -2) + half_ties


def _fit_natural(
    wins: np.ndarray, *, prior: float, tol: float, max_iter: int, start: np.ndarray | None = None
) -> np.ndarray:
    """Fit R problems at once: `wins` is (R, M, M); returns (R, M) natural-log ratings.

    Each Newton step is halved, per problem, until the penalised loss does not grow, so a
    lopsided problem cannot overshoot (the loss is convex). It stops when every problem's Newton
    decrement (the loss decrease the next step promises) is at most `tol` per battle. Why not
    the step size: shifting all ratings together changes only the tiny prior, so rounding noise
    in the gradient moves the mean a little every step; the decrement weighs that by the prior
    and ignores it. `tol=1e-14` leaves ratings well within 1e-4 Elo of the optimum.
    """
    if prior <= 0:
        raise ValueError("prior must be positive: without it a clean sweep has no finite rating")
    rounds, m, _ = wins.shape
    theta = np.zeros((rounds, m)) if start is None else np.broadcast_to(start, (rounds, m)).copy()
    if m == 0 or rounds == 0:
        return theta
    played = wins + np.swapaxes(wins, 1, 2)
    enough = tol * (1.0 + wins.sum(axis=(1, 2)))
    loss = _penalised_loss(theta, wins, prior)
    for _ in range(max_iter):
        grad, hess = _gradient_and_hessian(theta, wins, played, prior)
        step = np.linalg.solve(hess, grad[..., None])[..., 0]
        if np.all((grad * step).sum(axis=1) <= enough):
            break
        theta, loss = _halving_step(theta, step, loss, wins, prior)
    # the prior centres the optimum already; this removes the drift rounding leaves behind
    return theta - theta.mean(axis=1, keepdims=True)


def _gradient_and_hessian(
    theta: np.ndarray, wins: np.ndarray, played: np.ndarray, prior: float
) -> tuple[np.ndarray, np.ndarray]:
    # P(i beats j) = sigmoid(theta_i - theta_j), written with tanh so that it cannot overflow
    tanh = np.tanh(0.5 * (theta[:, :, None] - theta[:, None, :]))
    grad = (played * (0.5 + 0.5 * tanh) - wins).sum(axis=2) + prior * theta
    weight = 0.25 * played * (1.0 - tanh * tanh)  # played * P * (1 - P)
    hess = -weight
    diagonal = np.arange(theta.shape[1])
    hess[:, diagonal, diagonal] += weight.sum(axis=2) + prior
    return grad, hess


def _penalised_loss(theta: np.ndarray, wins: np.ndarray, prior: float) -> np.ndarray:
    # -log P(i beats j) = log(1 + exp(theta_j - theta_i)), weighted by the wins, plus the ridge
    gap = theta[:, None, :] - theta[:, :, None]
    return (wins * np.logaddexp(0.0, gap)).sum(axis=(1, 2)) + 0.5 * prior * (theta * theta).sum(axis=1)


def _halving_step(
    theta: np.ndarray, step: np.ndarray, loss: np.ndarray, wins: np.ndarray, prior: float
) -> tuple[np.ndarray, np.ndarray]:
    size = np.ones(len(theta))
    for _ in range(40):
        trial = theta - size[:, None] * step
        trial_loss = _penalised_loss(trial, wins, prior)
        # at the optimum rounding can raise the loss by a few ulps: that is not a worse step
        worse = trial_loss > loss + 1e-12 * (np.abs(loss) + 1.0)
        if not worse.any():
            break
        size[worse] *= 0.5
    return trial, trial_loss

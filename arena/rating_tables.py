"""The battles table and what is counted from it: pure functions, numpy only.

`Battles` is the columnar table every rating function takes (`arena.ratings` re-exports all of
this module's public names, so import from there). Both tie kinds ("tie" and "both_bad") count
as a tie in the aggregated counts that ratings use; `outcome_counts` keeps them apart.

**Votes, not pairs.** A vote on three or four variants (a best pick, a ranking) becomes several
pairwise outcomes, which are not independent: they share one voter's one judgement. Rows may
therefore carry a vote identity (`PairOutcome.vote`, `Battles.vote`); the rows of one vote are
one unit wherever votes are counted (`votes_per_variant`) or resampled (`vote_patterns`, for the
bootstrap). A row without one (every FastChat battle) is a vote of its own.

`BOARD_COLUMNS` names the columns of the leaderboard table, each with the fields of a leaderboard
row (`arena.ratings.Row`) it shows: the Leaderboard tab's headers and the leaderboard CSV's
columns both come from it, so neither can leave out what the other has.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from arena.bradley_terry import VotePatterns

OUTCOMES = ("a", "b", "tie", "both_bad")
"""The project's vote outcomes, by code: 0 = a wins, 1 = b wins, 2 = tie, 3 = both bad."""

OUTCOME_CODES = {name: code for code, name in enumerate(OUTCOMES)}
_A_WINS, _B_WINS, _TIE = range(3)  # codes; "both_bad" (3) is the second tie kind


@dataclass(frozen=True)
class PairOutcome:
    """One pairwise battle result: `model_a` was shown first, `outcome` is one of `OUTCOMES`.
    `vote` names the vote it comes from (the pairs of one multi-way vote share it); None: a vote
    of its own."""

    model_a: str
    model_b: str
    outcome: str
    tstamp: float | None = None
    vote: str | None = None

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOME_CODES:
            raise ValueError(f"unknown outcome {self.outcome!r}: expected one of {', '.join(OUTCOMES)}")
        if not self.model_a or not self.model_b:
            raise ValueError("a pair outcome needs two variant names")
        if self.model_a == self.model_b:
            raise ValueError(f"{self.model_a!r} cannot battle itself: a pair needs two different variants")


@dataclass(frozen=True, eq=False)
class Battles:
    """A columnar, read-only table of pairwise outcomes: what every rating function takes.

    `models` are sorted unique variant names; `a` and `b` index into them; `outcome` holds codes
    (0 = a wins, 1 = b wins, 2 = tie, 3 = both bad); `tstamp` holds seconds (NaN where unknown),
    or is None when no battle has one; `vote` numbers the vote each row comes from (rows of one
    multi-way vote share a number; -1: a vote of its own), or is None when every row is a vote of
    its own. Rows keep input order. `models` may name variants that have no battles.
    """

    models: tuple[str, ...]
    a: np.ndarray
    b: np.ndarray
    outcome: np.ndarray
    tstamp: np.ndarray | None = None
    vote: np.ndarray | None = None

    def __post_init__(self) -> None:
        # private read-only copies: the table is a value, and the caller's arrays stay theirs
        columns: dict[str, np.ndarray] = {
            "a": np.array(self.a, dtype=np.intp),
            "b": np.array(self.b, dtype=np.intp),
            "outcome": np.array(self.outcome, dtype=np.int8),
        }
        if self.tstamp is not None:
            columns["tstamp"] = np.array(self.tstamp, dtype=np.float64)
        if self.vote is not None:
            columns["vote"] = np.array(self.vote, dtype=np.int64)
        _check_table(tuple(self.models), columns)
        object.__setattr__(self, "models", tuple(self.models))
        for name, column in columns.items():
            column.setflags(write=False)
            object.__setattr__(self, name, column)

    @classmethod
    def from_pairs(cls, pairs: Iterable[PairOutcome], models: Iterable[str] = ()) -> Battles:
        """Build the table from pair outcomes; `models` adds variants that may have no battles."""
        pairs = list(pairs)
        names = sorted({*models, *(p.model_a for p in pairs), *(p.model_b for p in pairs)})
        index = {name: i for i, name in enumerate(names)}
        timed = any(p.tstamp is not None for p in pairs)
        votes: dict[str, int] = {}
        vote = [-1 if p.vote is None else votes.setdefault(p.vote, len(votes)) for p in pairs]
        return cls(
            models=tuple(names),
            a=np.array([index[p.model_a] for p in pairs], dtype=np.intp),
            b=np.array([index[p.model_b] for p in pairs], dtype=np.intp),
            outcome=np.array([OUTCOME_CODES[p.outcome] for p in pairs], dtype=np.int8),
            tstamp=np.array([math.nan if p.tstamp is None else p.tstamp for p in pairs]) if timed else None,
            vote=np.array(vote, dtype=np.int64) if votes else None,
        )

    @classmethod
    def from_arrays(
        cls,
        models: Sequence[str],
        a: ArrayLike,
        b: ArrayLike,
        outcome: ArrayLike,
        tstamp: ArrayLike | None = None,
        vote: ArrayLike | None = None,
    ) -> Battles:
        """The fast path for readers: `a` and `b` index into `models`, which need not be sorted
        (they must be unique); `outcome` and `vote` hold codes as in the class docstring."""
        if len(set(models)) != len(models):
            raise ValueError("model names must be unique")
        order = sorted(range(len(models)), key=lambda i: models[i])
        remap = np.empty(len(models), dtype=np.intp)
        remap[order] = np.arange(len(models))
        a_index, b_index = np.asarray(a, dtype=np.intp), np.asarray(b, dtype=np.intp)
        _check_indices(len(models), a_index, b_index)
        stamps = None if tstamp is None else np.asarray(tstamp, dtype=np.float64)
        votes = None if vote is None else np.asarray(vote, dtype=np.int64)
        return cls(tuple(models[i] for i in order), remap[a_index], remap[b_index], np.asarray(outcome), stamps, votes)

    def __len__(self) -> int:
        return len(self.outcome)

    def pairs(self) -> list[PairOutcome]:
        """The rows back as pair outcomes (slow; for tests and small tables); a vote is named by
        its number."""
        stamps = [None] * len(self) if self.tstamp is None else self.tstamp.tolist()
        votes = [-1] * len(self) if self.vote is None else self.vote.tolist()
        return [
            PairOutcome(self.models[a], self.models[b], OUTCOMES[code], _known(stamp), None if v < 0 else str(v))
            for a, b, code, stamp, v in zip(
                self.a.tolist(), self.b.tolist(), self.outcome.tolist(), stamps, votes, strict=True
            )
        ]

    def vote_units(self) -> np.ndarray:
        """One number per row naming its vote: rows of one vote share it, every other row has
        one of its own (numbers from 0, in no particular order)."""
        n = len(self)
        if self.vote is None:
            return np.arange(n, dtype=np.int64)
        own = self.vote < 0
        shift = int(self.vote.max(initial=-1)) + 1
        return np.where(own, shift + np.arange(n, dtype=np.int64), self.vote)


def _known(stamp: float | None) -> float | None:
    return None if stamp is None or math.isnan(stamp) else stamp


def _check_indices(n_models: int, a: np.ndarray, b: np.ndarray) -> None:
    for side, column in (("a", a), ("b", b)):
        if column.size and (column.min() < 0 or column.max() >= n_models):
            raise ValueError(f"battle column {side} holds indices outside the {n_models} models")


def _check_table(models: tuple[str, ...], columns: dict[str, np.ndarray]) -> None:
    if list(models) != sorted(set(models)):
        raise ValueError("Battles.models must be sorted unique names (Battles.from_arrays sorts them)")
    shapes = {name: column.shape for name, column in columns.items()}
    if len(set(shapes.values())) != 1 or columns["a"].ndim != 1:
        raise ValueError(f"battle columns must be 1-D and of one length, not {shapes}")
    _check_indices(len(models), columns["a"], columns["b"])
    if np.any(columns["a"] == columns["b"]):
        raise ValueError("a battle pits a variant against itself: a pair needs two different variants")
    outcome = columns["outcome"]
    if outcome.size and (outcome.min() < 0 or outcome.max() >= len(OUTCOMES)):
        raise ValueError(f"outcome codes must be 0..{len(OUTCOMES) - 1} ({', '.join(OUTCOMES)})")


# --- counts and pairwise tables ---------------------------------------------------------------------


def outcome_counts(battles: Battles) -> np.ndarray:
    """M x M x 4 counts: `[i, j, k]` = battles with a = i, b = j and outcome code k."""
    m, kinds = len(battles.models), len(OUTCOMES)
    cell = (battles.a * m + battles.b) * kinds + battles.outcome
    return np.bincount(cell, minlength=m * m * kinds).reshape(m, m, kinds)


def aggregate(battles: Battles) -> np.ndarray:
    """M x M x 3 counts `[i, j, k]` for a = i, b = j; k: 0 a wins, 1 b wins, 2 tie (both kinds).

    This is all a Bradley-Terry fit needs: `fit_bradley_terry` and `bootstrap` take it.
    """
    return merge_ties(outcome_counts(battles))


def merge_ties(counts4: np.ndarray) -> np.ndarray:
    """M x M x 4 outcome counts -> the M x M x 3 counts of `aggregate` (both tie kinds as one)."""
    return np.concatenate([counts4[..., :_TIE], counts4[..., _TIE:].sum(axis=-1, keepdims=True)], axis=-1)


def battle_count_matrix(battles: Battles) -> np.ndarray:
    """Symmetric M x M battle counts between each pair (either side, every outcome)."""
    return battle_counts(outcome_counts(battles))


def win_rate_matrix(battles: Battles) -> np.ndarray:
    """M x M: `[i, j]` = share of the decisive battles between i and j that i won, either side.

    Ties are left out, as in FastChat's pairwise win-fraction plot; NaN where a pair never had a
    decisive battle, and on the diagonal.
    """
    return win_rates(outcome_counts(battles))


def connected_groups(battles: Battles) -> tuple[tuple[str, ...], ...]:
    """Groups of variants linked by battles (connected components), largest first, names sorted.

    Variants with no battles are left out. Ratings are comparable only within a group.
    """
    return groups_of(battles.models, outcome_counts(battles))


# The same three from counts (M x M x 3 or x 4), so that a caller with counts need not recount.


def battle_counts(counts: np.ndarray) -> np.ndarray:
    """`battle_count_matrix` from counts."""
    per_order = counts.sum(axis=-1)
    return per_order + per_order.T


def win_rates(counts: np.ndarray) -> np.ndarray:
    """`win_rate_matrix` from counts."""
    wins = (counts[..., _A_WINS] + counts[..., _B_WINS].T).astype(np.float64)
    decisive = wins + wins.T
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(decisive > 0, wins / decisive, np.nan)


def groups_of(models: Sequence[str], counts: np.ndarray) -> tuple[tuple[str, ...], ...]:
    """`connected_groups` from counts."""
    linked = battle_counts(counts) > 0
    unseen = set(np.flatnonzero(linked.any(axis=1)).tolist())
    groups: list[tuple[str, ...]] = []
    while unseen:
        frontier, member = [min(unseen)], set()
        while frontier:
            node = frontier.pop()
            if node not in member:
                member.add(node)
                frontier.extend(np.flatnonzero(linked[node]).tolist())
        unseen -= member
        groups.append(tuple(models[i] for i in sorted(member)))
    return tuple(sorted(groups, key=lambda group: (-len(group), group)))


# --- votes as units ----------------------------------------------------------------------------------


def vote_count(battles: Battles) -> int:
    """How many votes the rows come from (a multi-way vote's rows count once)."""
    if battles.vote is None:
        return len(battles)
    grouped = battles.vote[battles.vote >= 0]
    return len(battles) - len(grouped) + len(np.unique(grouped))


def votes_per_variant(battles: Battles) -> np.ndarray:
    """M counts: the votes each variant took part in (a ranking of four is one vote for each
    of its four variants, whatever the pairs it implies)."""
    m = len(battles.models)
    if battles.vote is None:
        return np.bincount(battles.a, minlength=m) + np.bincount(battles.b, minlength=m)
    units = battles.vote_units()
    keys = np.unique(np.concatenate([units * m + battles.a, units * m + battles.b]))
    return np.bincount(keys % m, minlength=m)


def vote_patterns(battles: Battles) -> VotePatterns:
    """The votes grouped by the cells of the M x M x 3 counts (`aggregate`) they add to, for
    `bootstrap`. A vote of one row is a pattern of one cell; a ranking's rows make one pattern."""
    m = len(battles.models)
    cells = (battles.a * m + battles.b) * 3 + np.minimum(battles.outcome, _TIE)  # both tie kinds: a tie
    size = m * m * 3
    if battles.vote is None or not (battles.vote >= 0).any():
        return VotePatterns.one_per_cell(np.bincount(cells, minlength=size))
    _, unit, rows_per_unit = np.unique(battles.vote_units(), return_inverse=True, return_counts=True)
    alone = rows_per_unit[unit] == 1
    single = np.bincount(cells[alone], minlength=size)
    grouped = np.flatnonzero(~alone)
    grouped = grouped[np.argsort(unit[grouped], kind="stable")]
    starts = np.flatnonzero(np.diff(unit[grouped], prepend=-1))
    patterns: dict[tuple[int, ...], int] = {}
    for part in np.split(cells[grouped], starts[1:]) if grouped.size else ():
        key = tuple(sorted(part.tolist()))
        patterns[key] = patterns.get(key, 0) + 1
    return VotePatterns.from_groups(single, patterns)


# --- the leaderboard table's columns ----------------------------------------------------------------


@dataclass(frozen=True)
class BoardColumn:
    """A column of the leaderboard table: its `header` as the Leaderboard tab shows it, and the
    fields of `arena.ratings.Row` it shows (one CSV column each)."""

    header: str
    fields: tuple[str, ...]


BOARD_COLUMNS: tuple[BoardColumn, ...] = (
    BoardColumn("rank", ("rank",)),
    BoardColumn("variant", ("variant", "preliminary")),  # shown as "name (preliminary)"
    BoardColumn("rating", ("rating",)),
    BoardColumn("95% CI", ("ci_low", "ci_high")),
    BoardColumn("votes", ("votes",)),
    BoardColumn("wins", ("wins",)),
    BoardColumn("losses", ("losses",)),
    BoardColumn("ties", ("ties",)),
    BoardColumn("both bad", ("both_bad",)),
    BoardColumn("online Elo", ("elo",)),
)

"""What a vote says about each pair of variants in a battle: pure functions, no SQL, no I/O.

A battle shows the same request answered by two or more variants, in positions 0, 1, ... A vote
is one of three kinds, and turns into pairwise outcomes (`arena.ratings.PairOutcome`) by this rule:

- **outcome** (two-sided battles only): `a`, `b`, `tie` or `both_bad`, said of the variants in
  positions 0 and 1; it maps directly onto the one pair.
- **best** (any number of sides): the chosen variant beats each other variant; nothing is implied
  among the rest (the voter did not compare them).
- **ranking** (any number of sides): tiers from best to worst, each a group of variants; every
  variant appears in exactly one tier. For each pair in different tiers the higher tier wins; a
  pair in the same tier is a tie.

Each implied pair keeps the battle's position order (`model_a` is the variant shown first), so a
position bias in the data stays visible; the outcome (`a` or `b`) says which side won. All the
pairs of one vote carry its id (`PairOutcome.vote`): ratings count and resample them as one vote.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from arena.ratings import OUTCOMES, PairOutcome


@dataclass(frozen=True)
class Vote:
    """One voter's verdict on one battle. Exactly one of the three fields is set.

    Variants are named by their labels in the battle (`best`, `ranking`); `outcome` by position.
    """

    outcome: str | None = None
    best: str | None = None
    ranking: tuple[tuple[str, ...], ...] | None = None

    def __post_init__(self) -> None:
        given = sum(part is not None for part in (self.outcome, self.best, self.ranking))
        if given != 1:
            raise ValueError("a vote is exactly one of: outcome=a|b|tie|both_bad, best=LABEL, ranking=TIERS")
        if self.outcome is not None and self.outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {self.outcome!r}: expected one of {', '.join(OUTCOMES)}")

    @classmethod
    def of(
        cls,
        outcome: str | None = None,
        best: str | None = None,
        ranking: Iterable[Iterable[str]] | None = None,
    ) -> Vote:
        """Build a Vote from plain values (lists of lists for a ranking)."""
        tiers = None if ranking is None else tuple(tuple(tier) for tier in ranking)
        return cls(outcome=outcome, best=best, ranking=tiers)


def check_vote(variants: Sequence[str], vote: Vote, *, reveal: bool = True) -> None:
    """Raise ValueError, saying what is wrong, unless `vote` fits a battle of `variants`.

    With `reveal=False` (a blind battle) the message never names a variant the voter did not.
    """
    if len(set(variants)) != len(variants) or len(variants) < 2:
        raise ValueError(f"a battle needs two or more distinct variants, not {len(variants)}")
    known = ", ".join(variants) if reveal else f"{len(variants)} variants, not named in a blind battle"
    if vote.outcome is not None and len(variants) != 2:
        raise ValueError(
            f"outcome {vote.outcome!r} is for two-sided battles; this one has {len(variants)} "
            "variants: vote with best=LABEL or a ranking"
        )
    if vote.best is not None and vote.best not in variants:
        raise ValueError(f"unknown variant {vote.best!r} for best: this battle has {known}")
    if vote.ranking is not None:
        seen: list[str] = []
        for tier in vote.ranking:
            if not tier:
                raise ValueError("a ranking tier is empty: every tier names at least one variant")
            for label in tier:
                if label not in variants:
                    raise ValueError(f"unknown variant {label!r} in the ranking: this battle has {known}")
                if label in seen:
                    raise ValueError(f"variant {label!r} is ranked twice: give each variant one tier")
                seen.append(label)
        missing = [label for label in variants if label not in seen]
        if missing:
            left_out = ", ".join(missing) if reveal else f"{len(missing)} of the {len(variants)} variants"
            raise ValueError(f"the ranking leaves out {left_out}: rank every variant")


@dataclass(frozen=True)
class CastVote:
    """One stored vote as ratings and per-voter views read it: its `id`, who cast it (None when
    unknown), the variants it is about (position order, see `StoredBattle.voted_on`), the vote,
    and when it was cast."""

    id: str
    voter: str | None
    variants: tuple[str, ...]
    vote: Vote
    tstamp: float | None = None

    def outcomes(self) -> list[PairOutcome]:
        """The pairwise outcomes this vote implies, each carrying the vote's id."""
        return implied_outcomes(self.variants, self.vote, tstamp=self.tstamp, vote_id=self.id)

    @property
    def winner(self) -> str | None:
        """The one variant the vote puts above all others, or None: a tie or both bad, or a
        ranking whose top tier holds several variants."""
        if self.vote.outcome is not None:
            return {"a": self.variants[0], "b": self.variants[1]}.get(self.vote.outcome)
        if self.vote.best is not None:
            return self.vote.best
        assert self.vote.ranking is not None
        top = self.vote.ranking[0]
        return top[0] if len(top) == 1 else None


def implied_outcomes(
    variants: Sequence[str], vote: Vote, *, tstamp: float | None = None, vote_id: str | None = None
) -> list[PairOutcome]:
    """The pairwise outcomes `vote` implies for a battle of `variants` (in position order), each
    naming `vote_id` as the vote it comes from.

    See the module docstring for the rule. Raises ValueError if the vote does not fit the battle.
    """
    check_vote(variants, vote)
    if vote.outcome is not None:
        return [PairOutcome(variants[0], variants[1], vote.outcome, tstamp, vote_id)]
    if vote.best is not None:
        winner = variants.index(vote.best)
        return [
            PairOutcome(
                variants[min(winner, other)],
                variants[max(winner, other)],
                "a" if winner < other else "b",
                tstamp,
                vote_id,
            )
            for other in range(len(variants))
            if other != winner
        ]
    assert vote.ranking is not None
    tier_of = {label: rank for rank, tier in enumerate(vote.ranking) for label in tier}
    return [
        PairOutcome(first, second, _by_tier(tier_of[first], tier_of[second]), tstamp, vote_id)
        for i, first in enumerate(variants)
        for second in variants[i + 1 :]
    ]


def _by_tier(first: int, second: int) -> str:
    """The outcome for two variants in tiers `first` and `second` (0 is the best tier)."""
    if first == second:
        return "tie"
    return "a" if first < second else "b"

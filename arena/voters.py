"""Per-voter views: how each voter voted, and how often they agree with the leaderboard. Pure
functions over votes; no SQL (`storage` reads the votes: `Store.voter_stats`).

Agreement is a plain check of a voter against everyone: of their decisive votes (one variant put
above all others: side a or b, a best pick, a ranking with one variant on top), the share whose
winner is the leaderboard's favourite among that battle's variants (a winner sharing the top
rating counts as the favourite), the leaderboard being the Bradley-Terry fit on all voters'
votes of the same slice. A voter near 50 % on two-sided votes
agrees no more than chance; one far below it may be voting at random, or against the crowd.
The voter's own votes are part of that fit: with few voters, agreement reads high.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from arena.ratings import Battles, aggregate, fit_bradley_terry
from arena.votes import CastVote


@dataclass(frozen=True)
class VoterStats:
    """One voter's votes in a slice: how many, each two-sided outcome (`a`, `b`, `tie`,
    `both_bad`), `other` (best picks and rankings), `agreement` (see the module docstring; None
    when the voter cast no decisive vote) and `decisive`, the votes agreement is taken over."""

    voter: str
    votes: int
    a: int
    b: int
    tie: int
    both_bad: int
    other: int
    agreement: float | None
    decisive: int = 0


def fitted_ratings(votes: Iterable[CastVote]) -> dict[str, float]:
    """The Bradley-Terry rating of every variant the votes are about (no bootstrap)."""
    battles = Battles.from_pairs(pair for vote in votes for pair in vote.outcomes())
    return dict(zip(battles.models, fit_bradley_terry(aggregate(battles)).tolist(), strict=True))


def voter_stats(votes: Sequence[CastVote], ratings: Mapping[str, float] | None = None) -> list[VoterStats]:
    """One row per voter (votes without a voter count in the ratings but get no row), most
    votes first, then by name. `ratings` default to `fitted_ratings(votes)`."""
    ratings = fitted_ratings(votes) if ratings is None else ratings
    by_voter: dict[str, list[CastVote]] = {}
    for vote in votes:
        if vote.voter is not None:
            by_voter.setdefault(vote.voter, []).append(vote)
    rows = [_stats(voter, cast, ratings) for voter, cast in by_voter.items()]
    return sorted(rows, key=lambda row: (-row.votes, row.voter))


def _stats(voter: str, votes: Sequence[CastVote], ratings: Mapping[str, float]) -> VoterStats:
    outcomes = Counter(vote.vote.outcome for vote in votes)
    decided = [(vote, vote.winner) for vote in votes if vote.winner is not None]
    agreeing = sum(
        ratings.get(winner, float("-inf")) >= max(ratings.get(v, float("-inf")) for v in vote.variants)
        for vote, winner in decided
    )
    return VoterStats(
        voter=voter,
        votes=len(votes),
        a=outcomes["a"],
        b=outcomes["b"],
        tie=outcomes["tie"],
        both_bad=outcomes["both_bad"],
        other=outcomes[None],
        agreement=agreeing / len(decided) if decided else None,
        decisive=len(decided),
    )

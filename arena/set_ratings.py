"""Where each variant wins: ratings of a prompt set's judged pairs, overall and per tag. Pure.

A set's verdicts are blind votes like any battle's (`storage.judgments.set_votes` reads them with the
labels of their prompt: its tags and its category). Two views of them:

- Bradley-Terry ratings with bootstrap intervals (`arena.ratings.compute_leaderboard`) of the
  whole set or of the prompts carrying one tag;
- a win-rate table: per tag and variant, the share of its judged pairs it won, a tie or a
  "both bad" counting half (the score the ratings fit), with a 95 % Wilson score interval over
  the number of judged pairs. Wilson rather than a bootstrap: exact enough per cell, defined for
  a single verdict, and never an interval of zero width.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from arena.ratings import DEFAULT_ROUNDS, WILSON_Z, Battles, Leaderboard, PairOutcome, compute_leaderboard

#: The row of the win-rate table that counts every prompt of the set.
ALL = "(all)"


@dataclass(frozen=True)
class SetVote:
    """One judge's verdict on one pair of a set: `variant_a` was shown first; `outcome` is a, b,
    tie or both_bad; `labels` are the prompt's tags and category; `answer_a` / `answer_b` the
    answers' ids (agreement compares verdicts on the same two answers) and `prompt_id` their prompt."""

    vote_id: str
    judge: str | None
    variant_a: str
    variant_b: str
    outcome: str
    labels: tuple[str, ...]
    tstamp: float
    answer_a: int = 0
    answer_b: int = 0
    prompt_id: str = ""

    def pair(self) -> PairOutcome:
        return PairOutcome(self.variant_a, self.variant_b, self.outcome, self.tstamp, self.vote_id)


@dataclass(frozen=True)
class WinRate:
    """One cell of the table: `variant` on the prompts tagged `tag` (ALL: every prompt)."""

    tag: str
    variant: str
    judged: int
    wins: int
    losses: int
    ties: int
    both_bad: int
    score: float
    low: float
    high: float


def with_tag(votes: Iterable[SetVote], tag: str | None) -> list[SetVote]:
    """The verdicts on prompts labelled `tag` (all of them for None)."""
    return [vote for vote in votes if tag is None or tag in vote.labels]


def tags_of(votes: Iterable[SetVote]) -> list[str]:
    """Every label the judged prompts carry, sorted."""
    return sorted({label for vote in votes for label in vote.labels})


def set_leaderboard(
    votes: Sequence[SetVote], *, tag: str | None = None, rounds: int = DEFAULT_ROUNDS, seed: int = 0,
    anchor: tuple[str, float] | None = None, min_votes: int = 0,
) -> Leaderboard:
    """Bradley-Terry ratings of the verdicts (on prompts labelled `tag`, if given)."""
    chosen = with_tag(votes, tag)
    return compute_leaderboard(Battles.from_pairs(vote.pair() for vote in chosen), rounds=rounds, seed=seed,
                               anchor=anchor, min_votes=min_votes)


def wilson(score: float, n: int, z: float = WILSON_Z) -> tuple[float, float]:
    """The Wilson score interval of a share `score` of `n` trials ((0, 1) when n is 0)."""
    if n <= 0:
        return 0.0, 1.0
    spread = z * z / n
    centre = (score + spread / 2) / (1 + spread)
    half = z / (1 + spread) * math.sqrt(score * (1 - score) / n + spread / (4 * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def win_rates(votes: Iterable[SetVote], *, z: float = WILSON_Z) -> list[WinRate]:
    """The table: for ALL and then each tag (sorted), each variant judged on those prompts
    (sorted), its verdicts and score (ties and both-bad count half) with a Wilson interval."""
    tally: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # wins, losses, ties, both bad
    for vote in votes:
        for tag in (ALL, *vote.labels):
            for variant, side in ((vote.variant_a, "a"), (vote.variant_b, "b")):
                cell = tally[tag, variant]
                if vote.outcome in ("a", "b"):
                    cell[0 if vote.outcome == side else 1] += 1
                else:
                    cell[2 if vote.outcome == "tie" else 3] += 1
    rows = []
    for tag, variant in sorted(tally, key=lambda key: (key[0] != ALL, key)):
        wins, losses, ties, both_bad = tally[tag, variant]
        judged = wins + losses + ties + both_bad
        score = (wins + 0.5 * (ties + both_bad)) / judged
        low, high = wilson(score, judged, z)
        rows.append(WinRate(tag, variant, judged, wins, losses, ties, both_bad, score, low, high))
    return rows

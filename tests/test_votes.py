"""How a vote becomes pairwise outcomes (arena.votes): pure, no database."""

from __future__ import annotations

from typing import Any

import pytest

from arena.ratings import PairOutcome
from arena.votes import Vote, check_vote, implied_outcomes

FOUR = ("w", "x", "y", "z")


def pairs(variants: tuple[str, ...], vote: Vote) -> list[tuple[str, str, str]]:
    return [(p.model_a, p.model_b, p.outcome) for p in implied_outcomes(variants, vote)]


@pytest.mark.parametrize("outcome", ["a", "b", "tie", "both_bad"])
def test_two_sided_outcome_maps_directly_onto_the_pair(outcome: str) -> None:
    assert pairs(("x", "y"), Vote(outcome=outcome)) == [("x", "y", outcome)]


def test_best_beats_each_other_variant_and_implies_nothing_among_the_rest() -> None:
    assert pairs(FOUR, Vote(best="y")) == [("w", "y", "b"), ("x", "y", "b"), ("y", "z", "a")]


def test_best_of_two_is_the_same_as_picking_a_side() -> None:
    assert pairs(("x", "y"), Vote(best="y")) == pairs(("x", "y"), Vote(outcome="b"))


def test_ranking_higher_tier_wins_and_same_tier_ties() -> None:
    vote = Vote.of(ranking=[["z"], ["w", "y"], ["x"]])
    assert pairs(FOUR, vote) == [
        ("w", "x", "a"),
        ("w", "y", "tie"),
        ("w", "z", "b"),
        ("x", "y", "b"),
        ("x", "z", "b"),
        ("y", "z", "b"),
    ]


def test_ranking_everyone_in_one_tier_is_all_ties() -> None:
    assert {outcome for _, _, outcome in pairs(("x", "y", "z"), Vote.of(ranking=[["x", "y", "z"]]))} == {"tie"}


def test_implied_outcomes_carry_the_timestamp() -> None:
    assert implied_outcomes(("x", "y"), Vote(outcome="a"), tstamp=12.5) == [PairOutcome("x", "y", "a", 12.5)]


def test_a_side_outcome_on_three_variants_is_refused_with_a_hint() -> None:
    with pytest.raises(ValueError, match="best=LABEL or a ranking"):
        check_vote(("x", "y", "z"), Vote(outcome="a"))


def test_unknown_outcome_is_refused_naming_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown outcome 'left'.*a, b, tie, both_bad"):
        Vote(outcome="left")


@pytest.mark.parametrize("vote", [Vote(best="q"), Vote.of(ranking=[["x"], ["q", "y"]])])
def test_unknown_label_is_refused(vote: Vote) -> None:
    with pytest.raises(ValueError, match="unknown variant 'q'"):
        check_vote(("x", "y"), vote)


@pytest.mark.parametrize(
    ("ranking", "message"),
    [
        ([["x"], ["y"]], "leaves out z"),
        ([["x", "y"], ["y", "z"]], "ranked twice"),
        ([["x"], [], ["y", "z"]], "tier is empty"),
    ],
)
def test_ranking_must_name_every_variant_exactly_once(ranking: list[list[str]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_vote(("x", "y", "z"), Vote.of(ranking=ranking))


@pytest.mark.parametrize("kwargs", [{}, {"outcome": "a", "best": "x"}])
def test_a_vote_is_exactly_one_kind(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="exactly one of"):
        Vote(**kwargs)

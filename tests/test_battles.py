"""Drawing blind pairs."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from arena.battles import draw_pair
from arena.errors import UsageError


def test_pair_is_drawn_among_the_least_battled_pairs() -> None:
    counts = {frozenset({"a", "b"}): 5, frozenset({"a", "c"}): 5, frozenset({"b", "c"}): 1}
    rng = random.Random(1)
    for _ in range(50):
        pairing = draw_pair(["a", "b", "c"], counts, rng)
        assert {pairing.a, pairing.b} == {"b", "c"}


def test_sides_are_assigned_at_random() -> None:
    rng = random.Random(7)
    sides = Counter(draw_pair(["x", "y"], {}, rng).a for _ in range(400))
    assert set(sides) == {"x", "y"} and min(sides.values()) > 150


def test_every_unseen_pair_can_be_drawn() -> None:
    rng = random.Random(3)
    seen = {frozenset((p.a, p.b)) for p in (draw_pair(["a", "b", "c", "d"], {}, rng) for _ in range(300))}
    assert len(seen) == 6


def test_fewer_than_two_candidates_is_a_clear_error() -> None:
    with pytest.raises(UsageError, match="at least two loaded variants"):
        draw_pair(["only"], {}, random.Random(0))

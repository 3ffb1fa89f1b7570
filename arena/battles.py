"""Blind battles: drawing the pair and placing it on the two sides. Pure functions."""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from arena.errors import UsageError


@dataclass(frozen=True)
class Pairing:
    """The variants on side A and side B of a blind battle."""

    a: str
    b: str


def draw_pair(
    candidates: Sequence[str],
    battle_counts: Mapping[frozenset[str], int],
    rng: random.Random,
) -> Pairing:
    """Draw two of `candidates`, favouring the pairs with the fewest battles so far.

    Among the pairs that have been compared least, one is chosen uniformly at random; its sides
    are then assigned at random, so neither position tells which variant is which.
    """
    unique = sorted(set(candidates))
    if len(unique) < 2:
        raise UsageError(
            "a blind battle needs at least two loaded variants that can take this prompt; "
            "load more variants or remove the image/audio"
        )
    pairs = [frozenset(p) for p in itertools.combinations(unique, 2)]
    fewest = min(battle_counts.get(p, 0) for p in pairs)
    least = sorted((p for p in pairs if battle_counts.get(p, 0) == fewest), key=sorted)
    first, second = sorted(rng.choice(least))
    return Pairing(first, second) if rng.random() < 0.5 else Pairing(second, first)

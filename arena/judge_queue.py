"""Which pair a judge sees next: an in-memory index of a set's pairs by how often each was judged.

A pair is two judgeable answers (answered, naming no model) to the same prompt from different
variants. The next pair for a judge is one they have not judged, among the least judged pairs,
drawn at random among equals, its sides in random order. Pure: the index is fed the set's
answers and judgments (`storage.judgments.queue_rows`, read incrementally), and never reads itself.

Why in memory: "least judged and not by this judge" over every pair of 100,000 answers is a
self-join and a count per pair, tens of milliseconds to seconds in SQL, and the tables are
append-only, so no count can be kept in a row. Here pairs sit in buckets by judgment count, each
a list with a position map (O(1) random pick, add and remove). A judgment moves its pair one
bucket up. Picking tries a few random members of the lowest bucket before scanning it, so a
judge who has judged most of a bucket still gets an answer in one pass
(bench/bench_judge_queue.py measures it).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass

#: Two answer ids, lower first.
Pair = tuple[int, int]
#: Random picks in a bucket before scanning it.
_TRIES = 24


@dataclass(frozen=True)
class Served:
    """A pair as shown: `first` on side A, `second` on side B."""

    first: int
    second: int

    @property
    def pair(self) -> Pair:
        return (min(self.first, self.second), max(self.first, self.second))


class _Bucket:
    """A set of pairs with O(1) add, remove and random pick."""

    __slots__ = ("items", "where")

    def __init__(self) -> None:
        self.items: list[Pair] = []
        self.where: dict[Pair, int] = {}

    def add(self, pair: Pair) -> None:
        self.where[pair] = len(self.items)
        self.items.append(pair)

    def remove(self, pair: Pair) -> None:
        index = self.where.pop(pair)
        last = self.items.pop()
        if index < len(self.items):
            self.items[index] = last
            self.where[last] = index


class PairIndex:
    """The pairs of one set with their judgment counts and who judged them. Not thread-safe:
    its owner serializes calls."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.SystemRandom()
        self._answers: dict[str, list[tuple[int, str]]] = defaultdict(list)  # prompt -> (answer, variant)
        self._count: dict[Pair, int] = {}
        self._buckets: list[_Bucket] = [_Bucket()]
        self._judged_by: dict[str, set[Pair]] = defaultdict(set)
        self._early: list[tuple[int, int, str]] = []  # judgments of pairs not known yet

    @property
    def pairs(self) -> int:
        return len(self._count)

    def add_answer(self, answer: int, prompt: str, variant: str, judgeable: bool = True) -> None:
        """A new answer: paired with every judgeable answer of its prompt by another variant.
        An answer that is not judgeable (failed, or names its model) makes no pair."""
        if not judgeable:
            return
        siblings = self._answers[prompt]
        for other, other_variant in siblings:
            if other_variant != variant:
                pair = (min(answer, other), max(answer, other))
                if pair not in self._count:
                    self._count[pair] = 0
                    self._buckets[0].add(pair)
        siblings.append((answer, variant))
        if self._early:
            early, self._early = self._early, []
            for first, second, judge in early:
                self.add_judgment(first, second, judge)

    def add_judgment(self, first: int, second: int, judge: str) -> None:
        """A stored judgment of two answers by `judge`: its pair moves one bucket up."""
        pair = (min(first, second), max(first, second))
        count = self._count.get(pair)
        if count is None:  # answers not indexed (yet, or not judgeable any more): kept for later
            self._early.append((first, second, judge))
            return
        self._judged_by[judge].add(pair)
        self._buckets[count].remove(pair)
        if count + 1 == len(self._buckets):
            self._buckets.append(_Bucket())
        self._buckets[count + 1].add(pair)
        self._count[pair] = count + 1

    def judgments(self, pair: Pair) -> int:
        """How many judges judged `pair` (0 for an unknown pair)."""
        return self._count.get((min(pair), max(pair)), 0)

    def judged_by(self, judge: str) -> int:
        """How many pairs `judge` has judged."""
        return len(self._judged_by.get(judge, ()))

    def remaining(self, judge: str) -> int:
        """How many pairs `judge` has not judged yet."""
        return len(self._count) - self.judged_by(judge)

    def next_pair(self, judge: str, avoid: Collection[Pair] = ()) -> Served | None:
        """A pair `judge` has not judged, from the least judged ones, at random among equals, in a
        random order; pairs in `avoid` (skipped, or shown and not judged) only when no other is
        left. None when the judge has judged every pair."""
        mine = self._judged_by.get(judge, set())
        pair = self._pick(mine, avoid) or (self._pick(mine, ()) if avoid else None)
        if pair is None:
            return None
        first, second = pair if self._rng.random() < 0.5 else (pair[1], pair[0])
        return Served(first, second)

    def _pick(self, mine: set[Pair], avoid: Collection[Pair]) -> Pair | None:
        rng = self._rng
        for bucket in self._buckets:
            items = bucket.items
            if not items:
                continue
            for _ in range(min(_TRIES, len(items))):
                pair = items[rng.randrange(len(items))]
                if pair not in mine and pair not in avoid:
                    return pair
            left = [pair for pair in items if pair not in mine and pair not in avoid]
            if left:
                return rng.choice(left)
        return None

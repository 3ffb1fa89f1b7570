"""How much a set's judges agree. Pure functions over verdicts; no SQL, no I/O.

Each judge saw a pair's two answers in an order of its own (sides are drawn at random), so a
verdict is first put in the pair's own order, lower answer id first: "a" from a judge who saw the
higher id first is "the second answer won". Four nominal values then: first, second, tie,
both_bad.

- Per pair judged by two or more judges: percent agreement, the share of pairs of those judges
  who gave the same verdict (1.0 when all agree, 0.0 when all differ).
- Per set: Krippendorff's alpha, nominal (the `krippendorff` package), over the pairs judged
  by two or more judges (a pair judged once says nothing about agreement), with the numbers
  of pairs and verdicts it rests on. 1 is perfect agreement, 0 what chance gives, below 0
  systematic disagreement. Undefined (None) when there is nothing to compare, or when every
  verdict is the same (no disagreement is even expected: the percent agreement says it all).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from math import comb

import numpy as np

from arena.set_ratings import SetVote

VERDICTS = ("first", "second", "tie", "both_bad")
#: A pair: its two answer ids, lower first.
Unit = tuple[int, int]


@dataclass(frozen=True)
class Verdict:
    """One judge's verdict on one pair (`unit`), in the pair's own order (VERDICTS)."""

    unit: Unit
    judge: str
    verdict: str


@dataclass(frozen=True)
class PairAgreement:
    unit: Unit
    judges: int
    agreement: float
    verdicts: tuple[str, ...]


@dataclass(frozen=True)
class SetAgreement:
    """`alpha` over `pairs` pairs judged by two or more judges, holding `verdicts` verdicts of
    `judges` judges; `mean_agreement` is the mean percent agreement of those pairs."""

    alpha: float | None
    pairs: int
    verdicts: int
    judges: int
    mean_agreement: float | None
    per_pair: tuple[PairAgreement, ...]


def oriented(answer_a: int, answer_b: int, outcome: str) -> tuple[tuple[int, int], str]:
    """(the pair in its own order, the verdict in that order) of a verdict on `answer_a` shown
    first and `answer_b` second."""
    flipped = answer_a > answer_b
    verdict = {"a": "second" if flipped else "first", "b": "first" if flipped else "second"}.get(outcome, outcome)
    if verdict not in VERDICTS:
        raise ValueError(f"unknown outcome {outcome!r}: expected a, b, tie or both_bad")
    return (min(answer_a, answer_b), max(answer_a, answer_b)), verdict


def percent_agreement(verdicts: Sequence[str]) -> float:
    """The share of pairs of judges who agree: sum over values of C(n_v, 2) / C(n, 2)."""
    n = len(verdicts)
    if n < 2:
        raise ValueError("agreement needs two or more verdicts")
    counts: dict[str, int] = defaultdict(int)
    for verdict in verdicts:
        counts[verdict] += 1
    return sum(comb(k, 2) for k in counts.values()) / comb(n, 2)


def agreement(verdicts: Iterable[Verdict]) -> SetAgreement:
    """Percent agreement per pair judged by two or more judges, and the set's Krippendorff's
    alpha (nominal) over those pairs. A judge's later verdict on a pair replaces an earlier one
    (the store takes one per judge)."""
    by_unit: dict[Unit, dict[str, str]] = defaultdict(dict)
    for item in verdicts:
        by_unit[item.unit][item.judge] = item.verdict
    shared = {unit: judged for unit, judged in by_unit.items() if len(judged) >= 2}
    per_pair = tuple(
        PairAgreement(unit, len(judged), percent_agreement(list(judged.values())), tuple(judged.values()))
        for unit, judged in shared.items()
    )
    judges = sorted({judge for judged in shared.values() for judge in judged})
    count = sum(len(judged) for judged in shared.values())
    mean = float(np.mean([p.agreement for p in per_pair])) if per_pair else None
    return SetAgreement(krippendorff_alpha(shared, judges), len(shared), count, len(judges), mean, per_pair)


def krippendorff_alpha(units: dict[Unit, dict[str, str]], judges: Sequence[str]) -> float | None:
    """Nominal alpha of a judges x units table (missing cells: judges who did not judge a pair)."""
    values = {verdict for judged in units.values() for verdict in judged.values()}
    if not units or len(values) < 2:
        return None
    import krippendorff

    code = {verdict: float(n) for n, verdict in enumerate(VERDICTS)}
    table = np.full((len(judges), len(units)), np.nan)
    row = {judge: n for n, judge in enumerate(judges)}
    for column, judged in enumerate(units.values()):
        for judge, verdict in judged.items():
            table[row[judge], column] = code[verdict]
    return float(krippendorff.alpha(reliability_data=table, level_of_measurement="nominal"))


# -- a prompt set's verdicts ---------------------------------------------------------------------


def set_agreement(votes: Sequence[SetVote]) -> SetAgreement:
    """The judges' agreement on the pairs of a prompt set's verdicts."""
    verdicts = []
    for vote in votes:
        unit, verdict = oriented(vote.answer_a, vote.answer_b, vote.outcome)
        verdicts.append(Verdict(unit, vote.judge or "", verdict))
    return agreement(verdicts)


def pair_names(votes: Sequence[SetVote]) -> dict[tuple[int, int], str]:
    """Each judged pair (answer ids, lower first) named by its prompt and variants."""
    return {(min(v.answer_a, v.answer_b), max(v.answer_a, v.answer_b)):
            f"prompt {v.prompt_id}: {' vs '.join(sorted((v.variant_a, v.variant_b)))}" for v in votes}


def disagreements(agreed: SetAgreement, names: dict[tuple[int, int], str], shown: int = 10) -> list[str]:
    """The pairs judged by two or more judges, least agreed first: one line each."""
    ordered = sorted(agreed.per_pair, key=lambda p: (p.agreement, names.get(p.unit, "")))
    lines = [f"{names.get(p.unit, str(p.unit))}: {p.agreement:.0%} agreement among {p.judges} judges"
             for p in ordered[:shown]]
    if len(ordered) > shown:
        lines.append(f"and {len(ordered) - shown} more pair(s)")
    return lines


def agreement_text(agreed: SetAgreement) -> str:
    """The agreement in one line."""
    if not agreed.pairs:
        return "Agreement: no pair has been judged by two judges yet."
    alpha = ("undefined (every verdict is the same)" if agreed.alpha is None else f"{agreed.alpha:.3f}")
    mean = "-" if agreed.mean_agreement is None else f"{agreed.mean_agreement:.0%}"
    return (f"Agreement: Krippendorff's alpha (nominal) {alpha} over {agreed.pairs} pair(s) judged by two or more "
            f"judges ({agreed.verdicts} verdicts by {agreed.judges} judges); mean percent agreement {mean}.")

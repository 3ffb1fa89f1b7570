"""Blind battles: which variants may be drawn, drawing the pair, placing it on the two sides.
Pure functions."""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from arena.errors import UsageError
from backends.base import Capabilities, Request

#: How to drop each need from a request, for the message when too few variants can take it.
_REMEDY = {
    "image": "remove the image",
    "audio": "remove the audio",
    "tools": "remove the tools",
    "thinking": "turn thinking off",
}


@dataclass(frozen=True)
class Pairing:
    """The variants on side A and side B of a blind battle."""

    a: str
    b: str


def needs_of(request: Request) -> tuple[str, ...]:
    """What a variant must support to take `request` whole, beyond text: image, audio, tools,
    thinking."""
    needs: list[str] = [m for m in ("image", "audio") if m in request.modalities]
    if request.tools:
        needs.append("tools")
    if request.thinking:
        needs.append("thinking")
    return tuple(needs)


def unmet_needs(capabilities: Capabilities, request: Request) -> tuple[str, ...]:
    """The needs of `request` a variant with `capabilities` does not meet (empty: it can take it)."""
    supported = {
        "image": "image" in capabilities.modalities,
        "audio": "audio" in capabilities.modalities,
        "tools": capabilities.tools,
        "thinking": capabilities.thinking,
    }
    return tuple(need for need in needs_of(request) if not supported[need])


def battle_candidates(offered: Mapping[str, Capabilities], request: Request) -> list[str]:
    """The variants of `offered` (name -> capabilities, the ready ones) that can take `request`
    whole. A variant sent tools it cannot call fails the battle; one asked to think that cannot
    leaves its thinking box empty beside the other's trace, which tells the two apart.

    Raises UsageError when fewer than two qualify, saying what to remove from the request."""
    fit = sorted(name for name, caps in offered.items() if not unmet_needs(caps, request))
    if len(fit) >= 2:
        return fit
    if len(offered) < 2:
        raise UsageError(
            f"a blind battle needs at least two loaded variants; {len(offered)} "
            f"{'is' if len(offered) == 1 else 'are'} ready: load more variants or wait for them to load"
        )
    blocking = [need for need in needs_of(request)
                if sum(need in unmet_needs(caps, request) for caps in offered.values())]
    takes = ", ".join(f"{need}: {sum(need not in unmet_needs(c, request) for c in offered.values())}"
                      for need in blocking)
    raise UsageError(
        f"a blind battle needs at least two loaded variants that can take this prompt; only {len(fit)} "
        f"of the {len(offered)} ready can take its {_and(blocking)} ({takes}): "
        f"{_or([_REMEDY[need] for need in blocking])}, or load variants that support it"
    )


def pair_weight(votes: int) -> float:
    """How likely a pair is drawn, relative to the others: pairs with fewer votes come up more
    often, yet every pair keeps a chance (a predictable pair would tell the voter who is who)."""
    return 1.0 / (1 + votes)


def draw_pair(
    candidates: Sequence[str],
    vote_counts: Mapping[frozenset[str], int],
    rng: random.Random,
) -> Pairing:
    """Draw two of `candidates` at random, each pair weighted by `pair_weight` of its votes so
    far; the sides are then assigned at random, so neither position tells which variant is which."""
    unique = sorted(set(candidates))
    if len(unique) < 2:
        raise UsageError(
            "a blind battle needs at least two loaded variants that can take this prompt; "
            "load more variants or remove the image/audio"
        )
    pairs = list(itertools.combinations(unique, 2))
    weights = [pair_weight(vote_counts.get(frozenset(pair), 0)) for pair in pairs]
    first, second = rng.choices(pairs, weights)[0]
    return Pairing(first, second) if rng.random() < 0.5 else Pairing(second, first)


def _and(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _or(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]

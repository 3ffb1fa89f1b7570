"""How blind battles sample: Gemma 4's recommended settings and a secret seed. Pure values.

A battle decoded greedily, or with a seed the voter chose, can be reproduced by a named Compare
of the same prompt, and the reproduced answer names the model. So every battle samples with the
settings the Gemma 4 model cards recommend and a seed drawn from `secrets`, which stays on the
server (in the stored request only).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace

from backends.base import Request

#: Seeds every engine takes: torch, Ollama, llama.cpp (uint32) and vLLM all accept 0 .. 2**31 - 1.
SEED_LIMIT = 2**31


@dataclass(frozen=True)
class Sampling:
    """Temperature, nucleus (top-p) and top-k settings of a request."""

    temperature: float
    top_p: float
    top_k: int | None = None

    def apply(self, request: Request, *, seed: int | None) -> Request:
        """`request` sampled with these settings and `seed`."""
        return replace(request, temperature=self.temperature, top_p=self.top_p, top_k=self.top_k, seed=seed)


#: Gemma 4's model cards: temperature 1.0, top_p 0.95, top_k 64.
RECOMMENDED = Sampling(temperature=1.0, top_p=0.95, top_k=64)


def battle_seed() -> int:
    """A fresh secret seed in the range every engine accepts."""
    return secrets.randbelow(SEED_LIMIT)


def for_battle(request: Request) -> Request:
    """`request` as a blind battle sends it: the recommended sampling with a fresh secret seed,
    whatever sampling and seed it came with."""
    return RECOMMENDED.apply(request, seed=battle_seed())

"""Gives the demo variants' random output the shape of a real Gemma 4 answer.

Random weights never produce Gemma's structure markers on purpose. So that thinking traces and
tool calls are exercised end to end (template -> generate -> token parser -> UI) the demo
variants' generation runs with this logits processor: with thinking on, the answer opens the
`<|channel>thought` channel, "thinks" for about a third of the token budget and closes it; with
tools, it ends in a well-formed call of the first tool; special tokens are never sampled
otherwise (so the demo always uses its whole budget, which keeps speed figures comparable).
The content between the markers is still whatever the random weights produce. Real checkpoints
never get this processor.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from backends.base import Request


def plan_forced_tokens(request: Request, tokenizer: Any) -> dict[int, int]:
    """Return {generation step: token id} to force, fitting within the request's token budget."""
    budget = request.max_new_tokens
    forced: list[tuple[int, list[int]]] = []

    def ids(text: str) -> list[int]:
        return list(tokenizer.encode(text, add_special_tokens=False))

    def special(token: str) -> int:
        return int(tokenizer.convert_tokens_to_ids(token))

    call: list[int] = []
    if request.tools:
        name = request.tools[0].name
        call = [special("<|tool_call>"), *ids(f"call:{name}{{}}"), special("<tool_call|>")]
    if request.thinking:
        opening = [special("<|channel>"), *ids("thought\n")]
        think_len = max(1, budget // 3)
        if len(opening) + think_len + 1 + len(call) <= budget:
            forced.append((0, opening))
            forced.append((len(opening) + think_len, [special("<channel|>")]))
    if call and len(call) <= budget:
        forced.append((budget - len(call), call))
    plan: dict[int, int] = {}
    for start, sequence in forced:
        for offset, token in enumerate(sequence):
            plan[start + offset] = token
    return plan


class DemoStructure:
    """A transformers logits processor: force planned tokens, forbid all other special tokens."""

    def __init__(self, prompt_length: int, plan: dict[int, int], special_ids: Iterable[int]) -> None:
        self._prompt_length = prompt_length
        self._plan = plan
        self._special = torch.tensor(sorted(set(special_ids)), dtype=torch.long)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        step = input_ids.shape[1] - self._prompt_length
        token = self._plan.get(step)
        if token is not None:
            forced = torch.full_like(scores, float("-inf"))
            forced[:, token] = 0.0
            return forced
        scores = scores.clone()
        scores[:, self._special.to(scores.device)] = float("-inf")
        return scores

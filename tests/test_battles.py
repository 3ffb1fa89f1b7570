"""Drawing blind pairs: among the variants ready to answer, the least battled pairs first."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from arena.battles import draw_pair
from arena.errors import UsageError
from arena.variant_state import VariantState
from tests.support.scripted import ScriptedBackend, tokens
from tests.support.ui import drain, scripted_services
from ui.battle import BattleFlow, BattleState
from ui.compare import FormOptions


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


class RestartingBackend(ScriptedBackend):
    """A variant whose worker died and is being restarted: loaded once, not ready now."""

    state = VariantState("restarting", "its worker process was killed by SIGKILL", attempt=1, attempts=3)


def test_battles_never_draw_a_variant_that_is_not_ready(tmp_path: Path) -> None:
    # Its battles would fail and not count, so its pairs would always look the least played.
    backends = {name: ScriptedBackend(name, tokens(2, 0.0)) for name in ("a", "b")}
    backends["dead"] = RestartingBackend("dead", tokens(2, 0.0))
    services = scripted_services(backends, tmp_path / "arena.db")
    try:
        flow = BattleFlow(services)
        drawn: Counter[str] = Counter()
        for _ in range(200):
            state = BattleState()
            drain(flow.run(state, {"text": "hi", "files": []}, FormOptions(max_new_tokens=2)))
            assert state.pairing is not None and state.phase == "finished"
            drawn.update((state.pairing.a, state.pairing.b))
        assert drawn == {"scripted:a": 200, "scripted:b": 200}
        assert services.store.battle_counts() == {frozenset({"scripted:a", "scripted:b"}): 200}
    finally:
        services.close()

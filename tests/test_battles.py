"""Drawing blind pairs: among the variants ready to take the whole request, at random, pairs
with fewer votes more often."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from arena.battles import battle_candidates, draw_pair, pair_weight
from arena.errors import UsageError
from arena.measure import Result
from arena.variant_state import VariantState
from backends.base import Capabilities, Media, Request, Tool
from tests.support.scripted import ScriptedBackend, tokens
from tests.support.ui import drain, scripted_services
from ui.battle import BattleFlow, BattleState
from ui.compare import FormOptions
from ui.services import ArenaServices

EVERYTHING = Capabilities(frozenset({"text", "image", "audio"}), tools=True, thinking=True)
NO_TOOLS = Capabilities(frozenset({"text", "image"}), tools=False, thinking=True)
NO_THINKING = Capabilities(frozenset({"text", "image"}), tools=True, thinking=False)
CLIP = Media("audio", b"RIFF", "audio/wav")


def test_pairs_with_fewer_votes_come_up_more_often_yet_every_pair_appears() -> None:
    votes = {frozenset({"a", "b"}): 9, frozenset({"a", "c"}): 9, frozenset({"b", "c"}): 0}
    rng = random.Random(1)
    drawn = Counter(frozenset((p.a, p.b)) for p in (draw_pair(["a", "b", "c"], votes, rng) for _ in range(3000)))
    assert len(drawn) == 3  # a pair with many votes still comes up: the next pair is never certain
    share = drawn[frozenset({"b", "c"})] / 3000
    expected = pair_weight(0) / (pair_weight(0) + 2 * pair_weight(9))  # 1 / 1.2
    assert share == pytest.approx(expected, abs=0.03)
    assert min(drawn.values()) > 150


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


def test_only_variants_that_take_the_whole_request_are_candidates() -> None:
    offered = {"all": EVERYTHING, "no-tools": NO_TOOLS, "no-thinking": NO_THINKING, "all-2": EVERYTHING}
    weather = (Tool("get_weather"),)
    assert battle_candidates(offered, Request(prompt="hi")) == sorted(offered)
    assert battle_candidates(offered, Request(prompt="hi", tools=weather)) == ["all", "all-2", "no-thinking"]
    assert battle_candidates(offered, Request(prompt="hi", thinking=True)) == ["all", "all-2", "no-tools"]
    assert battle_candidates(offered, Request(prompt="hi", audio=(CLIP,), thinking=True)) == ["all", "all-2"]


def test_too_few_candidates_says_what_to_remove() -> None:
    offered = {"all": EVERYTHING, "no-tools": NO_TOOLS, "no-thinking": NO_THINKING}
    asks = Request(prompt="hi", tools=(Tool("get_weather"),), thinking=True)
    with pytest.raises(UsageError) as caught:
        battle_candidates(offered, asks)
    message = str(caught.value)
    assert "only 1 of the 3 ready can take its tools and thinking" in message
    assert "remove the tools or turn thinking off" in message
    with pytest.raises(UsageError, match=r"only 0 of the 2 ready can take its audio .* remove the audio"):
        battle_candidates({"a": NO_TOOLS, "b": NO_THINKING}, Request(prompt="hi", audio=(CLIP,)))
    with pytest.raises(UsageError, match="at least two loaded variants; 1 is ready"):
        battle_candidates({"all": EVERYTHING}, Request(prompt="hi"))


def test_battles_draw_only_variants_that_take_tools_and_thinking(tmp_path: Path) -> None:
    backends = {
        "all": ScriptedBackend("all", tokens(2, 0.0), EVERYTHING),
        "all2": ScriptedBackend("all2", tokens(2, 0.0), EVERYTHING),
        "no_tools": ScriptedBackend("no_tools", tokens(2, 0.0), NO_TOOLS),
        "no_thinking": ScriptedBackend("no_thinking", tokens(2, 0.0), NO_THINKING),
    }
    services = scripted_services(backends, tmp_path / "arena.db")
    tools = '[{"type": "function", "function": {"name": "get_weather"}}]'
    try:
        flow = BattleFlow(services)
        for options, excluded in ((FormOptions(max_new_tokens=2, tools=tools), "scripted:no_tools"),
                                  (FormOptions(max_new_tokens=2, thinking=True), "scripted:no_thinking")):
            for _ in range(20):
                state = BattleState()
                drain(flow.run(state, "hi", options))
                assert state.pairing is not None and state.phase == "finished"
                assert excluded not in (state.pairing.a, state.pairing.b)
    finally:
        services.close()


def _record_voted_battles(services: ArenaServices, a: str, b: str, n: int) -> None:
    for _ in range(n):
        battle_id = services.store.open_battle(Request(prompt="x"), [(a, a), (b, b)])
        services.store.finish_battle(battle_id, [Result(variant=a, text="x"), Result(variant=b, text="y")])
        services.store.record_vote(battle_id, "a")


def test_battles_favour_pairs_with_fewer_votes(tmp_path: Path) -> None:
    backends = {name: ScriptedBackend(name, tokens(1, 0.0)) for name in ("a", "b", "c")}
    services = scripted_services(backends, tmp_path / "arena.db")
    try:
        _record_voted_battles(services, "scripted:a", "scripted:b", 10)
        flow = BattleFlow(services)
        drawn: Counter[frozenset[str]] = Counter()
        for _ in range(150):  # not voted on: these do not change the weights
            state = BattleState()
            drain(flow.run(state, "hi", FormOptions(max_new_tokens=1)))
            assert state.pairing is not None
            drawn[frozenset((state.pairing.a, state.pairing.b))] += 1
        voted = drawn[frozenset({"scripted:a", "scripted:b"})]
        assert 0 < voted < 25  # weight 1/11 against 1 and 1: ~7 of 150
        assert min(drawn[frozenset({"scripted:a", "scripted:c"})], drawn[frozenset({"scripted:b", "scripted:c"})]) > 50
    finally:
        services.close()


def test_services_without_a_seed_draw_from_the_systems_randomness(tmp_path: Path) -> None:
    """A seeded generator's state can be worked out from enough of its draws (the reveals), and
    with it the next pair and sides; the system's randomness has no state to work out."""
    backends = {name: ScriptedBackend(name, tokens(1, 0.0)) for name in ("a", "b")}
    seeded = scripted_services(backends, tmp_path / "arena.db")
    try:
        unseeded = ArenaServices(seeded.lineup, seeded.store)
        assert isinstance(unseeded.rng, random.SystemRandom)
        assert not isinstance(seeded.rng, random.SystemRandom)  # tests may pass a seed
    finally:
        seeded.close()


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

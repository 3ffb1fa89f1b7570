"""A blind battle that holds: its answers cannot be reproduced by a named Compare, its panels do
not show which side is faster, and both sides look alike whatever they support.

The reproduction test runs the real demo variants (real sampling in transformers); the pace
tests use scripted backends of known speed, as they test the display, not generation.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from arena.fanout import run_all
from arena.sampling import RECOMMENDED, SEED_LIMIT
from arena.settings import Settings
from backends.base import Chunk, Request
from tests.support.scripted import ScriptedBackend, Step, tokens
from tests.support.ui import demo_services, drain, scripted_services
from ui.battle import BattleFlow, BattleState
from ui.compare import CompareFlow, CompareState, ComparisonOutcome, FormOptions
from ui.services import ArenaServices
from ui.streaming import stream_panels
from ui.views import PanelView

PROMPT = "Which variant fits my laptop?"
MESSAGE = {"text": PROMPT, "files": []}


class RecordingBackend(ScriptedBackend):
    """A scripted backend that keeps every request it was sent."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.requests: list[Request] = []

    async def stream(self, request: Request) -> AsyncIterator[Chunk]:
        self.requests.append(request)
        async for chunk in super().stream(request):
            yield chunk


def stored_request(services: ArenaServices, battle_id: str) -> dict[str, Any]:
    """The request as the store holds it (read straight from the file: no query returns it)."""
    with sqlite3.connect(services.store.path) as db:
        (text,) = db.execute("SELECT request FROM battles WHERE id = ?", [battle_id]).fetchone()
    return dict(json.loads(text))


# --- sampling: a secret seed, the recommended settings ---------------------------------------------


@pytest.fixture
def recorded(tmp_path: Path) -> Iterator[tuple[ArenaServices, dict[str, RecordingBackend]]]:
    backends = {name: RecordingBackend(name, tokens(3, 0.0, name[0])) for name in ("left", "right")}
    services = scripted_services(dict(backends), tmp_path / "arena.db")
    yield services, backends
    services.close()


def test_battles_sample_as_recommended_with_a_secret_seed_whatever_the_form_says(
    recorded: tuple[ArenaServices, dict[str, RecordingBackend]],
) -> None:
    services, backends = recorded
    flow = BattleFlow(services)
    form = FormOptions(system="Be brief.", temperature=0.0, top_p=1.0, seed=7, max_new_tokens=3)
    seeds = []
    for _ in range(2):
        state = BattleState()
        outcomes = drain(flow.run(state, PROMPT, form))
        sent = [backend.requests[-1] for backend in backends.values()]
        assert sent[0] == sent[1]  # both sides get the same request
        request = sent[0]
        assert (request.temperature, request.top_p, request.top_k) == (1.0, 0.95, 64) == (
            RECOMMENDED.temperature, RECOMMENDED.top_p, RECOMMENDED.top_k)
        assert request.seed is not None and 0 <= request.seed < SEED_LIMIT and request.seed != 7
        assert (request.system, request.max_new_tokens) == ("Be brief.", 3)  # the rest of the form applies
        assert state.battle_id is not None and stored_request(services, state.battle_id)["seed"] == request.seed
        # the seed stays on the server: not in any update, the API result, or the reveal
        summary = outcomes[-1].summary
        assert summary is not None and "seed" not in json.dumps(summary)
        reveal = flow.vote(state, "tie")
        told = json.dumps(summary) + reveal + " ".join(
            v.answer + v.thinking + v.note + v.stats for o in outcomes for v in o.views)
        assert str(request.seed) not in told
        seeds.append(request.seed)
    assert seeds[0] != seeds[1]  # a fresh seed every battle


def test_a_named_compare_does_not_reproduce_a_battles_answers(settings: Settings) -> None:
    """The leak this closes: the same prompt sent by name, greedily or sampled, with or without a
    seed, gave each battle answer back and so named its model. Only the battle's own secret seed
    reproduces it, which shows the difference is the seed and not chance."""
    services = demo_services(["demo:e2b", "demo:e4b"], settings)
    try:
        assert all(v.available for v in services.lineup.variants), [v.error for v in services.lineup.variants]
        state = BattleState()
        outcomes = drain(BattleFlow(services).run(state, PROMPT, FormOptions(max_new_tokens=24, seed=0)))
        summary = outcomes[-1].summary
        assert summary is not None and summary["can_vote"] and state.pairing is not None
        battle_answers = dict(zip((state.pairing.a, state.pairing.b), (r["text"] for r in summary["results"]),
                                  strict=True))
        assert all(battle_answers.values())

        attempts = {
            "greedy": FormOptions(temperature=0.0, top_p=1.0, max_new_tokens=24),
            "recommended, no seed": FormOptions(temperature=1.0, top_p=0.95, max_new_tokens=24),
            "seed 0": FormOptions(temperature=1.0, top_p=0.95, seed=0, max_new_tokens=24),
            "seed 1": FormOptions(temperature=1.0, top_p=0.95, seed=1, max_new_tokens=24),
        }
        for name, answer in battle_answers.items():
            for attempt, options in attempts.items():
                compared = drain(CompareFlow(services).run(CompareState(), [name], MESSAGE, options))
                text = compared[-1].views[0].answer
                assert text and text != answer, f"a named compare ({attempt}) reproduced {name}'s battle answer"

        assert state.battle_id is not None
        sent = stored_request(services, state.battle_id)
        same = Request(prompt=sent["prompt"], system=sent["system"], max_new_tokens=sent["max_new_tokens"],
                       temperature=sent["temperature"], top_p=sent["top_p"], top_k=sent["top_k"],
                       seed=sent["seed"], thinking=sent["thinking"])
        for name, answer in battle_answers.items():
            (again,) = asyncio.run(run_all([services.variant(name)], same))
            assert again.text == answer  # the secret seed is what makes the difference
    finally:
        services.close()


# --- pace: nothing shown tells which side is faster ------------------------------------------------


def _snapshots(
    steps: Mapping[str, Sequence[Step]], tmp_path: Path, pace: str
) -> tuple[list[tuple[list[PanelView], list[Any]]], list[int]]:
    """Every snapshot of the two scripted variants' stream at `pace`, and their total tokens."""
    backends = {name: ScriptedBackend(name, list(script)) for name, script in steps.items()}
    services = scripted_services(backends, tmp_path / f"{pace}.db")
    try:
        variants = [services.variant(f"scripted:{name}") for name in steps]
        panels = [PanelView(title=side) for side in ("Model A", "Model B")]

        async def collect() -> list[tuple[list[PanelView], list[Any]]]:
            return [s async for s in stream_panels(variants, Request(prompt="x"), panels, pace=pace)]

        totals = [sum(step.chunk.tokens for step in script if step.chunk) for script in steps.values()]
        return asyncio.run(collect()), totals
    finally:
        services.close()


def _shown(views: list[PanelView]) -> list[int]:
    """Tokens each panel shows (the scripts send one character a token)."""
    return [len(v.answer) + len(v.thinking) for v in views]


def _in_lockstep(shown: list[int], totals: list[int]) -> bool:
    """Both show as many tokens, or the one showing fewer shows its whole answer."""
    (a, b), (total_a, total_b) = shown, totals
    return a == b or (a < b and a == total_a) or (b < a and b == total_b)


def test_lockstep_shows_both_sides_the_same_number_of_tokens(tmp_path: Path) -> None:
    script = {"fast": tokens(12, 0.001, "f"), "slow": tokens(12, 0.02, "s")}
    snapshots, _ = _snapshots(script, tmp_path, "lockstep")
    assert len(snapshots) >= 3  # streamed, not shown at the end only
    for views, _ in snapshots:
        a, b = _shown(views)
        assert a == b
    assert [v.answer for v in snapshots[-1][0]] == ["f" * 12, "s" * 12]


def test_the_fast_sides_end_shows_only_with_the_slow_sides(tmp_path: Path) -> None:
    script = {"fast": tokens(12, 0.001, "f"), "slow": tokens(12, 0.02, "s")}

    def early_ends(pace: str) -> list[list[str]]:
        snapshots, _ = _snapshots(script, tmp_path / pace, pace)
        assert all(v.status == "done" for v in snapshots[-1][0]) and all(snapshots[-1][1])
        return [[v.status for v in views] for views, results in snapshots[:-1]
                if any(v.status != "streaming" for v in views) or any(results)]

    (tmp_path / "own").mkdir()
    (tmp_path / "lockstep").mkdir()
    assert early_ends("own")  # each side's own pace: the fast one is seen finishing first
    assert early_ends("lockstep") == []


def test_a_fast_sides_long_tail_goes_on_at_the_pace_shown(tmp_path: Path) -> None:
    """When the slow side has said all it will, the fast side's remaining text does not spill out
    at once (which would show it was far ahead): it goes on over several updates."""
    script = {"fast": tokens(40, 0.001, "f"), "slow": tokens(10, 0.02, "s")}
    snapshots, totals = _snapshots(script, tmp_path, "lockstep")
    shown = [_shown(views) for views, _ in snapshots]
    assert all(_in_lockstep(s, totals) for s in shown)
    tail = [fast for fast, slow in shown if slow == 10 and 10 < fast < 40]
    assert len(tail) >= 3 and tail == sorted(tail)
    assert shown[-1] == [40, 10]


def test_a_slow_sides_long_answer_is_followed_by_the_fast_sides_text(tmp_path: Path) -> None:
    script = {"fast": tokens(5, 0.001, "f"), "slow": tokens(15, 0.01, "s")}
    snapshots, totals = _snapshots(script, tmp_path, "lockstep")
    assert all(_in_lockstep(_shown(views), totals) for views, _ in snapshots)
    assert _shown(snapshots[-1][0]) == [5, 15]


def test_chunks_of_several_tokens_are_shown_in_proportion(tmp_path: Path) -> None:
    """An engine that sends its tokens in batches (the transformers worker does, every 50 ms) has
    bigger batches the faster it is; shown whole, they would give it away."""
    script = {
        "batched": [Step(0.001, Chunk(text="f" * 5, tokens=5)) for _ in range(4)],
        "single": tokens(20, 0.01, "s"),
    }
    snapshots, _ = _snapshots(script, tmp_path, "lockstep")
    assert len(snapshots) >= 3
    for views, _ in snapshots:
        a, b = _shown(views)
        assert a == b


def test_whole_pace_shows_nothing_until_both_finish(tmp_path: Path) -> None:
    script = {"fast": tokens(5, 0.001, "f"), "slow": tokens(5, 0.02, "s")}
    snapshots, _ = _snapshots(script, tmp_path, "whole")
    assert len(snapshots) == 1
    assert [v.answer for v in snapshots[0][0]] == ["fffff", "sssss"]


def test_the_battle_api_updates_keep_the_pace_and_both_sides_carry_thinking(tmp_path: Path) -> None:
    """`/battle` yields each update's panel texts: they follow the lockstep too. With thinking
    asked, a side that thought and one that did not look alike but for the text."""
    thinker = [Step(0.001, Chunk(text="t", channel="thinking", tokens=1)) for _ in range(4)] + tokens(8, 0.001, "f")
    backends = {"fast": ScriptedBackend("fast", thinker), "slow": ScriptedBackend("slow", tokens(12, 0.02, "s"))}
    services = scripted_services(backends, tmp_path / "arena.db")
    try:
        state = BattleState()
        outcomes: list[ComparisonOutcome] = drain(
            BattleFlow(services).run(state, "hi", FormOptions(max_new_tokens=12, thinking=True)))
        assert state.thinking is True
        updates = outcomes[:-1]
        assert len(updates) >= 3 and all(o.summary is None for o in updates)
        for outcome in updates:
            a, b = _shown(outcome.views)
            assert a == b
            assert all(v.stats == "" for v in outcome.views)
            assert all(v.status == "streaming" for v in outcome.views[:2]) or outcome is updates[-1]
        summary = outcomes[-1].summary
        assert summary is not None
        sides = summary["results"]
        assert [set(side) for side in sides] == [set(sides[0])] * 2
        assert all(isinstance(side["thinking"], str) for side in sides)
        assert sorted(side["thinking"] for side in sides) == ["", "tttt"]
    finally:
        services.close()


# --- the voter --------------------------------------------------------------------------------------


def test_the_battle_and_its_vote_carry_the_voter(
    recorded: tuple[ArenaServices, dict[str, RecordingBackend]],
) -> None:
    services, _ = recorded
    flow = BattleFlow(services)
    state = BattleState()
    drain(flow.run(state, "hi", FormOptions(max_new_tokens=3), voter="alice"))
    assert state.battle_id is not None
    stored = services.store.battle(state.battle_id)
    assert stored is not None and stored.voter == "alice"
    flow.vote(state, "a")  # the vote of the person the battle was served to
    assert len(services.store.pair_outcomes(voter="alice")) == 1

    drain(flow.run(state, "hi", FormOptions(max_new_tokens=3), voter="bob"))
    flow.vote(state, "b", voter="bob")
    assert len(services.store.pair_outcomes(voter="bob")) == 1

    drain(flow.run(state, "hi", FormOptions(max_new_tokens=3)))  # the positional shape ui/app.py uses
    assert state.battle_id is not None
    assert services.store.battle(state.battle_id).voter == services.voter  # type: ignore[union-attr]
    flow.vote(state, "tie")
    assert len(services.store.pair_outcomes(voter=services.voter)) == 1


def test_lockstep_ends_when_its_consumer_is_slower_than_the_paced_tail(tmp_path: Path) -> None:
    """Gradio may take a while to send a snapshot: the tail the clock released meanwhile must
    still be shown and the stream must end (under 20 voters a battle once waited forever for an
    arrival that would never come, holding its voter's slot)."""
    a = ScriptedBackend("a", tokens(4, 0.02, "a"))
    b = ScriptedBackend("b", tokens(4, 0.02, "b") + tokens(12, 0.001, "b"))  # then a burst the clock paces out
    services = scripted_services({"a": a, "b": b}, tmp_path / "slow-consumer.db")
    try:
        variants = [services.variant("scripted:a"), services.variant("scripted:b")]

        async def consume() -> list[PanelView]:
            last: list[PanelView] = []
            async for views, _ in stream_panels(variants, Request("hi"), [PanelView("A"), PanelView("B")],
                                                pace="lockstep"):
                last = views
                await asyncio.sleep(0.1)  # the consumer is busy sending the update
            return last

        last = asyncio.run(asyncio.wait_for(consume(), 10))
        assert [view.answer for view in last] == ["aaaa", "b" * 16]
    finally:
        services.close()

"""The web UI's logic without a server: compare, vote, blind battles, leaderboard, escaping.

Scripted backends stand in for models here (this tests the flows, not generation); the store is
a real SQLite file.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from arena.battles import Pairing
from arena.errors import GenerationError, UsageError
from backends.base import Capabilities, Request
from tests.support.media import write_wav
from tests.support.scripted import ScriptedBackend, Step, tokens
from tests.support.ui import drain, scripted_services
from ui.battle import BattleFlow, BattleState
from ui.compare import CompareFlow, CompareState, FormOptions, ranking_from_ranks
from ui.leaderboard import build_view
from ui.services import ArenaServices
from ui.streaming import stream_panels
from ui.views import PanelView, md_escape

OPTIONS = FormOptions(max_new_tokens=16)
AUDIO_AND_TEXT = Capabilities(frozenset({"text", "image", "audio"}), tools=True, thinking=True)
TEXT_ONLY = Capabilities(frozenset({"text", "image"}), tools=True, thinking=True)


@pytest.fixture
def services(tmp_path: Path) -> Iterator[ArenaServices]:
    backends = {
        "fast": ScriptedBackend("fast", tokens(20, 0.002, "f"), AUDIO_AND_TEXT),
        "slow": ScriptedBackend("slow", tokens(10, 0.01, "s"), TEXT_ONLY),
        "third": ScriptedBackend("third", tokens(5, 0.001, "t"), AUDIO_AND_TEXT),
    }
    services = scripted_services(backends, tmp_path / "arena.db")
    yield services
    services.close()


def test_compare_streams_merged_snapshots_and_stores_the_comparison(services: ArenaServices) -> None:
    state = CompareState()
    names = ["scripted:fast", "scripted:slow"]
    outcomes = drain(CompareFlow(services).run(state, names, {"text": "hi", "files": []}, OPTIONS))
    final = outcomes[-1]
    assert [v.answer for v in final.views] == ["f" * 20, "s" * 10]
    assert all(v.status == "done" and "TTFT" in v.stats for v in final.views)
    assert len(outcomes) < 30  # 30 chunks arrived; fewer updates were sent (merged)
    stored = services.store.battle(state.battle_id)  # type: ignore[arg-type]
    assert stored is not None and stored.phase == "finished" and stored.mode == "named"
    assert stored.variants == tuple(names)


def test_first_token_and_results_are_shown_without_waiting_for_the_interval(services: ArenaServices) -> None:
    variants = [services.variant("scripted:third")]

    async def collect() -> list:  # type: ignore[type-arg]
        return [s async for s in stream_panels(variants, Request(prompt="x"), [PanelView("t")], interval_s=60)]

    snapshots = asyncio.run(collect())
    answers = [panels[0].answer for panels, _ in snapshots]
    # the first token alone, at once, then the finished answer; nothing in between, since the
    # 60 s interval never elapsed
    assert answers == ["t", "ttttt"]
    assert snapshots[0][0][0].status == "streaming" and snapshots[-1][0][0].status == "done"


def test_preview_warns_before_sending_audio_to_a_variant_without_audio(
    services: ArenaServices, tmp_path: Path
) -> None:
    clip = write_wav(tmp_path / "clip.wav")
    views = CompareFlow(services).preview(["scripted:fast", "scripted:slow"], {"text": "x", "files": [str(clip)]})
    assert views[0].note == ""
    assert "Cannot take audio" in views[1].note


def test_compare_vote_for_best_is_stored_once(services: ArenaServices) -> None:
    state = CompareState()
    flow = CompareFlow(services)
    drain(flow.run(state, ["scripted:fast", "scripted:slow", "scripted:third"], "hello", OPTIONS))
    assert "scripted:slow" in flow.vote(state, best="scripted:slow")
    with pytest.raises(UsageError, match="already has your vote"):
        flow.vote(state, best="scripted:fast")
    outcomes = services.store.pair_outcomes()  # pairs keep the order shown: fast, slow, third
    assert sorted((p.model_a, p.model_b, p.outcome) for p in outcomes) == [
        ("scripted:fast", "scripted:slow", "b"), ("scripted:slow", "scripted:third", "a"),
    ]


def test_compare_ranking_with_a_tie(services: ArenaServices) -> None:
    state = CompareState()
    flow = CompareFlow(services)
    names = ["scripted:fast", "scripted:slow", "scripted:third"]
    drain(flow.run(state, names, "hello", OPTIONS))
    ranking = ranking_from_ranks(names, ["2", "1", "2"])
    assert ranking == [["scripted:slow"], ["scripted:fast", "scripted:third"]]
    flow.vote(state, ranking=ranking)
    results = {(p.model_a, p.model_b): p.outcome for p in services.store.pair_outcomes()}
    assert len(results) == 3 and "tie" in results.values()


def test_a_failed_variant_is_left_out_of_the_vote(tmp_path: Path) -> None:
    backends = {
        "one": ScriptedBackend("one", tokens(3, 0.0)),
        "broken": ScriptedBackend("broken", [Step(0.0, error=GenerationError("boom"))]),
        "two": ScriptedBackend("two", tokens(3, 0.0)),
    }
    services = scripted_services(backends, tmp_path / "a.db")
    try:
        state, flow = CompareState(), CompareFlow(services)
        drain(flow.run(state, ["scripted:one", "scripted:broken", "scripted:two"], "hi", OPTIONS))
        assert state.variants == ("scripted:one", "scripted:two")
        flow.vote(state, best="scripted:two")
        assert [(p.model_a, p.model_b, p.outcome) for p in services.store.pair_outcomes()] == [
            ("scripted:one", "scripted:two", "b")
        ]
    finally:
        services.close()


def test_ranking_needs_a_rank_for_every_variant() -> None:
    with pytest.raises(UsageError, match="give every shown variant a rank"):
        ranking_from_ranks(["a", "b"], ["1", None])


def test_vote_without_a_comparison_is_refused(services: ArenaServices) -> None:
    with pytest.raises(UsageError, match="compare some variants first"):
        CompareFlow(services).vote(CompareState(), best="scripted:fast")


def _battle(services: ArenaServices, message: object = "hello") -> tuple[BattleState, list]:  # type: ignore[type-arg]
    state = BattleState()
    outcomes = drain(BattleFlow(services).run(state, message, OPTIONS))  # type: ignore[arg-type]
    return state, outcomes


def test_blind_battle_hides_names_until_the_vote(services: ArenaServices) -> None:
    state, outcomes = _battle(services)
    assert state.phase == "finished" and state.pairing is not None
    shown = " ".join(v.title + v.answer + v.thinking + v.note + v.stats for o in outcomes for v in o.views)
    for name in services.names:
        assert name not in shown
    assert [v.title for v in outcomes[-1].views] == ["Model A", "Model B"]
    assert all(v.stats == "" for v in outcomes[-1].views)  # speed and memory would give them away
    reveal = BattleFlow(services).vote(state, "a")
    assert state.pairing.a in reveal and state.pairing.b in reveal and "TTFT" in reveal
    assert services.store.pair_outcomes()[0].model_a == state.pairing.a


def test_battle_takes_one_vote(services: ArenaServices) -> None:
    state, _ = _battle(services)
    flow = BattleFlow(services)
    flow.vote(state, "tie")
    state.phase = "finished"  # a forged client state changes nothing: the store knows
    with pytest.raises(UsageError, match="already"):
        flow.vote(state, "a")


def test_vote_on_an_unfinished_battle_is_refused_by_the_store(services: ArenaServices) -> None:
    battle_id = services.store.open_battle(Request(prompt="x"), [("scripted:fast", None), ("scripted:slow", None)])
    state = BattleState(battle_id=battle_id, phase="finished", pairing=Pairing("scripted:fast", "scripted:slow"))
    with pytest.raises(UsageError, match="is not finished"):
        BattleFlow(services).vote(state, "a")


def test_errored_battle_takes_no_vote(tmp_path: Path) -> None:
    backends = {
        "ok": ScriptedBackend("ok", tokens(3, 0.0)),
        "broken": ScriptedBackend("broken", [Step(0.0, error=GenerationError("boom"))]),
    }
    services = scripted_services(backends, tmp_path / "a.db")
    try:
        state, outcomes = _battle(services)
        assert state.phase == "errored"
        errored = [v for v in outcomes[-1].views if v.status == "error"]
        assert errored and "broken" not in errored[0].note and "takes no vote" in errored[0].note
        with pytest.raises(UsageError):
            BattleFlow(services).vote(state, "b")
    finally:
        services.close()


def test_battle_with_audio_draws_only_variants_that_take_audio(services: ArenaServices, tmp_path: Path) -> None:
    clip = write_wav(tmp_path / "c.wav")
    for _ in range(5):
        state, _ = _battle(services, {"text": "listen", "files": [str(clip)]})
        assert state.pairing is not None
        assert {state.pairing.a, state.pairing.b} == {"scripted:fast", "scripted:third"}


def test_leaderboard_view_reflects_votes(services: ArenaServices) -> None:
    assert build_view(services).table == []
    flow = BattleFlow(services)
    for _ in range(3):
        state, _ = _battle(services)
        flow.vote(state, "a")
    view = build_view(services)
    assert sum(row[4] for row in view.table) == 6  # 3 battles, 2 variants each
    assert view.ci_chart is not None and view.quality_speed_chart is not None


def test_markdown_escaping_keeps_markup_inert() -> None:
    text = md_escape("<script>alert(1)</script> [click](http://evil) **bold**")
    assert "<script>" not in text and "](" not in text and "**" not in text

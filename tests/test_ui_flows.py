"""The web UI's logic without a server: compare, vote, blind battles, leaderboard, escaping.

Scripted backends stand in for models here (this tests the flows, not generation); the store is
a real SQLite file.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from arena.battles import Pairing
from arena.errors import GenerationError, UsageError
from arena.requests import read_tools_arg
from backends.base import Capabilities, Request
from tests.support.media import write_wav
from tests.support.scripted import ScriptedBackend, Step, tokens
from tests.support.ui import drain, scripted_services
from ui.battle import HIDDEN, BattleFlow, BattleState, redact
from ui.compare import CompareFlow, CompareState, FormOptions, ranking_from_ranks, request_from_form
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
    outcomes = services.store.pair_outcomes(mode="named")  # pairs keep the order shown: fast, slow, third
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
    results = {(p.model_a, p.model_b): p.outcome for p in services.store.pair_outcomes(mode="named")}
    assert len(results) == 3 and "tie" in results.values()


def one_broken_two() -> dict[str, ScriptedBackend]:
    """Three variants, the middle one failing at once."""
    return {
        "one": ScriptedBackend("one", tokens(3, 0.0)),
        "broken": ScriptedBackend("broken", [Step(0.0, error=GenerationError("boom"))]),
        "two": ScriptedBackend("two", tokens(3, 0.0)),
    }


def test_a_failed_variant_is_left_out_of_the_vote(tmp_path: Path) -> None:
    services = scripted_services(one_broken_two(), tmp_path / "a.db")
    try:
        state, flow = CompareState(), CompareFlow(services)
        drain(flow.run(state, ["scripted:one", "scripted:broken", "scripted:two"], "hi", OPTIONS))
        assert state.variants == ("scripted:one", "scripted:two")
        flow.vote(state, best="scripted:two")
        assert [(p.model_a, p.model_b, p.outcome) for p in services.store.pair_outcomes(mode="named")] == [
            ("scripted:one", "scripted:two", "b")
        ]
    finally:
        services.close()


def test_compare_ends_with_every_variants_answer_stats_and_error(tmp_path: Path) -> None:
    """What an API client gets from `/compare`: the last update alone carries the summary, with the
    failed variant's error in it (the page shows it on the panel; a client has only this)."""
    backends = {
        "one": ScriptedBackend("one", tokens(3, 0.0, "o")),
        "broken": ScriptedBackend("broken", [Step(0.0, error=GenerationError("boom: the engine fell over"))]),
        "two": ScriptedBackend("two", tokens(2, 0.0, "w")),
    }
    services = scripted_services(backends, tmp_path / "a.db")
    try:
        state = CompareState()
        names = ["scripted:one", "scripted:broken", "scripted:two"]
        outcomes = drain(CompareFlow(services).run(state, names, "hi", OPTIONS))
        assert [o.summary is None for o in outcomes] == [True] * (len(outcomes) - 1) + [False]
        summary = outcomes[-1].summary
        assert summary is not None and summary["battle_id"] == state.battle_id is not None
        assert summary["vote_on"] == ["scripted:one", "scripted:two"]
        by_name = {r["variant"]: r for r in summary["results"]}
        assert list(by_name) == names
        assert by_name["scripted:one"]["text"] == "ooo" and by_name["scripted:one"]["error"] is None
        assert by_name["scripted:one"]["stats"]["output_tokens"] == 3
        assert by_name["scripted:broken"]["error"] == "boom: the engine fell over"
        assert by_name["scripted:broken"]["error_kind"] == "GenerationError"
        json.dumps(summary)  # goes to the client as JSON
    finally:
        services.close()


def test_vote_naming_a_variant_that_did_not_answer_is_refused(tmp_path: Path) -> None:
    services = scripted_services(one_broken_two(), tmp_path / "a.db")
    try:
        state, flow = CompareState(), CompareFlow(services)
        drain(flow.run(state, ["scripted:one", "scripted:broken", "scripted:two"], "hi", OPTIONS))
        for stranger in ("scripted:broken", "scripted:nowhere"):
            with pytest.raises(UsageError, match="did not answer in your last comparison"):
                flow.vote(state, best=stranger)
        with pytest.raises(UsageError, match="'scripted:broken' did not answer"):
            flow.vote(state, ranking=[["scripted:one"], ["scripted:broken", "scripted:two"]])
        assert services.store.pair_outcomes(mode="named") == [] and not state.voted
        assert "scripted:one" in flow.vote(state, best="scripted:one")
    finally:
        services.close()


def test_vote_after_a_comparison_of_one_variant_is_refused(services: ArenaServices) -> None:
    state, flow = CompareState(), CompareFlow(services)
    outcomes = drain(flow.run(state, ["scripted:fast"], "hi", OPTIONS))
    summary = outcomes[-1].summary
    assert summary is not None and summary["vote_on"] == []
    # the page and the API say why there is no vote, before anyone tries
    assert summary["no_vote"].startswith("Only one variant answered")
    with pytest.raises(UsageError, match="Only one variant answered this, so there is nothing to vote on"):
        flow.vote(state, best="scripted:fast")


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


def test_redact_takes_out_names_specs_and_server_addresses() -> None:
    message = ("demo:31b (Ollama at http://gpu-box:11434/api) failed; OLLAMA said 500, "
               "retry on 10.0.0.2:8080 or gemma-4-E4B-it")
    redacted = redact(message, {"demo:31b", "ollama", "gemma-4-E4B-it", ""})
    assert redacted == (f"{HIDDEN} ({HIDDEN} at {HIDDEN} failed; {HIDDEN} said 500, retry on {HIDDEN} or {HIDDEN}")
    assert redact("the demonstration ended", {"demo"}) == "the demonstration ended"  # whole words only


def test_battle_result_and_panels_hide_who_failed_and_where(tmp_path: Path) -> None:
    """A failed side's error reaches the page and API clients without the names, specs or server
    addresses that would tell the models apart; its kind and the rest of the message stay."""
    failure = GenerationError("scripted:broken lost its server at http://10.1.2.3:8080/v1 (broken pipe)")
    backends = {
        "steady": ScriptedBackend("steady", tokens(3, 0.0, "s")),
        "broken": ScriptedBackend("broken", [Step(0.0, error=failure)]),
    }
    services = scripted_services(backends, tmp_path / "a.db")
    try:
        state, outcomes = _battle(services)
        summary = outcomes[-1].summary
        assert summary is not None and all(o.summary is None for o in outcomes[:-1])
        assert summary["can_vote"] is False and state.phase == "errored"
        sides = {r["side"]: r for r in summary["results"]}
        assert set(sides) == {"Model A", "Model B"}
        failed = [r for r in sides.values() if r["error"] is not None]
        answered = [r for r in sides.values() if r["error"] is None]
        assert len(failed) == len(answered) == 1 and answered[0]["text"] == "sss"
        assert failed[0]["error_kind"] == "GenerationError"
        assert failed[0]["error"] == f"{HIDDEN} lost its server at {HIDDEN} ({HIDDEN} pipe)"
        shown = json.dumps(summary) + " ".join(v.title + v.note + v.stats for o in outcomes for v in o.views)
        for secret in ("steady", "broken", "scripted", "10.1.2.3", "8080", "ttft", "TTFT"):
            assert secret not in shown
        assert "lost its server" in " ".join(v.note for v in outcomes[-1].views)
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


WEATHER_TOOLS = '[{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]'


def test_the_tools_box_takes_json_and_never_reads_a_file_on_the_server(tmp_path: Path) -> None:
    """A path typed into the web form would have the server read its own files for a browser
    (whether /etc/passwd exists, any JSON file as tools): the box takes JSON only."""
    on_server = tmp_path / "tools.json"
    on_server.write_text(WEATHER_TOOLS.replace("get_weather", "only_on_the_server"))
    for typed in (str(on_server), "/etc/passwd", "tools.json"):
        with pytest.raises(UsageError, match="tools must be JSON") as refused:
            request_from_form({"text": "hi", "files": []}, FormOptions(tools=typed))
        assert "only_on_the_server" not in str(refused.value)
    request = request_from_form({"text": "hi", "files": []}, FormOptions(tools=WEATHER_TOOLS))
    assert [tool.name for tool in request.tools] == ["get_weather"]


def test_the_cli_reads_tools_from_a_file_it_names(tmp_path: Path) -> None:
    on_disk = tmp_path / "tools.json"
    on_disk.write_text(WEATHER_TOOLS)
    assert read_tools_arg(str(on_disk)) == WEATHER_TOOLS
    assert read_tools_arg(WEATHER_TOOLS) == WEATHER_TOOLS
    with pytest.raises(UsageError, match="is neither"):
        read_tools_arg(str(tmp_path / "missing.json"))


def test_charts_are_not_kept_by_pyplot_after_they_are_drawn(services: ArenaServices) -> None:
    """A server draws charts for every comparison and leaderboard refresh: figures that pyplot's
    registry kept until closed would grow its memory for as long as it runs."""
    import matplotlib.pyplot as plt

    flow = BattleFlow(services)
    state, _ = _battle(services)
    flow.vote(state, "b")
    before = plt.get_fignums()
    for _ in range(3):
        view = build_view(services)
    assert view.ci_chart is not None and view.win_rate_chart is not None
    assert plt.get_fignums() == before

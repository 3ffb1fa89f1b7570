"""Conversations of several turns, Stop, regenerate, History and reload, through a real Gradio
server driven by gradio_client alone (one client is one session), on scripted variants whose
requests are recorded, so what each variant was sent can be checked.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gradio_client import Client

from arena.lineup import create_lineup
from arena.measure import Result
from arena.settings import Settings
from backends.base import Capabilities, Chunk, Turn
from backends.registry import VariantSpec
from storage import open_store
from tests.support.media import write_wav
from tests.support.scripted import ScriptedBackend, Step, registry_with
from tests.support.ui import free_port, scripted_services
from tests.test_ui_server import prompt
from ui.app import ArenaApp, Session
from ui.services import ArenaServices
from ui.views import PanelView, skip_reason

SHORT = {"max_new_tokens": 8}


def words(name: str, n: int = 4, every_s: float = 0.0) -> list[Step]:
    return [Step(every_s, Chunk(text=f"{name}{i} ", tokens=1)) for i in range(n)]


@contextlib.contextmanager
def serve(backends: dict[str, ScriptedBackend], db: Path) -> Iterator[tuple[ArenaApp, ArenaServices, str]]:
    services = scripted_services(backends, db)
    app = ArenaApp(services)
    app.blocks.queue()
    app.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield app, services, app.blocks.local_url
    finally:
        app.blocks.close()
        services.close()


@pytest.fixture
def arena(tmp_path: Path) -> Iterator[tuple[ArenaApp, ArenaServices, str, dict[str, ScriptedBackend]]]:
    backends = {
        "alpha": ScriptedBackend("alpha", words("alpha")),
        "beta": ScriptedBackend("beta", words("beta")),
        # ~10 s of tokens: only Stop ends it early
        "slow": ScriptedBackend("slow", words("slow", 400, 0.025)),
    }
    with serve(backends, tmp_path / "arena.db") as (app, services, url):
        yield app, services, url, backends


def client(url: str) -> Client:
    return Client(url, download_files=False, verbose=False)


def compare(c: Client, text: str, variants: list[str]) -> dict[str, Any]:
    result: dict[str, Any] = c.predict(variants=variants, prompt=prompt(text), **SHORT, api_name="/compare")[-1]
    return result


def test_a_follow_up_sends_each_variant_its_own_history_and_the_vote_covers_the_conversation(arena: Any) -> None:
    _, services, url, backends = arena
    c = client(url)
    pair = ["scripted:alpha", "scripted:beta"]
    first = compare(c, "Name a colour", pair)
    second = compare(c, "And another?", pair)
    assert (first["turn"], second["turn"]) == (1, 2)
    answers = {r["variant"]: r["text"] for r in first["results"]}
    # each variant's follow-up carries the first turn with its own answer, not the other's
    for name in ("alpha", "beta"):
        sent = backends[name].requests[-1]
        assert sent.prompt == "And another?"
        assert sent.history == (Turn("Name a colour", answers[f"scripted:{name}"]),)
    stored = services.store.conversation(second["battle_id"])
    assert [t.prompt for t in stored.turns] == ["Name a colour", "And another?"]
    assert stored.turns[0].battle_id == first["battle_id"]
    assert c.predict(best="scripted:beta", api_name="/vote_best").startswith("Vote recorded")
    stored = services.store.conversation(second["battle_id"])
    assert stored.vote is not None and stored.turns[-1].vote is not None
    # the vote ended the conversation: the next Send starts a new one
    third = compare(c, "Start over", pair)
    assert third["turn"] == 1 and backends["alpha"].requests[-1].history == ()
    assert services.store.conversation(third["battle_id"]).turns[0].prompt == "Start over"


def test_regenerate_sends_the_last_turn_again_and_stores_a_sibling(arena: Any) -> None:
    _, services, url, backends = arena
    c = client(url)
    pair = ["scripted:alpha", "scripted:beta"]
    first = compare(c, "One", pair)
    second = compare(c, "Two", pair)
    again = c.predict(**SHORT, api_name="/regenerate_compare")[-1]
    assert again["turn"] == 2 and again["battle_id"] != second["battle_id"]
    assert backends["alpha"].requests[-1].prompt == "Two"
    assert [t.battle_id for t in services.store.conversation(again["battle_id"]).turns] == [
        first["battle_id"], again["battle_id"]]
    history = c.predict(api_name="/history")[-1]
    assert [entry["battle_id"] for entry in history] == [again["battle_id"]]  # the superseded turn is gone


def test_changing_the_variants_starts_a_new_conversation(arena: Any) -> None:
    _, _, url, backends = arena
    c = client(url)
    compare(c, "One", ["scripted:alpha", "scripted:beta"])
    assert compare(c, "Two", ["scripted:alpha", "scripted:beta"])["turn"] == 2  # the same pair: a follow-up
    fresh = compare(c, "Three", ["scripted:beta", "scripted:alpha"])  # another order is another comparison
    assert fresh["turn"] == 1 and backends["beta"].requests[-1].history == ()


def test_stop_marks_the_answers_stopped_with_their_figures_and_takes_no_vote(arena: Any) -> None:
    _, services, url, _ = arena
    c = client(url)
    job = c.submit(variants=["scripted:alpha", "scripted:slow"], prompt=prompt("Go on and on"), max_new_tokens=500,
                   api_name="/compare")
    deadline = time.monotonic() + 20
    while not any(update[2] for update in job.outputs()):  # the slow panel has begun
        assert time.monotonic() < deadline, "the slow variant never started"
        time.sleep(0.05)
    c.predict(api_name="/stop_compare")
    result = job.result()[-1]
    slow = next(r for r in result["results"] if r["variant"] == "scripted:slow")
    assert slow["error_kind"] == "Stopped"
    assert 0 < slow["stats"]["output_tokens"] < 400 and slow["stats"]["total_s"] > 0
    assert slow["text"].startswith("slow0 ")
    assert result["vote_on"] == [] and "stopped" in result["no_vote"]
    with pytest.raises(Exception, match="You stopped this turn"):
        c.predict(best="scripted:alpha", api_name="/vote_best")
    stored = services.store.battle(result["battle_id"])
    assert stored is not None and stored.vote is None


def test_a_single_variant_comparison_says_why_there_is_no_vote(arena: Any) -> None:
    _, _, url, _ = arena
    result = compare(client(url), "Alone", ["scripted:alpha"])
    assert result["battle_id"] is None and result["vote_on"] == []
    assert result["no_vote"] == ("Only one variant answered this, so there is nothing to vote on: "
                                 "pick two or more variants.")


def test_a_battle_follow_up_goes_to_the_same_pair_and_a_regenerate_too(arena: Any) -> None:
    _, services, url, backends = arena
    c = client(url)
    first = c.predict(prompt=prompt("Hello"), **SHORT, api_name="/battle")[-1]
    assert first["can_vote"] and first["turn"] == 1
    asked = {name for name, b in backends.items() if b.requests}
    second = c.predict(prompt=prompt("Tell me more"), **SHORT, api_name="/battle")[-1]
    assert second["turn"] == 2
    assert {name for name, b in backends.items() if b.requests and b.requests[-1].prompt == "Tell me more"} == asked
    regenerated = c.predict(**SHORT, api_name="/regenerate_battle")[-1]
    assert regenerated["turn"] == 2 and regenerated["can_vote"]
    for name in asked:  # each side's history is its own first answer, in both
        assert [t.prompt for t in backends[name].requests[-1].history] == ["Hello"]
    reveal = c.predict(api_name="/vote_a")
    assert all(f"scripted:{name}" in reveal for name in asked)
    battles = services.store.history("local")
    assert battles[0].mode == "blind" and battles[0].turns == 2 and battles[0].vote is not None


def test_stop_battle_ends_both_sides_and_the_turn_takes_no_vote(tmp_path: Path) -> None:
    backends = {"one": ScriptedBackend("one", words("one", 400, 0.025)),
                "two": ScriptedBackend("two", words("two", 400, 0.025))}
    with serve(backends, tmp_path / "arena.db") as (_, _, url):
        c = client(url)
        job = c.submit(prompt=prompt("Long"), max_new_tokens=500, api_name="/battle")
        deadline = time.monotonic() + 20
        while not any(update[0] for update in job.outputs()):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        c.predict(api_name="/stop_battle")
        result = job.result()[-1]
        assert result["can_vote"] is False
        assert {r["error_kind"] for r in result["results"]} == {"Stopped"}

        with pytest.raises(Exception, match="vote"):
            c.predict(api_name="/vote_a")


def test_history_lists_past_conversations_and_opens_an_unvoted_one_to_vote(arena: Any) -> None:
    _, services, url, _ = arena
    c = client(url)
    compared = compare(c, "Compare me", ["scripted:alpha", "scripted:beta"])
    battled = c.predict(prompt=prompt("Battle me"), **SHORT, api_name="/battle")[-1]
    assert battled["can_vote"]
    later = client(url)  # another session: a reload, or the next day
    history = later.predict(api_name="/history")[-1]
    by_prompt = {entry["prompt"]: entry for entry in history}
    assert by_prompt["Battle me"]["variants"] == []  # a blind battle stays blind until its vote
    assert by_prompt["Compare me"]["variants"] == ["scripted:alpha", "scripted:beta"]
    assert all(entry["can_vote"] and entry["vote"] is None for entry in history)
    assert "Opened in the Battle tab" in later.predict(battle_id=by_prompt["Battle me"]["battle_id"],
                                                       api_name="/open_history")
    reveal = later.predict(api_name="/vote_tie")
    assert "Tie" in reveal and "scripted:" in reveal
    later.predict(battle_id=compared["battle_id"], api_name="/open_history")
    assert "Vote recorded" in later.predict(best="scripted:alpha", api_name="/vote_best")
    assert services.store.battle(compared["battle_id"]).vote is not None
    assert all(entry["vote"] for entry in later.predict(api_name="/history")[-1])
    with pytest.raises(Exception, match="there is no conversation"):
        later.predict(battle_id="0" * 32, api_name="/open_history")


def test_a_reload_finds_the_sessions_conversation_again(arena: Any) -> None:
    app, _, _, _ = arena
    key, session, found = app.registry.restore(None)
    assert not found
    session.compare.views = [PanelView(title="scripted:alpha", answer="kept", status="done")]
    again = app.restore_session(key, ["scripted:alpha"])
    assert again[app.session] is session and again[app.browser_key] == key
    panel = app.compare.panels[0]
    assert "kept" in again[panel.answer]
    fresh = app.restore_session("not-a-key", ["scripted:alpha"])
    assert fresh[app.session] is not session and fresh[app.browser_key] != key


def test_typing_or_picking_variants_never_clears_a_comparison_on_the_panels(arena: Any) -> None:
    app = arena[0]
    session = Session()
    session.compare.views = [PanelView(title="scripted:alpha", answer="an answer", status="done")]
    shown = app.preview_compare(session, ["scripted:beta"], {"text": "next question", "files": []})
    assert set(shown) == {app.compare.preview}  # the line under Send, and nothing else
    assert "new conversation" in shown[app.compare.preview]
    empty = app.preview_compare(Session(), ["scripted:beta"], {"text": "", "files": []})
    assert app.compare.panels[0].title in empty  # with nothing shown, the panels follow the selection


def test_skipped_variants_say_why_and_show_no_stats(tmp_path: Path) -> None:
    text_only = ScriptedBackend("deaf", words("deaf"), Capabilities(frozenset({"text"})))
    hears = ScriptedBackend("ears", words("ears"), Capabilities(frozenset({"text", "audio"})))
    clip = write_wav(tmp_path / "clip.wav")
    with serve({"deaf": text_only, "ears": hears}, tmp_path / "arena.db") as (_, _, url):
        c = client(url)
        result = c.predict(variants=["scripted:deaf", "scripted:ears"], prompt=prompt("Listen", clip), **SHORT,
                           api_name="/compare")[-1]
        deaf = next(r for r in result["results"] if r["variant"] == "scripted:deaf")
        assert deaf["error_kind"] == "UnsupportedInput"
        assert text_only.requests == []  # nothing was sent to it
    view = PanelView(title="scripted:deaf").with_result(
        Result("scripted:deaf", error=deaf["error"], error_kind=deaf["error_kind"]))
    assert view.status == "skipped" and view.note == "**Skipped:** cannot take audio" and view.stats == ""
    assert skip_reason("x does not support tools: send the request without tools") == "does not support tools"


def test_panels_show_loading_progress_on_first_paint(tmp_path: Path) -> None:
    gate = threading.Event()
    slow_loader = ScriptedBackend("late", words("late"))
    slow_loader.load_gate = gate
    lineup = create_lineup([VariantSpec.parse("scripted:late")], registry_with({"late": slow_loader}),
                           Settings(tmp_path, tmp_path, tmp_path / "arena.db"))
    services = ArenaServices(lineup, open_store(tmp_path / "arena.db"), timeout_s=30)
    services.start_loading()  # not waited for: the page opens while it loads
    try:
        app = ArenaApp(services)
        deadline = time.monotonic() + 10
        while "waiting for the test" not in str(app.restore_session(None, ["scripted:late"]).get(
                app.compare.panels[0].note, "")):
            assert time.monotonic() < deadline, "the page's first paint said nothing of the loading variant"
            time.sleep(0.05)
        first = app.restore_session(None, ["scripted:late"])
        assert first[app.compare.panels[0].note].startswith("**Still loading**")
        assert app.loading_notes(Session(), ["scripted:late"])[app.compare.panels[0].note].startswith(
            "**Still loading**")
        gate.set()
        assert services.wait_loaded(10)
        assert app.loading_notes(Session(), ["scripted:late"]) == {}
    finally:
        gate.set()
        services.close()


def test_a_conversation_compared_on_the_command_line_is_voted_on_later_in_history(tmp_path: Path) -> None:
    from tests.test_cli_compare import app as run_app
    from tests.test_cli_compare import write_messages

    db = tmp_path / "arena.db"
    messages = write_messages(tmp_path, ["Hello there", "And now?"])
    done = run_app("compare", "--variants", "demo:e2b", "demo:31b", "--messages", str(messages),
                   "--max-new-tokens", "4", "--json", "--db", str(db))
    assert done.returncode == 0, done.stderr
    last = json.loads(done.stdout)["turns"][-1]["battle_id"]
    with serve({"alpha": ScriptedBackend("alpha", words("alpha"))}, db) as (_, services, url):
        c = client(url)
        history = c.predict(api_name="/history")[-1]
        assert [(e["battle_id"], e["turns"], e["vote"]) for e in history] == [(last, 2, None)]
        c.predict(battle_id=last, api_name="/open_history")
        assert "covers the whole conversation (2 turns)" in c.predict(best="demo:31b", api_name="/vote_best")
        stored = services.store.conversation(last)
        assert stored is not None and stored.vote is not None and len(stored.turns) == 2


def test_history_is_kept_per_person_and_not_shown_to_a_shared_name(tmp_path: Path) -> None:
    """On a network address without logins everyone votes as one name, as do visitors of a Space
    who have not signed in: History would show each of them the others' prompts, so it is off."""
    import asyncio

    import gradio as gr

    from ui.access import Access

    services = scripted_services({"alpha": ScriptedBackend("alpha", words("alpha")),
                                  "beta": ScriptedBackend("beta", words("beta"))}, tmp_path / "arena.db")
    try:
        stranger = ArenaApp(services, Access(local_admin=False))  # `serve --host 0.0.0.0 --no-auth`
        with pytest.raises(gr.Error, match="kept per person"):
            asyncio.run(stranger.list_history(Session()))
        with pytest.raises(gr.Error, match="kept per person"):
            stranger.open_history(Session(), "0" * 32)
        shown = asyncio.run(stranger.show_history(Session()))
        assert "kept per person" in shown[stranger.history.message]
        owner = ArenaApp(services, Access())  # the one local person, on a loopback address
        assert asyncio.run(owner.list_history(Session()))[owner.history_result] == []
    finally:
        services.close()


def test_a_stopped_battle_does_not_say_how_far_each_side_got(tmp_path: Path) -> None:
    """In Compare a stopped panel says "Stopped after N tokens"; in a battle N would tell which
    side is faster, and the pair goes on to a regenerated turn that takes a vote."""
    import asyncio

    from ui.battle import BattleFlow, BattleState
    from ui.compare import FormOptions

    backends = {"quick": ScriptedBackend("quick", words("quick", 400, 0.005)),
                "steady": ScriptedBackend("steady", words("steady", 400, 0.02))}
    services = scripted_services(backends, tmp_path / "arena.db")

    async def battle() -> list[PanelView]:
        stop = asyncio.Event()
        views: list[PanelView] = []
        async for outcome in BattleFlow(services).run(BattleState(), "go", FormOptions(max_new_tokens=500),
                                                      stop=stop):
            views = outcome.views
            if any(view.answer for view in views):
                stop.set()
        return views

    try:
        views = asyncio.run(battle())
        assert [view.status for view in views] == ["stopped", "stopped"]
        assert all(view.note == "**Stopped:** the answer is cut short; this turn takes no vote." for view in views)
        assert all(view.stats == "" for view in views)
    finally:
        services.close()

"""The web UI as a real Gradio server, driven through gradio_client alone, as a script would.

Every endpoint the README documents is called here with named parameters, and none relies on a
step only the page runs: an API client gets each variant's answer and error in the endpoint's own
result, and votes on what it compared in its session (one client is one session).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gradio_client import Client, handle_file

from arena.errors import GenerationError
from arena.settings import Settings
from tests.servers.fake_ollama import FakeOllama
from tests.support.media import write_wav
from tests.support.scripted import ScriptedBackend, Step, tokens
from tests.support.ui import demo_services, free_port, scripted_services
from ui.app import ArenaApp
from ui.battle import HIDDEN
from ui.markdown import answer_html
from ui.services import ArenaServices

README = Path(__file__).resolve().parent.parent / "README.md"
SHORT = {"max_new_tokens": 12}
COMPARE_PARAMETERS = ["variants", "prompt", "system", "temperature", "top_p", "top_k", "max_new_tokens", "seed",
                      "thinking", "tools"]
BATTLE_PARAMETERS = ["prompt", "system", "max_new_tokens", "thinking", "tools"]  # battles choose their sampling


@contextlib.contextmanager
def serve(services: ArenaServices) -> Iterator[str]:
    """The app on `services`, launched on a free loopback port; its URL. Closes both at the end."""
    app = ArenaApp(services)
    app.blocks.queue()
    app.blocks.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True,
                      run_history=False)
    yield app.blocks.local_url
    app.blocks.close()
    services.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, demo_cache: Path) -> Iterator[tuple[ArenaServices, str]]:
    """The app on demo:e2b (takes audio) and demo:31b (does not)."""
    data = tmp_path_factory.mktemp("ui-data")
    services = demo_services(["demo:e2b", "demo:31b"], Settings(data, demo_cache, data / "arena.db"))
    with serve(services) as url:
        yield services, url


#: What the failing scripted variant says: its name, its spec and its server's address.
FAILURE = "scripted:broken lost its server at http://10.1.2.3:8080/v1: the connection was reset"


@pytest.fixture(scope="module")
def failing_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ArenaServices, str]]:
    """The app on two scripted variants, one of which fails every time: a battle always draws both."""
    backends = {
        "steady": ScriptedBackend("steady", tokens(3, 0.0, "s")),
        "broken": ScriptedBackend("broken", [Step(0.0, error=GenerationError(FAILURE))]),
    }
    services = scripted_services(backends, tmp_path_factory.mktemp("ui-failing") / "arena.db")
    with serve(services) as url:
        yield services, url


def client(url: str) -> Client:
    return Client(url, download_files=False, verbose=False)


def prompt(text: str, *files: Path) -> dict[str, Any]:
    return {"text": text, "files": [handle_file(str(f)) for f in files]}


def documented_endpoints() -> set[str]:
    """The endpoints README's "Stable hooks for automation" names (`/name` in backticks)."""
    section = README.read_text().split("### Stable hooks for automation", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"`(/[\w-]+)`", section))


def test_api_lists_exactly_the_documented_endpoints_with_named_parameters(server: tuple[ArenaServices, str]) -> None:
    _, url = server
    endpoints = client(url).view_api(print_info=False, return_format="dict")
    assert endpoints["unnamed_endpoints"] == {}
    named = endpoints["named_endpoints"]
    assert set(named) == documented_endpoints()
    assert len(named) == 32
    parameters = {name: [p["parameter_name"] for p in info["parameters"]] for name, info in named.items()}
    assert parameters["/compare"] == COMPARE_PARAMETERS
    assert parameters["/battle"] == BATTLE_PARAMETERS
    assert parameters["/vote_best"] == ["best"]
    assert parameters["/vote_ranking"] == ["rank_1", "rank_2", "rank_3", "rank_4"]
    assert parameters["/leaderboard"] == ["category", "mode", "voter"] and parameters["/discover_ollama"] == ["host"]
    assert parameters["/load_variant"] == parameters["/unload_variant"] == ["name"]
    assert parameters["/regenerate_compare"] == COMPARE_PARAMETERS[2:]  # the settings: the turn is the last one
    assert parameters["/regenerate_battle"] == BATTLE_PARAMETERS[1:]
    assert parameters["/new_conversation"] == ["selected"] and parameters["/open_history"] == ["battle_id"]
    assert parameters["/stop_compare"] == parameters["/stop_battle"] == parameters["/history"] == []
    assert parameters["/judge_next"] == ["set_name"] and parameters["/judge_standings"] == ["set_name", "tag"]
    assert parameters["/judge_vote_a"] == parameters["/judge_skip"] == []
    unnamed = [(name, p) for name, names in parameters.items() for p in names if p.startswith("param_")]
    assert unnamed == []
    # nothing but the prompt is needed: every other parameter has a default
    assert all(p["parameter_has_default"] for info in named.values() for p in info["parameters"])


def test_compare_endpoint_streams_every_panel_and_records_the_comparison(server: tuple[ArenaServices, str]) -> None:
    services, url = server
    job = client(url).submit(variants=["demo:e2b", "demo:31b"], prompt=prompt("Which fits?"), **SHORT,
                             api_name="/compare")
    job.result()
    updates = job.outputs()
    assert len(updates) >= 3  # streamed in several updates, not one at the end
    # outputs: answer (the panel's HTML: rendered Markdown and the raw text), thinking per panel, result
    answer_e2b, answer_31b = updates[-1][0], updates[-1][2]
    assert answer_e2b and answer_31b
    assert any(0 < len(update[0]) < len(answer_e2b) for update in updates)  # seen growing
    assert all(update[-1] is None for update in updates[:-1])  # the result comes once, at the end
    result = updates[-1][-1]
    assert [(r["variant"], answer_html(r["text"]), r["error"]) for r in result["results"]] == [
        ("demo:e2b", answer_e2b, None), ("demo:31b", answer_31b, None)]
    assert all(r["stats"]["output_tokens"] and r["stats"]["ttft_s"] for r in result["results"])
    stored = services.store.battle(result["battle_id"])
    assert stored is not None and stored.variants == ("demo:e2b", "demo:31b")
    assert result["vote_on"] == ["demo:e2b", "demo:31b"]
    speeds = {s.variant: s for s in services.store.speed_by_variant()}
    assert speeds["demo:e2b"].median_tokens_per_s


def test_compare_endpoint_returns_the_error_of_a_variant_that_cannot_take_the_input(
    server: tuple[ArenaServices, str], tmp_path: Path
) -> None:
    _, url = server
    clip = write_wav(tmp_path / "clip.wav")
    outputs = client(url).predict(variants=["demo:e2b", "demo:31b"], prompt=prompt("What is said?", clip), **SHORT,
                                  api_name="/compare")
    results = {r["variant"]: r for r in outputs[-1]["results"]}
    assert results["demo:e2b"]["error"] is None and answer_html(results["demo:e2b"]["text"]) == outputs[0]
    assert results["demo:31b"]["error_kind"] == "UnsupportedInput"
    assert "cannot take audio" in results["demo:31b"]["error"] and results["demo:31b"]["text"] == ""
    assert outputs[-1]["vote_on"] == []  # one answer alone is nothing to vote on


def test_compare_refuses_what_it_cannot_run_with_the_reason(server: tuple[ArenaServices, str]) -> None:
    _, url = server
    with pytest.raises(Exception, match="'demo:nowhere'"):
        client(url).predict(variants=["demo:nowhere"], prompt=prompt("hi"), api_name="/compare")


def test_vote_best_from_the_api_after_compare_in_the_same_session(server: tuple[ArenaServices, str]) -> None:
    services, url = server
    c = client(url)
    result = c.predict(variants=["demo:e2b", "demo:31b"], prompt=prompt("Pick one"), **SHORT,
                       api_name="/compare")[-1]
    with pytest.raises(Exception, match="'demo:e4b' did not answer in your last comparison"):
        c.predict(best="demo:e4b", api_name="/vote_best")
    assert services.store.battle(result["battle_id"]).vote is None  # type: ignore[union-attr]
    assert "demo:31b" in c.predict(best="demo:31b", api_name="/vote_best")
    assert services.store.battle(result["battle_id"]).vote is not None  # type: ignore[union-attr]
    with pytest.raises(Exception, match="already has your vote"):
        c.predict(best="demo:e2b", api_name="/vote_best")
    with pytest.raises(Exception, match="compare some variants first"):  # another client, another session
        client(url).predict(best="demo:e2b", api_name="/vote_best")


def test_vote_ranking_from_the_api_ranks_the_compared_variants_in_order(server: tuple[ArenaServices, str]) -> None:
    services, url = server
    c = client(url)
    result = c.predict(variants=["demo:31b", "demo:e2b"], prompt=prompt("Rank us"), **SHORT,
                       api_name="/compare")[-1]
    assert result["vote_on"] == ["demo:31b", "demo:e2b"]
    with pytest.raises(Exception, match="give every shown variant a rank"):
        c.predict(rank_1="1", api_name="/vote_ranking")
    message = c.predict(rank_1="2", rank_2="1", api_name="/vote_ranking")
    assert "Ranking recorded" in message
    stored = services.store.battle(result["battle_id"])
    assert stored is not None and stored.vote is not None
    assert stored.vote.ranking == (("demo:e2b",), ("demo:31b",))


def test_blind_battle_vote_reveals_names_and_moves_the_leaderboard(server: tuple[ArenaServices, str]) -> None:
    services, url = server
    c = client(url)
    before = len(services.store.pair_outcomes())
    outputs = c.predict(prompt=prompt("Tell me a story"), **SHORT, api_name="/battle")
    result = outputs[-1]
    assert result["can_vote"] is True
    assert [(r["side"], answer_html(r["text"]), r["error"]) for r in result["results"]] == [
        ("Model A", outputs[0], None), ("Model B", outputs[2], None)]
    assert "demo:" not in json.dumps(result) and "stats" not in result["results"][0]  # the blind holds
    reveal = c.predict(api_name="/vote_a")
    assert "demo:e2b" in reveal and "demo:31b" in reveal and "TTFT" in reveal
    assert len(services.store.pair_outcomes()) == before + 1
    summary, table, *_ = c.predict(category="all", api_name="/leaderboard")
    assert "pairwise outcome" in summary
    assert {row[1].split()[0] for row in table["data"]} == {"demo:e2b", "demo:31b"}  # "demo:e2b (preliminary)"


def test_new_round_forgets_the_battle(server: tuple[ArenaServices, str]) -> None:
    _, url = server
    c = client(url)
    c.predict(prompt=prompt("Once more"), **SHORT, api_name="/battle")
    outputs = c.predict(api_name="/new_round")
    assert outputs[0] == ""  # the reveal is cleared
    with pytest.raises(Exception, match="send a prompt first"):
        c.predict(api_name="/vote_b")


def test_failed_side_of_a_battle_reaches_the_client_without_its_name_or_server(
    failing_server: tuple[ArenaServices, str],
) -> None:
    services, url = failing_server
    c = client(url)
    outputs = c.predict(prompt=prompt("Are you there?"), **SHORT, api_name="/battle")
    result = outputs[-1]
    assert result["can_vote"] is False
    failed = [r for r in result["results"] if r["error"] is not None]
    answered = [r for r in result["results"] if r["error"] is None]
    assert len(failed) == len(answered) == 1 and answered[0]["text"] == "sss"
    assert failed[0]["error_kind"] == "GenerationError"
    assert failed[0]["error"] == f"{HIDDEN} lost its server at {HIDDEN} the connection was reset"
    shown = json.dumps(outputs)
    for secret in ("scripted", "steady", "broken", "10.1.2.3"):
        assert secret not in shown
    with pytest.raises(Exception, match="an answer failed"):
        c.predict(api_name="/vote_both_bad")
    assert services.store.pair_outcomes() == []


def test_compare_names_the_failed_variant_and_its_error(failing_server: tuple[ArenaServices, str]) -> None:
    _, url = failing_server
    result = client(url).predict(variants=["scripted:steady", "scripted:broken"], prompt=prompt("hi"),
                                 api_name="/compare")[-1]
    assert [(r["variant"], r["error"], r["error_kind"]) for r in result["results"]] == [
        ("scripted:steady", None, None), ("scripted:broken", FAILURE, "GenerationError")]


def test_api_vote_before_any_battle_is_refused_by_the_server(server: tuple[ArenaServices, str]) -> None:
    _, url = server
    with pytest.raises(Exception, match="send a prompt first"):
        client(url).predict(api_name="/vote_b")


def test_api_vote_mid_stream_is_refused_by_the_server(server: tuple[ArenaServices, str]) -> None:
    services, url = server
    c = client(url)
    job = c.submit(prompt=prompt("A long answer please"), max_new_tokens=400, api_name="/battle")
    for _ in job:
        break  # the first update: the battle is served, not finished
    votes_before = len(services.store.pair_outcomes())
    with pytest.raises(Exception, match="is not finished"):
        c.predict(api_name="/vote_tie")
    assert len(services.store.pair_outcomes()) == votes_before
    job.cancel()


def test_every_export_endpoint_returns_its_file(server: tuple[ArenaServices, str]) -> None:
    services, url = server
    c = client(url)
    c.predict(prompt=prompt("One more"), **SHORT, api_name="/battle")
    c.predict(api_name="/vote_tie")
    votes = len(services.store.pair_outcomes(mode="all"))  # exports hold named and blind votes alike
    texts = {fmt: Path(c.predict(api_name=f"/export_{fmt}")["path"]).read_text()
             for fmt in ("csv", "jsonl", "fastchat", "leaderboard-csv")}
    battles = [json.loads(line) for line in texts["fastchat"].splitlines()]
    assert len(battles) == votes >= 1
    assert {"model_a", "model_b", "winner"} <= set(battles[-1]) and battles[-1]["winner"] == "tie"
    assert len([json.loads(line) for line in texts["jsonl"].splitlines()]) >= 1
    assert len(list(csv.DictReader(io.StringIO(texts["csv"])))) >= 1
    board = list(csv.DictReader(io.StringIO(texts["leaderboard-csv"])))
    assert {"demo:e2b", "demo:31b"} <= {value for row in board for value in row.values()}


def test_discover_ollama_lists_the_servers_models_or_says_why_not(
    server: tuple[ArenaServices, str], fake_ollama: FakeOllama
) -> None:
    _, url = server
    c = client(url)
    assert "ollama:gemma4:e4b" in c.predict(host=fake_ollama.url, api_name="/discover_ollama")
    unreachable = f"http://127.0.0.1:{free_port()}"
    assert "Could not list models" in c.predict(host=unreachable, api_name="/discover_ollama")


def test_no_event_shows_progress_on_more_than_one_component(server: tuple[ArenaServices, str]) -> None:
    """The page refreshes the loading status of every component any event has targeted, on every
    message of every event (see ui.app.ArenaApp._wire): the config the browser gets names one
    progress target at most for each event, never Gradio's default of all its outputs."""
    _, url = server
    with urllib.request.urlopen(f"{url}config", timeout=30) as response:
        events = [d for d in json.load(response)["dependencies"] if d["backend_fn"]]
    assert len(events) > 20
    too_many = [(d["api_name"], d["show_progress_on"]) for d in events
                if d["show_progress_on"] is None or len(d["show_progress_on"]) > 1]
    assert too_many == []
    # the streams show theirs on one status line each, not on the panels they update
    streaming = [d for d in events if d["api_name"] in ("compare", "battle")]
    assert len(streaming) == 2 and all(len(d["show_progress_on"]) == 1 for d in streaming)
    assert not set(d["show_progress_on"][0] for d in streaming) & {o for d in streaming for o in d["outputs"]}


def test_report_endpoint_returns_the_page_and_a_self_contained_file(server: tuple[ArenaServices, str]) -> None:
    _, url = server
    c = client(url)
    c.predict(prompt=prompt("Which is better?"), **SHORT, api_name="/battle")
    c.predict(api_name="/vote_b")
    page, document = c.predict(mode="blind", category="all", api_name="/report")
    text = Path(document["path"]).read_text()
    assert "demo:e2b" in page and "demo:31b" in page and "data:image/png;base64," in page
    assert text.startswith("<!DOCTYPE html>") and "demo:e2b" in text and "<script" not in text

"""The web UI as a real Gradio server on the demo variants, driven through gradio_client."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from gradio_client import Client

from arena.settings import Settings
from tests.support.ui import demo_services, free_port
from ui.app import ArenaApp
from ui.services import ArenaServices

SETTINGS = ["", 0.0, 1.0, 12, None, False, ""]  # system, temperature, top-p, max tokens, seed, thinking, tools


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, demo_cache: Path) -> Iterator[tuple[ArenaServices, str]]:
    data = tmp_path_factory.mktemp("ui-data")
    services = demo_services(["demo:e2b", "demo:31b"], Settings(data, demo_cache, data / "arena.db"))
    app = ArenaApp(services)
    app.blocks.queue()
    app.blocks.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True,
                      run_history=False)
    yield services, app.blocks.local_url
    app.blocks.close()
    services.close()


def client(url: str) -> Client:
    return Client(url, download_files=False, verbose=False)


def test_compare_endpoint_streams_every_panel_and_records_the_comparison(server: tuple[ArenaServices, str]) -> None:
    services, url = server
    before = len(services.store.speed_by_variant())
    job = client(url).submit(["demo:e2b", "demo:31b"], {"text": "Which fits?", "files": []}, *SETTINGS,
                             api_name="/compare")
    job.result()
    updates = job.outputs()
    assert len(updates) >= 3  # streamed in several updates, not one at the end
    answer_e2b, answer_31b = updates[-1][0], updates[-1][2]  # outputs: answer, thinking per panel
    assert answer_e2b and answer_31b
    assert any(0 < len(update[0]) < len(answer_e2b) for update in updates)  # seen growing
    speeds = {s.variant: s for s in services.store.speed_by_variant()}
    assert {"demo:e2b", "demo:31b"} <= set(speeds) and len(speeds) >= before
    assert speeds["demo:e2b"].median_tokens_per_s


def test_blind_battle_vote_reveals_names_and_moves_the_leaderboard(server: tuple[ArenaServices, str]) -> None:
    services, url = server
    c = client(url)
    before = len(services.store.pair_outcomes())
    c.predict({"text": "Tell me a story", "files": []}, *SETTINGS, api_name="/battle")
    reveal = c.predict(api_name="/vote_a")
    text = str(reveal)
    assert "demo:e2b" in text and "demo:31b" in text
    assert len(services.store.pair_outcomes()) == before + 1
    table = c.predict("all", api_name="/leaderboard")
    assert "demo:e2b" in str(table)


def test_api_vote_before_any_battle_is_refused_by_the_server(server: tuple[ArenaServices, str]) -> None:
    _, url = server
    with pytest.raises(Exception, match="send a prompt first"):
        client(url).predict(api_name="/vote_b")


def test_api_vote_mid_stream_is_refused_by_the_server(server: tuple[ArenaServices, str]) -> None:
    services, url = server
    c = client(url)
    settings = list(SETTINGS)
    settings[3] = 400  # long enough to vote while it streams
    job = c.submit({"text": "A long answer please", "files": []}, *settings, api_name="/battle")
    for _ in job:
        break  # the first update: the battle is served, not finished
    votes_before = len(services.store.pair_outcomes())
    with pytest.raises(Exception, match="is not finished"):
        c.predict(api_name="/vote_tie")
    assert len(services.store.pair_outcomes()) == votes_before
    job.cancel()


def test_export_downloads_the_votes_as_fastchat_battles(server: tuple[ArenaServices, str]) -> None:
    services, url = server
    c = client(url)
    c.predict({"text": "One more", "files": []}, *SETTINGS, api_name="/battle")
    c.predict(api_name="/vote_tie")
    exported = c.predict(api_name="/export_fastchat")
    battles = [json.loads(line) for line in Path(exported["path"]).read_text().splitlines()]
    assert len(battles) == len(services.store.pair_outcomes()) >= 1
    assert {"model_a", "model_b", "winner"} <= set(battles[-1]) and battles[-1]["winner"] == "tie"


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

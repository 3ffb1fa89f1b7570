"""A shared server for a team, through gradio_client alone: logins from a real users file, votes
under the logged-in user, sessions nobody else can use, admin-only exports and discovery, and the
per-user limits. Each refusal comes back to the client as an error that says what to do, and
leaves what is stored as it was.
"""

from __future__ import annotations

import contextlib
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gradio_client import Client

from arena.limits import DEFAULT_LIMITS
from arena.settings import Settings
from arena.users import UserDirectory, add_user
from cli.serve import launch_options
from tests.support.app_process import app_env, kill_group, start_app, wait_until_served
from tests.support.ui import demo_services, free_port
from ui.access import Access
from ui.app import ArenaApp
from ui.services import ArenaServices

PASSWORDS = {name: f"{name}-password" for name in ("ada", "alice", "bob", "carol", "dave")}
ROLES = {"ada": "admin", "alice": "voter", "bob": "voter", "carol": "voter", "dave": "voter"}
SHORT = {"max_new_tokens": 8}
MAX_VOTES_PER_MINUTE = 5
#: /leaderboard's outputs: summary, table, three charts, the voters table, the voters chart
VOTERS = 5


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory, demo_cache: Path) -> Iterator[tuple[ArenaServices, str]]:
    """The app on demo:e2b and demo:e4b behind a login; one generation at a time per user."""
    data = tmp_path_factory.mktemp("team")
    users = data / "users.toml"
    for name, password in PASSWORDS.items():
        add_user(users, name, password, ROLES[name])
    directory = UserDirectory(users)
    services = demo_services(["demo:e2b", "demo:e4b"], Settings(data, demo_cache, data / "arena.db"))
    access = Access(directory.role_of, max_concurrent=1, max_votes_per_minute=MAX_VOTES_PER_MINUTE)
    app = ArenaApp(services, access)
    app.blocks.queue()
    app.blocks.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True,
                      **launch_options(DEFAULT_LIMITS, directory))  # as `serve --users` launches it
    yield services, app.blocks.local_url
    app.blocks.close()
    services.close()


def login(url: str, name: str) -> Client:
    return Client(url, auth=(name, PASSWORDS[name]), download_files=False, verbose=False)


def battle(c: Client, text: str = "Tell me about rivers", **settings: Any) -> dict[str, Any]:
    outputs = c.predict(prompt={"text": text, "files": []}, **(SHORT | settings), api_name="/battle")
    return outputs[-1]


def stored_votes(services: ArenaServices) -> list[tuple[str | None, str | None]]:
    """(served to, voted by) of every stored vote."""
    with services.store._read() as db:
        return [tuple(row) for row in db.execute(
            "SELECT b.voter, v.voter FROM votes v JOIN battles b ON b.id = v.battle_id ORDER BY v.id")]


def test_nothing_is_served_without_a_login(team: tuple[ArenaServices, str]) -> None:
    _, url = team
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{url}config", timeout=30)
    assert refused.value.code == 401
    with pytest.raises(Exception):  # noqa: B017 - gradio_client's own error for a refused login
        Client(url, auth=("alice", "wrong password"), verbose=False)


def test_each_vote_is_stored_under_the_logged_in_user(team: tuple[ArenaServices, str]) -> None:
    services, url = team
    before = len(stored_votes(services))
    alice = login(url, "alice")
    assert battle(alice)["can_vote"] is True
    assert "Model A" in alice.predict(api_name="/vote_a")
    assert stored_votes(services)[before:] == [("alice", "alice")]


def test_another_user_cannot_vote_in_a_session_that_is_not_theirs(team: tuple[ArenaServices, str]) -> None:
    """Bob gets hold of Alice's session id (a shared screen, a log): the server still knows it is
    Bob, refuses him, and Alice's battle keeps its one vote for Alice."""
    services, url = team
    alice, bob = login(url, "alice"), login(url, "bob")
    assert battle(alice)["can_vote"] is True
    before = stored_votes(services)
    bob.session_hash = alice.session_hash
    with pytest.raises(Exception, match="belongs to another user"):
        bob.predict(api_name="/vote_b")
    with pytest.raises(Exception, match="belongs to another user"):
        bob.predict(api_name="/new_round")
    assert stored_votes(services) == before
    alice.predict(api_name="/vote_tie")
    assert stored_votes(services)[-1] == ("alice", "alice")


def test_the_store_refuses_a_vote_by_anyone_but_the_voter_the_battle_was_served_to(
    team: tuple[ArenaServices, str],
) -> None:
    services, url = team
    alice = login(url, "alice")
    battle(alice)
    served = [b for b in _battles_of(services, "alice") if services.store.battle(b).vote is None]  # type: ignore[union-attr]
    with pytest.raises(Exception, match="served to"):
        services.store.record_vote(served[-1], "a", voter="bob")
    alice.predict(api_name="/vote_a")


def _battles_of(services: ArenaServices, voter: str) -> list[str]:
    with services.store._read() as db:
        return [row[0] for row in db.execute(
            "SELECT id FROM battles WHERE voter = ? AND mode = 'blind' ORDER BY created_at", [voter])]


def test_exports_of_everyones_votes_and_discovery_are_for_admins(team: tuple[ArenaServices, str]) -> None:
    _, url = team
    bob, ada = login(url, "bob"), login(url, "ada")
    for fmt in ("csv", "jsonl", "fastchat"):
        with pytest.raises(Exception, match="admins only"):
            bob.predict(api_name=f"/export_{fmt}")
    with pytest.raises(Exception, match="admins only"):
        bob.predict(host="http://10.9.9.9:11434", api_name="/discover_ollama")
    assert Path(bob.predict(api_name="/export_leaderboard-csv")["path"]).read_text().startswith("rank")
    assert Path(ada.predict(api_name="/export_csv")["path"]).exists()


def test_a_voter_sees_everyones_leaderboard_and_their_own_but_not_another_voters(
    team: tuple[ArenaServices, str],
) -> None:
    _, url = team
    alice, bob, ada = login(url, "alice"), login(url, "bob"), login(url, "ada")
    battle(alice)
    alice.predict(api_name="/vote_b")
    voters = bob.predict(category="all", mode="blind", voter="everyone", api_name="/leaderboard")[VOTERS]
    assert all(row[0] == "bob" for row in voters["data"])  # only their own row
    with pytest.raises(Exception, match="admins only"):
        bob.predict(category="all", mode="blind", voter="alice", api_name="/leaderboard")
    _, table, *_ = alice.predict(category="all", mode="blind", voter="alice", api_name="/leaderboard")
    assert table["data"]
    voters = ada.predict(category="all", mode="blind", voter="everyone", api_name="/leaderboard")[VOTERS]
    assert "alice" in {row[0] for row in voters["data"]}


def test_one_generation_at_a_time_per_user_and_others_are_not_held_back(team: tuple[ArenaServices, str]) -> None:
    services, url = team
    first, second, bob = login(url, "carol"), login(url, "carol"), login(url, "bob")
    job = first.submit(prompt={"text": "A long one", "files": []}, max_new_tokens=600, api_name="/battle")
    for _ in job:
        break  # streaming: carol's one slot is taken
    battles_before = len(_battles_of(services, "carol"))
    with pytest.raises(Exception, match="already have 1"):
        second.predict(variants=["demo:e2b"], prompt={"text": "and this?", "files": []}, **SHORT,
                       api_name="/compare")
    assert battle(bob)["can_vote"] is True  # another user goes on meanwhile
    bob.predict(api_name="/new_round")
    job.cancel()
    with contextlib.suppress(Exception):
        job.result()
    assert len(_battles_of(services, "carol")) == battles_before


def test_votes_a_minute_are_capped_per_user_and_a_refused_vote_loses_nothing(team: tuple[ArenaServices, str]) -> None:
    services, url = team
    dave = login(url, "dave")
    for _ in range(MAX_VOTES_PER_MINUTE):
        battle(dave)
        dave.predict(api_name="/vote_tie")
    battle(dave)
    before = stored_votes(services)
    with pytest.raises(Exception, match=f"at most {MAX_VOTES_PER_MINUTE}.*try again in"):
        dave.predict(api_name="/vote_a")
    assert stored_votes(services) == before
    pending = _battles_of(services, "dave")[-1]
    assert services.store.battle(pending).phase == "finished"  # type: ignore[union-attr]  # still votable


def test_serve_with_a_users_file_logs_people_in_on_a_network_address(tmp_path: Path, demo_cache: Path) -> None:
    """`python app.py serve --users FILE` as a team runs it: the login, the logged-in voter, a
    limit flag and a role, end to end."""
    users = tmp_path / "users.toml"
    add_user(users, "ann", "ann-password", "admin")
    add_user(users, "bo", "bo-password", "voter")
    port, log = free_port(), tmp_path / "serve.log"
    process = start_app(["serve", "--host", "0.0.0.0", "--port", str(port), "--users", str(users),
                         "--variants", "demo:e2b", "demo:e4b", "--max-votes-per-minute", "1"],
                        app_env(tmp_path, demo_cache), log)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_until_served(url, process, log)
        with pytest.raises(urllib.error.HTTPError, match="401"):
            urllib.request.urlopen(f"{url}config", timeout=30)
        bo = Client(url, auth=("bo", "bo-password"), download_files=False, verbose=False)
        for _ in range(2):
            assert battle(bo)["can_vote"] is True
        bo.predict(api_name="/vote_a")
        with pytest.raises(Exception, match="at most 1"):
            bo.predict(api_name="/vote_b")
        with pytest.raises(Exception, match="admins only"):
            bo.predict(api_name="/export_csv")
        with sqlite3.connect(tmp_path / "home" / "arena.db") as db:
            assert db.execute("SELECT b.voter, v.voter FROM votes v JOIN battles b ON b.id = v.battle_id").fetchall() \
                == [("bo", "bo")]
    finally:
        kill_group(process)


def test_loading_and_unloading_variants_is_for_admins(team: tuple[ArenaServices, str]) -> None:
    services, url = team
    bob, ada = login(url, "bob"), login(url, "ada")
    for endpoint in ("/unload_variant", "/load_variant"):
        with pytest.raises(Exception, match="admins only"):
            bob.predict(name="demo:e4b", api_name=endpoint)
    assert services.variant("demo:e4b").available
    try:
        assert ada.predict(name="demo:e4b", api_name="/unload_variant") == "demo:e4b: unloaded"
        assert services.variant("demo:e4b").state.phase == "unloaded"
    finally:  # the other tests battle on both variants
        status = ada.predict(name="demo:e4b", api_name="/load_variant")
    assert status.startswith("demo:e4b: ready") and services.variant("demo:e4b").available


def test_the_workers_live_memory_is_shown_to_admins_only(team: tuple[ArenaServices, str]) -> None:
    """Refreshed every second, a worker's memory would show a voter which two variants answer
    their blind battle: the Variants table shows it to admins alone."""
    from types import SimpleNamespace

    services, _ = team
    app = ArenaApp(services, Access(ROLES.get))  # the same services; not launched

    def memory_column(name: str) -> list[str]:
        rows = app.variant_status(SimpleNamespace(username=name, client=None))[app.variants.table]
        return [row[7] for row in rows]

    assert all(cell.endswith("B") for cell in memory_column("ada"))  # e.g. "757.0 MiB"
    assert memory_column("bob") == ["-", "-"]

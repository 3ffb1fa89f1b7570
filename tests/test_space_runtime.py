"""The app as a Hugging Face Space: the bundle served as Spaces run it, sign-in with Hugging Face
(who votes, under which name, and who may not), the login button on the page, and ZeroGPU.

Gradio's OAuth routes need the Hub (off a Space they mock a login from the machine's HF token), so
the sign-in is tested where it becomes a voter: `space_caller` and the handlers, called with a
`gr.OAuthProfile` built by hand, as Gradio builds it from the Space's OpenID userinfo.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.util
import inspect
import json
import os
import signal
import sqlite3
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gradio as gr
import psutil
import pytest
from gradio_client import Client

from arena.lineup import create_lineup, load_all
from arena.settings import Settings
from backends.base import Request
from backends.hf.backend import HFBackend
from backends.registry import default_registry
from backends.variant_file import SpaceSettings, read_space_table
from cli import main
from cli.serve import SpaceRuntime, bind_address, check_exposure, on_zero_gpu, variant_file_of
from tests.support.app_process import app_env, is_worker, kill_group, wait_for_log, wait_until_served
from tests.support.scripted import ScriptedBackend, tokens
from tests.support.ui import drain, free_port, scripted_services
from tests.test_ui_server import documented_endpoints
from ui.access import ANONYMOUS, Access, AccessDenied, Caller, space_caller
from ui.app import ArenaApp, Session

NOWHERE = SimpleNamespace(client=SimpleNamespace(host="10.0.0.9"), headers={"x-forwarded-for": "203.0.113.5, 10.0.0.1"},
                          username=None)


def profile(username: str, *orgs: str) -> gr.OAuthProfile:
    """What Gradio hands a handler for a signed-in visitor: the OpenID userinfo of the Space's
    OAuth app (`orgs` lists the organizations, each by its handle in `preferred_username`)."""
    return gr.OAuthProfile({
        "sub": "6123", "name": username.title(), "preferred_username": username,
        "profile": f"https://huggingface.co/{username}", "picture": "https://example.org/p.png",
        "orgs": [{"sub": f"o{i}", "name": f"The {org} team", "preferred_username": org} for i, org in enumerate(orgs)],
    })


@pytest.fixture
def oauth_app(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Space with an OAuth app (`hf_oauth: true`), as Gradio reads it: a page with the sign-in
    button gets Gradio's login routes, which need its oauth extra and the app's settings."""
    import gradio.oauth

    missing = [name for name in ("authlib", "itsdangerous") if importlib.util.find_spec(name) is None]
    if missing:  # not a skip: the Space's sign-in cannot be built without them
        pytest.fail(f"{', '.join(missing)} missing: Sign in with Hugging Face needs gradio[oauth] installed")
    monkeypatch.setenv("SYSTEM", "spaces")
    monkeypatch.setenv("SPACE_ID", "tests/gemma-arena")
    for name, value in {"OAUTH_CLIENT_ID": "client", "OAUTH_CLIENT_SECRET": "secret",
                        "OAUTH_SCOPES": "openid profile", "OPENID_PROVIDER_URL": "https://huggingface.co"}.items():
        monkeypatch.setattr(gradio.oauth, name, value)  # read by Gradio when it is imported


# --- (a) the bundle, served as a Space serves it ---------------------------------------------------


@pytest.fixture
def space_env(tmp_path: Path, demo_cache: Path) -> dict[str, str]:
    """A Space's environment as Spaces set it (no OAuth app, no ZeroGPU), on a free loopback port."""
    env = {k: v for k, v in app_env(tmp_path, demo_cache).items()
           if not k.startswith(("OAUTH_", "OPENID_", "SPACES_", "GRADIO_SERVER_"))}
    return env | {"SYSTEM": "spaces", "SPACE_ID": "tests/gemma-arena", "SPACE_HOST": "tests-gemma-arena.hf.space",
                  "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(free_port())}


def test_the_bundled_space_starts_as_spaces_run_it_and_answers_a_comparison(
    tmp_path: Path, space_env: dict[str, str],
) -> None:
    """`python app.py` with no arguments in the bundle's folder, where the Space says to bind:
    the bundle's variants.toml is the lineup, and an API client compares through it."""
    import spaces  # the Space's runtime has it; so must this test

    assert hasattr(spaces, "GPU")
    bundle = tmp_path / "space"
    assert main(["space-bundle", "--out", str(bundle), "--variants", "demo:e2b", "demo:31b"]) == 0
    assert (bundle / "variants.toml").is_file()
    log = tmp_path / "space.log"
    process = start_space(bundle, space_env, log)
    try:
        url = f"http://127.0.0.1:{space_env['GRADIO_SERVER_PORT']}/"
        wait_until_served(url, process, log)
        wait_for_log(log, ["demo:e2b: ready", "demo:31b: ready"], process)
        client = Client(url, download_files=False, verbose=False)
        outputs = client.predict(variants=["demo:e2b", "demo:31b"], prompt={"text": "Hello", "files": []},
                                 max_new_tokens=8, api_name="/compare")
        result = outputs[-1]
        assert [(r["variant"], r["error"]) for r in result["results"]] == [("demo:e2b", None), ("demo:31b", None)]
        assert all(r["text"] and r["stats"]["output_tokens"] == 8 for r in result["results"])
        text = log.read_text(errors="replace")
        assert "Hugging Face Space tests/gemma-arena" in text
        assert "no sign-in on this Space" in text  # no OAuth app here: everyone votes as anonymous
        assert "demo:e4b" not in text  # the bundle's two variants, not the default four
        # the vote of someone not signed in is recorded under the anonymous name
        assert "demo:e2b" in client.predict(best="demo:e2b", api_name="/vote_best")
        with contextlib.closing(sqlite3.connect(Path(space_env["GEMMA_ARENA_HOME"]) / "arena.db")) as db:
            assert db.execute("SELECT voter FROM votes").fetchall() == [(ANONYMOUS,)]
    finally:
        kill_group(process)


def start_space(bundle: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`python app.py` in the bundle's folder, as a Space runs it; its URL is on env's port."""
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "app.py"], cwd=bundle, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def test_a_space_keeps_its_votes_in_its_dataset_across_a_restart(tmp_path: Path, space_env: dict[str, str]) -> None:
    """With `[space] dataset`, serve restores the votes from the dataset before serving, pushes new
    ones there, and pushes what is left when the Space is stopped (SIGTERM): a Space restarted on
    an empty disk has them back."""
    from tests.servers.fake_hub import FakeHub

    bundle = tmp_path / "space"
    assert main(["space-bundle", "--out", str(bundle), "--variants", "demo:e2b", "demo:31b", "--dataset",
                 "arena-tester/votes"]) == 0
    with FakeHub() as hub:
        env = space_env | {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": hub.url, "HF_TOKEN": hub.token}
        log = tmp_path / "first.log"
        process = start_space(bundle, env, log)
        try:
            url = f"http://127.0.0.1:{env['GRADIO_SERVER_PORT']}/"
            wait_until_served(url, process, log)
            wait_for_log(log, ["demo:e2b: ready", "demo:31b: ready"], process)
            client = Client(url, download_files=False, verbose=False)
            client.predict(prompt={"text": "Hello", "files": []}, max_new_tokens=4, api_name="/battle")
            client.predict(api_name="/vote_a")
            process.send_signal(signal.SIGTERM)  # as Spaces stop it: the last votes are pushed first
            assert process.wait(60) == 0, log.read_text(errors="replace")
        finally:
            kill_group(process)
        journal = b"".join(data for path, data in hub.files("arena-tester/votes").items() if path.endswith(".jsonl"))
        assert b'"vote"' in journal and ANONYMOUS.encode() in journal

        restarted = env | {"GEMMA_ARENA_HOME": str(tmp_path / "fresh-disk"), "GRADIO_SERVER_PORT": str(free_port())}
        log = tmp_path / "second.log"
        process = start_space(bundle, restarted, log)
        try:
            wait_until_served(f"http://127.0.0.1:{restarted['GRADIO_SERVER_PORT']}/", process, log)
            assert "votes restored from dataset arena-tester/votes" in log.read_text(errors="replace")
            with contextlib.closing(sqlite3.connect(tmp_path / "fresh-disk" / "arena.db")) as db:
                assert db.execute("SELECT voter, outcome FROM votes").fetchall() == [(ANONYMOUS, "a")]
        finally:
            kill_group(process)
    # every call the sync made is one the fake implements (huggingface_hub also asks, for its
    # user agent, which AI agents it knows: not the votes' business)
    assert [request for request in hub.unknown if not request[1].startswith("/api/agent-harnesses")] == []


def test_on_a_space_serve_binds_where_spaces_expect_and_reads_the_bundled_file(tmp_path: Path) -> None:
    space = SpaceRuntime("owner/arena", sign_in=True, zero_gpu=False)
    assert bind_address(None, None, space, {}) == ("0.0.0.0", 7860)
    assert bind_address(None, None, space, {"GRADIO_SERVER_NAME": "::", "GRADIO_SERVER_PORT": "7861"}) == ("::", 7861)
    assert bind_address("127.0.0.1", 9000, space, {"GRADIO_SERVER_PORT": "7861"}) == ("127.0.0.1", 9000)
    assert bind_address(None, None, None, {"GRADIO_SERVER_NAME": "0.0.0.0"}) == ("127.0.0.1", 7860)  # not a Space
    (tmp_path / "variants.toml").write_text('[[variants]]\nspec = "demo:e2b"\n')

    def args(**given: Any) -> SimpleNamespace:
        return SimpleNamespace(**({"config": None, "variants": None} | given))

    assert variant_file_of(args(), space, tmp_path) == str(tmp_path / "variants.toml")
    assert variant_file_of(args(variants=["demo:31b"]), space, tmp_path) is None
    assert variant_file_of(args(config="other.toml"), space, tmp_path) == "other.toml"
    assert variant_file_of(args(), None, tmp_path) is None  # a server of your own ignores it
    assert variant_file_of(args(), space, tmp_path / "empty") is None  # no bundle: the demo variants


def test_a_space_needs_no_users_file_and_takes_none() -> None:
    check_exposure("0.0.0.0", None, False, space=True)
    with pytest.raises(Exception, match="sign in with Hugging Face"):
        check_exposure("0.0.0.0", "users.toml", False, space=True)
    with pytest.raises(Exception, match=r"--users FILE .* or --no-auth"):  # off a Space, unchanged
        check_exposure("0.0.0.0", None, False)


# --- (b) who votes: a Hugging Face sign-in and the [space] table -----------------------------------


def test_the_signed_in_user_is_the_voter() -> None:
    assert space_caller(profile("ada"), SpaceSettings(), "203.0.113.5") == Caller("ada", False, "hf:ada")
    access = Access(space=SpaceSettings())
    caller = access.caller(NOWHERE, profile("Grace"))
    assert caller == Caller("Grace", False, "hf:grace")
    access.require_vote(caller)


def test_without_sign_in_votes_are_anonymous_unless_the_space_requires_it() -> None:
    anonymous = Access(space=SpaceSettings()).caller(NOWHERE, None)
    # counted by the client the Space's proxy names, not by the proxy's own address
    assert anonymous == Caller(ANONYMOUS, False, "address:203.0.113.5", shared=True)  # a name many share
    Access(space=SpaceSettings()).require_vote(anonymous)
    strict = Access(space=SpaceSettings(require_sign_in=True))
    refused = strict.caller(NOWHERE, None)
    assert refused.name == ANONYMOUS and not refused.admin
    with pytest.raises(AccessDenied, match=r"sign in with Hugging Face to vote \(the button at the top"):
        strict.require_vote(refused)
    strict.require_vote(strict.caller(NOWHERE, profile("ada")))


def test_only_members_of_the_organization_may_vote() -> None:
    team = SpaceSettings(organization="gemma-lab")
    access = Access(space=team)
    access.require_vote(access.caller(NOWHERE, profile("ada", "other-org", "Gemma-Lab")))
    outsider = access.caller(NOWHERE, profile("bo", "other-org"))
    assert outsider.name == "bo"  # may still compare and battle, under their own name
    with pytest.raises(AccessDenied, match="only members of the Hugging Face organization gemma-lab may vote"):
        access.require_vote(outsider)
    # an organization whose display name is the handle does not count: anyone can name theirs so
    impostor = gr.OAuthProfile({**profile("cy"), "orgs": [{"name": "gemma-lab", "preferred_username": "cy-org"}]})
    with pytest.raises(AccessDenied, match="gemma-lab"):
        access.require_vote(access.caller(NOWHERE, impostor))
    with pytest.raises(AccessDenied, match="sign in with Hugging Face"):
        access.require_vote(access.caller(NOWHERE, None))


def test_admins_are_named_in_the_variant_file(tmp_path: Path) -> None:
    config = tmp_path / "variants.toml"
    config.write_text('[[variants]]\nspec = "demo:e2b"\n\n[space]\nadmins = ["Ada"]\nrequire_sign_in = true\n'
                      'dataset = "gemma-lab/votes"\nsync_every_minutes = 5\n')
    settings = read_space_table(config)
    assert settings == SpaceSettings(require_sign_in=True, admins=("Ada",), dataset="gemma-lab/votes",
                                     sync_every_minutes=5.0)
    access = Access(space=settings)
    access.require_admin(access.caller(NOWHERE, profile("ada")), "Exporting")
    with pytest.raises(AccessDenied, match="Exporting is for admins only: ask an admin of this Space"):
        access.require_admin(access.caller(NOWHERE, profile("bo")), "Exporting")
    with pytest.raises(AccessDenied, match="admins only"):
        access.require_admin(access.caller(NOWHERE, None), "Exporting")


@pytest.mark.parametrize(("table", "message"), [
    ("requires_sign_in = true", r"unknown key\(s\) requires_sign_in; known: require_sign_in, organization"),
    ('require_sign_in = "yes"', "require_sign_in must be true or false"),
    ('admins = "ada"', "admins must be a list"),
    ('organization = "gemma lab"', "is not a Hugging Face name"),
    ('dataset = "votes"', 'dataset must name a dataset repo as "owner/name"'),
    ("sync_every_minutes = 0", "sync_every_minutes must be a number of minutes above 0"),
])
def test_a_bad_space_table_is_refused_with_what_to_write(tmp_path: Path, table: str, message: str) -> None:
    config = tmp_path / "variants.toml"
    config.write_text(f'[[variants]]\nspec = "demo:e2b"\n\n[space]\n{table}\n')
    with pytest.raises(Exception, match=message) as refused:
        read_space_table(config)
    assert str(config) in str(refused.value)


@pytest.mark.usefixtures("oauth_app")
def test_the_handlers_record_the_signed_in_voter_and_refuse_the_anonymous_one(tmp_path: Path) -> None:
    """The handlers get the profile Gradio injects: a comparison and its vote are recorded under
    the Hugging Face username; on a Space that requires sign-in, an anonymous vote is refused."""
    services = scripted_services({n: ScriptedBackend(n, tokens(3, 0.0, n)) for n in ("one", "two")},
                                 tmp_path / "arena.db")
    app = ArenaApp(services, Access(space=SpaceSettings(require_sign_in=True)), sign_in=True)
    names = ["scripted:one", "scripted:two"]
    try:
        ada = Session()
        drain(app.run_compare(ada, names, {"text": "hi", "files": []}, request=NOWHERE, profile=profile("ada")))
        app.vote_best(ada, "scripted:one", request=NOWHERE, profile=profile("ada"))
        anonymous = Session()
        drain(app.run_compare(anonymous, names, {"text": "hi", "files": []}, request=NOWHERE, profile=None))
        with pytest.raises(gr.Error, match="sign in with Hugging Face to vote"):
            app.vote_best(anonymous, "scripted:one", request=NOWHERE, profile=None)
        with services.store._read() as db:
            rows = db.execute("SELECT b.voter, v.voter FROM battles b LEFT JOIN votes v ON v.battle_id = b.id "
                              "ORDER BY b.created_at").fetchall()
        assert [tuple(row) for row in rows] == [("ada", "ada"), (ANONYMOUS, None)]
        status = app.caller_view(NOWHERE, None)[app.sign_in.status]  # type: ignore[union-attr]
        assert "Not signed in" in status and "sign in with Hugging Face to vote" in status
        assert "Signed in as **ada**" in app.caller_view(NOWHERE, profile("ada"))[app.sign_in.status]  # type: ignore[union-attr]
    finally:
        services.close()


# --- (c) the page of a Space carries the sign-in button ---------------------------------------------


@pytest.mark.usefixtures("oauth_app")
# Closing a launched Gradio app with Gradio's OAuth routes leaves an event loop whose __del__ fails
# (a plain gr.Blocks with a gr.LoginButton does the same): Gradio's, not the arena's.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_the_space_page_has_the_sign_in_button_and_the_same_api(tmp_path: Path) -> None:
    services = scripted_services({"one": ScriptedBackend("one", tokens(1, 0.0))}, tmp_path / "arena.db")
    try:
        space = ArenaApp(services, Access(space=SpaceSettings()), sign_in=True)
        local = ArenaApp(services, Access())
        space.blocks.queue()
        space.blocks.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
        try:  # the page's config, as the browser gets it
            with urllib.request.urlopen(f"{space.blocks.local_url}config", timeout=30) as response:
                config: dict[str, Any] = json.load(response)
        finally:
            space.blocks.close()
        buttons = [c for c in config["components"] if c["props"].get("variant") == "huggingface"]
        assert [(b["props"]["value"], b["props"]["elem_id"]) for b in buttons] == [
            ("Sign in with Hugging Face", "sign-in")]
        assert not [c for c in local.blocks.get_config_file()["components"] if c["props"].get("elem_id") == "sign-in"]
        assert space.blocks.expects_oauth  # a gr.LoginButton: Gradio serves /login/huggingface on the Space
        # its check of who is signed in runs when the page loads, with no spinner
        checks = [d for d in config["dependencies"] if d["outputs"] == [buttons[0]["id"]]]
        assert len(checks) == 1 and checks[0]["show_progress"] == "hidden"

        def endpoints(app: ArenaApp) -> dict[str, list[str]]:
            named = app.blocks.get_api_info()["named_endpoints"]
            return {name: [p["parameter_name"] for p in info["parameters"]] for name, info in named.items()}

        # the profile parameter is Gradio's to fill: no endpoint gains or loses a parameter
        assert endpoints(space) == endpoints(local) and set(endpoints(local)) == documented_endpoints()
    finally:
        services.close()
        gc.collect()  # that event loop goes now, under this test's filter, not in the next test


# --- (d) ZeroGPU: an in-process variant generates through a @spaces.GPU sync generator ---------------


@pytest.fixture
def gpu_spy(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[Any]]]:
    """`spaces.GPU` as it is here (no ZeroGPU: it returns the function as it is), watched: what it
    decorated, with which duration, and each call of the decorated function."""
    import spaces

    real = spaces.GPU
    seen: dict[str, list[Any]] = {"decorated": [], "calls": []}

    def spy(task: Any = None, *, duration: Any = None, size: Any = None) -> Any:
        def decorate(function: Any) -> Any:
            seen["decorated"].append((duration, inspect.isgeneratorfunction(function)))
            decorated = real(duration=duration)(function)
            assert decorated is function  # no ZeroGPU here: the real decorator changes nothing

            def call(*args: Any, **kwargs: Any) -> Any:
                seen["calls"].append(args)
                return decorated(*args, **kwargs)

            return call

        return decorate

    monkeypatch.setattr(spaces, "GPU", spy)
    yield seen


def test_a_zero_gpu_variant_streams_in_process_through_the_decorated_generator(
    settings: Settings, gpu_spy: dict[str, list[Any]],
) -> None:
    registry = default_registry()
    specs = on_zero_gpu([registry.parse("demo:e2b?gpu_duration=30"), registry.parse("openai:http://x/v1#m")],
                        registry)
    assert specs[0].options["zero_gpu"] == "true" and "zero_gpu" not in specs[1].options  # remote: untouched
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    lineup = create_lineup(specs[:1], registry, settings, cores=2)
    assert gpu_spy["decorated"] == [(30, True)]  # decorated when created, before any launch: a sync generator
    try:
        asyncio.run(load_all(lineup))
        backend = lineup.variants[0].backend
        assert isinstance(backend, HFBackend) and lineup.variants[0].available, lineup.variants[0].error
        started = [p for p in psutil.Process().children(recursive=True) if p.pid not in before and is_worker(p)]
        assert backend.pid is None and started == []  # no worker process: the app's own

        async def answer() -> list[Any]:
            return [chunk async for chunk in backend.stream(Request(prompt="hi", max_new_tokens=48))]

        chunks = asyncio.run(answer())
        assert len(gpu_spy["calls"]) == 1  # one GPU call per answer
        assert sum(1 for c in chunks if c.tokens) >= 2  # streamed in pieces, not one at the end
        assert chunks[-1].usage is not None and chunks[-1].usage.output_tokens == 48
        assert sum(c.tokens for c in chunks) == 48
    finally:
        asyncio.run(lineup.close())


def test_zero_gpu_detection_follows_the_spaces_package(monkeypatch: pytest.MonkeyPatch) -> None:
    from spaces.config import Config

    monkeypatch.setattr(Config, "zero_gpu", False)
    assert SpaceRuntime.detect({"SPACE_ID": "o/s"}) == SpaceRuntime("o/s", sign_in=False, zero_gpu=False)
    monkeypatch.setattr(Config, "zero_gpu", True)
    on_space = {"SPACE_ID": "o/s", "SYSTEM": "spaces", "OAUTH_CLIENT_ID": "x"}
    assert SpaceRuntime.detect(on_space) == SpaceRuntime("o/s", sign_in=True, zero_gpu=True)
    assert SpaceRuntime.detect({}) is None
    assert os.environ.get("SPACE_ID") is None  # nothing here leaked into the tests' own environment

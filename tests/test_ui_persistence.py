"""Votes survive a restart: the real `python app.py` serves, takes a blind-battle vote, is stopped
with Ctrl-C, and served again on the same database, where the leaderboard and the export still
hold the vote; so does `python app.py leaderboard --json`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from gradio_client import Client

from tests.support.ui import free_port

REPO = Path(__file__).resolve().parents[1]
DEMO = ["demo:e2b", "demo:31b"]
SETTINGS = ["", 0.0, 1.0, 12, None, False, ""]  # system, temperature, top-p, max tokens, seed, thinking, tools
START_TIMEOUT_S = 180.0  # a first run also builds the demo variants' files

pytestmark = pytest.mark.timeout(600)


def app_env(tmp_path: Path, demo_cache: Path) -> dict[str, str]:
    """The environment of the app under test: its own data folder, the shared demo cache, offline."""
    return os.environ | {
        "GEMMA_ARENA_HOME": str(tmp_path / "home"),
        "GEMMA_ARENA_CACHE": str(demo_cache),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    }


def wait_until_served(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Poll the page until it answers 200; fail with the server's log if it exits or never answers."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    pytest.fail(f"no page at {url} after {START_TIMEOUT_S:.0f} s:\n{log.read_text(errors='replace')}")


def stop(process: subprocess.Popen[bytes]) -> int:
    """Ctrl-C, as a person stops the server; kill its process group only if that does not work."""
    process.send_signal(signal.SIGINT)
    try:
        return process.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the group this test started, workers included
        process.wait(10)
        pytest.fail("the server did not stop on Ctrl-C within 60 s")


@contextmanager
def serve(db: Path, env: dict[str, str], log: Path) -> Iterator[str]:
    """`python app.py --variants demo:e2b demo:31b --db DB --port P` until the block ends; its URL."""
    port = free_port()
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "app.py", "--variants", *DEMO, "--db", str(db), "--port", str(port)],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_until_served(url, process, log)
        yield url
        code = stop(process)
        assert code == 0, f"the server exited with {code} on Ctrl-C:\n{log.read_text(errors='replace')}"
    finally:
        if process.poll() is None:
            stop(process)
        _reap(process)


def _reap(process: subprocess.Popen[bytes]) -> None:
    """Kill what is left of the server's process group once the server has exited (a model worker
    that outlived it); nothing else is touched."""
    if process.poll() is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def client(url: str) -> Client:
    return Client(url, download_files=False, verbose=False)


def votes_by_variant(table: dict[str, Any]) -> dict[str, int]:
    """The leaderboard table's votes column by variant (names without " (preliminary)")."""
    column = table["headers"].index("votes")
    return {str(row[1]).split(" (")[0]: int(row[column]) for row in table["data"]}


def test_a_vote_survives_a_restart_and_is_in_the_leaderboard_export_and_cli(
    tmp_path: Path, demo_cache: Path
) -> None:
    db = tmp_path / "votes" / "arena.db"
    env = app_env(tmp_path, demo_cache)
    log = tmp_path / "server.log"

    with serve(db, env, log) as url:
        c = client(url)
        assert votes_by_variant(c.predict("all", api_name="/leaderboard")[1]) == {}  # a fresh database
        c.predict({"text": "Tell me a story", "files": []}, *SETTINGS, api_name="/battle")
        reveal = str(c.predict(api_name="/vote_a"))
    winner = re.search(r"Model A\*\* was \*\*(.+?)\*\*", reveal)
    assert winner, reveal
    model_a = winner.group(1).replace("\\", "")  # the reveal is Markdown-escaped
    assert model_a in DEMO
    assert db.is_file()

    with serve(db, env, log) as url:
        c = client(url)
        outputs = c.predict("all", api_name="/leaderboard")
        assert votes_by_variant(outputs[1]) == {"demo:e2b": 1, "demo:31b": 1}
        assert "1 pairwise outcome" in outputs[0]
        exported = Path(c.predict(api_name="/export_jsonl")["path"]).read_text().splitlines()
    assert len(exported) == 1
    record = json.loads(exported[0])
    sides = [side["variant"] for side in record["sides"]]  # in position order: Model A first
    assert sides[0] == model_a and sorted(sides) == sorted(DEMO)
    assert all(side["text"] for side in record["sides"]), "the answers were not kept"

    cli = subprocess.run([sys.executable, "app.py", "leaderboard", "--db", str(db), "--json", "--rounds", "50"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=True)
    rows = {row["variant"]: row for row in json.loads(cli.stdout)["rows"]}
    assert {name: rows[name]["votes"] for name in DEMO} == {"demo:e2b": 1, "demo:31b": 1}
    assert rows[model_a]["wins"] == 1

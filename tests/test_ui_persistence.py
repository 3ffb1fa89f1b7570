"""Votes survive a restart: the real `python app.py` serves, takes a blind-battle vote, is stopped
with Ctrl-C, and served again on the same database, where the leaderboard and the export still
hold the vote; so does `python app.py leaderboard --json`.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from gradio_client import Client

from tests.support.app_process import REPO, app_env, kill_group, start_app, wait_until_served
from tests.support.ui import free_port

DEMO = ["demo:e2b", "demo:31b"]
SHORT = {"max_new_tokens": 12}
STOP_WITHIN_S = 10.0

pytestmark = pytest.mark.timeout(600)


def stop(process: subprocess.Popen[bytes]) -> int:
    """Ctrl-C, as a person stops the server (tests/test_serve_shutdown.py covers it in depth)."""
    process.send_signal(signal.SIGINT)
    try:
        return process.wait(STOP_WITHIN_S)
    except subprocess.TimeoutExpired:
        kill_group(process)
        pytest.fail(f"the server did not stop on Ctrl-C within {STOP_WITHIN_S:g} s")


@contextmanager
def serve(db: Path, env: dict[str, str], log: Path) -> Iterator[str]:
    """`python app.py --variants demo:e2b demo:31b --db DB --port P` until the block ends; its URL."""
    port = free_port()
    process = start_app(["--variants", *DEMO, "--db", str(db), "--port", str(port)], env, log)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_until_served(url, process, log)
        yield url
        code = stop(process)
        assert code == 0, f"the server exited with {code} on Ctrl-C:\n{log.read_text(errors='replace')}"
    finally:
        kill_group(process)  # what is left of its process group, if anything


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
        c.predict(prompt={"text": "Tell me a story", "files": []}, **SHORT, api_name="/battle")
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


def test_user_mistakes_log_one_line_each_and_no_traceback(tmp_path: Path, demo_cache: Path) -> None:
    """An empty prompt, no variant picked, a vote with nothing compared: each is refused with its
    reason, and the server's console gets one line for it, not a traceback."""
    log = tmp_path / "server.log"
    with serve(tmp_path / "arena.db", app_env(tmp_path, demo_cache), log) as url:
        c = client(url)
        mistakes = [
            ({"variants": DEMO, "prompt": {"text": "  ", "files": []}, "api_name": "/compare"}, "the prompt is empty"),
            ({"variants": [], "prompt": {"text": "Hi", "files": []}, "api_name": "/compare"}, "pick 1 to 4 variants"),
            ({"best": "demo:e2b", "api_name": "/vote_best"}, "compare some variants first"),
            ({"prompt": {"text": "", "files": []}, "api_name": "/battle"}, "the prompt is empty"),
        ]
        for call, reason in mistakes:
            with pytest.raises(Exception, match=reason):
                c.predict(**call)
    text = log.read_text(errors="replace")
    assert "Traceback" not in text, text
    refused = [line for line in text.splitlines() if "refused" in line]
    assert len(refused) == len(mistakes), text
    for (_, reason), line in zip(mistakes, refused, strict=True):
        assert reason in line

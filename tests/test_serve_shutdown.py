"""Stopping the real `python app.py`: Ctrl-C (or SIGTERM) ends the server and every variant's
worker within 10 s, also while the variants are generating a long answer, or still loading.

Ctrl-C in a terminal reaches the whole foreground process group, workers included, so the test
sends SIGINT to the group; `kill` and service managers send SIGTERM to the server alone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import pytest
from gradio_client import Client

from tests.support.app_process import (
    app_env,
    children_of,
    is_worker,
    kill_group,
    start_app,
    still_running,
    wait_for_log,
    wait_until_served,
)
from tests.support.ui import free_port

DEMO = ["demo:e2b", "demo:31b"]
STOP_WITHIN_S = 10.0
#: the most new tokens the form takes: a minute or more of generation here
LONG_ANSWER = {"max_new_tokens": 4096}

pytestmark = pytest.mark.timeout(600)


def start_generating(url: str) -> Client:
    """Start a long comparison of both variants through the API; return once both are streaming."""
    client = Client(url, download_files=False, verbose=False)
    job = client.submit(variants=DEMO, prompt={"text": "Tell me everything", "files": []}, **LONG_ANSWER,
                        api_name="/compare")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert not job.done(), f"the comparison ended before the server was stopped: {job.outputs()[-1:]}"
        updates = job.outputs()
        answers = updates[-1][0::2] if updates else []  # answer and thinking of each panel, in turn
        if len(answers) >= 2 and all(answers[:2]):
            return client
        time.sleep(0.1)
    pytest.fail("the variants never started answering")


@pytest.mark.parametrize(
    ("how", "during"),
    [("ctrl-c", "generating"), ("ctrl-c", "generating"), ("sigterm", "generating"), ("ctrl-c", "loading")],
    ids=["ctrl-c-generating", "ctrl-c-generating-again", "sigterm-generating", "ctrl-c-loading"],
)
def test_the_server_and_every_worker_stop_within_10_s(
    how: str, during: str, tmp_path: Path, demo_cache: Path
) -> None:
    log = tmp_path / "server.log"
    port = free_port()
    server = start_app(["--variants", *DEMO, "--db", str(tmp_path / "arena.db"), "--port", str(port)],
                       app_env(tmp_path, demo_cache), log)
    client: Client | None = None
    try:
        if during == "generating":
            wait_until_served(f"http://127.0.0.1:{port}/", server, log)
            wait_for_log(log, [f"{name}: ready" for name in DEMO], server)
            client = start_generating(f"http://127.0.0.1:{port}/")
        else:  # as soon as both workers exist: they are importing torch or loading their model
            deadline = time.monotonic() + 120
            while sum(is_worker(p) for p in children_of(server)) < len(DEMO):
                assert server.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")
                time.sleep(0.05)
        processes = children_of(server)
        assert sum(is_worker(p) for p in processes) == len(DEMO)

        if how == "ctrl-c":
            os.killpg(server.pid, signal.SIGINT)
        else:
            server.send_signal(signal.SIGTERM)
        stopped_by = time.monotonic() + STOP_WITHIN_S
        while time.monotonic() < stopped_by and (server.poll() is None or still_running(processes)):
            time.sleep(0.05)

        left = [f"{p.pid} {' '.join(p.cmdline())[:80]}" for p in still_running(processes)]
        assert server.poll() is not None and not left, (
            f"{how} while {during}: after {STOP_WITHIN_S:g} s the server "
            f"{'is still running' if server.poll() is None else 'had exited'}; still running: {left}\n"
            f"{log.read_text(errors='replace')}"
        )
        assert server.returncode == 0, log.read_text(errors="replace")
        if during == "generating":  # a worker still starting up may die of the Ctrl-C itself: harmless
            assert "Traceback" not in log.read_text(errors="replace"), "a worker died of the Ctrl-C"
    finally:
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()
        kill_group(server)

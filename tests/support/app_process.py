"""The real `python app.py` in a subprocess, for tests of what a person running it sees."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 180.0  # a first run also builds the demo variants' files


def app_env(tmp_path: Path, demo_cache: Path) -> dict[str, str]:
    """The environment of the app under test: its own data folder, the shared demo cache, offline."""
    return os.environ | {
        "GEMMA_ARENA_HOME": str(tmp_path / "home"),
        "GEMMA_ARENA_CACHE": str(demo_cache),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    }


def start_app(args: Sequence[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`python app.py ARGS` in a process group of its own (its workers join it), output to `log`."""
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "app.py", *args], cwd=REPO, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


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


def wait_for_log(log: Path, lines: Sequence[str], process: subprocess.Popen[bytes]) -> None:
    """Wait until the server has logged every one of `lines` (e.g. "demo:e2b: ready")."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if all(line in text for line in lines):
            return
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}:\n{text}")
        time.sleep(0.1)
    pytest.fail(f"the server never logged {list(lines)}:\n{log.read_text(errors='replace')}")


def children_of(process: subprocess.Popen[bytes]) -> list[psutil.Process]:
    """Every process the server started, and theirs."""
    return psutil.Process(process.pid).children(recursive=True)


def is_worker(process: psutil.Process) -> bool:
    """A variant's worker: a process started by multiprocessing's spawn (not its resource tracker)."""
    return "--multiprocessing-fork" in _cmdline(process)


def still_running(processes: Sequence[psutil.Process]) -> list[psutil.Process]:
    """Those of `processes` that have not ended (a zombie has ended; only its parent has not reaped it)."""
    alive = []
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            if process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
    return alive


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """Kill whatever is left of the process group the test started, workers included."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(10)


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return []

"""A variant whose worker dies comes back: the real demo workers, killed as the out-of-memory
killer kills them (SIGKILL), and what the Variants tab, the Compare tab and the backend say.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from arena.fanout import fan_out
from arena.lineup import Variant
from arena.measure import Result
from arena.settings import Settings
from backends.base import Request
from backends.hf.backend import HFBackend
from tests.support.ui import demo_services, drain
from ui.app import ArenaApp
from ui.compare import CompareFlow, CompareState, FormOptions
from ui.services import ArenaServices

NAME = "demo:e2b"
WAIT_S = 180.0  # loading a demo worker takes seconds; on a busy machine, many more


@pytest.fixture
def services(settings: Settings) -> Iterator[ArenaServices]:
    """demo:e2b loaded in a real worker process, for one test."""
    services = demo_services([NAME], settings)
    assert services.variant(NAME).available, services.variant(NAME).state
    yield services
    services.close()


def backend_of(variant: Variant) -> HFBackend:
    assert isinstance(variant.backend, HFBackend)
    return variant.backend


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"never {what}"
        time.sleep(0.02)


def variants_tab(app: ArenaApp, name: str) -> tuple[str, str]:
    """The state and message columns of `name`'s row in the Variants tab's table, as its handler
    returns them."""
    rows: list[list[Any]] = app.variant_status()[app.variants.table]
    row = next(row for row in rows if row[0] == name)
    return row[1], row[-1]


def kill_mid_answer(variant: Variant) -> Result:
    """Ask for a long answer and SIGKILL the worker at its first chunk; the failed Result."""
    pid = backend_of(variant).pid
    assert pid is not None

    async def run() -> Result:
        killed = False
        async for update in fan_out([variant], Request(prompt="Tell me a long story", max_new_tokens=4000)):
            if update.chunk is not None and not killed:
                os.kill(pid, signal.SIGKILL)
                killed = True
            if update.result is not None:
                return update.result
        raise AssertionError("no result")

    return asyncio.run(run())


def test_a_killed_worker_fails_its_answer_shows_at_once_and_the_next_comparison_answers(
    services: ArenaServices,
) -> None:
    app = ArenaApp(services)
    variant = services.variant(NAME)
    first_pid = backend_of(variant).pid

    failed = kill_mid_answer(variant)
    assert failed.error_kind == "WorkerDied"
    assert f"{NAME} stopped: its worker process was killed by SIGKILL" in (failed.error or "")
    assert "restarting it (try 1 of 3)" in (failed.error or "")

    # At once, without waiting for anything: every view says so.
    state, message = variants_tab(app, NAME)
    assert state.startswith("restarting (try 1 of 3"), state
    assert "killed by SIGKILL" in message
    assert not variant.available and variant not in services.lineup.available
    note = CompareFlow(services).preview([NAME], None)[0].note
    assert note.startswith("**Restarting") and "try 1 of 3" in note and "SIGKILL" in note

    # The next comparison waits for the restart, then answers from a new worker.
    outcomes = drain(CompareFlow(services).run(CompareState(), [NAME], {"text": "Again?", "files": []},
                                               FormOptions(max_new_tokens=8)))
    result = outcomes[-1].results[0]
    assert result is not None and result.ok, result
    assert result.stats.output_tokens == 8
    assert backend_of(variant).pid not in (None, first_pid)
    state, message = variants_tab(app, NAME)
    assert state == "ready" and message.startswith("restarted after: its worker process was killed by SIGKILL")


def test_tries_are_counted_until_a_worker_stays_up(services: ArenaServices) -> None:
    variant = services.variant(NAME)
    backend = backend_of(variant)
    backend.restart_delays_s = (0.1, 0.2, 0.4)

    def kill_when_ready() -> str:
        wait_until(lambda: variant.available, "ready again")
        os.kill(backend.pid, signal.SIGKILL)  # type: ignore[arg-type]
        wait_until(lambda: variant.state.phase != "ready", "noticed the kill")
        return variant.state.label()

    assert kill_when_ready().startswith("restarting (try 1 of 3")
    assert kill_when_ready().startswith("restarting (try 2 of 3")  # it had not stayed up 60 s
    backend.stable_after_s = 0.0  # now each worker counts as having stayed up
    assert kill_when_ready().startswith("restarting (try 1 of 3")


def test_a_worker_that_keeps_dying_ends_unavailable_with_the_reason(services: ArenaServices) -> None:
    app = ArenaApp(services)
    variant = services.variant(NAME)
    backend = backend_of(variant)
    backend.restart_delays_s = (0.1, 0.2, 0.4)
    killed: list[int] = []

    def kill_each_worker() -> bool:  # as soon as it exists: while it loads, like an OOM at load
        pid = backend.pid
        if pid is not None and pid not in killed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        return variant.state.phase == "unavailable"

    wait_until(kill_each_worker, "gave up")
    assert len(killed) == 4  # the first worker, then one per try
    state, message = variants_tab(app, NAME)
    assert state == "unavailable"
    assert "killed by SIGKILL" in message and "did not stay up after 3 automatic restart(s)" in message
    assert CompareFlow(services).preview([NAME], None)[0].note.startswith("**Unavailable:**")
    outcome = drain(CompareFlow(services).run(CompareState(), [NAME], {"text": "hi", "files": []},
                                              FormOptions(max_new_tokens=4)))[-1]
    result = outcome.results[0]
    assert result is not None and "did not stay up" in (result.error or "")
    for thread in [t for t in threading.enumerate() if t.name == f"restart {NAME}"]:
        thread.join(10)  # the last try's thread ends: nothing is left pending
        assert not thread.is_alive()
    assert backend.pid == killed[-1]


def test_unloading_during_a_restart_pause_starts_no_worker(services: ArenaServices) -> None:
    variant = services.variant(NAME)
    backend = backend_of(variant)
    backend.restart_delays_s = (600.0,)
    pid = backend.pid
    os.kill(pid, signal.SIGKILL)  # type: ignore[arg-type]
    wait_until(lambda: variant.state.phase == "restarting", "noticed the kill")

    services.close_variants()
    for thread in [t for t in threading.enumerate() if t.name == f"restart {NAME}"]:
        thread.join(10)  # woken by the close, not after its pause
        assert not thread.is_alive()
    assert backend.pid == pid  # no new worker was started
    assert variant.state.phase == "unavailable" and variant.state.detail == "it was unloaded"

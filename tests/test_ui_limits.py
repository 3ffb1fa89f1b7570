"""The limits, refused by a real server to a gradio_client script before any work: nothing is
stored, no variant is asked, and the error says what the limit is and what to do. The server is
set up by the same `queue_options` / `launch_options` as `python app.py serve`."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gradio_client import Client, handle_file
from gradio_client.utils import Status

from arena.limits import Limits
from arena.settings import Settings
from cli.serve import launch_options, queue_options
from tests.support.media import write_png, write_wav
from tests.support.ui import demo_services, free_port
from ui.access import Access
from ui.app import ArenaApp
from ui.services import ArenaServices

LIMITS = Limits(max_prompt_chars=1_000, max_upload_bytes=250_000, max_new_tokens_cap=3_000, max_audio_s=5.0,
                max_queue=1)


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory, demo_cache: Path) -> Iterator[tuple[ArenaServices, str]]:
    """demo:e2b (takes audio) and demo:e4b under small limits, one event of a kind at a time."""
    data = tmp_path_factory.mktemp("limited")
    services = demo_services(["demo:e2b", "demo:e4b"], Settings(data, demo_cache, data / "arena.db"))
    services.limits = LIMITS
    app = ArenaApp(services, Access(max_concurrent=5))
    app.blocks.queue(**queue_options(LIMITS, concurrency=1))
    app.blocks.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True,
                      **launch_options(LIMITS, None))
    yield services, app.blocks.local_url
    app.blocks.close()
    services.close()


def client(url: str) -> Client:
    return Client(url, download_files=False, verbose=False)


def stored_battles(services: ArenaServices) -> int:
    with services.store._read() as db:
        return int(db.execute("SELECT COUNT(*) FROM battles").fetchone()[0])


def compare(url: str, text: str, *files: Path, **settings: Any) -> Any:
    message = {"text": text, "files": [handle_file(str(f)) for f in files]}
    return client(url).predict(variants=["demo:e2b", "demo:e4b"], prompt=message, **({"max_new_tokens": 8} | settings),
                               api_name="/compare")


OVER = [
    ("x" * 1_001, {}, r"the prompt has 1,001 characters; .*at most 1,000.*--max-prompt-chars"),
    ("hi", {"max_new_tokens": 3_001}, r"between 1 and 3,000|greater than maximum value 3000"),  # or the slider
    ("hi", {"tools": "/etc/passwd"}, r"JSON"),
]


@pytest.mark.parametrize(("text", "settings", "says"), [
    *OVER,
    ("hi", {"seed": str(2**70)}, r"the seed must be between 0 and 2,147,483,647"),
    ("hi", {"seed": "twelve"}, r"not a whole number"),
])
def test_a_comparison_over_a_limit_is_refused_before_any_work(
    limited: tuple[ArenaServices, str], text: str, settings: dict[str, Any], says: str,
) -> None:
    services, url = limited
    before = stored_battles(services)
    with pytest.raises(Exception, match=says):
        compare(url, text, **settings)
    assert stored_battles(services) == before


@pytest.mark.parametrize(("text", "settings", "says"), OVER)  # a battle takes no seed: it draws its own
def test_a_battle_over_a_limit_is_refused_before_any_work(
    limited: tuple[ArenaServices, str], text: str, settings: dict[str, Any], says: str,
) -> None:
    services, url = limited
    before = stored_battles(services)
    with pytest.raises(Exception, match=says):
        client(url).predict(prompt={"text": text, "files": []}, **({"max_new_tokens": 8} | settings),
                            api_name="/battle")
    assert stored_battles(services) == before


def test_an_audio_clip_longer_than_the_limit_is_refused_never_cut(
    limited: tuple[ArenaServices, str], tmp_path: Path,
) -> None:
    services, url = limited
    before = stored_battles(services)
    clip = write_wav(tmp_path / "six-seconds.wav", seconds=6.0)  # 192 kB: under the upload limit
    with pytest.raises(Exception, match=r"6(\.0)? s.*at most 5"):
        compare(url, "What is said?", clip)
    assert stored_battles(services) == before


def test_a_file_that_is_not_what_its_name_says_is_refused(limited: tuple[ArenaServices, str], tmp_path: Path) -> None:
    services, url = limited
    fake = tmp_path / "photo.png"
    fake.write_text("not an image at all")
    before = stored_battles(services)
    with pytest.raises(Exception, match=r"photo.png is neither an image nor an audio clip that can be read"):
        compare(url, "What is in it?", fake)
    assert stored_battles(services) == before


def test_an_upload_over_the_size_limit_is_refused_by_the_server(
    limited: tuple[ArenaServices, str], tmp_path: Path,
) -> None:
    services, url = limited
    big = write_png(tmp_path / "big.png", width=1200, height=1200)
    big.write_bytes(big.read_bytes() + b"\0" * 300_000)  # over 250 kB whatever the PNG compressed to
    before = stored_battles(services)
    with pytest.raises(Exception, match=r"exceeds the maximum file size of 250000 bytes"):
        compare(url, "Describe it", big)  # gradio_client reads the limit from the server's config
    # a client that does not look is refused by the server itself
    response = httpx.post(f"{url}gradio_api/upload", files={"files": ("big.png", big.read_bytes(), "image/png")},
                          timeout=30)
    assert response.status_code == 413 and "exceeded maximum allowed size of 250000 bytes" in response.text
    assert stored_battles(services) == before


def test_a_full_queue_refuses_the_next_request_at_once(limited: tuple[ArenaServices, str]) -> None:
    """One event of a kind runs at a time and one may wait (`max_queue` 1): a third is refused.
    The first is long (3,000 tokens), and the third is sent only once the server says the first
    is running and the second waits in the queue, so no timing luck is involved."""
    _, url = limited
    long = {"prompt": {"text": "A long story", "files": []}, "max_new_tokens": 3_000, "api_name": "/battle"}
    running = client(url).submit(**long)
    waiting: Any = None
    try:
        _wait_for(lambda: running.status().code in (Status.PROCESSING, Status.ITERATING), "the first to run")
        waiting = client(url).submit(**long)
        _wait_for(lambda: waiting.status().code == Status.IN_QUEUE, "the second to wait in the queue")
        with pytest.raises(Exception, match=r"(?i)queue is full"):
            client(url).predict(**long)
    finally:
        for job in (running, waiting):
            if job is not None:
                job.cancel()
                with contextlib.suppress(Exception):
                    job.result(timeout=60)


def _wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout_s:.0f} s for {what}")
        time.sleep(0.05)

"""Shared fixtures. No test touches the user's files: data and caches live in temp folders.

The demo variants' files are generated once per test session (a few seconds) into one shared
cache folder, like a user's first run would.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from arena.settings import Settings


@pytest.fixture(scope="session")
def demo_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("demo-cache")


@pytest.fixture
def settings(tmp_path: Path, demo_cache: Path) -> Settings:
    """Settings whose data folder is empty and private to the test."""
    return Settings(data_dir=tmp_path / "data", cache_dir=demo_cache, db_path=tmp_path / "data" / "arena.db")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, demo_cache: Path) -> Iterator[None]:
    """Point every default location at temp folders, so code reading the environment is safe too."""
    monkeypatch.setenv("GEMMA_ARENA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GEMMA_ARENA_CACHE", str(demo_cache))
    monkeypatch.delenv("GEMMA_ARENA_DB", raising=False)
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    yield


# --- remote backends (Ollama, OpenAI-compatible): a real llama.cpp server, a fake Ollama -------------


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight GGUF model (llama architecture, byte-level BPE), written once."""
    from tests.servers.llamacpp import missing_requirements
    from tests.servers.tiny_gguf import write_tiny_gguf

    why = missing_requirements()
    if why is not None:
        pytest.fail(why)  # not a skip: CI must run these tests against real server software
    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf")


@pytest.fixture(scope="session")
def llama_server(tiny_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A real llama.cpp server (`python -m llama_cpp.server`) serving the tiny model as `tiny`
    on a free loopback port, for the whole session."""
    from tests.servers.llamacpp import LlamaCppServer

    server = LlamaCppServer(tiny_gguf, log_path=tmp_path_factory.mktemp("llama-log") / "server.log").start()
    yield server
    server.stop()


@pytest.fixture
def fake_ollama() -> Iterator[object]:
    """A loopback server answering as Ollama does, with Gemma 4 E4B and 31B, a text-only model and
    an embedding model pulled (see tests/servers/fake_ollama.py)."""
    from tests.servers.fake_ollama import EMBEDDING, GEMMA4_31B, GEMMA4_E4B, TEXT_ONLY, FakeOllama

    with FakeOllama([GEMMA4_E4B, GEMMA4_31B, TEXT_ONLY, EMBEDDING]) as server:
        yield server


# --- the web UI in a real browser: Debian's Chromium through Playwright ------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """A headless system Chromium for one test module (see tests/support/browser.py). A missing
    Chromium or playwright package fails the test, with how to install it: never a skip.

    Module-scoped on purpose: while Playwright's sync API runs, the main thread has a running event
    loop, so `asyncio.run` fails there; it must be closed before other modules' tests run."""
    from tests.support.browser import chromium, missing_browser

    why = missing_browser()
    if why is not None:
        pytest.fail(why)
    with chromium() as launched:
        yield launched

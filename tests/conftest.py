"""Shared fixtures. No test touches the user's files: data and caches live in temp folders.

The demo variants' files are generated once per test session (a few seconds) into one shared
cache folder, like a user's first run would.
"""

from __future__ import annotations

import asyncio
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


def run(coro):  # noqa: ANN001, ANN201 - tiny helper for async code in sync tests
    return asyncio.run(coro)

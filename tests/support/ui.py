"""Building the web UI's services on scripted backends or demo variants, for tests."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from arena.lineup import create_lineup
from arena.settings import Settings
from backends.registry import Registry, VariantSpec, default_registry
from storage import open_store
from tests.support.scripted import ScriptedBackend, registry_with
from ui.services import ArenaServices


def scripted_services(backends: dict[str, ScriptedBackend], db: Path, seed: int = 0) -> ArenaServices:
    """Services whose variants are `scripted:NAME` backends, already loaded."""
    registry = registry_with(backends)
    return _services(registry, [f"scripted:{n}" for n in backends], db, seed)


def demo_services(specs: list[str], settings: Settings, seed: int = 0) -> ArenaServices:
    return _services(default_registry(), specs, settings.db_path, seed, settings)


def _services(registry: Registry, specs: list[str], db: Path, seed: int,
              settings: Settings | None = None) -> ArenaServices:
    settings = settings or Settings(db.parent, db.parent, db)
    lineup = create_lineup([VariantSpec.parse(s) for s in specs], registry, settings)
    services = ArenaServices(lineup, open_store(db), seed=seed, timeout_s=30)
    services.start_loading()
    services.wait_loaded(120)
    return services


def drain(agen) -> list:  # type: ignore[no-untyped-def]
    async def collect() -> list:  # type: ignore[type-arg]
        return [item async for item in agen]

    return asyncio.run(collect())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])

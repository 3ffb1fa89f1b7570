"""The backends behind bench_ui's streaming runs: timed wrappers, scripted bursts in the app's
own event loop, and `openai:` variants on loopback servers in another process."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arena.lineup import create_lineup
from arena.settings import Settings
from backends.base import Capabilities, Chunk, LoadReport, MemoryReport, ProgressFn, Request, no_progress
from backends.registry import BackendContext, Registry, VariantSpec
from tests.support.scripted import ScriptedBackend, Step

if TYPE_CHECKING:
    from ui.services import ArenaServices

PANELS = 4

class TimedBackend:
    """A backend whose stream is wrapped to record the wall-clock time (`time.time()`) at which
    it yielded its first and its last chunk, for the latest request."""

    def __init__(self, inner: Any) -> None:
        """Wrap `inner`, recording nothing until its first request."""
        self.inner = inner
        self.first_at: float | None = None
        self.last_at: float | None = None
        self.chunks = 0

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def capabilities(self) -> Capabilities:
        return self.inner.capabilities

    async def load(self, progress: ProgressFn = no_progress) -> LoadReport:
        return await self.inner.load(progress)

    async def stream(self, request: Request) -> AsyncIterator[Chunk]:
        self.first_at = self.last_at = None
        self.chunks = 0
        async for chunk in self.inner.stream(request):
            now = time.time()
            if chunk.text:  # a generated token (not a role header or the usage report)
                if self.first_at is None:
                    self.first_at = now
                self.last_at = now
                self.chunks += 1
            yield chunk

    async def memory(self) -> MemoryReport:
        return await self.inner.memory()

    async def close(self) -> None:
        await self.inner.close()


def burst(tokens: int, delay_s: float = 0.0) -> tuple[list[Step], str]:
    """`tokens` one-token chunks `delay_s` apart (0: as fast as the event loop runs them), and the
    answer they make."""
    texts = [f"{i} " for i in range(tokens)]
    return [Step(delay_s, Chunk(text=t, tokens=1)) for t in texts], "".join(texts)


def bench_services(tokens: int, folder: Path, delay_s: float = 0.0) -> tuple[ArenaServices, list[TimedBackend],
                                                                            list[str]]:
    """Services on PANELS timed scripted backends (`bench:p0` ...), loaded; and each one's answer."""
    backends, finals = [], []
    for i in range(PANELS):
        steps, final = burst(tokens, delay_s)
        backends.append(TimedBackend(ScriptedBackend(f"p{i}", steps, Capabilities(frozenset({"text"})))))
        finals.append(final)
    by_target = {b.name: b for b in backends}
    return _loaded_services(folder, lambda spec, context: by_target[spec.target]), backends, finals


def _loaded_services(folder: Path, create: Callable[[VariantSpec, BackendContext], TimedBackend]) -> ArenaServices:
    """Services on the PANELS variants `bench:p0` ... that `create` makes, loaded."""
    from storage import open_store
    from ui.services import ArenaServices

    registry = Registry()
    registry.register("bench", create, summary="benchmark", example="bench:p0", local_compute=False)
    db = folder / "bench.db"
    lineup = create_lineup([VariantSpec.parse(f"bench:p{i}") for i in range(PANELS)], registry,
                           Settings(folder, folder, db))
    services = ArenaServices(lineup, open_store(db), timeout_s=60)
    services.start_loading()
    services.wait_loaded(60)
    return services


def serve_openai(tokens: int, ready: Any, stop: Any) -> None:
    """In a separate process: PANELS loopback OpenAI-compatible servers (models p0, p1, ...), each
    streaming `tokens` tokens as fast as it can write them; report their base URLs, wait for `stop`."""
    from tests.servers.fake_openai import FakeOpenAI

    servers = [FakeOpenAI(f"p{i}", tokens=tokens, tokens_per_s=float("inf")) for i in range(PANELS)]
    for server in servers:
        server.__enter__()
    ready.put([server.base_url for server in servers])
    stop.wait()
    for server in servers:
        server.__exit__(None, None, None)


@contextlib.contextmanager
def remote_services(tokens: int, folder: Path) -> Iterator[tuple[ArenaServices, list[TimedBackend], list[str]]]:
    """Services on PANELS `openai:` variants (timed) served by another process as fast as it can."""
    import multiprocessing

    from backends.registry import default_registry

    context = multiprocessing.get_context("spawn")
    ready, stop = context.Queue(), context.Event()
    process = context.Process(target=serve_openai, args=(tokens, ready, stop), daemon=True)
    process.start()
    try:
        urls = ready.get(timeout=120)
        backends: list[TimedBackend] = []

        def create(spec: VariantSpec, backend_context: BackendContext) -> TimedBackend:
            index = int(spec.target.removeprefix("p"))
            inner = default_registry().create(f"openai:{urls[index]}#p{index}", backend_context)
            backends.append(TimedBackend(inner))
            return backends[-1]

        services = _loaded_services(folder, create)
        yield services, backends, ["".join(f" t{i}" for i in range(tokens))] * PANELS
    finally:
        stop.set()
        process.join(10)


# Runs in the page: when each answer box first shows text and when it shows its final text.

"""A scripted backend for tests of the measuring and fan-out logic (not of any model).

It yields chunks on a schedule, or raises, like simonw/llm's per-test scripted models. Tests of
real generation use the real tiny Gemma 4 models instead.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from backends.base import Capabilities, Chunk, LoadReport, MemoryReport, ProgressFn, Request, no_progress
from backends.registry import BackendContext, Registry, VariantSpec


@dataclass(frozen=True)
class Step:
    delay_s: float
    chunk: Chunk | None = None
    error: Exception | None = None


class ScriptedBackend:
    def __init__(self, name: str, steps: Sequence[Step], capabilities: Capabilities | None = None) -> None:
        self._name = name
        self.steps = list(steps)
        self._capabilities = capabilities or Capabilities(frozenset({"text"}), tools=True, thinking=True)
        self.closed = False
        self.cancelled = False
        #: Every request it was sent, in order (a conversation's follow-ups carry their history).
        self.requests: list[Request] = []
        #: When set, loading waits for it (a variant still loading when the page opens).
        self.load_gate: threading.Event | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    async def load(self, progress: ProgressFn = no_progress) -> LoadReport:
        if self.load_gate is not None:
            progress(0.4, "waiting for the test")
            await asyncio.to_thread(self.load_gate.wait)
        progress(1.0, "scripted")
        return LoadReport(load_s=0.0, capabilities=self._capabilities)

    async def stream(self, request: Request) -> AsyncIterator[Chunk]:
        self.requests.append(request)
        try:
            for step in self.steps:
                await asyncio.sleep(step.delay_s)
                if step.error is not None:
                    raise step.error
                if step.chunk is not None:
                    yield step.chunk
        except (asyncio.CancelledError, GeneratorExit):
            self.cancelled = True
            raise

    async def memory(self) -> MemoryReport:
        return MemoryReport(peak_bytes=1000, weights_bytes=100, kind="scripted")

    async def close(self) -> None:
        self.closed = True


def tokens(n: int, every_s: float, text: str = "x") -> list[Step]:
    return [Step(every_s, Chunk(text=text, tokens=1)) for _ in range(n)]


def registry_with(backends: dict[str, ScriptedBackend]) -> Registry:
    """A registry whose `scripted:NAME` specs return the given backends."""
    registry = Registry()

    def create(spec: VariantSpec, context: BackendContext) -> ScriptedBackend:
        return backends[spec.target]

    registry.register("scripted", create, summary="test script", example="scripted:a", local_compute=False)
    return registry

"""Run one request on several variants at once and merge their streams as they arrive.

Each variant is its own asyncio task feeding one queue tagged by variant, so a slow or failing
variant never holds back the others (no round-robin over iterators), and every variant is timed
by the same `arena.measure.measure`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from arena.lineup import Variant
from arena.measure import Result, measure
from backends.base import Chunk, Request


@dataclass(frozen=True)
class Update:
    """One event of a comparison: a chunk from variant `index`, or its final `result`."""

    index: int
    variant: str
    chunk: Chunk | None = None
    result: Result | None = None
    at: float = 0.0  # perf_counter() when it arrived


def per_variant(variants: Sequence[Variant], request: Request | Sequence[Request]) -> list[Request]:
    """One request for each variant: the same one for all, or one each (a conversation, where each
    variant's history holds its own answers), in the order of `variants`."""
    if isinstance(request, Request):
        return [request] * len(variants)
    requests = list(request)
    if len(requests) != len(variants):
        raise ValueError(f"{len(requests)} requests for {len(variants)} variants: give one request, or one each")
    return requests


async def fan_out(
    variants: Sequence[Variant], request: Request | Sequence[Request], *, timeout_s: float | None = 120.0,
    stop: asyncio.Event | None = None,
) -> AsyncIterator[Update]:
    """Yield every variant's chunks as they come, then one final Update with a Result each.
    `request` is sent to every variant, or is a sequence of one request per variant.

    Closing the iterator early cancels every variant still running. Setting `stop` (a Stop
    button) ends them too, but each still yields its Result: the answer so far, cut short, with
    the figures measured until then (error kind Stopped).
    """
    requests = per_variant(variants, request)
    queue: asyncio.Queue[Update] = asyncio.Queue()

    async def run(index: int, variant: Variant, request: Request) -> None:
        if variant.backend is None or not variant.available:
            reason = variant.error or f"{variant.name} is not loaded"
            result = Result(variant=variant.name, error=reason, error_kind="LoadError")
        else:
            result = await measure(
                variant.backend,
                request,
                load_s=variant.load_s,
                weights_bytes=variant.weights_bytes,
                timeout_s=timeout_s,
                name=variant.name,
                stop=stop,
                on_chunk=lambda chunk, at: queue.put_nowait(Update(index, variant.name, chunk=chunk, at=at)),
            )
        queue.put_nowait(Update(index, variant.name, result=result, at=result.ended_at or 0.0))

    tasks = [
        asyncio.create_task(run(i, v, r), name=f"variant {v.name}")
        for i, (v, r) in enumerate(zip(variants, requests, strict=True))
    ]
    watcher = asyncio.ensure_future(_stop_on(stop, tasks)) if stop is not None else None
    try:
        remaining = len(tasks)
        while remaining:
            update = await queue.get()
            if update.result is not None:
                remaining -= 1
            yield update
    finally:
        for task in tasks:
            task.cancel()
        if watcher is not None:
            watcher.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _stop_on(stop: asyncio.Event, tasks: Sequence[asyncio.Task[None]]) -> None:
    """Cancel the variants' tasks once `stop` is set: `measure` turns that into a stopped Result."""
    await stop.wait()
    for task in tasks:
        task.cancel()


async def run_all(
    variants: Sequence[Variant], request: Request | Sequence[Request], *, timeout_s: float | None = 120.0
) -> list[Result]:
    """Run the request (or one request per variant) on every variant concurrently; results in
    the order of `variants`."""
    results: list[Result | None] = [None] * len(variants)
    async for update in fan_out(variants, request, timeout_s=timeout_s):
        if update.result is not None:
            results[update.index] = update.result
    return [r for r in results if r is not None]

"""Turns a fan-out into a throttled series of panel snapshots for the UI.

Gradio sends one message per yield and never merges them; yielding per token costs the server
3-4 ms of CPU and the browser a DOM update each (measured with Gradio 6: the server tops out
at ~260-320 updates/s per event, the browser at ~170-190 DOM updates/s). So pending tokens are
merged here and a snapshot is yielded at most every `interval_s` (50 ms), except that the first
token and every finished variant are shown at once.

One task pumps the fan-out into per-panel buffers as fast as updates arrive, apart from the
snapshots: a backend can yield thousands of chunks a second, and taking them one at a time
between snapshots (a task and a wait per chunk) ended 0.2-0.75 s after 4 backends that yielded
2,000 chunks each at full speed (bench/bench_ui.py's case); the pump ends within ~5 ms of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace

from arena.fanout import Update, fan_out
from arena.lineup import Variant
from arena.measure import Result
from backends.base import Request
from ui.views import PanelView

DEFAULT_INTERVAL_S = 0.05


async def stream_panels(
    variants: Sequence[Variant],
    request: Request,
    panels: Sequence[PanelView],
    *,
    interval_s: float = DEFAULT_INTERVAL_S,
    timeout_s: float | None = 120.0,
) -> AsyncIterator[tuple[list[PanelView], list[Result | None]]]:
    """Yield (panels, results so far) snapshots; the last one has every result."""
    views = [replace(p, status="streaming", answer="", thinking="", stats="", note=p.note) for p in panels]
    answers: list[list[str]] = [[] for _ in views]
    thoughts: list[list[str]] = [[] for _ in views]
    results: list[Result | None] = [None] * len(views)
    # Nothing is yielded before the first token: the caller has already cleared the panels, and
    # every message before it would delay it.
    changed, urgent = asyncio.Event(), asyncio.Event()
    stream = fan_out(variants, request, timeout_s=timeout_s)

    async def pump() -> None:
        try:
            async for update in stream:
                if _apply(update, views, answers, thoughts, results):
                    urgent.set()
                changed.set()
        finally:  # finished or failed: wake the snapshot loop either way
            urgent.set()
            changed.set()

    pumping = asyncio.ensure_future(pump())
    last_yield = float("-inf")
    try:
        while True:
            await changed.wait()
            wait = interval_s - (time.perf_counter() - last_yield)
            if not urgent.is_set() and wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(urgent.wait(), wait)
            if pumping.done() and (error := pumping.exception()) is not None:
                raise error
            changed.clear()
            urgent.clear()
            shown = list(results)
            snapshot = _snapshot(views, answers, thoughts, results)
            last_yield = time.perf_counter()
            yield snapshot, shown
            if all(r is not None for r in shown) or (pumping.done() and not changed.is_set()):
                return
    finally:  # also when closed early (Stop): the fan-out then cancels every variant
        pumping.cancel()
        with contextlib.suppress(BaseException):
            await pumping
        await stream.aclose()  # type: ignore[attr-defined]


def _apply(
    update: Update,
    views: list[PanelView],
    answers: list[list[str]],
    thoughts: list[list[str]],
    results: list[Result | None],
) -> bool:
    """Fold one update in; return True if it must be shown at once (first token, a result)."""
    i = update.index
    if update.result is not None:
        results[i] = update.result
        return True
    chunk = update.chunk
    assert chunk is not None
    first = not answers[i] and not thoughts[i]
    (thoughts[i] if chunk.channel == "thinking" else answers[i]).append(chunk.text)
    if chunk.tool_call is not None:
        answers[i].append(f"\n[tool call] {chunk.tool_call.name}")
    return first


def _snapshot(
    views: list[PanelView],
    answers: list[list[str]],
    thoughts: list[list[str]],
    results: list[Result | None],
) -> list[PanelView]:
    out = []
    for view, answer, thinking, result in zip(views, answers, thoughts, results, strict=True):
        if result is not None:
            out.append(view.with_result(result))
        else:
            out.append(replace(view, answer="".join(answer), thinking="".join(thinking)))
    return out

"""Turns a fan-out into a throttled series of panel snapshots for the UI.

Gradio sends one message per yield and never merges them; yielding per token costs the server
3-4 ms of CPU and the browser a DOM update each (reference/gradio.md). So pending tokens are
merged here and a snapshot is yielded at most every `interval_s` (50 ms), except that the first
token and every finished variant are shown at once.
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
    last_yield = float("-inf")
    dirty = True
    stream = fan_out(variants, request, timeout_s=timeout_s)
    updates = aiter(stream)
    pending: asyncio.Future[Update] | None = None
    try:
        while any(r is None for r in results):
            if pending is None:
                pending = asyncio.ensure_future(anext(updates))
            wait = None if not dirty else max(0.0, interval_s - (time.perf_counter() - last_yield))
            done, _ = await asyncio.wait({pending}, timeout=wait)
            if done:
                update, pending = pending.result(), None
                urgent = _apply(update, views, answers, thoughts, results)
                dirty = True
                if not urgent and time.perf_counter() - last_yield < interval_s:
                    continue
            snapshot = _snapshot(views, answers, thoughts, results)
            last_yield, dirty = time.perf_counter(), False
            yield snapshot, list(results)
    finally:
        if pending is not None:  # closed early (Stop): the fan-out cancels every variant
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
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

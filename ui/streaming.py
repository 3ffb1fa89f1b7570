"""Turns a fan-out into a throttled series of panel snapshots for the UI, at a chosen pace.

Gradio sends one message per yield and never merges them; yielding per token costs the server
3-4 ms of CPU and the browser a DOM update each (measured with Gradio 6: the server tops out
at ~260-320 updates/s per event, the browser at ~170-190 DOM updates/s). So pending tokens are
merged here and a snapshot is yielded at most every `interval_s` (50 ms), except that the first
token and every finished variant are shown at once.

One task pumps the fan-out into per-panel buffers as fast as updates arrive, apart from the
snapshots: a backend can yield thousands of chunks a second, and taking them one at a time
between snapshots (a task and a wait per chunk) ended 0.2-0.75 s after 4 backends that yielded
2,000 chunks each at full speed (bench/bench_ui.py's case); the pump ends within ~5 ms of them.

Paces (what a snapshot shows of what has arrived):

- "own": each panel as fast as its variant goes (the Compare tab: speed is what it shows).
- "lockstep": every panel shows the same number of generated tokens (`Chunk.tokens`, 1 for a
  chunk without a count), the fewest any unfinished variant has produced; a chunk of several
  tokens is shown in proportion, so a fast engine's bigger batches do not show either. A panel
  whose variant has finished shows its whole text only once the others have produced as much.
  When one panel alone is left to grow (the others show all they have), it goes on at the pace
  shown so far, so a fast variant's long tail neither spills out at once nor speeds up. Results
  (status, notes) of all panels appear together, once everything is shown: the moment a variant
  finishes would say how fast it is. A snapshot is yielded only when what it shows changes, so
  neither the updates' content nor their timing tells which variant is faster. Blind battles
  use it.
- "whole": nothing until every variant has finished, then everything at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from bisect import bisect_right
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from typing import Literal, cast

from arena.fanout import Update, fan_out, per_variant
from arena.lineup import Variant
from arena.measure import Result
from backends.base import Channel, Request
from ui.views import PanelView

DEFAULT_INTERVAL_S = 0.05
Pace = Literal["own", "lockstep", "whole"]
PACES: tuple[Pace, ...] = ("own", "lockstep", "whole")
#: What a snapshot shows, in short: tokens shown per panel, and whether each shows its result.
Key = tuple[tuple[int, ...], tuple[bool, ...]]


async def stream_panels(
    variants: Sequence[Variant],
    request: Request | Sequence[Request],
    panels: Sequence[PanelView],
    *,
    interval_s: float = DEFAULT_INTERVAL_S,
    timeout_s: float | None = 120.0,
    pace: str = "own",
    stop: asyncio.Event | None = None,
) -> AsyncIterator[tuple[list[PanelView], list[Result | None]]]:
    """Yield (panels, results shown so far) snapshots at `pace`; the last one has every result.
    Setting `stop` ends every variant still answering with what it has so far (`fan_out`).
    `request` goes to every variant, or is one request per variant (a conversation's follow-up,
    each with its own history), in the order of `variants`."""
    if pace not in PACES:
        raise ValueError(f"pace must be one of {', '.join(PACES)}, not {pace!r}")
    display = Display(panels, cast(Pace, pace))
    # Nothing is yielded before the first token: the caller has already cleared the panels, and
    # every message before it would delay it.
    shown_key = display.key(time.perf_counter())
    changed, urgent = asyncio.Event(), asyncio.Event()
    stream = fan_out(variants, per_variant(variants, request), timeout_s=timeout_s, stop=stop)

    async def pump() -> None:
        try:
            async for update in stream:
                display.apply(update)
                now = time.perf_counter()
                key = display.key(now)
                if key != shown_key or display.ticking(now):
                    changed.set()
                    if display.urgent(shown_key, key):
                        urgent.set()
        finally:  # finished or failed: wake the snapshot loop either way
            urgent.set()
            changed.set()

    pumping = asyncio.ensure_future(pump())
    last_yield = float("-inf")
    try:
        while True:
            now = time.perf_counter()
            if display.key(now) != shown_key:
                pass  # the clock released text while the consumer was busy with the last snapshot
            elif display.ticking(now):  # text released by the clock, not by arrivals
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), interval_s)
            elif not pumping.done():  # an ended pump wakes nobody again
                await changed.wait()
            wait = interval_s - (time.perf_counter() - last_yield)
            if not urgent.is_set() and wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(urgent.wait(), wait)
            if pumping.done() and (error := pumping.exception()) is not None:
                raise error
            changed.clear()
            urgent.clear()
            now = time.perf_counter()
            key = display.key(now)
            if key == shown_key:
                if pumping.done() and not display.ticking(now):
                    return  # nothing more will come: all is shown, or the fan-out ended without every result
                continue
            shown_key = key
            views, shown = display.snapshot(now)
            last_yield = time.perf_counter()
            yield views, shown
            if display.complete(now):
                return
    finally:  # also when closed early (Stop): the fan-out then cancels every variant
        pumping.cancel()
        with contextlib.suppress(BaseException):
            await pumping
        await stream.aclose()  # type: ignore[attr-defined]


class Received:
    """One panel's streamed text as it arrived, with how many generated tokens each piece is."""

    def __init__(self) -> None:
        self.tokens = 0
        self._texts: dict[Channel, list[str]] = {"answer": [], "thinking": []}
        self._channels: list[Channel] = []
        self._ends: list[int] = []  # tokens up to and including each piece
        self._answers_before: list[int] = [0]  # answer pieces among the first k pieces

    def add(self, channel: Channel, text: str, tokens: int) -> None:
        self.tokens += tokens
        self._texts[channel].append(text)
        self._channels.append(channel)
        self._ends.append(self.tokens)
        self._answers_before.append(self._answers_before[-1] + (channel == "answer"))

    def text(self, tokens: float = math.inf) -> tuple[str, str]:
        """(answer, thinking) as of the first `tokens` tokens; a piece of several tokens that
        is only partly in is cut in proportion."""
        whole = len(self._ends) if tokens >= self.tokens else bisect_right(self._ends, tokens)
        answers = self._answers_before[whole]
        texts = {"answer": self._texts["answer"][:answers], "thinking": self._texts["thinking"][:whole - answers]}
        if whole < len(self._ends):
            start = self._ends[whole - 1] if whole else 0
            channel = self._channels[whole]
            piece = self._texts[channel][answers if channel == "answer" else whole - answers]
            texts[channel].append(piece[: int(len(piece) * (tokens - start) / (self._ends[whole] - start))])
        return "".join(texts["answer"]), "".join(texts["thinking"])


class Display:
    """What the panels show at a pace, as a function of what has arrived and of the time."""

    def __init__(self, panels: Sequence[PanelView], pace: Pace, clock: Callable[[], float] = time.perf_counter) -> None:
        self.pace = pace
        self.views = [replace(p, status="streaming", answer="", thinking="", stats="", note=p.note) for p in panels]
        self.received = [Received() for _ in panels]
        self.results: list[Result | None] = [None] * len(panels)
        self._clock = clock
        # lockstep: the tokens every panel shows, while they follow the variants still generating
        self._count = 0
        self._first_shown_at: float | None = None
        self._following_one = False
        # lockstep, once one panel alone is left to grow: from when, from what count and at what
        # rate (tokens/s; None: at once) the shown count goes on.
        self._anchor: tuple[float, int, float | None] | None = None

    def apply(self, update: Update) -> None:
        i = update.index
        if update.result is not None:
            self.results[i] = update.result
        else:
            chunk = update.chunk
            assert chunk is not None
            produced = chunk.tokens or 1
            if chunk.tool_call is not None:
                self.received[i].add(chunk.channel, chunk.text, 0)
                self.received[i].add("answer", f"\n[tool call] {chunk.tool_call.name}", produced)
            else:
                self.received[i].add(chunk.channel, chunk.text, produced)
        if self.pace == "lockstep" and self._anchor is None:
            self._advance(self._clock())

    def _generating(self) -> list[int]:
        """Tokens received from each variant that is still generating."""
        return [r.tokens for r, result in zip(self.received, self.results, strict=True) if result is None]

    def _advance(self, now: float) -> None:
        generating = self._generating()
        if generating:
            floor = min(generating)
            growing = sum(result is None or received.tokens > floor
                          for received, result in zip(self.received, self.results, strict=True))
            # Two panels or more still grow (one may be a finished variant's text not yet shown):
            # they grow together, at the pace of the slowest variant still generating.
            follow = growing >= 2 or self._following_one
            if not follow and self._shown_rate(now) is None:
                # One panel left to grow, and no pace seen yet to hold it to (the other said next
                # to nothing): it goes at its own pace.
                self._following_one = follow = True
            if follow:
                self._count = floor
                if floor and self._first_shown_at is None:
                    self._first_shown_at = now
                return
        # One panel left to grow: the rest of it goes on at the pace shown so far, as a fast
        # variant's long tail spilling out at once (or at its own speed) would say which it is.
        self._anchor = (now, self._count, self._shown_rate(now))

    def _shown_rate(self, now: float) -> float | None:
        """Tokens a second the panels have shown since their first token (None: too few to say)."""
        if self._first_shown_at is None or self._count < 2 or now <= self._first_shown_at:
            return None
        return (self._count - 1) / (now - self._first_shown_at)

    def shown_tokens(self, now: float) -> float:
        """How many tokens of each panel are shown now (inf: all that arrived)."""
        if self.pace == "own":
            return math.inf
        if self.pace == "whole":
            return math.inf if all(r is not None for r in self.results) else 0
        if self._anchor is None:
            return self._count
        since, count, rate = self._anchor
        paced = math.inf if rate is None else math.floor(count + rate * (now - since))
        return min([paced, *self._generating()])

    def complete(self, now: float) -> bool:
        """Every result is in and every panel shows all of its text."""
        if any(r is None for r in self.results):
            return False
        return self.shown_tokens(now) >= max(r.tokens for r in self.received)

    def ticking(self, now: float) -> bool:
        """The shown text grows with the clock (a lockstep tail), not only with arrivals."""
        return self._anchor is not None and self._anchor[2] is not None and not self.complete(now)

    def key(self, now: float) -> Key:
        """Changes exactly when the snapshot would: tokens shown per panel, results shown."""
        cap = self.shown_tokens(now)
        counts = tuple(int(min(r.tokens, cap)) for r in self.received)
        if self.pace == "own":
            return counts, tuple(r is not None for r in self.results)
        done = self.complete(now)
        return counts, tuple(done for _ in self.results)

    @staticmethod
    def urgent(before: Key, after: Key) -> bool:
        """Shown at once, without waiting for the interval: a panel's first token, and results."""
        first = any(b == 0 < a for b, a in zip(before[0], after[0], strict=True))
        return first or before[1] != after[1]

    def snapshot(self, now: float) -> tuple[list[PanelView], list[Result | None]]:
        """The panels and the results they show."""
        cap = self.shown_tokens(now)
        whole = self.pace == "own" or self.complete(now)
        views: list[PanelView] = []
        results: list[Result | None] = []
        for view, received, result in zip(self.views, self.received, self.results, strict=True):
            if result is not None and whole:
                views.append(view.with_result(result))
                results.append(result)
            else:
                answer, thinking = received.text(cap)
                views.append(replace(view, answer=answer, thinking=thinking))
                results.append(None)
        return views, results

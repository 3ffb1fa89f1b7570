"""The one wrapper that measures every variant the same way, whatever its backend.

Backends only yield chunks; here the clock starts when the request is handed to the backend and
every figure is taken from the stream as the caller sees it:

- queue_wait_s: request start -> the engine taking it up, for a backend that says when it does
  (a transformers worker answers one request at a time; the others wait in line); None otherwise
- ttft_s: the engine taking the request up (else request start) -> first generated token (a chunk
  with text or a token count), so time spent waiting in line is not counted as the variant's speed
- tokens_per_s: decode rate, the tokens after the first chunk over the time from the first chunk
  to the last; None when the answer came in a single chunk
- total_s: request start -> end of the stream
- input/output tokens: the engine's own counts when it reports them ("engine"), else the token
  counts on the chunks ("stream"), else one per non-empty chunk ("chunks", an estimate)
- total_s: request start -> end of the stream, the wait in line included
- stalled: a gap of more than `STALL_GAP_S` between two chunks, or the per-chunk timeout: the
  run's timings say more about the machine than the variant (kept out of the speed medians, as are
  runs that waited in line more than `QUEUE_WAIT_LIMIT_S`)
- memory: the request's own figures when the backend reports them with its usage, else what the
  backend reports after the stream: weights, the request's peak above what was in use before it
  (KV cache, activations), the process total at that peak, and their kind (cuda, rss, server)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from arena.errors import ArenaError, Stopped, UnsupportedInput, VariantTimeout
from backends.base import Backend, Chunk, Request, ToolCall, Usage

ChunkCallback = Callable[[Chunk, float], None]

#: The longest one variant's stream runs before the others get the event loop (seconds). Short:
#: under a burst from 4 fast servers the loop still turns every ~1 ms, so what else it serves (a
#: browser opening its event stream, the UI's snapshots) is not kept waiting (docs/benchmarks.md).
_FAIR_SLICE_S = 0.00025

#: A run that waited longer than this for its engine (seconds) is left out of speed medians.
QUEUE_WAIT_LIMIT_S = 0.5
#: A gap between two chunks longer than this (seconds) marks the run stalled: no variant's decode
#: step takes that long on hardware it fits, while a swapping or stopped worker does.
STALL_GAP_S = 5.0


@dataclass(frozen=True)
class Stats:
    """One run's figures (see the module's docstring). Memory: `weights_bytes` (the model's
    parameters and buffers), `request_peak_bytes` (this request's peak above what was in use
    before it), `peak_memory_bytes` (the process total at that peak, or a server's own figure),
    labelled by `memory_kind`."""

    ttft_s: float | None = None
    tokens_per_s: float | None = None
    total_s: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    peak_memory_bytes: int | None = None
    load_s: float | None = None
    weights_bytes: int | None = None
    memory_kind: str = ""
    token_source: str = ""
    request_peak_bytes: int | None = None
    queue_wait_s: float | None = None
    stalled: bool = False
    #: The engine's own figures (Ollama's durations, llama.cpp's timings), shown beside ours.
    server: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def own_memory_bytes(self) -> int | None:
        """The variant's own memory: weights + this request's peak where both were measured,
        else `peak_memory_bytes` (a remote engine's own figure, or a run stored before request
        peaks were measured)."""
        if self.weights_bytes is not None and self.request_peak_bytes is not None:
            return self.weights_bytes + self.request_peak_bytes
        return self.peak_memory_bytes

    @property
    def speed_counts(self) -> bool:
        """Whether the timings describe the variant: it neither waited in line nor stalled."""
        return not self.stalled and (self.queue_wait_s is None or self.queue_wait_s <= QUEUE_WAIT_LIMIT_S)

    def to_json(self) -> dict[str, Any]:
        return {
            "ttft_s": self.ttft_s,
            "tokens_per_s": self.tokens_per_s,
            "total_s": self.total_s,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "peak_memory_bytes": self.peak_memory_bytes,
            "load_s": self.load_s,
            "weights_bytes": self.weights_bytes,
            "memory_kind": self.memory_kind,
            "token_source": self.token_source,
            "request_peak_bytes": self.request_peak_bytes,
            "queue_wait_s": self.queue_wait_s,
            "stalled": self.stalled,
            "server": dict(self.server),
        }


@dataclass(frozen=True)
class Result:
    """A variant's whole answer to one request, with its measurements or its error."""

    variant: str
    text: str = ""
    thinking: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    stats: Stats = field(default_factory=Stats)
    error: str | None = None
    error_kind: str | None = None
    #: perf_counter() readings: request start, first token, last token (None where not reached).
    started_at: float = 0.0
    first_token_at: float | None = None
    ended_at: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "text": self.text,
            "thinking": self.thinking,
            "tool_calls": [call.to_json() for call in self.tool_calls],
            "stats": self.stats.to_json(),
            "error": self.error,
            "error_kind": self.error_kind,
        }


def check_supported(backend: Backend, request: Request) -> None:
    """Raise UnsupportedInput if the request carries what this variant cannot take."""
    caps = backend.capabilities
    missing = request.modalities - caps.modalities
    if missing:
        takes = ", ".join(m for m in ("text", "image", "audio") if m in caps.modalities)
        raise UnsupportedInput(
            f"{backend.name} cannot take {' or '.join(sorted(missing))} (it takes {takes}): "
            f"remove the {' and '.join(sorted(missing))} or compare variants that take it"
        )
    if request.tools and not caps.tools:
        raise UnsupportedInput(f"{backend.name} does not support tools: send the request without tools")


async def measure(
    backend: Backend,
    request: Request,
    *,
    load_s: float | None = None,
    weights_bytes: int | None = None,
    timeout_s: float | None = None,
    on_chunk: ChunkCallback | None = None,
    clock: Callable[[], float] = time.perf_counter,
    name: str | None = None,
    stop: asyncio.Event | None = None,
) -> Result:
    """Run `request` on `backend`, timing the stream. Never raises for a variant's own failure:
    the error is in the Result. `timeout_s` bounds the wait for each chunk (a hung variant);
    `name` labels the result (default: the backend's name).

    `stop`: once it is set, cancelling the task that runs this ends the stream with a Result
    (error kind Stopped) holding the answer so far and its figures, instead of a cancellation.
    Any other cancellation goes through as ever."""
    started = clock()
    text: list[str] = []
    thinking: list[str] = []
    calls: list[ToolCall] = []
    usage: Usage | None = None
    first_at: float | None = None
    last_at: float | None = None
    first_tokens = streamed_tokens = chunks_with_text = 0
    taken_up_at: float | None = None  # when the engine took the request up, if it says
    longest_gap = 0.0
    turn_started = started
    error: ArenaError | None = None
    try:
        check_supported(backend, request)
        stream = aiter(backend.stream(request))
        try:
            while True:
                try:
                    async with asyncio.timeout(timeout_s):
                        chunk = await anext(stream)
                except StopAsyncIteration:
                    break
                now = clock()
                if chunk.started and taken_up_at is None:
                    taken_up_at = now
                if chunk.usage is not None:
                    usage = chunk.usage
                produced = chunk.tokens or (1 if chunk.text or chunk.tool_call else 0)
                if produced:
                    if first_at is None:
                        first_at, first_tokens = now, produced
                    elif last_at is not None:
                        longest_gap = max(longest_gap, now - last_at)
                    last_at = now
                    streamed_tokens += chunk.tokens
                    chunks_with_text += 1 if (chunk.text or chunk.tool_call) else 0
                (thinking if chunk.channel == "thinking" else text).append(chunk.text)
                if chunk.tool_call is not None:
                    calls.append(chunk.tool_call)
                if on_chunk is not None and (chunk.text or chunk.tool_call or chunk.tokens):
                    on_chunk(chunk, now)
                if now - turn_started > _FAIR_SLICE_S:
                    # A stream whose data is already buffered never suspends: give the other
                    # variants (and whoever shows the chunks) their turn.
                    await asyncio.sleep(0)
                    turn_started = clock()
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
    except asyncio.CancelledError:
        if stop is None or not stop.is_set():
            raise
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()  # the cancellation was our way to stop this stream: it ends here
        error = Stopped(f"{backend.name} was stopped by the user")
    except TimeoutError:
        error = VariantTimeout(
            f"{backend.name} produced nothing for {timeout_s:g} s and was stopped: it may be hung or "
            "overloaded; raise the timeout for very large variants"
        )
    except ArenaError as exc:
        error = exc
    except Exception as exc:  # a backend bug must still not take down the other variants
        error = ArenaError(f"{backend.name} failed: {type(exc).__name__}: {exc}")
    ended = clock()

    if usage is not None and usage.output_tokens is not None:
        output_tokens, source = usage.output_tokens, "engine"
    elif streamed_tokens:
        output_tokens, source = streamed_tokens, "stream"
    else:
        output_tokens, source = chunks_with_text, "chunks"
    decode_tokens = output_tokens - first_tokens
    rate = None
    if first_at is not None and last_at is not None and last_at > first_at and decode_tokens > 0:
        rate = decode_tokens / (last_at - first_at)
    memory = usage.memory if usage is not None else None
    if memory is None:
        try:
            memory = await backend.memory()
        except Exception:
            memory = None  # a dead worker has no figures to give; the error already says why
    generation_started = started if taken_up_at is None else taken_up_at
    stats = Stats(
        ttft_s=None if first_at is None else first_at - generation_started,
        tokens_per_s=rate,
        total_s=ended - started,
        input_tokens=usage.input_tokens if usage else None,
        output_tokens=output_tokens,
        peak_memory_bytes=memory.peak_bytes if memory else None,
        load_s=load_s,
        weights_bytes=(memory.weights_bytes if memory and memory.weights_bytes else weights_bytes),
        memory_kind=memory.kind if memory else "",
        token_source=source,
        request_peak_bytes=memory.request_peak_bytes if memory else None,
        queue_wait_s=None if taken_up_at is None else taken_up_at - started,
        stalled=longest_gap > STALL_GAP_S or isinstance(error, VariantTimeout),
        server=MappingProxyType({**(usage.server if usage else {}), **(memory.server if memory else {})}),
    )
    return Result(
        variant=name or backend.name,
        text="".join(text),
        thinking="".join(thinking),
        tool_calls=tuple(calls),
        stats=stats,
        error=None if error is None else str(error),
        error_kind=None if error is None else type(error).__name__,
        started_at=started,
        first_token_at=first_at,
        ended_at=last_at,
    )

"""The measuring wrapper and fan-out, on scripted backends (the arithmetic, not the models)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from arena.errors import GenerationError
from arena.fanout import fan_out, run_all
from arena.lineup import Lineup, create_lineup, load_all
from arena.measure import STALL_GAP_S, measure
from arena.settings import Settings
from backends.base import Capabilities, Chunk, Media, MemoryReport, Request, ToolCall, Usage
from backends.registry import VariantSpec
from tests.support.scripted import ScriptedBackend, Step, registry_with, tokens

REQUEST = Request(prompt="hi", max_new_tokens=8)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class ClockedBackend(ScriptedBackend):
    """Advances a fake clock instead of sleeping, so the arithmetic is exact."""

    def __init__(self, clock: FakeClock, steps: list[Step]) -> None:
        super().__init__("clocked", steps)
        self.clock = clock

    async def stream(self, request: Request):  # type: ignore[override]
        for step in self.steps:
            self.clock.now += step.delay_s
            if step.chunk is not None:
                yield step.chunk


def test_stats_follow_the_documented_definitions() -> None:
    clock = FakeClock()
    steps = [Step(0.5, Chunk(text="a", tokens=1))] + [Step(0.1, Chunk(text="b", tokens=1)) for _ in range(4)]
    steps.append(Step(0.2, Chunk(usage=Usage(input_tokens=7, output_tokens=5))))
    result = asyncio.run(measure(ClockedBackend(clock, steps), REQUEST, load_s=1.5, clock=clock))
    assert result.ok and result.text == "abbbb"
    assert result.stats.ttft_s == pytest.approx(0.5)
    # 4 tokens after the first, over the 0.4 s between the first and the last token
    assert result.stats.tokens_per_s == pytest.approx(10.0)
    assert result.stats.total_s == pytest.approx(1.1)
    assert (result.stats.input_tokens, result.stats.output_tokens) == (7, 5)
    assert result.stats.token_source == "engine"
    assert result.stats.load_s == 1.5
    assert result.stats.peak_memory_bytes == 1000


def test_a_wait_in_line_is_reported_apart_from_ttft() -> None:
    clock = FakeClock()
    steps = [Step(2.0, Chunk(started=True)), Step(0.3, Chunk(text="a", tokens=1)), Step(0.1, Chunk(text="b", tokens=1))]
    result = asyncio.run(measure(ClockedBackend(clock, steps), REQUEST, clock=clock))
    assert result.stats.queue_wait_s == pytest.approx(2.0)
    assert result.stats.ttft_s == pytest.approx(0.3)  # from the engine taking it up, not from sending
    assert result.stats.total_s == pytest.approx(2.4)
    assert not result.stats.stalled and not result.stats.speed_counts  # waited > QUEUE_WAIT_LIMIT_S


def test_a_long_gap_between_chunks_marks_the_run_stalled() -> None:
    clock = FakeClock()
    steps = [Step(0.1, Chunk(text="a", tokens=1)), Step(STALL_GAP_S + 1, Chunk(text="b", tokens=1))]
    result = asyncio.run(measure(ClockedBackend(clock, steps), REQUEST, clock=clock))
    assert result.ok and result.stats.stalled and result.stats.queue_wait_s is None
    steady = [Step(0.1, Chunk(text="a", tokens=1)), Step(STALL_GAP_S - 1, Chunk(text="b", tokens=1))]
    other = FakeClock()
    assert not asyncio.run(measure(ClockedBackend(other, steady), REQUEST, clock=other)).stats.stalled


def test_memory_reported_with_the_usage_is_that_requests_own() -> None:
    clock = FakeClock()
    mine = MemoryReport(peak_bytes=900, weights_bytes=100, kind="rss", request_peak_bytes=30)
    steps = [Step(0.1, Chunk(text="a", tokens=1)), Step(0.1, Chunk(usage=Usage(output_tokens=1, memory=mine)))]
    stats = asyncio.run(measure(ClockedBackend(clock, steps), REQUEST, clock=clock)).stats
    # not the backend's memory() (1000), which a later request may already have replaced
    assert (stats.weights_bytes, stats.request_peak_bytes, stats.peak_memory_bytes) == (100, 30, 900)
    assert stats.own_memory_bytes == 130 and stats.memory_kind == "rss"


def test_tokens_are_counted_from_chunks_when_the_engine_reports_none() -> None:
    clock = FakeClock()
    steps = [Step(0.1, Chunk(text="ab")), Step(0.1, Chunk(text="c")), Step(0.1, Chunk(text="d"))]
    result = asyncio.run(measure(ClockedBackend(clock, steps), REQUEST, clock=clock))
    assert result.stats.output_tokens == 3
    assert result.stats.token_source == "chunks"
    assert result.stats.tokens_per_s == pytest.approx(2 / 0.2)


def test_thinking_and_tool_calls_are_kept_apart_from_the_answer() -> None:
    clock = FakeClock()
    steps = [
        Step(0.1, Chunk(text="let me think", channel="thinking", tokens=3)),
        Step(0.1, Chunk(text="answer", tokens=1)),
        Step(0.1, Chunk(tool_call=ToolCall("lookup", {"q": "x"}), tokens=4)),
    ]
    result = asyncio.run(measure(ClockedBackend(clock, steps), REQUEST, clock=clock))
    assert result.thinking == "let me think"
    assert result.text == "answer"
    assert result.tool_calls == (ToolCall("lookup", {"q": "x"}),)
    assert result.stats.output_tokens == 8 and result.stats.token_source == "stream"


def test_a_single_chunk_answer_has_no_decode_rate() -> None:
    clock = FakeClock()
    backend = ClockedBackend(clock, [Step(0.3, Chunk(text="all", tokens=3))])
    result = asyncio.run(measure(backend, REQUEST, clock=clock))
    assert result.stats.ttft_s == pytest.approx(0.3)
    assert result.stats.tokens_per_s is None


def test_a_backend_that_raises_gives_an_error_result_not_an_exception() -> None:
    steps = [Step(0.0, Chunk(text="a", tokens=1)), Step(0.0, error=GenerationError("boom"))]
    backend = ScriptedBackend("broken", steps)
    result = asyncio.run(measure(backend, REQUEST))
    assert result.error == "boom" and result.error_kind == "GenerationError"
    assert result.text == "a"  # what arrived before the failure is kept


def test_an_unexpected_exception_is_contained_and_named() -> None:
    backend = ScriptedBackend("buggy", [Step(0.0, error=KeyError("oops"))])
    result = asyncio.run(measure(backend, REQUEST))
    assert not result.ok and "KeyError" in (result.error or "") and "buggy" in (result.error or "")


def test_a_stalled_variant_times_out_and_its_stream_is_closed() -> None:
    backend = ScriptedBackend("stuck", [Step(0.0, Chunk(text="a", tokens=1)), Step(30.0, Chunk(text="b", tokens=1))])
    started = time.perf_counter()
    result = asyncio.run(measure(backend, REQUEST, timeout_s=0.3))
    assert time.perf_counter() - started < 5
    assert result.error_kind == "VariantTimeout" and "0.3 s" in (result.error or "")
    assert backend.cancelled


def test_audio_to_a_variant_without_audio_is_refused_before_sending() -> None:
    backend = ScriptedBackend("textonly", tokens(3, 0.0), Capabilities(frozenset({"text", "image"})))
    request = Request(prompt="hi", audio=(Media("audio", b"RIFF", "audio/wav"),))
    result = asyncio.run(measure(backend, request))
    assert result.error_kind == "UnsupportedInput"
    assert "cannot take audio" in (result.error or "") and "text, image" in (result.error or "")
    assert result.stats.output_tokens == 0


def _lineup(backends: dict[str, ScriptedBackend], tmp_path: Path) -> Lineup:
    registry = registry_with(backends)
    settings = Settings(tmp_path, tmp_path, tmp_path / "a.db")
    specs = [VariantSpec.parse(f"scripted:{name}") for name in backends]
    return asyncio.run(load_all(create_lineup(specs, registry, settings)))


def test_slow_variant_does_not_delay_fast_one(tmp_path: Path) -> None:
    fast = ScriptedBackend("fast", tokens(5, 0.01))
    slow = ScriptedBackend("slow", tokens(5, 0.3))
    lineup = _lineup({"fast": fast, "slow": slow}, tmp_path)

    async def collect() -> list[str]:
        order = []
        async for update in fan_out(lineup.variants, REQUEST):
            if update.result is not None:
                order.append(update.result.variant)
        return order

    assert asyncio.run(collect()) == ["scripted:fast", "scripted:slow"]


def test_one_failing_variant_leaves_the_others_untouched(tmp_path: Path) -> None:
    good = ScriptedBackend("good", tokens(4, 0.01))
    bad = ScriptedBackend("bad", [Step(0.01, error=GenerationError("bad variant"))])
    lineup = _lineup({"good": good, "bad": bad}, tmp_path)
    results = asyncio.run(run_all(lineup.variants, REQUEST))
    assert [r.variant for r in results] == ["scripted:good", "scripted:bad"]
    assert results[0].ok and results[0].text == "xxxx"
    assert results[1].error == "bad variant"


def test_closing_the_fan_out_early_cancels_every_variant(tmp_path: Path) -> None:
    a = ScriptedBackend("a", tokens(50, 0.05))
    b = ScriptedBackend("b", tokens(50, 0.05))
    lineup = _lineup({"a": a, "b": b}, tmp_path)

    async def stop_after_first_chunk() -> None:
        stream = fan_out(lineup.variants, REQUEST)
        async for update in stream:
            if update.chunk is not None:
                break
        await stream.aclose()

    asyncio.run(stop_after_first_chunk())
    assert a.cancelled and b.cancelled


def test_the_same_variant_twice_needs_distinct_labels(tmp_path: Path) -> None:
    registry = registry_with({"a": ScriptedBackend("a", [])})
    settings = Settings(tmp_path, tmp_path, tmp_path / "a.db")
    from arena.errors import UsageError

    with pytest.raises(UsageError, match="listed twice"):
        create_lineup([VariantSpec.parse("scripted:a"), VariantSpec.parse("scripted:a")], registry, settings)


class BufferedBackend(ScriptedBackend):
    """A stream whose data is all buffered already: it never suspends on its own."""

    async def stream(self, request: Request):  # type: ignore[override]
        for step in self.steps:
            if step.chunk is not None:
                yield step.chunk
            time.sleep(step.delay_s)  # busy work between chunks, holding the event loop


def test_a_stream_that_never_suspends_does_not_hold_back_the_others(tmp_path: Path) -> None:
    hog = BufferedBackend("hog", tokens(400, 0.0001))
    polite = ScriptedBackend("polite", tokens(3, 0.0))
    lineup = _lineup({"hog": hog, "polite": polite}, tmp_path)

    async def arrivals() -> dict[str, list[float]]:
        seen: dict[str, list[float]] = {"scripted:hog": [], "scripted:polite": []}
        async for update in fan_out(lineup.variants, REQUEST):
            if update.chunk is not None:
                seen[update.variant].append(update.at)
        return seen

    seen = asyncio.run(arrivals())
    assert len(seen["scripted:hog"]) == 400
    assert max(seen["scripted:polite"]) < max(seen["scripted:hog"])  # served while the hog streamed

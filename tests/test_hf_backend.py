"""The transformers backend on the real tiny Gemma 4 demo models, each in its own worker process.

No mocked model path: these run the real transformers loading, processing and generation code.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil
import pytest

from arena.fanout import Update, fan_out, run_all
from arena.lineup import Lineup, create_lineup, load_all
from arena.measure import Result
from arena.media import read_audio, read_image
from arena.settings import Settings
from backends.base import Media, Request, Tool, Turn
from backends.hf.backend import HFBackend
from backends.registry import default_registry
from tests.support.media import write_png, write_wav

WEATHER = Tool(
    name="get_weather",
    description="Current weather in a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


def load(specs: list[str], settings: Settings, cores: int = 2) -> Lineup:
    registry = default_registry()
    lineup = create_lineup([registry.parse(s) for s in specs], registry, settings, cores=cores)
    return asyncio.run(load_all(lineup))


@pytest.fixture(scope="module")
def pair(demo_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lineup]:
    """demo:e2b (text, image, audio) and demo:31b (text, image), loaded once for this module."""
    data = tmp_path_factory.mktemp("data")
    lineup = load(["demo:e2b", "demo:31b"], Settings(data, demo_cache, data / "a.db"))
    assert all(v.available for v in lineup.variants), [v.error for v in lineup.variants]
    yield lineup
    asyncio.run(lineup.close())


def test_text_answer_streams_while_it_is_generated(pair: Lineup) -> None:
    request = Request(prompt="Tell me about memory.", max_new_tokens=256)

    async def collect() -> tuple[list[Update], list[Update]]:
        chunks, results = [], []
        async for update in fan_out(pair.variants[:1], request):
            (chunks if update.chunk is not None else results).append(update)
        return chunks, results

    chunks, results = asyncio.run(collect())
    result = results[0].result
    assert result is not None and result.ok, result
    assert result.text
    assert result.stats.output_tokens == 256  # the demo variants always use their whole budget
    assert result.stats.token_source == "engine"
    streamed = [u.chunk for u in chunks if u.chunk is not None]
    assert streamed[0].tokens == 1 and streamed[0].text  # the first token travels alone, at once
    assert sum(c.tokens for c in streamed) == 256  # batched, yet every token counted once
    assert "".join(c.text for c in streamed) == result.text
    arrivals = [u.at for u in chunks]
    assert len(set(arrivals)) >= 3  # several messages while generating, not one at the end
    assert arrivals == sorted(arrivals)
    assert (result.first_token_at, result.ended_at) == (arrivals[0], arrivals[-1])
    assert result.stats.ttft_s is not None and result.stats.ttft_s < result.stats.total_s
    assert result.stats.tokens_per_s and result.stats.tokens_per_s > 0


def test_streamed_text_equals_plain_generate_on_the_same_model(pair: Lineup, demo_cache: Path) -> None:
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from backends.demo.build import model_dir
    from backends.demo.structure import DemoStructure
    from backends.hf.engine import special_token_ids
    from backends.hf.inputs import chat_messages

    request = Request(prompt="Which variant fits my laptop?", max_new_tokens=24)
    streamed = asyncio.run(run_all(pair.variants[:1], request))[0]

    folder = model_dir(demo_cache, "e2b")
    processor = AutoProcessor.from_pretrained(folder)
    model = AutoModelForImageTextToText.from_pretrained(folder).eval()
    text = processor.apply_chat_template(chat_messages(request), add_generation_prompt=True, tokenize=False)
    inputs = processor(text=text, return_tensors="pt", add_special_tokens=False)
    length = inputs["input_ids"].shape[1]
    special = special_token_ids(processor.tokenizer)
    with torch.inference_mode():
        out = model.generate(
            **inputs, max_new_tokens=24, do_sample=False, logits_processor=[DemoStructure(length, {}, special)]
        )
    expected = processor.tokenizer.decode(out[0, length:], skip_special_tokens=True)
    assert streamed.text == expected
    assert streamed.stats.input_tokens == length


def test_demo_variants_use_their_whole_budget_and_emit_no_stray_markers(pair: Lineup) -> None:
    request = Request(prompt="Which variant fits my laptop?", max_new_tokens=256)
    for result in asyncio.run(run_all(pair.variants, request)):
        assert result.ok, result.error
        assert result.stats.output_tokens == 256  # no end-of-turn token sampled early
        assert not result.thinking and not result.tool_calls  # no marker sampled at random
        assert "<|" not in result.text and "|>" not in result.text


def test_two_variants_generate_at_the_same_time(pair: Lineup) -> None:
    results = asyncio.run(run_all(pair.variants, Request(prompt="Go", max_new_tokens=96)))
    assert all(r.ok for r in results), [r.error for r in results]
    starts = [r.first_token_at for r in results]
    ends = [r.ended_at for r in results]
    # Each was producing tokens before the other had finished: their generation overlapped.
    assert max(starts) < min(ends)  # type: ignore[type-var]


def test_image_reaches_the_model(pair: Lineup, tmp_path: Path) -> None:
    image = read_image(write_png(tmp_path / "photo.png"))
    plain, with_image = (
        asyncio.run(run_all(pair.variants, Request(prompt="Describe it", images=images, max_new_tokens=8)))
        for images in ((), (image,))
    )
    for before, after in zip(plain, with_image, strict=True):
        assert after.ok, after.error
        # the image placeholder expands into the image's soft tokens
        assert after.stats.input_tokens - before.stats.input_tokens > 30


def test_audio_reaches_e2b_and_is_refused_by_31b_before_sending(pair: Lineup, tmp_path: Path) -> None:
    clip = read_audio(write_wav(tmp_path / "clip.wav", seconds=1.0))
    e2b_plain = asyncio.run(run_all(pair.variants[:1], Request(prompt="What is this?", max_new_tokens=8)))[0]
    e2b, b31 = asyncio.run(
        run_all(pair.variants, Request(prompt="What is this?", audio=(clip,), max_new_tokens=8))
    )
    assert e2b.ok, e2b.error
    assert e2b.stats.input_tokens - e2b_plain.stats.input_tokens >= 20  # ~25 audio tokens a second
    assert b31.error_kind == "UnsupportedInput"
    assert "demo:31b cannot take audio" in (b31.error or "")
    assert b31.stats.output_tokens == 0


def test_a_two_turn_conversation_renders_both_turns_with_their_own_media(demo_cache: Path, tmp_path: Path) -> None:
    from transformers import AutoProcessor

    from backends.demo.build import ensure_built
    from backends.hf.inputs import chat_messages

    image = read_image(write_png(tmp_path / "photo.png"))
    clip = read_audio(write_wav(tmp_path / "clip.wav", seconds=1.0))
    request = Request("And what do you hear?", audio=(clip,),
                      history=(Turn("What is in the photo?", "A red square.", images=(image,)),))
    processor = AutoProcessor.from_pretrained(ensure_built(demo_cache, "e2b"))
    for thinking in (False, True):
        messages = chat_messages(replace(request, thinking=thinking))
        text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False,
                                             enable_thinking=thinking)
        assert text == (
            "<bos>" + ("<|turn>system\n<|think|>\n<turn|>\n" if thinking else "")
            + "<|turn>user\n<|image|>What is in the photo?<turn|>\n<|turn>model\nA red square.<turn|>\n"
            "<|turn>user\n<|audio|>And what do you hear?<turn|>\n<|turn>model\n"
        )


def test_the_demo_template_leaves_an_earlier_answers_thinking_out(demo_cache: Path) -> None:
    from transformers import AutoProcessor

    from backends.demo.build import ensure_built

    processor = AutoProcessor.from_pretrained(ensure_built(demo_cache, "e2b"))
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "<|channel>thought\nA greeting.<channel|>Hello!"},
        {"role": "user", "content": [{"type": "text", "text": "Again"}]},
    ]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False, enable_thinking=True)
    assert "<|turn>model\nHello!<turn|>\n" in text and "A greeting." not in text


def test_every_turns_media_goes_to_the_processor_in_the_order_of_its_placeholders() -> None:
    from backends.hf.inputs import media_in_order

    first, second, third = (Media("image", bytes([n]), "image/png", f"{n}.png") for n in range(3))
    clip = Media("audio", b"RIFF", "audio/wav", "clip.wav")
    request = Request("Now?", images=(third,), history=(
        Turn("One", "1", images=(first, second)), Turn("Two", "2", audio=(clip,))))
    assert media_in_order(request) == ([first, second, third], [clip])


def test_a_follow_up_with_an_earlier_image_and_new_audio_runs_on_e2b_and_is_refused_by_31b(
    pair: Lineup, demo_cache: Path, tmp_path: Path
) -> None:
    from transformers import AutoProcessor

    from backends.demo.build import model_dir
    from backends.hf.inputs import chat_messages, decode_audio, decode_image

    image = read_image(write_png(tmp_path / "photo.png"))
    clip = read_audio(write_wav(tmp_path / "clip.wav", seconds=1.0))
    follow_up = Request("And what do you hear?", audio=(clip,), max_new_tokens=8,
                        history=(Turn("What is in the photo?", "A red square.", images=(image,)),))
    e2b, b31 = asyncio.run(run_all(pair.variants, follow_up))
    assert e2b.ok, e2b.error
    processor = AutoProcessor.from_pretrained(model_dir(demo_cache, "e2b"))
    text = processor.apply_chat_template(chat_messages(follow_up), add_generation_prompt=True, tokenize=False)
    inputs = processor(text=text, images=[decode_image(image)], audio=[decode_audio(clip)], return_tensors="pt",
                       add_special_tokens=False)
    assert e2b.stats.input_tokens == inputs["input_ids"].shape[1]  # both turns, with both files' soft tokens
    alone = asyncio.run(run_all(pair.variants[:1], replace(follow_up, history=())))[0]
    assert e2b.stats.input_tokens - alone.stats.input_tokens > 30  # the earlier turn's image is in
    assert b31.error_kind == "UnsupportedInput" and "cannot take audio" in (b31.error or "")
    thinking = asyncio.run(run_all(pair.variants[:1], replace(follow_up, thinking=True, max_new_tokens=30)))[0]
    assert thinking.ok and thinking.thinking and thinking.text, thinking.error


def test_a_conversation_sends_each_variant_its_own_history_through_the_fan_out(pair: Lineup) -> None:
    from arena.conversation import Conversation
    from ui.streaming import stream_panels
    from ui.views import PanelView

    conversation = Conversation([v.name for v in pair.variants])
    first = Request("Name a colour.", max_new_tokens=6)
    answers = asyncio.run(run_all(pair.variants, first))
    assert all(r.ok for r in answers) and answers[0].text != answers[1].text
    conversation.add_turn(first, {r.variant: r for r in answers})
    requests = conversation.requests_for(Request("Why that one?", max_new_tokens=6))
    assert [r.history[0].answer for r in requests] == [a.text for a in answers]

    async def streamed() -> list[Result | None]:
        snapshots = [s async for s in stream_panels(pair.variants, requests, [PanelView("a"), PanelView("b")])]
        return snapshots[-1][1]

    alone = [asyncio.run(run_all([v], r))[0] for v, r in zip(pair.variants, requests, strict=True)]
    for results in (asyncio.run(run_all(pair.variants, requests)), asyncio.run(streamed())):
        assert [(r.text, r.stats.input_tokens) for r in results if r is not None] == [
            (r.text, r.stats.input_tokens) for r in alone]
    with pytest.raises(ValueError, match="1 requests for 2 variants"):
        asyncio.run(run_all(pair.variants, requests[:1]))


def test_thinking_trace_is_separated_from_the_answer(pair: Lineup) -> None:
    off, on = (
        asyncio.run(run_all(pair.variants[:1], Request(prompt="Why?", thinking=t, max_new_tokens=60)))[0]
        for t in (False, True)
    )
    assert on.ok and off.ok
    assert on.thinking and on.text and not off.thinking
    assert on.thinking not in on.text
    assert "<|channel>" not in on.text + on.thinking and "<channel|>" not in on.text + on.thinking
    assert on.stats.input_tokens > off.stats.input_tokens  # the template's thinking switch was set
    assert on.stats.output_tokens == 60


def test_top_k_reaches_generate_and_the_seed_fixes_the_sample(pair: Lineup) -> None:
    def answer(**sampling: float | int | None) -> str:
        request = Request(prompt="Pick a word.", max_new_tokens=16, **sampling)  # type: ignore[arg-type]
        result = asyncio.run(run_all(pair.variants[:1], request))[0]
        assert result.ok, result.error
        return result.text

    greedy = answer()
    # top_k=1 leaves only the likeliest token to sample: the greedy answer, whatever the seed
    assert answer(temperature=1.0, top_p=0.95, top_k=1, seed=5) == greedy
    # without the cut-off the same seed samples something else, and samples it again
    sampled = answer(temperature=1.0, top_p=0.95, top_k=64, seed=5)
    assert sampled != greedy
    assert answer(temperature=1.0, top_p=0.95, top_k=64, seed=5) == sampled


def test_tool_call_is_parsed_from_the_generated_tokens(pair: Lineup) -> None:
    plain = asyncio.run(run_all(pair.variants[:1], Request(prompt="Weather in Oslo?", max_new_tokens=40)))[0]
    result = asyncio.run(
        run_all(pair.variants[:1], Request(prompt="Weather in Oslo?", tools=(WEATHER,), max_new_tokens=40))
    )[0]
    assert result.ok, result.error
    assert [call.name for call in result.tool_calls] == ["get_weather"]
    assert "<|tool_call>" not in result.text
    assert result.stats.input_tokens > plain.stats.input_tokens + 10  # the declaration is in the prompt


def test_prompt_beyond_the_context_is_a_clear_error(pair: Lineup) -> None:
    result = asyncio.run(run_all(pair.variants[:1], Request(prompt="hi", max_new_tokens=9000)))[0]
    assert result.error_kind == "GenerationError"
    assert "exceeds this model's context of 8192 tokens" in (result.error or "")
    again = asyncio.run(run_all(pair.variants[:1], Request(prompt="hi", max_new_tokens=4)))[0]
    assert again.ok  # the worker is still healthy


def test_memory_and_load_figures_are_recorded(pair: Lineup) -> None:
    result = asyncio.run(run_all(pair.variants[:1], Request(prompt="hi", max_new_tokens=4)))[0]
    stats = result.stats
    assert stats.memory_kind == "rss"
    assert stats.weights_bytes and stats.peak_memory_bytes and stats.peak_memory_bytes > stats.weights_bytes
    assert stats.request_peak_bytes is not None and stats.request_peak_bytes < stats.peak_memory_bytes
    assert stats.queue_wait_s is not None and not stats.stalled
    assert stats.load_s and stats.load_s > 0
    big = asyncio.run(run_all(pair.variants[1:], Request(prompt="hi", max_new_tokens=4)))[0]
    assert big.stats.weights_bytes > stats.weights_bytes  # 31B stand-in is larger than E2B's


def test_cores_are_split_among_workers(pair: Lineup) -> None:
    for variant in pair.variants:
        assert variant.report is not None
        assert "1 CPU thread(s)" in variant.report.notes  # 2 cores, 2 local variants


def test_closing_a_stream_early_cancels_generation(pair: Lineup) -> None:
    backend = pair.variants[0].backend
    assert backend is not None

    async def stop_then_ask_again() -> tuple[int, bool]:
        seen = 0
        # Far longer than the cancel grace: had the cancel not stopped it, the worker would have
        # been ended as hung and the follow-up would fail.
        stream = backend.stream(Request(prompt="long", max_new_tokens=8000))
        async for _ in stream:
            seen += 1
            if seen == 3:
                break
        await stream.aclose()  # type: ignore[attr-defined]
        follow_up = await run_all(pair.variants[:1], Request(prompt="short", max_new_tokens=4), timeout_s=20)
        return seen, follow_up[0].ok

    seen, ok = asyncio.run(stop_then_ask_again())
    assert seen == 3 and ok  # the 8000-token answer was abandoned at once, not finished first


def test_killed_worker_fails_alone(settings: Settings) -> None:
    lineup = load(["demo:e2b?label=victim", "demo:e2b?label=survivor"], settings)
    victim = lineup.get("victim").backend
    assert isinstance(victim, HFBackend) and victim.pid
    victim.restart_delays_s = (600.0,)  # the restart waits: what the others see meanwhile is tested

    async def kill_mid_answer() -> list:  # type: ignore[type-arg]
        results = {}
        async for update in fan_out(lineup.variants, Request(prompt="go", max_new_tokens=300)):
            if update.chunk is not None and update.variant == "victim" and not results:
                os.kill(victim.pid, signal.SIGKILL)  # type: ignore[arg-type]
                results["killed"] = True
            if update.result is not None:
                results[update.variant] = update.result
        return [results["victim"], results["survivor"]]

    try:
        dead, alive = asyncio.run(kill_mid_answer())
        assert dead.error_kind == "WorkerDied"
        assert "victim stopped: its worker process was killed by SIGKILL" in (dead.error or "")
        assert "restarting it (try 1 of 1)" in (dead.error or "")
        assert alive.ok and alive.stats.output_tokens == 300
        again = asyncio.run(run_all(lineup.variants, Request(prompt="go", max_new_tokens=4)))
        assert again[0].error_kind == "LoadError" and "victim is restarting" in (again[0].error or "")
        assert again[1].ok
    finally:
        asyncio.run(lineup.close())


def test_hung_worker_times_out_alone_and_is_ended(settings: Settings) -> None:
    lineup = load(["demo:e2b?label=hung", "demo:e2b?label=fine"], settings)
    hung = lineup.get("hung").backend
    assert isinstance(hung, HFBackend) and hung.pid
    hung.cancel_grace_s = 1.0
    hung.restart_delays_s = (600.0,)  # ended and then restarted: the restart is not what is tested here
    stopped = psutil.Process(hung.pid)

    async def stop_mid_answer() -> tuple:  # type: ignore[type-arg]
        results = {}
        async for update in fan_out(lineup.variants, Request(prompt="go", max_new_tokens=200), timeout_s=2.0):
            if update.chunk is not None and update.variant == "hung" and "stopped" not in results:
                os.kill(hung.pid, signal.SIGSTOP)  # type: ignore[arg-type]
                results["stopped"] = True
            if update.result is not None:
                results[update.variant] = update.result
        # The app keeps running while the cancel grace passes and the hung worker is ended.
        async with asyncio.timeout(30):
            while hung.state.phase != "restarting":
                await asyncio.sleep(0.05)
        return results["hung"], results["fine"]

    try:
        stuck, fine = asyncio.run(stop_mid_answer())
        assert stuck.error_kind == "VariantTimeout" and "produced nothing for 2 s" in (stuck.error or "")
        assert fine.ok and fine.stats.output_tokens == 200
        assert fine.ended_at < stuck.ended_at + 60  # type: ignore[operator]
        stopped.wait(10)  # ended by the app, not left stopped
        assert hung.state.phase == "restarting" and "did not stop within 1 s of a cancel" in hung.state.detail
    finally:
        asyncio.run(lineup.close())


def test_variant_that_fails_to_load_is_unavailable_and_others_work(settings: Settings, tmp_path: Path) -> None:
    lineup = load([f"hf:{tmp_path / 'no-such-model'}", "demo:e2b"], settings)
    try:
        broken, working = lineup.variants
        assert not broken.available
        assert "could not read a model config" in (broken.error or "")
        assert working.available
        results = asyncio.run(run_all(lineup.variants, Request(prompt="hi", max_new_tokens=4)))
        assert results[0].error_kind == "LoadError" and results[1].ok
    finally:
        asyncio.run(lineup.close())


def test_unloading_ends_the_worker_process(settings: Settings) -> None:
    lineup = load(["demo:e2b"], settings)
    backend = lineup.variants[0].backend
    assert isinstance(backend, HFBackend) and backend.pid
    worker = psutil.Process(backend.pid)
    asyncio.run(lineup.close())
    assert not psutil.pid_exists(worker.pid)
    assert lineup.variants[0].state.phase == "unavailable" and "unloaded" in lineup.variants[0].state.detail


def test_in_process_mode_answers_without_a_worker(settings: Settings) -> None:
    lineup = load(["demo:e2b?in_process=true"], settings)
    try:
        backend = lineup.variants[0].backend
        assert isinstance(backend, HFBackend) and backend.pid is None
        result = asyncio.run(run_all(lineup.variants, Request(prompt="hi", max_new_tokens=6)))[0]
        assert result.ok and result.stats.output_tokens == 6
        assert "in-process" in result.stats.memory_kind
    finally:
        asyncio.run(lineup.close())


def test_bitsandbytes_and_device_map_take_the_checkpoint_path(pair: Lineup, settings: Settings) -> None:
    """The options a real 26B/31B checkpoint needs (4-bit NF4, device_map=auto) on the tiny model."""
    lineup = load(["demo:e2b?quantize=4bit&label=e2b-4bit", "demo:e2b?device_map=auto&label=e2b-auto"], settings)
    try:
        quantized, mapped = lineup.variants
        assert quantized.available and mapped.available, [v.error for v in lineup.variants]
        assert quantized.report is not None and quantized.report.quantization == "4bit"
        plain_weights = pair.variants[0].weights_bytes
        assert quantized.weights_bytes and plain_weights and quantized.weights_bytes < plain_weights
        results = asyncio.run(run_all(lineup.variants, Request(prompt="hi", max_new_tokens=6)))
        assert all(r.ok and r.stats.output_tokens == 6 for r in results), [r.error for r in results]
    finally:
        asyncio.run(lineup.close())


def test_zero_gpu_options_run_in_process_and_are_checked() -> None:
    from arena.errors import SpecError
    from backends.hf.options import HFOptions

    options = HFOptions.from_spec_options("google/gemma-4-E4B-it", {"zero_gpu": "true", "gpu_duration": "120"})
    assert options.zero_gpu and options.in_process and options.gpu_duration == 120  # ZeroGPU: this process only
    with pytest.raises(SpecError, match="gpu_duration='2m' must be a positive whole number of seconds"):
        HFOptions.from_spec_options("m", {"zero_gpu": "true", "gpu_duration": "2m"})
    with pytest.raises(SpecError, match="zero_gpu='maybe' must be true or false"):
        HFOptions.from_spec_options("m", {"zero_gpu": "maybe"})


def test_zero_gpu_variant_stops_at_a_cancel_and_answers_again(settings: Settings) -> None:
    """Closing the stream closes the @spaces.GPU generator (on ZeroGPU: ends the GPU call), which
    stops generation at its next token; the variant then answers the next request."""
    lineup = load(["demo:e2b?zero_gpu=true"], settings)
    try:
        backend = lineup.variants[0].backend
        assert isinstance(backend, HFBackend) and backend.pid is None

        async def stop_then_ask_again() -> tuple[int, Any]:
            seen = 0
            stream = backend.stream(Request(prompt="long", max_new_tokens=8000))
            async for _ in stream:
                seen += 1
                if seen == 3:
                    break
            await stream.aclose()  # type: ignore[attr-defined]
            return seen, (await run_all(lineup.variants, Request(prompt="short", max_new_tokens=4), timeout_s=20))[0]

        seen, follow_up = asyncio.run(stop_then_ask_again())
        assert seen == 3 and follow_up.ok and follow_up.stats.output_tokens == 4
    finally:
        asyncio.run(lineup.close())

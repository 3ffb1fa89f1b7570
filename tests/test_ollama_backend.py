"""`ollama:` variants against a loopback server that answers as Ollama's documented API does.

No Ollama server can be installed here; `tests/servers/fake_ollama.py` reproduces its wire
format (NDJSON chat stream, nanosecond metrics, /api/tags, /api/ps, /api/show, 404s) through the
official `ollama` client, which the backend uses unchanged.
"""

from __future__ import annotations

import asyncio
import base64
import io
from pathlib import Path

import numpy as np
import pytest
import soundfile

from arena.errors import LoadError
from arena.fanout import run_all
from arena.lineup import create_lineup, load_all
from arena.measure import measure
from arena.settings import Settings
from backends.base import Chunk, Media, Request, Tool, Turn
from backends.ollama import OllamaBackend, OllamaOptions
from backends.registry import default_registry
from tests.servers.fake_ollama import GEMMA4_31B, TEXT_ONLY, FakeOllama, Script
from tests.servers.llamacpp import free_port

BIG, PLAIN = GEMMA4_31B, TEXT_ONLY


def backend_for(server: FakeOllama, tag: str, **options: str) -> OllamaBackend:
    return OllamaBackend(f"ollama:{tag}", OllamaOptions.from_spec_options(tag, {"host": server.url, **options}))


async def collect(backend: OllamaBackend, request: Request) -> list[Chunk]:
    return [chunk async for chunk in backend.stream(request)]


def test_streams_answer_tokens_in_order_then_ollama_figures_as_usage(fake_ollama: FakeOllama) -> None:
    async def scenario() -> list[Chunk]:
        backend = backend_for(fake_ollama, "tinyllama")
        await backend.load()
        try:
            return await collect(backend, Request(prompt="Say hello"))
        finally:
            await backend.close()

    chunks = asyncio.run(scenario())
    assert [c.text for c in chunks[:-1]] == ["Hello", ",", " world", "."]
    usage = chunks[-1].usage
    assert usage is not None and chunks[-1].text == ""
    assert usage.output_tokens == 4
    assert usage.input_tokens is not None and usage.input_tokens > 0
    # nanoseconds on the wire, seconds in Usage.server
    assert 0 < usage.server["eval_duration"] < 5
    assert 0 < usage.server["total_duration"] < 5
    assert usage.server["eval_count"] == 4
    assert usage.server["eval_rate"] == pytest.approx(4 / usage.server["eval_duration"])
    assert set(usage.server) >= {"load_duration", "prompt_eval_count", "prompt_eval_duration"}


def test_measured_result_uses_ollama_token_counts_and_shows_its_figures(fake_ollama: FakeOllama) -> None:
    fake_ollama.script = Script(answer=tuple(f" w{i}" for i in range(6)), interval_s=0.01)

    async def scenario():
        backend = backend_for(fake_ollama, "tinyllama")
        report = await backend.load()
        try:
            return report, await measure(backend, Request(prompt="count"), load_s=report.load_s)
        finally:
            await backend.close()

    report, result = asyncio.run(scenario())
    assert result.ok, result.error
    assert result.text == " w0 w1 w2 w3 w4 w5"
    assert result.stats.token_source == "engine" and result.stats.output_tokens == 6
    assert result.stats.server["eval_count"] == 6
    assert result.stats.memory_kind == "server"
    assert result.stats.peak_memory_bytes == PLAIN.size + 400_000_000  # /api/ps `size`
    # Ollama's own memory figures, beside ours: all it holds, and the part on the GPU (none here)
    assert result.stats.server["ps_size_bytes"] == PLAIN.size + 400_000_000
    assert result.stats.server["ps_size_vram_bytes"] == PLAIN.size_vram
    assert result.stats.weights_bytes == PLAIN.size  # /api/tags size on disk
    assert report.weights_bytes == PLAIN.size and report.quantization == "Q4_K_M"


def test_thinking_is_sent_as_think_and_streamed_on_the_thinking_channel(fake_ollama: FakeOllama) -> None:
    async def scenario() -> list[Chunk]:
        backend = backend_for(fake_ollama, "gemma4:e4b")
        await backend.load()
        try:
            return await collect(backend, Request(prompt="Why?", thinking=True))
        finally:
            await backend.close()

    chunks = asyncio.run(scenario())
    assert fake_ollama.chats()[-1]["think"] is True
    thinking = [c.text for c in chunks if c.channel == "thinking"]
    answer = [c.text for c in chunks if c.channel == "answer" and c.text]
    assert "".join(thinking) == "Let me think." and "".join(answer) == "Hello, world."
    assert chunks.index(next(c for c in chunks if c.channel == "answer" and c.text)) > 3


def test_thinking_model_is_told_not_to_think_when_the_request_does_not_ask(fake_ollama: FakeOllama) -> None:
    # Ollama turns thinking on for a thinking model when `think` is absent.
    async def scenario() -> list[Chunk]:
        backend = backend_for(fake_ollama, "gemma4:e4b")
        await backend.load()
        try:
            return await collect(backend, Request(prompt="Hi"))
        finally:
            await backend.close()

    chunks = asyncio.run(scenario())
    assert fake_ollama.chats()[-1]["think"] is False
    assert not [c for c in chunks if c.channel == "thinking"]


def test_model_without_thinking_gets_no_think_field_even_when_asked(fake_ollama: FakeOllama) -> None:
    async def scenario() -> list[Chunk]:
        backend = backend_for(fake_ollama, "tinyllama")
        await backend.load()
        try:
            return await collect(backend, Request(prompt="Hi", thinking=True))
        finally:
            await backend.close()

    chunks = asyncio.run(scenario())
    assert "think" not in fake_ollama.chats()[-1]  # think=true would be a 400 from Ollama
    assert "".join(c.text for c in chunks) == "Hello, world."


def test_sampling_options_and_context_go_in_ollama_options(fake_ollama: FakeOllama) -> None:
    request = Request(prompt="Hi", system="Be brief.", max_new_tokens=3, temperature=0.7, top_p=0.9, seed=7)

    async def scenario() -> list[Chunk]:
        backend = backend_for(fake_ollama, "tinyllama", num_ctx="8192", keep_alive="30m")
        await backend.load()
        try:
            return await collect(backend, request)
        finally:
            await backend.close()

    chunks = asyncio.run(scenario())
    preload, chat = fake_ollama.chats()
    assert preload["messages"] == [] and preload["options"] == {"num_ctx": 8192}  # same num_ctx: no reload
    assert chat["options"] == {"num_ctx": 8192, "temperature": 0.7, "top_p": 0.9, "num_predict": 3, "seed": 7}
    assert chat["keep_alive"] == "30m" and chat["stream"] is True
    assert chat["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert len([c for c in chunks if c.text]) == 3  # num_predict honoured


def test_top_k_goes_in_ollama_options_only_when_the_request_sets_it(fake_ollama: FakeOllama) -> None:
    battle = Request(prompt="Hi", max_new_tokens=2, temperature=1.0, top_p=0.95, top_k=64, seed=2**31 - 1)

    async def scenario() -> None:
        backend = backend_for(fake_ollama, "tinyllama")
        await backend.load()
        try:
            await collect(backend, battle)
            await collect(backend, Request(prompt="Hi", max_new_tokens=2))
        finally:
            await backend.close()

    asyncio.run(scenario())
    sampled, plain = fake_ollama.chats()[-2:]
    assert sampled["options"] == {"temperature": 1.0, "top_p": 0.95, "top_k": 64, "num_predict": 2,
                                  "seed": 2**31 - 1}
    assert "top_k" not in plain["options"]  # none asked: Ollama's own default applies


def test_images_and_audio_go_base64_in_images_with_audio_as_16k_mono_wav(
    fake_ollama: FakeOllama, tmp_path: Path
) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 32
    stereo = np.stack([np.sin(np.arange(44100) / 20), np.cos(np.arange(44100) / 20)], axis=1) * 0.2
    flac = io.BytesIO()
    soundfile.write(flac, stereo.astype(np.float32), 44100, format="FLAC")
    request = Request(
        prompt="Describe",
        images=(Media("image", png, "image/png", "dot.png"),),
        audio=(Media("audio", flac.getvalue(), "audio/flac", "clip.flac"),),
    )

    async def scenario() -> list[Chunk]:
        backend = backend_for(fake_ollama, "gemma4:e4b")
        await backend.load()
        try:
            return await collect(backend, request)
        finally:
            await backend.close()

    asyncio.run(scenario())
    sent = fake_ollama.chats()[-1]["messages"][-1]["images"]
    assert base64.b64decode(sent[0]) == png
    wav = base64.b64decode(sent[1])
    assert wav[:4] == b"RIFF" and wav[8:12] == b"WAVE"
    info = soundfile.info(io.BytesIO(wav))
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    assert info.frames == pytest.approx(16000, abs=2)


def test_earlier_turns_go_as_user_and_assistant_messages_with_each_turns_own_images(
    fake_ollama: FakeOllama,
) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 32
    wav = io.BytesIO()
    soundfile.write(wav, (np.sin(np.arange(16000) / 20) * 0.2).astype(np.float32), 16000, format="WAV")
    request = Request(
        "Which came first?", system="Be brief.",
        history=(
            Turn("What is this?", "A dot.", images=(Media("image", png, "image/png", "dot.png"),)),
            Turn("And this?", "A tone.", audio=(Media("audio", wav.getvalue(), "audio/wav", "tone.wav"),)),
        ),
    )

    async def scenario() -> list[Chunk]:
        backend = backend_for(fake_ollama, "gemma4:e4b")
        await backend.load()
        try:
            return await collect(backend, request)
        finally:
            await backend.close()

    chunks = asyncio.run(scenario())
    assert "".join(c.text for c in chunks) == "Hello, world."
    messages = fake_ollama.chats()[-1]["messages"]
    assert [(m["role"], m["content"]) for m in messages] == [
        ("system", "Be brief."), ("user", "What is this?"), ("assistant", "A dot."), ("user", "And this?"),
        ("assistant", "A tone."), ("user", "Which came first?"),
    ]
    assert [base64.b64decode(image) for image in messages[1]["images"]] == [png]
    (sent_clip,) = messages[3]["images"]
    assert base64.b64decode(sent_clip)[:4] == b"RIFF"
    assert all("images" not in messages[i] for i in (0, 2, 4, 5))  # media only on its own turn


def test_tools_are_sent_and_tool_calls_come_back_as_values(fake_ollama: FakeOllama) -> None:
    fake_ollama.script = Script(answer=(), tool_calls=({"name": "get_weather", "arguments": {"city": "Paris"}},))
    weather = Tool("get_weather", "Weather for a city", {"type": "object", "properties": {"city": {"type": "string"}},
                                                       "required": ["city"]})

    async def scenario() -> list[Chunk]:
        backend = backend_for(fake_ollama, "gemma4:31b")
        await backend.load()
        try:
            return await collect(backend, Request(prompt="Weather in Paris?", tools=(weather,)))
        finally:
            await backend.close()

    chunks = asyncio.run(scenario())
    tools = fake_ollama.chats()[-1]["tools"]
    assert tools[0]["function"]["name"] == "get_weather"
    assert tools[0]["function"]["parameters"]["required"] == ["city"]
    calls = [c.tool_call for c in chunks if c.tool_call is not None]
    assert [(c.name, dict(c.arguments)) for c in calls] == [("get_weather", {"city": "Paris"})]


def test_load_reads_capabilities_context_and_memory_from_the_server(fake_ollama: FakeOllama) -> None:
    async def scenario():
        e4b, big, plain = (backend_for(fake_ollama, t) for t in ("gemma4:e4b", "gemma4:31b", "tinyllama"))
        reports = [await b.load() for b in (e4b, big, plain)]
        memory = await big.memory()
        for b in (e4b, big, plain):
            await b.close()
        return reports, memory, big.placement

    (e4b, big, plain), memory, placement = asyncio.run(scenario())
    assert e4b.capabilities.modalities == {"text", "image", "audio"}
    assert e4b.capabilities.tools and e4b.capabilities.thinking
    assert big.capabilities.modalities == {"text", "image"}
    assert plain.capabilities.modalities == {"text"} and not plain.capabilities.tools
    # preloaded without num_ctx: the context Ollama allocated (/api/ps), not the trained 256K
    assert big.capabilities.context_length == 4096
    assert memory.kind == "server" and memory.peak_bytes == BIG.size + 400_000_000
    assert placement == (BIG.size + 400_000_000, BIG.size_vram)
    assert any("on the GPU" in note for note in big.notes)


def test_without_preload_context_length_is_what_the_model_was_trained_for(fake_ollama: FakeOllama) -> None:
    async def scenario():
        backend = backend_for(fake_ollama, "gemma4:31b", preload="false")
        try:
            return await backend.load()
        finally:
            await backend.close()

    report = asyncio.run(scenario())
    assert report.capabilities.context_length == 262144
    assert fake_ollama.chats() == []  # nothing loaded on the server


def test_audio_to_a_model_without_audio_is_refused_before_sending(fake_ollama: FakeOllama) -> None:
    clip = io.BytesIO()
    soundfile.write(clip, np.zeros(1600, np.float32), 16000, format="WAV")
    request = Request(prompt="Transcribe", audio=(Media("audio", clip.getvalue(), "audio/wav", "a.wav"),))

    async def scenario():
        backend = backend_for(fake_ollama, "gemma4:31b")
        await backend.load()
        try:
            return await measure(backend, request)
        finally:
            await backend.close()

    result = asyncio.run(scenario())
    assert result.error_kind == "UnsupportedInput" and "cannot take audio" in (result.error or "")
    assert len(fake_ollama.chats()) == 1  # only the preload


def test_model_not_pulled_fails_to_load_saying_to_pull_it(fake_ollama: FakeOllama) -> None:
    backend = backend_for(fake_ollama, "gemma4:e2b")
    with pytest.raises(LoadError) as caught:
        asyncio.run(backend.load())
    message = str(caught.value)
    assert "ollama:gemma4:e2b" in message and "run `ollama pull gemma4:e2b`" in message and "404" in message


def test_embedding_model_fails_to_load_as_it_cannot_chat(fake_ollama: FakeOllama) -> None:
    backend = backend_for(fake_ollama, "nomic-embed-text")
    with pytest.raises(LoadError, match="cannot chat"):
        asyncio.run(backend.load())


def test_server_down_fails_to_load_saying_to_start_ollama() -> None:
    backend = OllamaBackend("ollama:gemma4:e4b", OllamaOptions.from_spec_options(
        "gemma4:e4b", {"host": f"127.0.0.1:{free_port()}", "connect_timeout": "2"}))
    with pytest.raises(LoadError) as caught:
        asyncio.run(backend.load())
    assert "ollama:gemma4:e4b: cannot reach Ollama at http://127.0.0.1:" in str(caught.value)
    assert "ollama serve" in str(caught.value)


def test_model_removed_after_load_is_a_remote_error_saying_to_pull(fake_ollama: FakeOllama) -> None:
    async def scenario():
        backend = backend_for(fake_ollama, "tinyllama")
        await backend.load()
        fake_ollama.models.remove(PLAIN)
        try:
            return await measure(backend, Request(prompt="Hi"))
        finally:
            await backend.close()

    result = asyncio.run(scenario())
    assert result.error_kind == "RemoteError"
    assert "ollama pull tinyllama" in (result.error or "") and "not found" in (result.error or "")


def test_closing_the_stream_early_disconnects_so_ollama_stops(fake_ollama: FakeOllama) -> None:
    fake_ollama.script = Script(answer=tuple(f" {i}" for i in range(200)), interval_s=0.01)

    async def scenario() -> tuple[list[str], bool]:
        backend = backend_for(fake_ollama, "tinyllama")
        await backend.load()
        seen = []
        try:
            stream = backend.stream(Request(prompt="Count", max_new_tokens=500))
            async for chunk in stream:
                seen.append(chunk.text)
                if len(seen) == 3:
                    break
            await stream.aclose()  # type: ignore[attr-defined]
            # while the backend (and its connection pool) is still open
            return seen, await asyncio.to_thread(fake_ollama.wait_client_gone, 5.0)
        finally:
            await backend.close()

    seen, gone = asyncio.run(scenario())
    assert seen == [" 0", " 1", " 2"]
    assert gone, "the server kept streaming to nobody"


def test_a_failing_ollama_variant_does_not_stop_a_working_one(fake_ollama: FakeOllama, settings: Settings) -> None:
    fake_ollama.script = Script(answer=tuple(f" {i}" for i in range(50)), interval_s=0.01, cut_after=3)
    registry = default_registry()

    async def scenario():
        with FakeOllama([PLAIN], script=Script(interval_s=0.05)) as healthy:
            specs = [
                registry.parse(f"ollama:tinyllama?host={healthy.url}"),
                registry.parse(f"ollama:gemma4:31b?host={fake_ollama.url}&label=flaky"),
            ]
            lineup = await load_all(create_lineup(specs, registry, settings))
            try:
                return await run_all(lineup.variants, Request(prompt="Hi"), timeout_s=10)
            finally:
                await lineup.close()

    working, failing = asyncio.run(scenario())
    assert working.ok and working.text == "Hello, world."
    assert working.stats.output_tokens == 4 and working.stats.token_source == "engine"
    assert failing.error_kind == "RemoteError" and failing.text == " 0 1 2"
    assert failing.error is not None and failing.error.startswith("flaky: ")
    assert "broke mid-answer" in failing.error and "check its log" in failing.error

"""`openai:` variants against a REAL llama.cpp server (llama-cpp-python's `llama_cpp.server`)
serving a tiny random-weight GGUF model written by the test setup.

The answers are random text: these tests check the wire (streaming, order, usage handling,
cancel, a server dying mid-answer), not the words.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from arena.errors import LoadError
from arena.fanout import fan_out
from arena.lineup import create_lineup, load_all
from arena.measure import Result, measure
from arena.settings import Settings
from backends.base import Chunk, Request, Turn
from backends.openai_compat import OpenAICompatBackend, OpenAIOptions
from backends.registry import default_registry
from backends.variant_file import read_variant_file
from tests.servers.llamacpp import LlamaCppServer, free_port


def backend_on(server: LlamaCppServer, model: str = "tiny", **options: str) -> OpenAICompatBackend:
    target = f"{server.base_url}#{model}"
    return OpenAICompatBackend(f"openai:{target}", OpenAIOptions.from_spec_options(target, options))


@pytest.fixture
def doomed_server(tiny_gguf: Path, tmp_path: Path) -> Iterator[LlamaCppServer]:
    """A llama.cpp server of this test's own, so the test may kill it."""
    server = LlamaCppServer(tiny_gguf, log_path=tmp_path / "doomed.log").start()
    yield server
    server.stop()


def test_load_finds_the_served_model_and_reports_declared_capabilities(llama_server: LlamaCppServer) -> None:
    backend = backend_on(llama_server, modalities="text,image", context_length="512")
    report = asyncio.run(backend.load())
    assert report.capabilities.modalities == {"text", "image"}
    assert report.capabilities.context_length == 512
    assert not report.capabilities.tools and not report.capabilities.thinking
    assert report.device == f"the server at {llama_server.base_url}"


def test_load_of_a_model_the_server_does_not_serve_lists_what_it_serves(llama_server: LlamaCppServer) -> None:
    with pytest.raises(LoadError) as caught:
        asyncio.run(backend_on(llama_server, model="google/gemma-4-31B-it").load())
    assert "does not serve 'google/gemma-4-31B-it'; it serves tiny" in str(caught.value)


def test_load_with_no_server_says_to_start_one() -> None:
    target = f"http://127.0.0.1:{free_port()}/v1#tiny"
    backend = OpenAICompatBackend("down", OpenAIOptions.from_spec_options(target, {}))
    with pytest.raises(LoadError, match=r"down: cannot reach the server at http://127\.0\.0\.1:\d+/v1: start"):
        asyncio.run(backend.load())


def test_streamed_text_is_the_servers_whole_answer_in_order(llama_server: LlamaCppServer) -> None:
    request = Request(prompt="Tell me a story", max_new_tokens=24, temperature=0.0, seed=1)
    whole = httpx.post(f"{llama_server.base_url}/chat/completions", timeout=30, json={
        "model": "tiny", "messages": [{"role": "user", "content": request.prompt}],
        "max_tokens": 24, "temperature": 0.0, "top_p": 1.0, "seed": 1,
    }).json()

    async def scenario() -> list[Chunk]:
        backend = backend_on(llama_server)
        await backend.load()
        try:
            return [chunk async for chunk in backend.stream(request)]
        finally:
            await backend.close()

    chunks = asyncio.run(scenario())
    assert "".join(c.text for c in chunks) == whole["choices"][0]["message"]["content"]
    assert all(c.channel == "answer" for c in chunks)
    assert chunks[-1].usage is not None and all(c.usage is None for c in chunks[:-1])  # usage last
    assert sum(1 for c in chunks if c.text) > 3


def test_a_follow_up_is_answered_as_the_server_answers_the_whole_conversation(llama_server: LlamaCppServer) -> None:
    request = Request("And then?", max_new_tokens=16, temperature=0.0, seed=1,
                      history=(Turn("Tell me a story", "Once upon a time"),))
    messages = [{"role": "user", "content": "Tell me a story"}, {"role": "assistant", "content": "Once upon a time"},
                {"role": "user", "content": "And then?"}]
    whole, alone = (
        httpx.post(f"{llama_server.base_url}/chat/completions", timeout=30, json={
            "model": "tiny", "messages": sent, "max_tokens": 16, "temperature": 0.0, "top_p": 1.0, "seed": 1,
        }).json()
        for sent in (messages, messages[-1:])
    )

    async def scenario() -> list[Chunk]:
        backend = backend_on(llama_server)
        await backend.load()
        try:
            return [chunk async for chunk in backend.stream(request)]
        finally:
            await backend.close()

    chunks = asyncio.run(scenario())
    assert "".join(c.text for c in chunks) == whole["choices"][0]["message"]["content"]
    assert whole["usage"]["prompt_tokens"] > alone["usage"]["prompt_tokens"] + 10  # the earlier turn was in it
    assert whole["choices"][0]["message"]["content"] != alone["choices"][0]["message"]["content"]


def test_server_without_streamed_usage_leaves_token_counts_to_the_wrapper(llama_server: LlamaCppServer) -> None:
    # llama-cpp-python accepts stream_options.include_usage but sends no usage while streaming.
    async def scenario() -> Result:
        backend = backend_on(llama_server)
        await backend.load()
        try:
            return await measure(backend, Request(prompt="Hello", max_new_tokens=16))
        finally:
            await backend.close()

    result = asyncio.run(scenario())
    assert result.ok, result.error
    assert result.stats.token_source == "chunks"  # counted by the wrapper, said to be an estimate
    assert result.stats.input_tokens is None and dict(result.stats.server) == {}
    assert 0 < (result.stats.output_tokens or 0) <= 17
    assert result.stats.ttft_s is not None and result.stats.memory_kind == "unknown"


def test_closing_the_stream_early_makes_the_server_stop_generating(llama_server: LlamaCppServer) -> None:
    async def scenario() -> tuple[list[str], bool, Result]:
        backend = backend_on(llama_server)
        await backend.load()
        before = llama_server.disconnects_seen()
        try:
            stream = backend.stream(Request(prompt="Go on", max_new_tokens=400))
            seen = []
            async for chunk in stream:
                if chunk.text:
                    seen.append(chunk.text)
                if len(seen) == 3:
                    break
            await stream.aclose()  # type: ignore[attr-defined]
            deadline = time.monotonic() + 10
            while llama_server.disconnects_seen() == before and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            stopped = llama_server.disconnects_seen() > before
            after = await measure(backend, Request(prompt="Next", max_new_tokens=8), timeout_s=30)
            return seen, stopped, after
        finally:
            await backend.close()

    seen, stopped, after = asyncio.run(scenario())
    assert len(seen) == 3
    assert stopped, "the server did not notice the closed stream (it would generate all 400 tokens)"
    assert after.ok and after.text, after.error


def test_server_killed_mid_answer_is_a_remote_error_naming_the_variant(doomed_server: LlamaCppServer) -> None:
    async def scenario() -> Result:
        backend = backend_on(doomed_server)
        await backend.load()
        try:
            return await measure(
                backend, Request(prompt="Go on", max_new_tokens=400), timeout_s=30,
                on_chunk=lambda chunk, at: doomed_server.kill(),
            )
        finally:
            await backend.close()

    result = asyncio.run(scenario())
    assert result.error_kind == "RemoteError", result
    assert result.error is not None and result.error.startswith(f"openai:{doomed_server.base_url}#tiny: ")
    assert "broke mid-answer" in result.error and "check its log" in result.error
    assert result.text  # what arrived before the crash is kept


def test_a_dying_server_does_not_hold_back_a_working_variant(
    llama_server: LlamaCppServer, doomed_server: LlamaCppServer, settings: Settings
) -> None:
    registry = default_registry()
    specs = [
        registry.parse(f"openai:{llama_server.base_url}#tiny?label=steady"),
        registry.parse(f"openai:{doomed_server.base_url}#tiny?label=doomed"),
        registry.parse(f"openai:http://127.0.0.1:{free_port()}/v1#tiny?label=absent"),
    ]

    async def scenario() -> dict[str, Result]:
        lineup = await load_all(create_lineup(specs, registry, settings))
        results = {}
        try:
            async for update in fan_out(lineup.variants, Request(prompt="Go", max_new_tokens=64), timeout_s=30):
                if update.variant == "doomed" and update.chunk is not None:
                    doomed_server.kill()
                if update.result is not None:
                    results[update.variant] = update.result
            return results
        finally:
            await lineup.close()

    results = asyncio.run(scenario())
    assert results["steady"].ok and results["steady"].text, results["steady"].error
    assert results["doomed"].error_kind == "RemoteError" and "doomed: " in (results["doomed"].error or "")
    assert results["absent"].error_kind == "LoadError" and "cannot reach" in (results["absent"].error or "")


def test_openai_variant_in_the_toml_file_takes_every_key_as_an_option(
    llama_server: LlamaCppServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TINY_KEY", "sk-test")
    file = tmp_path / "variants.toml"
    file.write_text(f'''
[[variants]]
spec = "openai:{llama_server.base_url}#tiny"
label = "tiny on llama.cpp"
api_key_env = "TINY_KEY"
modalities = "text,image"
tools = true
context_length = 512
read_timeout = 30
''')
    registry = default_registry()
    (spec,) = read_variant_file(file, registry)
    backend = registry.create(spec, _context(tmp_path))
    assert isinstance(backend, OpenAICompatBackend) and backend.name == "tiny on llama.cpp"
    assert backend.options.api_key() == "sk-test" and backend.options.tools
    assert backend.options.timeouts.read_s == 30
    report = asyncio.run(backend.load())
    assert report.capabilities.modalities == {"text", "image"} and report.capabilities.context_length == 512


def _context(tmp_path: Path):
    from backends.registry import BackendContext

    return BackendContext(settings=Settings(tmp_path / "d", tmp_path / "c", tmp_path / "d" / "a.db"))

"""Odd cases on Ollama's wire, through the official client with an injected httpx transport:
what a network or server does on a bad day, which a well-behaved server never shows."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from arena.errors import GenerationError, RemoteError, VariantError, VariantTimeout
from arena.measure import measure
from backends.base import Chunk, Request
from backends.ollama import OllamaBackend, OllamaOptions
from tests.servers.fake_ollama import FakeModel, FakeOllama, Script

NDJSON = {"content-type": "application/x-ndjson"}


def line(content: str = "", done: bool = False, **extra: Any) -> bytes:
    part = {"model": "gemma4:e4b", "created_at": "2026-01-01T00:00:00Z",
            "message": {"role": "assistant", "content": content}, "done": done, **extra}
    return json.dumps(part).encode() + b"\n"


FINAL = line(done=True, done_reason="stop", total_duration=2_000_000_000, load_duration=1_000_000,
             prompt_eval_count=9, prompt_eval_duration=100_000_000, eval_count=3, eval_duration=1_500_000_000)
ANSWER = line("Hel") + line("lo") + line("!") + FINAL


def backend_with(handler: Callable[[httpx.Request], Any], **options: str) -> OllamaBackend:
    return OllamaBackend(
        "ollama:gemma4:e4b",
        OllamaOptions.from_spec_options("gemma4:e4b", {"host": "http://ollama.test:11434", **options}),
        transport=httpx.MockTransport(handler),
    )


def streamed(pieces: list[bytes], then: Exception | None = None) -> Callable[[httpx.Request], httpx.Response]:
    """A handler answering 200 with `pieces` as separate reads, then optionally failing."""

    def handler(request: httpx.Request) -> httpx.Response:
        async def body() -> AsyncIterator[bytes]:
            for piece in pieces:
                await asyncio.sleep(0)
                yield piece
            if then is not None:
                raise then

        return httpx.Response(200, headers=NDJSON, content=body())

    return handler


async def collect(backend: OllamaBackend) -> list[Chunk]:
    try:
        return [chunk async for chunk in backend.stream(Request(prompt="hi"))]
    finally:
        await backend.close()


def fails_with(backend: OllamaBackend) -> VariantError:
    with pytest.raises(VariantError) as caught:
        asyncio.run(collect(backend))
    return caught.value


def test_lines_split_across_reads_are_reassembled() -> None:
    pieces = [ANSWER[i : i + 7] for i in range(0, len(ANSWER), 7)]  # mid-line, mid-JSON, mid-number
    chunks = asyncio.run(collect(backend_with(streamed(pieces))))
    assert [c.text for c in chunks if c.text] == ["Hel", "lo", "!"]
    usage = chunks[-1].usage
    assert usage is not None and (usage.input_tokens, usage.output_tokens) == (9, 3)
    assert usage.server["eval_duration"] == pytest.approx(1.5)
    assert usage.server["total_duration"] == pytest.approx(2.0)
    assert usage.server["eval_rate"] == pytest.approx(2.0)


def test_stream_that_ends_before_done_is_a_remote_error() -> None:
    error = fails_with(backend_with(streamed([line("Hel"), line("lo")])))
    assert isinstance(error, RemoteError)
    assert "ollama:gemma4:e4b: Ollama at http://ollama.test:11434 ended the answer early" in str(error)


def test_stream_cut_in_the_middle_of_a_line_is_a_remote_error() -> None:
    error = fails_with(backend_with(streamed([line("Hel"), line("lo")[:20]])))
    assert isinstance(error, RemoteError) and "not Ollama's format" in str(error)


def test_connection_dropped_mid_body_is_a_remote_error_saying_what_to_do() -> None:
    drop = httpx.RemoteProtocolError("peer closed connection without sending complete message body")
    error = fails_with(backend_with(streamed([line("Hel")], then=drop)))
    assert isinstance(error, RemoteError)
    assert "broke mid-answer" in str(error) and "check its log, then retry" in str(error)


def test_rate_limited_answer_says_to_wait_and_retry() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, json={"error": "too many requests"})

    error = fails_with(backend_with(handler))
    assert isinstance(error, RemoteError)
    assert "answered 429: too many requests" in str(error) and "wait and retry" in str(error)


def test_server_error_answer_says_to_check_the_server_log() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, json={"error": "llama runner process has terminated: signal: killed"})

    error = fails_with(backend_with(handler))
    assert isinstance(error, RemoteError)
    assert "answered 500: llama runner process has terminated" in str(error) and "check its log" in str(error)


def test_error_line_inside_the_stream_is_a_generation_error() -> None:
    error = fails_with(backend_with(streamed([line("Hel"), b'{"error":"CUDA error: out of memory"}\n'])))
    assert isinstance(error, GenerationError)
    assert "Ollama stopped with an error mid-answer: CUDA error: out of memory" in str(error)


def test_connect_timeout_names_the_server_and_the_option() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("timed out", request=request)

    error = fails_with(backend_with(handler, connect_timeout="1.5"))
    assert isinstance(error, RemoteError)
    assert "could not connect to Ollama at http://ollama.test:11434 within 1.5 s" in str(error)
    assert "connect_timeout=" in str(error)


def test_silent_server_is_abandoned_after_read_timeout() -> None:
    # A real socket: the fake sends the first token, then nothing for longer than read_timeout.
    with FakeOllama([FakeModel("gemma4:e4b")], script=Script(answer=("a", "b"), interval_s=2.0)) as server:
        backend = OllamaBackend("slow", OllamaOptions.from_spec_options(
            "gemma4:e4b", {"host": server.url, "read_timeout": "0.3"}))
        result = asyncio.run(measure(backend, Request(prompt="hi")))
        asyncio.run(backend.close())
    assert result.error_kind == "VariantTimeout" and result.text == "a"
    assert "sent nothing for 0.3 s" in (result.error or "") and "read_timeout=" in (result.error or "")
    assert issubclass(VariantTimeout, VariantError)

"""`openai:` variants on the wire, through the official client with an injected httpx transport:
what vLLM and llama.cpp's C++ server send that llama-cpp-python does not (reasoning fields,
streamed tool calls, usage, engine timings), and answers no healthy server gives."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile

from arena.errors import GenerationError, LoadError, RemoteError, SpecError, VariantError, VariantTimeout
from backends.base import Chunk, Media, Request, Tool, Turn
from backends.openai_compat import OpenAICompatBackend, OpenAIOptions

BASE = "http://vllm.test:8000/v1"
MODEL = "google/gemma-4-31B-it"


def sse(*events: dict[str, Any], done: bool = True) -> bytes:
    body = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
    return body + (b"data: [DONE]\n\n" if done else b"")


def delta(finish: str | None = None, **fields: Any) -> dict[str, Any]:
    return {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": MODEL,
            "choices": [{"index": 0, "delta": fields, "finish_reason": finish}]}


def usage_event(prompt: int, completion: int, **extra: Any) -> dict[str, Any]:
    return {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": MODEL, "choices": [],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
            **extra}


class Wire:
    """Answers chat requests with `body` (SSE) or `status`, and keeps what was sent."""

    def __init__(self, body: bytes = b"", status: int = 200, error: Exception | None = None) -> None:
        self.body, self.status, self.error = body, status, error
        self.sent: list[dict[str, Any]] = []
        self.headers: list[httpx.Headers] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.error is not None:
            raise self.error
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"object": "list", "data": [
                {"id": MODEL, "object": "model", "owned_by": "vllm", "max_model_len": 32768},
                {"id": "gemma-4-e4b.gguf", "object": "model", "meta": {"n_ctx_train": 131072, "size": 5_000_000_000}},
            ]})
        self.sent.append(json.loads(request.content))
        self.headers.append(request.headers)
        if self.status != 200:
            return httpx.Response(self.status, json={"object": "error", "message": "slow down or fix it",
                                                     "type": "Error", "code": self.status})
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=self.body)


def backend_with(
    wire: Callable[[httpx.Request], httpx.Response], model: str = MODEL, **options: str
) -> OpenAICompatBackend:
    target = f"{BASE}#{model}"
    return OpenAICompatBackend("vllm-31b", OpenAIOptions.from_spec_options(target, options),
                               transport=httpx.MockTransport(wire))


def collect(backend: OpenAICompatBackend, request: Request | None = None) -> list[Chunk]:
    async def scenario() -> list[Chunk]:
        try:
            return [c async for c in backend.stream(request or Request(prompt="hi"))]
        finally:
            await backend.close()

    return asyncio.run(scenario())


def fails_with(backend: OpenAICompatBackend) -> VariantError:
    with pytest.raises(VariantError) as caught:
        collect(backend)
    return caught.value


def test_request_asks_for_usage_and_carries_sampling_media_and_tools(tmp_path: Any) -> None:
    wire = Wire(sse(delta(content="ok", finish="stop")))
    clip = io.BytesIO()
    soundfile.write(clip, (np.sin(np.arange(8000) / 9) * 0.1).astype(np.float32), 8000, format="OGG")
    request = Request(
        prompt="What is shown and said?", system="Be brief.", max_new_tokens=32, temperature=0.5, top_p=0.9,
        seed=3, images=(Media("image", b"\x89PNG-bytes", "image/png"),),
        audio=(Media("audio", clip.getvalue(), "audio/ogg", "clip.ogg"),),
        tools=(Tool("lookup", "Look a word up", {"type": "object", "properties": {"word": {"type": "string"}}}),),
    )
    collect(backend_with(wire, modalities="text,image,audio", tools="true"), request)
    (sent,) = wire.sent
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert (sent["model"], sent["max_tokens"], sent["temperature"], sent["top_p"], sent["seed"]) == (
        MODEL, 32, 0.5, 0.9, 3)
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    image, audio, text = sent["messages"][1]["content"]
    assert image == {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(
        b"\x89PNG-bytes").decode()}}
    assert audio["type"] == "input_audio" and audio["input_audio"]["format"] == "wav"
    info = soundfile.info(io.BytesIO(base64.b64decode(audio["input_audio"]["data"])))
    assert (info.format, info.samplerate, info.channels) == ("WAV", 16000, 1)
    assert text == {"type": "text", "text": "What is shown and said?"}
    assert sent["tools"][0]["function"]["name"] == "lookup"
    assert "chat_template_kwargs" not in sent  # thinking not declared: nothing a server may reject


def test_thinking_switch_is_sent_to_the_chat_template_both_ways() -> None:
    for thinking in (True, False):
        wire = Wire(sse(delta(content="ok", finish="stop")))
        collect(backend_with(wire, thinking="true"), Request(prompt="hi", thinking=thinking))
        assert wire.sent[0]["chat_template_kwargs"] == {"enable_thinking": thinking}


def test_earlier_turns_go_as_user_and_assistant_messages_each_user_turn_with_its_own_media() -> None:
    wire = Wire(sse(delta(content="ok", finish="stop")))
    photo = Media("image", b"\x89PNG-photo", "image/png", "photo.png")
    clip = io.BytesIO()
    soundfile.write(clip, (np.sin(np.arange(8000) / 9) * 0.1).astype(np.float32), 8000, format="WAV")
    request = Request(
        "Which came first?", system="Be brief.", thinking=True,
        history=(
            Turn("What is this?", "A cat.", images=(photo,)),
            Turn("And this?", "A purr.", audio=(Media("audio", clip.getvalue(), "audio/wav", "purr.wav"),)),
            Turn("Thanks", ""),
        ),
    )
    collect(backend_with(wire, modalities="text,image,audio", thinking="true"), request)
    (sent,) = wire.sent
    system, first, answer1, second, answer2, third, answer3, new = sent["messages"]
    assert system == {"role": "system", "content": "Be brief."}
    assert first["role"] == "user" and [part["type"] for part in first["content"]] == ["image_url", "text"]
    assert first["content"][0]["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(
        b"\x89PNG-photo").decode()
    assert second["role"] == "user" and [part["type"] for part in second["content"]] == ["input_audio", "text"]
    assert second["content"][1] == {"type": "text", "text": "And this?"}
    assert (answer1, answer2, answer3) == (
        {"role": "assistant", "content": "A cat."}, {"role": "assistant", "content": "A purr."},
        {"role": "assistant", "content": ""},
    )
    assert third == {"role": "user", "content": "Thanks"}  # no media: plain text, as a single turn sends it
    assert new == {"role": "user", "content": "Which came first?"}
    assert sent["chat_template_kwargs"] == {"enable_thinking": True}


def test_top_k_is_sent_beside_the_openai_fields_only_when_set() -> None:
    # Not an OpenAI field: vLLM and llama.cpp's server read it from the body (the client's
    # `extra_body` would put it there).
    wire = Wire(sse(delta(content="ok", finish="stop")))
    backend = backend_with(wire)
    collect(backend, Request(prompt="hi", temperature=1.0, top_p=0.95, top_k=64, seed=12))
    collect(backend, Request(prompt="hi"))
    sampled, plain = wire.sent
    assert (sampled["temperature"], sampled["top_p"], sampled["top_k"], sampled["seed"]) == (1.0, 0.95, 64, 12)
    assert "top_k" not in plain and "seed" not in plain


def test_api_key_comes_from_the_named_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_API_KEY", "sk-team")
    wire = Wire(sse(delta(content="ok", finish="stop")))
    collect(backend_with(wire, api_key_env="VLLM_API_KEY"))
    assert wire.headers[0]["authorization"] == "Bearer sk-team"
    monkeypatch.delenv("VLLM_API_KEY")
    with pytest.raises(LoadError, match="api_key_env=VLLM_API_KEY but that environment variable is not set"):
        asyncio.run(backend_with(wire, api_key_env="VLLM_API_KEY").load())


def test_reasoning_fields_stream_on_the_thinking_channel_once() -> None:
    wire = Wire(sse(
        delta(role="assistant", content=""),
        delta(reasoning="Let me"),
        delta(reasoning_content=" think."),  # older vLLM
        delta(reasoning="Twice", reasoning_content="Twice"),  # a server sending both names
        delta(content="Answer"),
        delta(finish="stop"),
    ))
    chunks = collect(backend_with(wire, thinking="true"), Request(prompt="hi", thinking=True))
    assert [(c.channel, c.text) for c in chunks if c.text] == [
        ("thinking", "Let me"), ("thinking", " think."), ("thinking", "Twice"), ("answer", "Answer")]


def test_streamed_tool_call_fragments_are_assembled_into_tool_calls() -> None:
    def call(index: int, **function: str) -> dict[str, Any]:
        return {"index": index, "id": f"call_{index}", "type": "function", "function": function}

    wire = Wire(sse(
        delta(tool_calls=[call(0, name="get_weather", arguments="")]),
        delta(tool_calls=[call(0, arguments='{"city": "Pa')]),
        delta(tool_calls=[call(1, name="get_time", arguments='{"tz": ')]),
        delta(tool_calls=[call(0, arguments='ris"}')]),
        delta(tool_calls=[call(1, arguments='"CET"}')]),
        delta(tool_calls=[call(2, name="broken", arguments="{not json")]),
        delta(finish="tool_calls"),
    ))
    chunks = collect(backend_with(wire, tools="true"), Request(prompt="hi", tools=(Tool("get_weather"),)))
    calls = [(c.tool_call.name, dict(c.tool_call.arguments)) for c in chunks if c.tool_call is not None]
    assert calls == [("get_weather", {"city": "Paris"}), ("get_time", {"tz": "CET"}),
                     ("broken", {"_raw": "{not json"})]


def test_usage_and_engine_timings_become_usage_in_seconds() -> None:
    wire = Wire(sse(
        delta(content="Hi"),
        {**delta(finish="stop"), "timings": {"prompt_n": 9, "prompt_ms": 12.5, "predicted_n": 2,
                                            "predicted_ms": 40.0, "predicted_per_second": 50.0}},
        usage_event(9, 2, metrics={"time_to_first_token_ms": 85.2, "generation_time_ms": 1240.5,
                                   "queue_time_ms": 12.3, "mean_itl_ms": None, "tokens_per_second": 103.2,
                                   "output_token_metrics": {"content": {"token_count": 2}}}),
    ))
    chunks = collect(backend_with(wire))
    usage = chunks[-1].usage
    assert usage is not None and (usage.input_tokens, usage.output_tokens) == (9, 2)
    assert usage.server == {
        "prompt_n": 9, "prompt_s": 0.0125, "predicted_n": 2, "predicted_s": 0.04, "predicted_per_second": 50.0,
        "time_to_first_token_s": pytest.approx(0.0852), "generation_time_s": pytest.approx(1.2405),
        "queue_time_s": pytest.approx(0.0123), "tokens_per_second": 103.2,
    }


def test_no_usage_from_the_server_leaves_token_counts_unknown() -> None:
    chunks = collect(backend_with(Wire(sse(delta(content="Hi"), delta(content="!", finish="stop")))))
    usage = chunks[-1].usage
    assert usage is not None and usage.input_tokens is None and usage.output_tokens is None and not usage.server


def test_stream_ending_without_a_finish_reason_is_a_remote_error() -> None:
    # llama-cpp-python ends a stream this way when another request interrupts it
    error = fails_with(backend_with(Wire(sse(delta(content="Hel")))))
    assert isinstance(error, RemoteError)
    assert f"vllm-31b: the server at {BASE} ended the answer early" in str(error)


def test_error_event_inside_the_stream_is_a_generation_error() -> None:
    wire = Wire(sse(delta(content="Hel"), {"error": {"message": "CUDA out of memory", "code": 500}}))
    error = fails_with(backend_with(wire))
    assert isinstance(error, GenerationError) and "stopped with an error mid-answer: CUDA out of memory" in str(error)


def test_an_event_that_is_not_a_json_object_is_a_generation_error_naming_it() -> None:
    body = b'data: ["not", "a", "chunk"]\n\n' + sse(delta(content="!", finish="stop"))
    error = fails_with(backend_with(Wire(body)))
    assert isinstance(error, GenerationError)
    assert "sent a stream event that is not a JSON object: \"['not', 'a', 'chunk']\"" in str(error)


def test_null_and_missing_fields_in_chunks_are_read_as_absent() -> None:
    # what some servers send: null choices, null delta, null content, a usage without counts
    odd = [{"id": "c1", "choices": None}, {"id": "c1", "choices": [{"index": 0, "delta": None, "finish_reason": None}]},
           delta(content=None, role="assistant"), delta(content="Hi"), delta(finish="stop"),
           {"id": "c1", "choices": [], "usage": {"prompt_tokens": None, "completion_tokens": 2}}]
    chunks = collect(backend_with(Wire(sse(*odd))))
    assert [c.text for c in chunks if c.text] == ["Hi"]
    usage = chunks[-1].usage
    assert usage is not None and usage.input_tokens is None and usage.output_tokens == 2


@pytest.mark.parametrize(("status", "says"), [
    (429, "rate-limiting or busy (429 Too Many Requests): wait and retry"),
    (500, "The server failed (500): check its log"),
    (503, "overloaded or still starting (503)"),
    (404, f"check the base URL and that the server serves '{MODEL}'"),
    (401, "refused the credentials"),
    (400, "rejected the request"),
])
def test_error_answers_are_remote_errors_saying_what_to_do(status: int, says: str) -> None:
    error = fails_with(backend_with(Wire(status=status)))
    assert isinstance(error, RemoteError)
    assert str(error).startswith(f"vllm-31b: the server at {BASE} answered {status}: slow down or fix it.")
    assert says.lower() in str(error).lower()


def test_read_timeout_is_a_variant_timeout_naming_the_option() -> None:
    error = fails_with(backend_with(Wire(error=httpx.ReadTimeout("timed out")), read_timeout="7"))
    assert isinstance(error, VariantTimeout) and "sent nothing for 7 s" in str(error) and "read_timeout=" in str(error)


def test_connect_timeout_is_a_remote_error_naming_the_option() -> None:
    error = fails_with(backend_with(Wire(error=httpx.ConnectTimeout("timed out")), connect_timeout="2"))
    assert isinstance(error, RemoteError) and "could not connect to the server at" in str(error)
    assert "within 2 s" in str(error) and "connect_timeout=" in str(error)


def test_load_takes_context_length_and_model_size_from_the_served_models() -> None:
    vllm = asyncio.run(backend_with(Wire()).load())
    assert vllm.capabilities.context_length == 32768 and vllm.weights_bytes is None
    gguf = asyncio.run(backend_with(Wire(), model="gemma-4-e4b.gguf", context_length="4096").load())
    assert gguf.capabilities.context_length == 4096 and gguf.weights_bytes == 5_000_000_000


def test_spec_without_a_model_or_with_unknown_options_is_refused() -> None:
    with pytest.raises(SpecError, match="openai:BASE_URL#MODEL"):
        OpenAIOptions.from_spec_options("http://127.0.0.1:8000/v1", {})
    with pytest.raises(SpecError, match="openai:BASE_URL#MODEL"):
        OpenAIOptions.from_spec_options("127.0.0.1:8000/v1#m", {})
    with pytest.raises(SpecError, match=r"unknown option.*apikey"):
        OpenAIOptions.from_spec_options(f"{BASE}#{MODEL}", {"apikey": "x"})
    with pytest.raises(SpecError, match="tools='maybe' must be true or false"):
        OpenAIOptions.from_spec_options(f"{BASE}#{MODEL}", {"tools": "maybe"})


def test_capabilities_default_to_text_only_until_declared() -> None:
    caps = OpenAIOptions.from_spec_options(f"{BASE}#{MODEL}", {}).declared
    assert caps.modalities == {"text"} and not caps.tools and not caps.thinking and caps.context_length is None

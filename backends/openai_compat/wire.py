"""The OpenAI chat-completions wire format: what a Request becomes, and how streamed chunks
(content, reasoning, tool-call fragments, usage, engine timings) become Chunks.

Chunks are read as the JSON objects the server sent, not as the SDK's typed models: building a
`ChatCompletionChunk` costs ~110 us of CPU per chunk, a dict ~2 us. At a fast server's pace (4
variants streaming 2,000 tokens each) the typed models took most of a core, and the UI's first
token waited behind them (docs/benchmarks.md).

Pure functions and one small accumulator; no I/O here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from backends.base import Capabilities, Chunk, Media, Request, ToolCall, Usage
from backends.openai_compat.options import OpenAIOptions
from backends.remote import base64_text, data_uri, wav_16k_mono

#: Where servers put the thinking trace in a delta: vLLM's `reasoning` (older vLLM and others:
#: `reasoning_content`).
_REASONING_FIELDS = ("reasoning", "reasoning_content")
#: Engine figures beside `usage`: llama.cpp's server `timings`, vLLM's per-request `metrics`.
_FIGURE_OBJECTS = ("timings", "metrics")


def chat_parameters(
    options: OpenAIOptions, request: Request, capabilities: Capabilities, variant: str
) -> dict[str, Any]:
    """The JSON body of `POST /chat/completions` (streamed): the system prompt, each earlier turn
    (the user's message, then this variant's answer as plain text), then the new user turn."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": request.system}] if request.system else []
    for turn in request.history:
        messages.append(_user_message(turn.prompt, turn.images, turn.audio, variant))
        messages.append({"role": "assistant", "content": turn.answer})
    messages.append(_user_message(request.prompt, request.images, request.audio, variant))
    parameters: dict[str, Any] = {
        "model": options.model,
        "messages": messages,
        "stream": True,
        # Always asked for: vLLM's default differs between versions; llama.cpp ignores it.
        "stream_options": {"include_usage": True},
        "max_tokens": request.max_new_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
    }
    if request.top_k is not None:
        # Not in OpenAI's API: the body field the client's `extra_body` would add, which vLLM and
        # llama.cpp's server read.
        parameters["top_k"] = request.top_k
    if request.seed is not None:
        parameters["seed"] = request.seed
    if request.tools:
        parameters["tools"] = [tool.to_openai() for tool in request.tools]
    if capabilities.thinking:
        # Gemma 4's chat template switch; sent both ways so the server's default does not decide.
        parameters["chat_template_kwargs"] = {"enable_thinking": request.thinking}
    return parameters


def _user_message(prompt: str, images: Sequence[Media], audio: Sequence[Media], variant: str) -> dict[str, Any]:
    """A user turn: plain text, or content parts with its own attachments before the text, as
    Gemma's own examples place them."""
    if not images and not audio:
        return {"role": "user", "content": prompt}
    content: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": data_uri(m)}} for m in images]
    content += [
        {"type": "input_audio", "input_audio": {"data": base64_text(wav_16k_mono(m, variant)), "format": "wav"}}
        for m in audio
    ]
    content.append({"type": "text", "text": prompt})
    return {"role": "user", "content": content}


@dataclass
class _PartialCall:
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass
class StreamState:
    """What a chat-completions stream has said so far, chunk by chunk."""

    finished: bool = False
    input_tokens: int | None = None
    output_tokens: int | None = None
    server: dict[str, float] = field(default_factory=dict)
    _calls: dict[int, _PartialCall] = field(default_factory=dict)

    def read(self, chunk: Mapping[str, Any]) -> Iterator[Chunk]:
        """The Chunks in one streamed `chat.completion.chunk` object; tool calls are held until
        they are whole."""
        self._read_figures(chunk)
        for choice in _objects(chunk.get("choices")):
            delta = choice.get("delta")
            if isinstance(delta, Mapping):
                thinking = _reasoning(delta)
                if thinking:
                    yield Chunk(text=thinking, channel="thinking")
                content = delta.get("content")
                if isinstance(content, str) and content:
                    yield Chunk(text=content)
                for fragment in _objects(delta.get("tool_calls")):
                    self._add_call_fragment(fragment)
            if choice.get("finish_reason") is not None:
                self.finished = True
                yield from self.whole_calls()

    def whole_calls(self) -> Iterator[Chunk]:
        """The tool calls assembled so far, each once."""
        for index in sorted(self._calls):
            call = self._calls.pop(index)
            yield Chunk(tool_call=ToolCall(name=call.name, arguments=_arguments("".join(call.arguments))))

    def usage(self) -> Usage:
        """Token counts only when the server sent `usage` (else None: the wrapper counts chunks);
        `server` holds only figures the server sent."""
        return Usage(input_tokens=self.input_tokens, output_tokens=self.output_tokens, server=dict(self.server))

    def _add_call_fragment(self, fragment: Mapping[str, Any]) -> None:
        index = fragment.get("index")
        call = self._calls.setdefault(index if isinstance(index, int) else 0, _PartialCall())
        function = fragment.get("function")
        if isinstance(function, Mapping):
            call.name += _text(function.get("name"))
            call.arguments.append(_text(function.get("arguments")))

    def _read_figures(self, chunk: Mapping[str, Any]) -> None:
        usage = chunk.get("usage")
        if isinstance(usage, Mapping):
            self.input_tokens = _count(usage.get("prompt_tokens"))
            self.output_tokens = _count(usage.get("completion_tokens"))
        for name in _FIGURE_OBJECTS:
            figures = chunk.get(name)
            if isinstance(figures, Mapping):
                self.server.update(engine_figures(figures))


def engine_figures(figures: Mapping[str, Any]) -> dict[str, float]:
    """An engine's numeric figures, milliseconds turned into seconds (`prompt_ms` -> `prompt_s`),
    names otherwise as the engine gives them; nested objects and nulls are left out."""
    found: dict[str, float] = {}
    for name, value in figures.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if name.endswith("_ms"):
            found[name[: -len("_ms")] + "_s"] = value / 1000.0
        else:
            found[name] = float(value)
    return found


def _reasoning(delta: Mapping[str, Any]) -> str:
    # The first field that has text: servers in transition send the same trace under both names.
    for name in _REASONING_FIELDS:
        text = delta.get(name)
        if isinstance(text, str) and text:
            return text
    return ""


def _objects(value: Any) -> Iterator[Mapping[str, Any]]:
    """The JSON objects in a list (a missing or null list has none)."""
    if isinstance(value, list):
        yield from (item for item in value if isinstance(item, Mapping))


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _arguments(text: str) -> dict[str, Any]:
    """A tool call's JSON arguments; text that is not a JSON object is kept under `_raw`, so a
    model's malformed call is shown rather than lost."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {"_raw": text}
    return value if isinstance(value, dict) else {"_raw": text}

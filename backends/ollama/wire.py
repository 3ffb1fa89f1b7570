"""Ollama's wire format: what a Request becomes, and what Ollama's answers become.

Pure functions over plain values and the `ollama` client's response models; no I/O here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from backends.base import Capabilities, Chunk, Media, Modality, Request, ToolCall, Usage
from backends.ollama.options import OllamaOptions
from backends.remote import wav_16k_mono

_NS = 1e-9
#: Ollama's final-chunk figures, in nanoseconds where named *_duration.
_FIGURES = (
    "total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration", "eval_count",
    "eval_duration",
)
_CAPABILITY_MODALITIES: Mapping[str, Modality] = {"vision": "image", "audio": "audio"}


def chat_arguments(
    options: OllamaOptions, request: Request, capabilities: Capabilities, variant: str
) -> dict[str, Any]:
    """Keyword arguments for `ollama.AsyncClient.chat(..., stream=True)`: the system prompt, each
    earlier turn (the user's message with its own attachments, then this variant's answer), then
    the new user turn."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": request.system}] if request.system else []
    for turn in request.history:
        messages.append(_user_message(turn.prompt, turn.images, turn.audio, variant))
        messages.append({"role": "assistant", "content": turn.answer})
    messages.append(_user_message(request.prompt, request.images, request.audio, variant))
    sampling: dict[str, Any] = {
        **options.model_options(),
        "temperature": request.temperature,
        "top_p": request.top_p,
        "num_predict": request.max_new_tokens,
    }
    if request.top_k is not None:
        sampling["top_k"] = request.top_k
    if request.seed is not None:
        sampling["seed"] = request.seed
    arguments: dict[str, Any] = {"model": options.tag, "messages": messages, "options": sampling}
    # A thinking model thinks unless told not to (Ollama defaults `think` to true for it), and a
    # model without thinking answers 400 to think=true: so say it exactly when the model has it.
    if capabilities.thinking:
        arguments["think"] = request.thinking
    if request.tools:
        arguments["tools"] = [tool.to_openai() for tool in request.tools]
    if options.keep_alive is not None:
        arguments["keep_alive"] = options.keep_alive
    return arguments


def _user_message(prompt: str, images: Sequence[Media], audio: Sequence[Media], variant: str) -> dict[str, Any]:
    user: dict[str, Any] = {"role": "user", "content": prompt}
    # Audio goes in the same `images` list: Ollama tells the two apart by the file header.
    media = [m.data for m in images] + [wav_16k_mono(m, variant) for m in audio]
    if media:
        user["images"] = media
    return user


def chunks_of(part: Any) -> Iterator[Chunk]:
    """The Chunks in one streamed `ChatResponse` part (thinking, answer, tool calls, usage)."""
    message = part.message
    if message is not None:
        if message.thinking:
            yield Chunk(text=message.thinking, channel="thinking")
        if message.content:
            yield Chunk(text=message.content)
        for call in message.tool_calls or ():
            yield Chunk(tool_call=ToolCall(name=call.function.name, arguments=dict(call.function.arguments)))
    if part.done:
        yield Chunk(usage=usage_of(part))


def usage_of(part: Any) -> Usage:
    """Ollama's own figures from the final (`done: true`) chunk, durations in seconds."""
    server: dict[str, float] = {}
    for name in _FIGURES:
        value = getattr(part, name, None)
        if value is not None:
            server[name] = value * _NS if name.endswith("_duration") else float(value)
    # `ollama run --verbose` shows these rates; beside our wall-clock rate they show transport cost.
    for rate, count, duration in (
        ("prompt_eval_rate", "prompt_eval_count", "prompt_eval_duration"),
        ("eval_rate", "eval_count", "eval_duration"),
    ):
        if server.get(count) and server.get(duration):
            server[rate] = server[count] / server[duration]
    return Usage(
        input_tokens=part.prompt_eval_count,
        output_tokens=part.eval_count,
        server=server,
    )


def capabilities_of(show: Any, declared: frozenset[Modality] | None, num_ctx: int | None) -> Capabilities:
    """Capabilities from `/api/show`: `capabilities[]` and the model's context length."""
    names = set(show.capabilities or ())
    modalities: set[Modality] = {m for c, m in _CAPABILITY_MODALITIES.items() if c in names}
    modalities.add("text")
    return Capabilities(
        modalities=declared if declared is not None else frozenset(modalities),
        tools="tools" in names,
        thinking="thinking" in names,
        context_length=num_ctx or trained_context(show.modelinfo or {}),
    )


def trained_context(model_info: Mapping[str, Any]) -> int | None:
    """`<architecture>.context_length` from `/api/show`'s model_info."""
    architecture = model_info.get("general.architecture")
    value = model_info.get(f"{architecture}.context_length")
    if value is None:
        value = next((v for k, v in model_info.items() if k.endswith(".context_length")), None)
    return int(value) if isinstance(value, int | float) else None


def find_model(models: Sequence[Any], full_tag: str) -> Any | None:
    """The entry of `/api/tags` or `/api/ps` for a tag (`model` or `name` field, any case)."""
    wanted = full_tag.lower()
    for entry in models:
        names = {str(getattr(entry, key, "") or "").lower() for key in ("model", "name")}
        if wanted in names:
            return entry
    return None

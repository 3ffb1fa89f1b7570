"""The values every backend speaks and the one protocol each implements.

A backend only *yields*: text in the answer or thinking channel, tool calls, and a final usage
report. Timing, token counting and memory are taken once, around the whole stream, by
`arena.measure`, so figures from different engines are comparable.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol, runtime_checkable

Modality = Literal["text", "image", "audio"]
Channel = Literal["answer", "thinking"]

#: Called with a fraction in [0, 1] (or None when unknown) and a short description of the step.
ProgressFn = Callable[[float | None, str], None]


def no_progress(fraction: float | None, message: str) -> None:
    """A ProgressFn that ignores what it is told."""


@dataclass(frozen=True)
class Media:
    """An image or audio clip attached to a request, as the bytes of its file."""

    kind: Literal["image", "audio"]
    data: bytes = field(repr=False)
    mime: str
    name: str = ""

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class Tool:
    """A function the model may call, described by a JSON schema (OpenAI's function format)."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=dict)

    def to_openai(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": dict(self.parameters) or {"type": "object", "properties": {}},
            },
        }

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> Tool:
        """Accepts OpenAI's `{"type": "function", "function": {...}}` or the bare function object."""
        fn = item.get("function", item)
        if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise ValueError("each tool needs a 'name' (OpenAI function format)")
        return cls(
            name=fn["name"],
            description=str(fn.get("description", "")),
            parameters=dict(fn.get("parameters") or {}),
        )


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "arguments": dict(self.arguments)}


@dataclass(frozen=True)
class Turn:
    """One earlier exchange of a conversation as one variant saw it: the user's message (with its
    attachments) and that variant's own answer, its thinking left out (Gemma 4's chat template
    drops the thoughts of earlier turns)."""

    prompt: str
    answer: str
    images: tuple[Media, ...] = ()
    audio: tuple[Media, ...] = ()


@dataclass(frozen=True)
class Request:
    """One prompt, sent identically to every variant of a comparison. In a conversation of
    several turns, `history` holds the earlier turns as this variant saw them (each variant
    keeps its own answers), oldest first; `prompt`, `images` and `audio` are the new turn."""

    prompt: str
    system: str | None = None
    images: tuple[Media, ...] = ()
    audio: tuple[Media, ...] = ()
    max_new_tokens: int = 256
    temperature: float = 0.0  # 0 means greedy decoding
    top_p: float = 1.0
    #: Sample among the k likeliest tokens only; None asks for no cut-off (a remote engine then
    #: applies its own default, e.g. Ollama's 40).
    top_k: int | None = None
    seed: int | None = None
    thinking: bool = False
    tools: tuple[Tool, ...] = ()
    history: tuple[Turn, ...] = ()

    @property
    def modalities(self) -> frozenset[Modality]:
        """What a variant must take to answer: the media of the new turn and of every earlier one."""
        found: set[Modality] = {"text"}
        if self.images or any(turn.images for turn in self.history):
            found.add("image")
        if self.audio or any(turn.audio for turn in self.history):
            found.add("audio")
        return frozenset(found)

    def with_history(self, history: Iterable[Turn]) -> Request:
        """This turn with `history` before it."""
        return replace(self, history=tuple(history))

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary of this turn (media by hash, not bytes), for logs and storage. The
        history is not in it: a stored turn points at the one before it (`parent_id`)."""
        return {
            "prompt": self.prompt,
            "system": self.system,
            "images": [{"sha256": m.sha256, "mime": m.mime, "name": m.name} for m in self.images],
            "audio": [{"sha256": m.sha256, "mime": m.mime, "name": m.name} for m in self.audio],
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "seed": self.seed,
            "thinking": self.thinking,
            "tools": [t.to_openai() for t in self.tools],
        }

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.describe(), sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Usage:
    """What the engine itself says about a finished answer. Any field may be unknown."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    #: The engine's own figures, in seconds or counts, named as the engine names them
    #: (e.g. Ollama's eval_duration, llama.cpp's predicted_per_second).
    server: Mapping[str, float] = field(default_factory=dict)
    #: The memory this very request used, when the backend measures it per request (a local
    #: worker): preferred over `Backend.memory()`, which another request may have updated since.
    memory: MemoryReport | None = None


@dataclass(frozen=True)
class Chunk:
    """One piece of a streamed answer.

    `tokens` is how many generated tokens this chunk accounts for, when the backend knows it
    (0 when it does not: the measuring wrapper then counts chunks, and says so).
    `started` marks the (empty) chunk a backend yields when the engine begins working on the
    request, after waiting in line behind others: the wrapper reports that wait as the queue
    wait and times TTFT from here.
    """

    text: str = ""
    channel: Channel = "answer"
    tokens: int = 0
    tool_call: ToolCall | None = None
    usage: Usage | None = None
    started: bool = False


@dataclass(frozen=True)
class Capabilities:
    modalities: frozenset[Modality] = frozenset({"text"})
    tools: bool = False
    thinking: bool = False
    context_length: int | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "modalities": sorted(self.modalities),
            "tools": self.tools,
            "thinking": self.thinking,
            "context_length": self.context_length,
        }


@dataclass(frozen=True)
class LoadReport:
    """How loading went. `weights_bytes` is the model's own footprint where the backend can tell."""

    load_s: float
    capabilities: Capabilities
    weights_bytes: int | None = None
    device: str = ""
    dtype: str = ""
    quantization: str | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class MemoryReport:
    """Memory used by a variant. `kind` says what was measured, so numbers are never mixed up:
    'cuda' (torch's CUDA allocations on the model's GPUs), 'rss' (the worker process's resident
    memory), 'server' (what a remote engine reports); 'cuda-peak'/'rss-peak' in runs stored
    before per-request figures, where `peak_bytes` was the process's lifetime peak.

    - `weights_bytes`: the model's parameters and buffers as they lie in memory (packed size
      for quantized weights), `weights_by_device` the same by device ("cpu", "cuda:0", ...);
    - `request_peak_bytes`: the last request's peak above what was in use just before it (KV
      cache, activations, inputs): on CUDA summed over the model's GPUs, on a CPU the worker's
      RSS sampled during generation;
    - `peak_bytes`: the process total at that peak (RSS, or CUDA memory reserved by torch), or
      a server's own figure. The variant's own memory is weights + request peak.
    """

    peak_bytes: int | None
    weights_bytes: int | None
    kind: str
    #: The engine's own memory figures, named as it names them (e.g. Ollama's size_vram).
    server: Mapping[str, float] = field(default_factory=dict)
    request_peak_bytes: int | None = None
    weights_by_device: Mapping[str, int] = field(default_factory=dict)


@runtime_checkable
class Backend(Protocol):
    """How one variant is run. Implementations are registered by spec prefix in `backends.registry`."""

    @property
    def name(self) -> str: ...

    @property
    def capabilities(self) -> Capabilities: ...

    async def load(self, progress: ProgressFn = no_progress) -> LoadReport:
        """Make the variant ready (start a worker, check a server). Safe to call once."""
        ...

    def stream(self, request: Request) -> AsyncIterator[Chunk]:
        """Yield the answer as it is generated. Closing the iterator early cancels generation."""
        ...

    async def memory(self) -> MemoryReport:
        """Memory figures as of the last finished request."""
        ...

    async def close(self) -> None:
        """Release everything (end the worker). Idempotent."""
        ...

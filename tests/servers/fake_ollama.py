"""A loopback server that answers like Ollama, for tests (no Ollama server can be installed here).

It reproduces the documented endpoints and what Ollama's own handlers do (server/routes.go):

- `POST /api/chat`: NDJSON (`application/x-ndjson`, chunked), one object per token
  `{model, created_at, message: {role, content, thinking?}, done: false}`, tool calls as
  `message.tool_calls: [{id, function: {index, name, arguments}}]`, then a final
  `done: true` object with `done_reason` and the metrics in nanoseconds. An empty `messages`
  list loads the model (`done_reason: "load"`). A thinking model thinks when `think` is absent.
- 404 `{"error": "model 'X' not found"}` for a model that is not pulled (chat and show);
  400 `{"error": "\\"X\\" does not support thinking"}` for think=true on a model without it.
- `GET /api/tags`, `GET /api/ps` (models loaded by an earlier chat), `POST /api/show`
  (`capabilities`, `details`, `model_info` with `<family>.context_length`).

What it cannot reproduce: real tokenization and timing, the model's text, and undocumented
behaviour (how audio is told from images). `Script` sets what the next chats answer, including
failures (an HTTP error, an `{"error"}` line mid-stream, a connection cut before `done`).
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.servers.loopback import Exchange, LoopbackServer, paced

_NDJSON = "application/x-ndjson"


@dataclass(frozen=True)
class FakeModel:
    tag: str
    capabilities: tuple[str, ...] = ("completion",)
    family: str = "gemma4"
    context_length: int = 131072
    parameter_size: str = "8.0B"
    quantization: str = "Q4_K_M"
    size: int = 9_600_000_000
    size_vram: int = 9_600_000_000


#: A server's shelf for tests: Gemma 4 E4B and 31B as Ollama describes them, a text-only model
#: and an embedding model.
GEMMA4_E4B = FakeModel("gemma4:e4b", capabilities=("completion", "vision", "audio", "tools", "thinking"))
GEMMA4_31B = FakeModel("gemma4:31b", capabilities=("completion", "vision", "tools", "thinking"),
                       context_length=262144, parameter_size="31B", size=19_000_000_000, size_vram=12_000_000_000)
TEXT_ONLY = FakeModel("tinyllama:latest", family="llama", context_length=2048, size=600_000_000, size_vram=0)
EMBEDDING = FakeModel("nomic-embed-text:latest", capabilities=("embedding",), family="nomic-bert")


@dataclass
class Script:
    """What the next `/api/chat` requests answer."""

    answer: tuple[str, ...] = ("Hello", ",", " world", ".")
    thinking: tuple[str, ...] = ("Let", " me", " think", ".")
    tool_calls: tuple[dict[str, Any], ...] = ()
    interval_s: float = 0.0
    #: Answer with this (status, error text) instead of a stream.
    status: tuple[int, str] | None = None
    #: Drop the connection after this many NDJSON lines, before `done`.
    cut_after: int | None = None
    #: Send `{"error": ...}` after this many NDJSON lines, as Ollama does when generation fails.
    error_after: int | None = None


@dataclass
class FakeOllama:
    """An Ollama-like server on a free loopback port. Use as a context manager."""

    models: list[FakeModel]
    script: Script = field(default_factory=Script)
    requests: list[tuple[str, Any]] = field(default_factory=list)
    loaded: dict[str, int] = field(default_factory=dict)  # tag -> num_ctx
    _server: LoopbackServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return self._server.url

    @property
    def client_gone(self) -> bool:
        return self._server is not None and self._server.client_gone.is_set()

    def wait_client_gone(self, timeout_s: float) -> bool:
        assert self._server is not None
        return self._server.client_gone.wait(timeout_s)

    def chats(self) -> list[dict[str, Any]]:
        """The bodies of the `/api/chat` requests received, oldest first."""
        return [body for path, body in self.requests if path == "/api/chat"]

    def __enter__(self) -> FakeOllama:
        self._server = LoopbackServer({
            ("POST", "/api/chat"): self._chat,
            ("GET", "/api/tags"): self._tags,
            ("GET", "/api/ps"): self._ps,
            ("POST", "/api/show"): self._show,
            ("GET", "/"): lambda ex: ex.send_json(200, "Ollama is running", "text/plain; charset=utf-8"),
        }).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.stop()

    # ------------------------------------------------------------------ routes
    def _find(self, name: str) -> FakeModel | None:
        full = name if ":" in name else f"{name}:latest"
        return next((m for m in self.models if m.tag.lower() == full.lower()), None)

    def _show(self, ex: Exchange) -> None:
        body = ex.json()
        self.requests.append((ex.path, body))
        name = body.get("model") or body.get("name") or ""
        model = self._find(name)
        if model is None:
            ex.send_json(404, {"error": f"model '{name}' not found"})
            return
        ex.send_json(200, {
            "license": "Gemma Terms of Use",
            "modelfile": f"FROM {model.tag}\n",
            "parameters": 'stop "<turn|>"',
            "template": "{{ .Prompt }}",
            "details": _details(model),
            "model_info": {
                "general.architecture": model.family,
                "general.parameter_count": 8_000_000_000,
                f"{model.family}.context_length": model.context_length,
            },
            "capabilities": list(model.capabilities),
            "modified_at": _now(),
        })

    def _tags(self, ex: Exchange) -> None:
        self.requests.append((ex.path, None))
        ex.send_json(200, {"models": [
            {"name": m.tag, "model": m.tag, "modified_at": _now(), "size": m.size,
             "digest": "a" * 64, "details": _details(m)}
            for m in self.models
        ]})

    def _ps(self, ex: Exchange) -> None:
        self.requests.append((ex.path, None))
        expires = (datetime.now(UTC) + timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
        ex.send_json(200, {"models": [
            {"name": m.tag, "model": m.tag, "size": m.size + 400_000_000, "digest": "a" * 64,
             "details": _details(m), "expires_at": expires, "size_vram": m.size_vram,
             "context_length": self.loaded[m.tag]}
            for m in self.models if m.tag in self.loaded
        ]})

    def _chat(self, ex: Exchange) -> None:
        started = time.perf_counter_ns()
        body = ex.json()
        self.requests.append((ex.path, body))
        name = body.get("model", "")
        model = self._find(name)
        if model is None:
            ex.send_json(404, {"error": f"model '{name}' not found"})
            return
        think = body.get("think")
        if "thinking" not in model.capabilities and think:
            ex.send_json(400, {"error": f'"{name}" does not support thinking'})
            return
        if body.get("tools") and "tools" not in model.capabilities:
            ex.send_json(400, {"error": f'"{name}" does not support tools'})
            return
        for message in body.get("messages", []):
            for image in message.get("images") or []:
                base64.b64decode(image, validate=True)  # Ollama rejects what is not base64
        was_loaded = model.tag in self.loaded
        self.loaded[model.tag] = int((body.get("options") or {}).get("num_ctx") or 4096)
        if not body.get("messages"):
            ex.send_json(200, {"model": name, "created_at": _now(), "message": {"role": "assistant", "content": ""},
                               "done_reason": "load", "done": True})
            return
        script = self.script
        if script.status is not None:
            ex.send_json(script.status[0], {"error": script.status[1]})
            return
        thinks = "thinking" in model.capabilities and think is not False
        self._stream(ex, name, body, script, thinks, started, was_loaded)

    def _stream(
        self, ex: Exchange, name: str, body: dict[str, Any], script: Script, thinks: bool, started: int,
        was_loaded: bool,
    ) -> None:
        limit = int((body.get("options") or {}).get("num_predict") or 1_000_000)
        planned = [("thinking", t) for t in script.thinking] if thinks else []
        planned += [("content", t) for t in script.answer]
        pieces = planned[:limit]
        ex.start_chunked(_NDJSON)
        first_ns = time.perf_counter_ns()
        for sent, (kind, text) in enumerate(paced(pieces, script.interval_s)):
            if script.cut_after is not None and sent >= script.cut_after:
                ex.cut()
                return
            if script.error_after is not None and sent >= script.error_after:
                _line(ex, {"error": "an error was encountered while running the model: CUDA error: out of memory"})
                ex.end_chunked()
                return
            message = {"role": "assistant", "content": text if kind == "content" else ""}
            if kind == "thinking":
                message["thinking"] = text
            _line(ex, {"model": name, "created_at": _now(), "message": message, "done": False})
        if script.tool_calls and body.get("tools"):
            calls = [{"id": f"call_{i:08d}", "function": {"index": i, **call}}
                     for i, call in enumerate(script.tool_calls)]
            _line(ex, {"model": name, "created_at": _now(),
                       "message": {"role": "assistant", "content": "", "tool_calls": calls}, "done": False})
        end_ns = time.perf_counter_ns()
        prompt_tokens = sum(len(str(m.get("content", "")).split()) + 4 for m in body.get("messages", []))
        _line(ex, {
            "model": name, "created_at": _now(), "message": {"role": "assistant", "content": ""},
            "done_reason": "length" if len(planned) > limit else "stop", "done": True,
            "total_duration": end_ns - started + (0 if was_loaded else 1_500_000_000),
            "load_duration": 2_000_000 if was_loaded else 1_500_000_000,
            "prompt_eval_count": prompt_tokens, "prompt_eval_duration": max(1, first_ns - started),
            "eval_count": len(pieces), "eval_duration": max(1, end_ns - first_ns),
        })
        ex.end_chunked()


def _line(ex: Exchange, value: dict[str, Any]) -> None:
    ex.send_chunk(json.dumps(value).encode() + b"\n")


def _details(model: FakeModel) -> dict[str, Any]:
    return {"parent_model": "", "format": "gguf", "family": model.family, "families": [model.family],
            "parameter_size": model.parameter_size, "quantization_level": model.quantization}


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")

"""A loopback OpenAI-compatible server that streams a fixed answer at a fixed token rate.

For the benchmark, where what matters is a known rate on each server, not a model; tests of the
OpenAI-compatible backend use a real llama.cpp server instead. Wire format as vLLM sends it:
SSE `data: {chat.completion.chunk}` lines, one token each, a last content chunk with
`finish_reason`, a usage chunk with `choices: []` when `stream_options.include_usage` is set,
then `data: [DONE]`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from tests.servers.loopback import Exchange, LoopbackServer, paced


@dataclass
class FakeOpenAI:
    """Serves `model` at `/v1`; each answer is `tokens` tokens at `tokens_per_s`."""

    model: str = "google/gemma-4-31B-it"
    tokens: int = 100
    tokens_per_s: float = 50.0
    _server: LoopbackServer | None = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"{self._server.url}/v1"

    def __enter__(self) -> FakeOpenAI:
        self._server = LoopbackServer({
            ("GET", "/v1/models"): self._models,
            ("POST", "/v1/chat/completions"): self._chat,
        }).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.stop()

    def _models(self, ex: Exchange) -> None:
        ex.send_json(200, {"object": "list", "data": [
            {"id": self.model, "object": "model", "created": int(time.time()), "owned_by": "vllm",
             "root": self.model, "max_model_len": 8192},
        ]})

    def _chat(self, ex: Exchange) -> None:
        body = ex.json()
        if body.get("model") != self.model:
            ex.send_json(404, {"object": "error", "message": f"The model `{body.get('model')}` does not exist.",
                               "type": "NotFoundError", "param": None, "code": 404})
            return
        count = min(self.tokens, int(body.get("max_tokens") or self.tokens))
        created = int(time.time())

        def event(choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> None:
            chunk = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": created,
                     "model": self.model, "choices": choices, "usage": usage}
            ex.send_chunk(b"data: " + json.dumps(chunk).encode() + b"\n\n")

        ex.start_chunked("text/event-stream; charset=utf-8")
        event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        for index in paced(range(count), 1.0 / self.tokens_per_s):
            last = index == count - 1
            event([{"index": 0, "delta": {"content": f" t{index}"}, "logprobs": None,
                    "finish_reason": "length" if last else None}])
        if (body.get("stream_options") or {}).get("include_usage"):
            event([], {"prompt_tokens": 12, "completion_tokens": count, "total_tokens": 12 + count})
        ex.send_chunk(b"data: [DONE]\n\n")
        ex.end_chunked()

"""The app's side of a model on an OpenAI-compatible server, through `openai.AsyncOpenAI`."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import openai

from arena.errors import ArenaError, GenerationError, LoadError, VariantError
from backends.base import Capabilities, Chunk, LoadReport, MemoryReport, ProgressFn, Request, no_progress
from backends.openai_compat.options import OpenAIOptions
from backends.openai_compat.wire import StreamState, chat_parameters
from backends.remote import PerLoop, ServerRef, status_failure, stream_cut, transport_failure

_NO_MEMORY = MemoryReport(peak_bytes=None, weights_bytes=None, kind="unknown")
#: A chat-completions stream whose chunks stay plain JSON objects.
_RawChunks = openai.AsyncStream[object]


class OpenAICompatBackend:
    """One model served by vLLM, llama.cpp or any OpenAI-compatible server.
    `transport` replaces the network (tests)."""

    def __init__(
        self, name: str, options: OpenAIOptions, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._name = name
        self.options = options
        self._transport = transport
        self._ref = ServerRef(
            variant=name,
            server=f"the server at {options.base_url}",
            start_hint="start the server (e.g. `vllm serve ...`), or fix the base URL before the # in the spec",
            timeouts=options.timeouts,
        )
        self._clients: PerLoop[openai.AsyncOpenAI] = PerLoop(self._make_client, _close_client)
        self._capabilities = options.declared
        self._report: LoadReport | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def capabilities(self) -> Capabilities:
        """As declared by the options; the context length may come from the server's `/models`."""
        return self._capabilities

    async def load(self, progress: ProgressFn = no_progress) -> LoadReport:
        """Check that the server answers `GET /models` and serves this model. The server loaded
        the weights itself, so load_s is only this check."""
        if self._report is not None:
            return self._report
        started = time.perf_counter()
        progress(0.0, f"asking {self._ref.server} which models it serves")
        try:
            page = await self._clients.get().models.list()
        except (openai.APIError, httpx.HTTPError) as exc:
            raise LoadError(str(self._failure(exc))) from exc
        except ArenaError as exc:  # an api_key_env naming an unset variable
            raise LoadError(str(exc)) from exc
        served = {entry.id: entry for entry in page.data}
        entry = served.get(self.options.model)
        if entry is None:
            raise LoadError(
                f"{self._name}: {self._ref.server} does not serve {self.options.model!r}; it serves "
                f"{', '.join(sorted(served)) or 'nothing'}. Put one of those after the # in the spec (or "
                "start the server with that name, e.g. vLLM's --served-model-name)"
            )
        extra = entry.model_extra or {}
        if self._capabilities.context_length is None and isinstance(extra.get("max_model_len"), int):
            self._capabilities = replace(self._capabilities, context_length=extra["max_model_len"])
        self._report = LoadReport(
            load_s=time.perf_counter() - started,
            capabilities=self._capabilities,
            weights_bytes=_weights_bytes(extra),
            device=self._ref.server,
            notes=(
                "capabilities as declared in the spec options (the protocol cannot tell them)",
                "token counts from the server's usage when it sends one, else counted from chunks",
            ),
        )
        progress(1.0, "ready")
        return self._report

    async def stream(self, request: Request) -> AsyncIterator[Chunk]:
        """Stream the answer; the last chunk carries the server's usage and timings, if any."""
        body = chat_parameters(self.options, request, self._capabilities, self._name)
        state = StreamState()
        try:
            # The SDK's own request, retries, errors and SSE decoding, but chunks left as the JSON
            # objects they are (see backends.openai_compat.wire).
            stream = await self._clients.get().post(
                "/chat/completions", body=body, cast_to=object, stream=True, stream_cls=_RawChunks
            )
        except (openai.APIError, httpx.HTTPError) as exc:
            raise self._failure(exc) from exc
        try:
            async for completion_chunk in stream:
                if not isinstance(completion_chunk, dict):
                    raise GenerationError(
                        f"{self._name}: {self._ref.server} sent a stream event that is not a JSON object: "
                        f"{str(completion_chunk)[:200]!r}. Is it an OpenAI-compatible chat server?"
                    )
                for chunk in state.read(completion_chunk):
                    yield chunk
        except (openai.APIError, httpx.HTTPError) as exc:
            raise self._failure(exc, mid_answer=True) from exc
        finally:
            # Closing the response drops the connection: vLLM and llama.cpp then stop generating.
            await stream.close()
        for chunk in state.whole_calls():  # a server that ended without a finish_reason
            yield chunk
        if not state.finished:
            raise stream_cut(self._ref)
        yield Chunk(usage=state.usage())

    async def memory(self) -> MemoryReport:
        """The OpenAI protocol reports no memory figures."""
        return _NO_MEMORY

    async def close(self) -> None:
        await self._clients.close()

    def _failure(self, exc: BaseException, *, mid_answer: bool = False) -> VariantError:
        if isinstance(exc, openai.APIStatusError):
            return status_failure(
                self._ref,
                exc.status_code,
                _detail(exc),
                not_found_hint=f"Check the base URL and that the server serves {self.options.model!r} "
                "(its GET /models lists what it serves)",
            )
        if isinstance(exc, openai.APIError) and not isinstance(exc, openai.APIConnectionError):
            # An `{"error": ...}` event inside a 200 stream: generation failed on the server.
            return GenerationError(
                f"{self._name}: {self._ref.server} stopped with an error mid-answer: {exc.message}. Check its "
                "log; retry, or shorten the request if it ran out of memory or context"
            )
        return transport_failure(self._ref, exc, mid_answer=mid_answer)

    def _make_client(self) -> openai.AsyncOpenAI:
        # Our own httpx client, so connect and read timeouts are ours, not the library's 10 minutes.
        extra: dict[str, Any] = {} if self._transport is None else {"transport": self._transport}
        http_client = httpx.AsyncClient(timeout=self.options.timeouts.httpx(), **extra)
        return openai.AsyncOpenAI(
            base_url=self.options.base_url,
            api_key=self.options.api_key(),
            http_client=http_client,  # type: ignore[arg-type]  # openai 3.x types httpx2, accepts httpx
            max_retries=self.options.max_retries,
        )


async def _close_client(client: openai.AsyncOpenAI) -> None:
    await client.close()


def _detail(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = inner.get("message") if isinstance(inner, dict) else inner
        if message:
            return str(message)
    return str(exc.message)


def _weights_bytes(model_extra: dict[str, Any]) -> int | None:
    """llama.cpp's server lists the model file's size under `meta.size`."""
    meta = model_extra.get("meta")
    size = meta.get("size") if isinstance(meta, dict) else None
    return size if isinstance(size, int) and size > 0 else None

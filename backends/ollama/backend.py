"""The app's side of an Ollama model, through the official `ollama.AsyncClient`."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, cast

import httpx
import ollama
import pydantic

from arena.errors import ArenaError, GenerationError, LoadError, RemoteError, VariantError
from arena.units import format_bytes
from backends.base import Capabilities, Chunk, LoadReport, MemoryReport, ProgressFn, Request, no_progress
from backends.ollama.options import OllamaOptions
from backends.ollama.wire import capabilities_of, chat_arguments, chunks_of, find_model
from backends.remote import PerLoop, ServerRef, status_failure, stream_cut, transport_failure


class OllamaBackend:
    """One model on an Ollama server. `transport` replaces the network (tests)."""

    def __init__(
        self, name: str, options: OllamaOptions, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._name = name
        self.options = options
        self._transport = transport
        self._ref = ServerRef(
            variant=name,
            server=f"Ollama at {options.host}",
            start_hint="start it with `ollama serve`, or set host= (or OLLAMA_HOST) to where it runs",
            timeouts=options.timeouts,
        )
        self._clients: PerLoop[ollama.AsyncClient] = PerLoop(self._make_client, _close_client)
        self._capabilities = Capabilities(modalities=options.modalities or frozenset({"text"}))
        self._report: LoadReport | None = None
        self._weights_bytes: int | None = None
        self._memory = MemoryReport(peak_bytes=None, weights_bytes=None, kind="server")
        #: (bytes in memory, bytes on the GPU) from the last `/api/ps` that listed the model.
        self.placement: tuple[int | None, int | None] | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def capabilities(self) -> Capabilities:
        """Before `load()`: text (or the `modalities` option); after: what `/api/show` says."""
        return self._capabilities

    # ----------------------------------------------------------------- loading
    async def load(self, progress: ProgressFn = no_progress) -> LoadReport:
        """Check the server is up and the model pulled, learn its capabilities, and (unless
        `preload=false`) load it into the server's memory."""
        if self._report is not None:
            return self._report
        started = time.perf_counter()
        tag = self.options.tag
        # Its own client: loading a big model takes minutes, so this one waits load_timeout.
        client = self._make_client(read_s=self.options.load_timeout_s)
        try:
            progress(0.0, f"asking {self._ref.server} about {tag}")
            show = await client.show(tag)
            self._check_can_chat(show.capabilities)
            listed = find_model((await client.list()).models, self.options.full_tag)
            if self.options.preload:
                progress(0.3, f"loading {tag} into Ollama's memory")
                # An empty message list makes Ollama load the model and answer done_reason "load".
                await client.chat(
                    model=tag,
                    messages=[],
                    options=self.options.model_options() or None,
                    keep_alive=self.options.keep_alive,
                )
            placement = await self._placement(client)
        except ollama.ResponseError as exc:
            raise LoadError(str(self._status_error(exc))) from exc
        except (httpx.HTTPError, ConnectionError) as exc:
            raise LoadError(str(transport_failure(self._ref, exc))) from exc
        finally:
            await _close_client(client)
        self._weights_bytes = int(listed.size) if listed is not None and listed.size else None
        context = self.options.num_ctx or (placement.context_length if placement is not None else None)
        self._capabilities = capabilities_of(show, self.options.modalities, context)
        notes = [
            f"context window {context} tokens"
            if context
            else f"Ollama's default context window (trained for {self._capabilities.context_length})"
        ]
        if self.placement is not None:
            size, vram = self.placement
            notes.append(f"Ollama holds {format_bytes(size)} in memory, {format_bytes(vram)} of it on the GPU")
        self._report = LoadReport(
            load_s=time.perf_counter() - started,
            capabilities=self._capabilities,
            weights_bytes=self._weights_bytes,
            device=self._ref.server,
            quantization=(show.details.quantization_level if show.details is not None else None) or None,
            notes=tuple(notes),
        )
        progress(1.0, "ready")
        return self._report

    def _check_can_chat(self, capabilities: list[str] | None) -> None:
        # A server older than the `capabilities` field gets the benefit of the doubt.
        if capabilities is not None and "completion" not in capabilities:
            raise LoadError(
                f"{self._name}: {self.options.tag} cannot chat (its capabilities: "
                f"{', '.join(capabilities) or 'none'}): pick a chat model, e.g. ollama:gemma4:e4b"
            )

    # -------------------------------------------------------------- generation
    async def stream(self, request: Request) -> AsyncIterator[Chunk]:
        """Stream Ollama's answer; the last chunk carries Ollama's own figures as Usage."""
        arguments = chat_arguments(self.options, request, self._capabilities, self._name)
        client = self._clients.get()
        finished = False
        try:
            parts = cast("AsyncGenerator[Any, None]", await client.chat(**arguments, stream=True))
            async with contextlib.aclosing(parts) as lines:  # closing ends the HTTP stream: Ollama stops
                async for part in lines:
                    for chunk in chunks_of(part):
                        yield chunk
                    finished = finished or bool(part.done)
        except ollama.ResponseError as exc:
            raise self._status_error(exc) from exc
        except (json.JSONDecodeError, pydantic.ValidationError) as exc:
            # A line cut in half by a dropped connection, or something that is not Ollama.
            raise RemoteError(
                f"{self._name}: {self._ref.server} sent a line that is not Ollama's format "
                f"({type(exc).__name__}): the connection may have been cut, or host= points at "
                "another kind of server; check the server, then retry"
            ) from exc
        except (httpx.HTTPError, ConnectionError) as exc:
            raise transport_failure(self._ref, exc) from exc
        if not finished:
            raise stream_cut(self._ref)

    async def memory(self) -> MemoryReport:
        """Ollama's `/api/ps` for this model: `size` (all it holds: weights, KV cache, buffers;
        current, not a peak) as peak_bytes, the pulled model's size on disk as weights_bytes.
        Both `size` and the GPU share `size_vram` are also given as the engine's own figures."""
        with contextlib.suppress(ArenaError, httpx.HTTPError, ConnectionError, ollama.ResponseError):
            await self._placement(self._clients.get())
            size, vram = self.placement or (None, None)
            figures = {name: float(v) for name, v in (("ps_size_bytes", size), ("ps_size_vram_bytes", vram))
                       if v is not None}
            self._memory = MemoryReport(peak_bytes=size, weights_bytes=self._weights_bytes, kind="server",
                                        server=figures)
        return self._memory

    async def close(self) -> None:
        await self._clients.close()

    # ---------------------------------------------------------------- plumbing
    async def _placement(self, client: ollama.AsyncClient) -> Any | None:
        entry = find_model((await client.ps()).models, self.options.full_tag)
        self.placement = None if entry is None else (
            int(entry.size) if entry.size is not None else None,
            int(entry.size_vram) if entry.size_vram is not None else None,
        )
        return entry

    def _status_error(self, exc: ollama.ResponseError) -> VariantError:
        if exc.status_code == -1:  # an `{"error": ...}` line inside a 200 stream
            return GenerationError(
                f"{self._name}: Ollama stopped with an error mid-answer: {exc.error}. Check the server's "
                "log; retry, or lower num_ctx / the request size if it ran out of memory"
            )
        return status_failure(
            self._ref,
            exc.status_code,
            str(exc.error),
            not_found_hint=f"The model is not on that server: run `ollama pull {self.options.tag}` there "
            "(`ollama list` shows what it has)",
        )

    def _make_client(self, read_s: float | None = None) -> ollama.AsyncClient:
        # The client hands extra keyword arguments to httpx.AsyncClient: the transport seam.
        extra: dict[str, Any] = {} if self._transport is None else {"transport": self._transport}
        return ollama.AsyncClient(host=self.options.host, timeout=self.options.timeouts.httpx(read_s), **extra)


async def _close_client(client: ollama.AsyncClient) -> None:
    await client.close()

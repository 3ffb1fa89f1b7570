"""Turning what went wrong on the wire into one clear per-variant error.

Every message names the variant and the server and says what to do. A failure is reported on
its variant alone (the fan-out keeps the others running).
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from arena.errors import RemoteError, VariantError, VariantTimeout
from backends.remote.options import Timeouts


@dataclass(frozen=True)
class ServerRef:
    """Who a variant talks to, for messages: e.g. variant "ollama:gemma4:e4b", server
    "Ollama at http://127.0.0.1:11434", start hint "start it with `ollama serve`"."""

    variant: str
    server: str
    start_hint: str
    timeouts: Timeouts


def status_failure(ref: ServerRef, status: int, detail: str, *, not_found_hint: str) -> VariantError:
    """An HTTP error answer (4xx, 5xx) as a RemoteError saying what to do."""
    said = f": {detail.strip()}" if detail and detail.strip() else ""
    where = f"{ref.variant}: {ref.server} answered {status}{said}"
    if status == 404:
        return RemoteError(f"{where}. {not_found_hint}")
    if status in (401, 403):
        return RemoteError(f"{where}. The server refused the credentials: set the API key it expects")
    if status == 429:
        return RemoteError(
            f"{where}. The server is rate-limiting or busy (429 Too Many Requests): wait and retry, "
            "or send it fewer requests at once"
        )
    if status == 503:
        return RemoteError(
            f"{where}. The server is overloaded or still starting (503): wait and retry, or give it "
            "more capacity (more replicas or a bigger queue)"
        )
    if status >= 500:
        return RemoteError(f"{where}. The server failed ({status}): check its log, and retry once it is healthy")
    return RemoteError(
        f"{where}. The server rejected the request: check this variant's options (context length, "
        "max new tokens, attached media)"
    )


def transport_failure(ref: ServerRef, exc: BaseException, *, mid_answer: bool = False) -> VariantError:
    """A connection-level failure (refused, timed out, cut) as a per-variant error."""
    cause = _httpx_cause(exc)
    if isinstance(cause, httpx.ConnectTimeout):
        return RemoteError(
            f"{ref.variant}: could not connect to {ref.server} within {ref.timeouts.connect_s:g} s: check "
            "the address and that the host is reachable (or raise connect_timeout=)"
        )
    if isinstance(cause, httpx.ConnectError) or isinstance(exc, ConnectionError):
        return RemoteError(f"{ref.variant}: cannot reach {ref.server}: {ref.start_hint}")
    if isinstance(cause, httpx.TimeoutException):
        return VariantTimeout(
            f"{ref.variant}: {ref.server} sent nothing for {ref.timeouts.read_s:g} s and the request was "
            "abandoned: the server may be overloaded or still loading the model; retry, or raise "
            "read_timeout="
        )
    if mid_answer or isinstance(cause, httpx.RemoteProtocolError | httpx.ReadError):
        return RemoteError(
            f"{ref.variant}: the connection to {ref.server} broke mid-answer ({_short(cause)}): the server "
            "may have crashed or restarted; check its log, then retry"
        )
    return RemoteError(f"{ref.variant}: talking to {ref.server} failed ({_short(cause)}): check the server, then retry")


def stream_cut(ref: ServerRef) -> RemoteError:
    """The answer ended without the server's end-of-answer marker."""
    return RemoteError(
        f"{ref.variant}: {ref.server} ended the answer early, without its end-of-answer marker: the "
        "server may have crashed, restarted or dropped the request (some servers stop one stream "
        "when another request arrives); check its log, then retry"
    )


def _httpx_cause(exc: BaseException) -> BaseException:
    """The httpx exception behind a client library's wrapper (openai wraps them), else `exc`."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, httpx.HTTPError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return exc


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."

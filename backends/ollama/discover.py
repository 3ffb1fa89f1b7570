"""Which models an Ollama server has pulled (`GET /api/tags`), as ready-to-use variant specs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx
import ollama

from arena.errors import UsageError
from backends.ollama.options import DEFAULT_HOST, normalize_host
from backends.remote import ServerRef, Timeouts, status_failure, transport_failure

#: How the command line takes the server's address (`variants --discover --ollama-host`).
CLI_HOST_FIELD = "with --ollama-host"

_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_ADDRESS = re.compile(
    rf"(?:(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://)?"
    rf"(?P<host>{_NAME}(?:\.{_NAME})*|\[[0-9A-Fa-f:.]+\])"
    r"(?::(?P<port>[0-9]{1,5}))?"
    r"(?P<path>/[A-Za-z0-9._~%/-]*)?"
)


@dataclass(frozen=True)
class LocalModel:
    """A model pulled on an Ollama server."""

    tag: str
    spec: str
    size_bytes: int | None = None
    family: str = ""
    parameter_size: str = ""
    quantization: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "tag": self.tag,
            "spec": self.spec,
            "size_bytes": self.size_bytes,
            "family": self.family,
            "parameter_size": self.parameter_size,
            "quantization": self.quantization,
        }


def check_host(text: str, *, where: str = CLI_HOST_FIELD) -> str:
    """`text` as the URL of an Ollama server (scheme, host, port: `normalize_host`), checked before
    anything connects to it. Takes http:// or https:// + host[:port] (an optional path, for a
    server behind a proxy), or host[:port] alone, which means http. Raises UsageError saying what
    to give `where` (how the address was given: "with --ollama-host", "in the ... box")."""
    raw = text.strip()
    shown = repr(raw[:80])
    example = f"give its address {where}, e.g. http://127.0.0.1:11434, https://gpu-box:11434 or gpu-box:11434"
    match = _ADDRESS.fullmatch(raw)
    if match is None:
        raise UsageError(f"{shown} is not a server address: {example}")
    scheme = (match["scheme"] or "http").lower()
    if scheme not in ("http", "https"):
        raise UsageError(f"{shown} uses {scheme}://, and Ollama answers over http or https: {example}")
    if match["port"] is not None and not 0 < int(match["port"]) < 65536:
        raise UsageError(f"{shown} has port {match['port']}, which no server can use (1 to 65535): {example}")
    return normalize_host(raw)


async def discover(
    host: str | None = None,
    *,
    where: str = CLI_HOST_FIELD,
    timeouts: Timeouts | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> list[LocalModel]:
    """The models pulled on the Ollama server at `host` (default http://127.0.0.1:11434; the
    caller reads OLLAMA_HOST if it wants it), sorted by tag. The spec names the host only when it
    is not the default, so a spec works as printed. `where` says how the address was given,
    for the messages (`check_host`). Raises UsageError for an address that is not one
    (nothing is connected to), RemoteError when the server cannot be asked."""
    address = check_host(host, where=where) if host and host.strip() else DEFAULT_HOST
    timeouts = timeouts or Timeouts(connect_s=5.0, read_s=15.0)
    ref = ServerRef(
        variant="discovery",
        server=f"Ollama at {address}",
        start_hint=f"start it with `ollama serve`, or give the address where it runs {where}",
        timeouts=timeouts,
    )
    extra: dict[str, Any] = {} if transport is None else {"transport": transport}
    client = ollama.AsyncClient(host=address, timeout=timeouts.httpx(), **extra)
    try:
        listing = await client.list()
    except ollama.ResponseError as exc:
        raise status_failure(
            ref, exc.status_code, str(exc.error), not_found_hint="Is that address an Ollama server?"
        ) from exc
    except (httpx.HTTPError, ConnectionError) as exc:
        raise transport_failure(ref, exc) from exc
    finally:
        await client.close()
    suffix = "" if address == DEFAULT_HOST else f"?host={address}"
    found = []
    for entry in listing.models:
        if not entry.model:
            continue
        details = entry.details
        found.append(
            LocalModel(
                tag=entry.model,
                spec=f"ollama:{entry.model}{suffix}",
                size_bytes=int(entry.size) if entry.size is not None else None,
                family=(details.family if details else None) or "",
                parameter_size=(details.parameter_size if details else None) or "",
                quantization=(details.quantization_level if details else None) or "",
            )
        )
    return sorted(found, key=lambda model: model.tag)

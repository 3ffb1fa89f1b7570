"""Which models an Ollama server has pulled (`GET /api/tags`), as ready-to-use variant specs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import ollama

from backends.ollama.options import DEFAULT_HOST, normalize_host
from backends.remote import ServerRef, Timeouts, status_failure, transport_failure


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


async def discover(
    host: str | None = None,
    *,
    timeouts: Timeouts | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> list[LocalModel]:
    """The models pulled on the Ollama server at `host` (default http://127.0.0.1:11434; the
    caller reads OLLAMA_HOST if it wants it), sorted by tag. The spec names the host only when it
    is not the default, so a spec works as printed. Raises RemoteError when the server cannot be
    asked."""
    address = normalize_host(host or DEFAULT_HOST)
    timeouts = timeouts or Timeouts(connect_s=5.0, read_s=15.0)
    ref = ServerRef(
        variant="discovery",
        server=f"Ollama at {address}",
        start_hint="start it with `ollama serve`, or give the address where it runs (--ollama-host)",
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


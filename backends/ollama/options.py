"""Options of an `ollama:` variant, validated at the boundary (spec string or TOML variant file)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from arena.errors import SpecError
from backends.base import Modality
from backends.remote import Timeouts, parse_bool, parse_int, parse_modalities, parse_seconds, reject_unknown

DEFAULT_HOST = "http://127.0.0.1:11434"
_KNOWN = {
    "host", "num_ctx", "keep_alive", "preload", "load_timeout", "connect_timeout", "read_timeout",
    "modalities", "label",
}


@dataclass(frozen=True)
class OllamaOptions:
    """How to reach and run one Ollama model.

    - `tag`: the model as Ollama names it (`gemma4:e4b`); a tag without `:` means `:latest`.
    - `host`: the server (default `OLLAMA_HOST`, else http://127.0.0.1:11434).
    - `num_ctx`: the context window Ollama allocates (Ollama's own default when not given). It is
      sent with the preload and with every request: a different value makes Ollama reload.
    - `keep_alive`: how long Ollama keeps the model loaded after a request (e.g. `30m`, `-1`).
    - `preload`: load the model into memory in `load()` (default true), so the first answer's
      TTFT does not include Ollama loading the weights.
    - `load_timeout`: seconds to wait for the preload (default 600: big models load slowly).
    - `connect_timeout`, `read_timeout`: see `backends.remote.Timeouts`.
    - `modalities`: replaces what the server's `/api/show` capabilities say (e.g. `text,image`).
    """

    tag: str
    host: str = DEFAULT_HOST
    num_ctx: int | None = None
    keep_alive: str | None = None
    preload: bool = True
    load_timeout_s: float = 600.0
    timeouts: Timeouts = field(default_factory=Timeouts)
    modalities: frozenset[Modality] | None = None

    @classmethod
    def from_spec_options(
        cls, tag: str, options: Mapping[str, str], env: Mapping[str, str] | None = None
    ) -> OllamaOptions:
        env = os.environ if env is None else env
        where = f"ollama:{tag}"
        reject_unknown(options, _KNOWN, where)
        if not tag.strip() or tag.strip() != tag:
            raise SpecError(f"{where}: name a model after `ollama:`, e.g. ollama:gemma4:e4b")
        return cls(
            tag=tag,
            host=normalize_host(options.get("host") or env.get("OLLAMA_HOST") or DEFAULT_HOST),
            num_ctx=parse_int(options, "num_ctx", where, minimum=16),
            keep_alive=options.get("keep_alive") or None,
            preload=parse_bool(options, "preload", True, where),
            load_timeout_s=parse_seconds(options, "load_timeout", 600.0, where),
            timeouts=Timeouts.from_options(options, where),
            modalities=parse_modalities(options, where),
        )

    @property
    def full_tag(self) -> str:
        """The tag as Ollama lists it (`/api/tags`, `/api/ps`): `:latest` when none is given."""
        return self.tag if ":" in self.tag.rsplit("/", 1)[-1] else f"{self.tag}:latest"

    def model_options(self) -> dict[str, object]:
        """Load-time options that must be the same on every call, or Ollama reloads the model."""
        return {} if self.num_ctx is None else {"num_ctx": self.num_ctx}


def normalize_host(text: str) -> str:
    """`host`, `host:port` or a URL, as a URL with scheme and port, as Ollama's client reads it."""
    raw = text.strip().rstrip("/")
    if not raw:
        return DEFAULT_HOST
    if "://" not in raw:
        raw = f"http://{raw}"
    parts = urlsplit(raw)
    if not parts.hostname:
        raise SpecError(f"host={text!r} is not a server address: give e.g. http://gpu-box:11434")
    try:
        port = parts.port
    except ValueError as exc:
        raise SpecError(f"host={text!r} has a port that is not a number") from exc
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    port = port or (443 if parts.scheme == "https" else 11434)
    return f"{parts.scheme}://{host}:{port}{parts.path}"

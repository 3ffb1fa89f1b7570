"""What the backends that talk to a serving engine over HTTP (Ollama, OpenAI-compatible) share:
option parsing, timeouts, media encoding and the mapping of wire failures to per-variant errors.

Nothing here knows a particular engine; each engine's backend passes its own wording (what the
server is called, what to do about a missing model).
"""

from __future__ import annotations

from backends.remote.errors import ServerRef, status_failure, stream_cut, transport_failure
from backends.remote.media import base64_text, data_uri, wav_16k_mono
from backends.remote.options import (
    Timeouts,
    parse_bool,
    parse_int,
    parse_modalities,
    parse_seconds,
    reject_unknown,
)
from backends.remote.perloop import PerLoop

__all__ = [
    "PerLoop",
    "ServerRef",
    "Timeouts",
    "base64_text",
    "data_uri",
    "parse_bool",
    "parse_int",
    "parse_modalities",
    "parse_seconds",
    "reject_unknown",
    "status_failure",
    "stream_cut",
    "transport_failure",
    "wav_16k_mono",
]

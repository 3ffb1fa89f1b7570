"""Options of an `openai:` variant, validated at the boundary (spec string or TOML variant file)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from arena.errors import SpecError
from backends.base import Capabilities, Modality
from backends.remote import Timeouts, parse_bool, parse_int, parse_modalities, reject_unknown

#: Sent when no key is configured: most local servers (vLLM without --api-key, llama.cpp) accept
#: any key, and the client library refuses to start without one.
DUMMY_API_KEY = "not-needed"
_KNOWN = {
    "api_key_env", "modalities", "tools", "thinking", "context_length", "connect_timeout",
    "read_timeout", "max_retries", "label",
}


@dataclass(frozen=True)
class OpenAIOptions:
    """How to reach one model on an OpenAI-compatible server (vLLM, llama.cpp, LM Studio, TGI...).

    The protocol cannot say what a model takes, so capabilities are declared, and default to the
    least that every chat model has:

    - `modalities`: `text` (default), or e.g. `text,image` / `text,image,audio`.
    - `tools`: true when the server parses tool calls (vLLM `--enable-auto-tool-choice
      --tool-call-parser gemma4`); default false.
    - `thinking`: true when the chat template has Gemma 4's `enable_thinking` switch (sent as
      `chat_template_kwargs`) and the server returns the trace (vLLM `--reasoning-parser gemma4`);
      default false.
    - `context_length`: tokens; default what the server's `/models` says (vLLM's
      `max_model_len`), else unknown.
    - `api_key_env`: the environment variable holding the API key (default: a dummy key).
    - `connect_timeout`, `read_timeout`: see `backends.remote.Timeouts`.
    - `max_retries`: retries of a failed request by the client library (default 0: a retry hides
      a failure and adds its wait to the measured time).
    """

    base_url: str
    model: str
    api_key_env: str | None = None
    modalities: frozenset[Modality] = frozenset({"text"})
    tools: bool = False
    thinking: bool = False
    context_length: int | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    max_retries: int = 0

    @classmethod
    def from_spec_options(cls, target: str, options: Mapping[str, str]) -> OpenAIOptions:
        where = f"openai:{target}"
        reject_unknown(options, _KNOWN, where)
        base_url, hash_sign, model = target.partition("#")
        base_url = base_url.strip().rstrip("/")
        parts = urlsplit(base_url)
        if not hash_sign or not model.strip() or parts.scheme not in ("http", "https") or not parts.hostname:
            raise SpecError(
                f"{where} is not of the form openai:BASE_URL#MODEL, e.g. "
                "openai:http://127.0.0.1:8000/v1#google/gemma-4-31B-it"
            )
        retries = parse_int(options, "max_retries", where, minimum=0)
        return cls(
            base_url=base_url,
            model=model.strip(),
            api_key_env=options.get("api_key_env") or None,
            modalities=parse_modalities(options, where) or frozenset({"text"}),
            tools=parse_bool(options, "tools", False, where),
            thinking=parse_bool(options, "thinking", False, where),
            context_length=parse_int(options, "context_length", where),
            timeouts=Timeouts.from_options(options, where),
            max_retries=retries or 0,
        )

    @property
    def declared(self) -> Capabilities:
        return Capabilities(
            modalities=self.modalities,
            tools=self.tools,
            thinking=self.thinking,
            context_length=self.context_length,
        )

    def api_key(self, env: Mapping[str, str] | None = None) -> str:
        """The key from the variable named by `api_key_env`, else a dummy key. A named variable
        that is unset is an error: the user meant to send a key."""
        if self.api_key_env is None:
            return DUMMY_API_KEY
        value = (os.environ if env is None else env).get(self.api_key_env)
        if not value:
            raise SpecError(
                f"openai:{self.base_url}#{self.model}: api_key_env={self.api_key_env} but that environment "
                f"variable is not set: export {self.api_key_env}=<key>"
            )
        return value

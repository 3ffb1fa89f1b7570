"""The TOML variant file (`--config FILE`): a list of variants, each a spec plus its options.

    [[variants]]
    spec = "demo:e2b"

    [[variants]]
    spec = "hf:google/gemma-4-E4B-it"
    label = "E4B 4-bit"
    quantize = "4bit"
    max_memory = { 0 = "20GiB", cpu = "64GiB" }

    [[variants]]
    spec = "ollama:gemma4:26b"
    host = "http://gpu-box:11434"

    [[variants]]
    spec = "openai:http://gpu-box:8000/v1#google/gemma-4-31B-it"
    api_key_env = "VLLM_API_KEY"

Every key but `spec` is an option of that variant, exactly as if given after `?` in the spec.

An optional `[limits]` table sets what one request may ask (`arena.limits.Limits`, same names);
command-line flags override it:

    [limits]
    max_prompt_chars = 16_000
    max_upload_bytes = 10_485_760
    audio_types = ["wav", "flac"]
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from arena.errors import SpecError, UsageError
from arena.limits import Limits
from backends.registry import Registry, VariantSpec


def read_variant_file(path: str | Path, registry: Registry) -> list[VariantSpec]:
    data = _read_toml(path)
    entries = data.get("variants")
    if not isinstance(entries, list) or not entries:
        raise UsageError(f"variant file {path} has no [[variants]] entries (see the README for an example)")
    specs = []
    for number, entry in enumerate(entries, 1):
        if not isinstance(entry, dict) or not isinstance(entry.get("spec"), str):
            raise UsageError(f"variant file {path}: entry {number} needs a spec = \"PREFIX:TARGET\" line")
        options = {k: v for k, v in entry.items() if k != "spec"}
        try:
            specs.append(registry.parse(entry["spec"], options))
        except SpecError as exc:
            raise SpecError(f"variant file {path}, entry {number}: {exc}") from exc
    return specs


def read_limits_table(path: str | Path) -> dict[str, Any] | None:
    """The file's `[limits]` table, checked (an unknown key or a wrong type is refused here, naming
    the file and the known keys), or None when the file has none."""
    table = _read_toml(path).get("limits")
    if table is None:
        return None
    if not isinstance(table, dict):
        raise UsageError(f"variant file {path}: limits must be a table: a [limits] line, then key = value lines")
    Limits.from_mapping(table, where=f"variant file {path}, [limits]")
    return dict(table)


def _read_toml(path: str | Path) -> dict[str, Any]:
    try:
        return tomllib.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise UsageError(f"variant file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"variant file {path} is not valid TOML: {exc}") from exc

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

An optional `[space]` table says who may vote when the app runs as a Hugging Face Space (people
sign in with Hugging Face there); a server of your own ignores it (`SpaceSettings` says what each
key means):

    [space]
    require_sign_in = true
    organization = "my-team"
    admins = ["ada", "grace"]
    dataset = "my-team/arena-votes"
    sync_every_minutes = 10
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
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


@dataclass(frozen=True)
class SpaceSettings:
    """The variant file's `[space]` table: who may vote on a Hugging Face Space, and where votes persist.

    - `require_sign_in`: refuse votes from people not signed in with Hugging Face (by default
      they vote, all under one anonymous name); comparing and battling stay open to everyone.
    - `organization`: only members of this Hugging Face organization may vote (implies sign-in).
    - `admins`: the Hugging Face usernames that may export everyone's votes, see any voter's
      leaderboard and discover Ollama servers from the page.
    - `dataset`: the dataset repo (`owner/name`) the votes are copied to and restored from.
    - `sync_every_minutes`: how often new votes are pushed to that dataset.
    """

    require_sign_in: bool = False
    organization: str | None = None
    admins: tuple[str, ...] = ()
    dataset: str | None = None
    sync_every_minutes: float = 10.0

    @property
    def restricts_voting(self) -> bool:
        """Whether some people may not vote (which needs Hugging Face's sign-in on the Space)."""
        return self.require_sign_in or self.organization is not None


#: A Hugging Face user or organization name: letters, digits, `-`, `_` and `.`.
_HUB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_SPACE_KEYS = ("require_sign_in", "organization", "admins", "dataset", "sync_every_minutes")


def read_space_table(path: str | Path) -> SpaceSettings | None:
    """The file's `[space]` table, checked (an unknown key or a wrong value is refused here, naming
    the file and the known keys), or None when the file has none."""
    table = _read_toml(path).get("space")
    if table is None:
        return None
    where = f"variant file {path}, [space]"
    if not isinstance(table, dict):
        raise UsageError(f"variant file {path}: space must be a table: a [space] line, then key = value lines")
    unknown = sorted(set(table) - set(_SPACE_KEYS))
    if unknown:
        raise UsageError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(_SPACE_KEYS)}")
    require = table.get("require_sign_in", False)
    if not isinstance(require, bool):
        raise UsageError(f"{where}: require_sign_in must be true or false, not {require!r}")
    organization = table.get("organization")
    if organization is not None:
        organization = _hub_name(organization, f"{where}: organization")
    admins = table.get("admins", [])
    if not isinstance(admins, list):
        raise UsageError(f"{where}: admins must be a list of Hugging Face usernames, e.g. admins = [\"ada\"]")
    dataset = table.get("dataset")
    if dataset is not None:
        owner, slash, name = str(dataset).partition("/") if isinstance(dataset, str) else ("", "", "")
        if not slash:
            raise UsageError(f"{where}: dataset must name a dataset repo as \"owner/name\", not {dataset!r}")
        dataset = f"{_hub_name(owner, f'{where}: dataset owner')}/{_hub_name(name, f'{where}: dataset name')}"
    every = table.get("sync_every_minutes", SpaceSettings.sync_every_minutes)
    if isinstance(every, bool) or not isinstance(every, int | float) or every <= 0:
        raise UsageError(f"{where}: sync_every_minutes must be a number of minutes above 0, not {every!r}")
    return SpaceSettings(
        require_sign_in=require,
        organization=organization,
        admins=tuple(_hub_name(name, f"{where}: admins") for name in admins),
        dataset=dataset,
        sync_every_minutes=float(every),
    )


def _hub_name(value: object, what: str) -> str:
    if not isinstance(value, str) or not _HUB_NAME.fullmatch(value):
        raise UsageError(f"{what}: {value!r} is not a Hugging Face name (letters, digits, -, _ and .)")
    return value


def _read_toml(path: str | Path) -> dict[str, Any]:
    try:
        return tomllib.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise UsageError(f"variant file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"variant file {path} is not valid TOML: {exc}") from exc

"""Finding Ollama models and configuring `ollama:` variants: discovery from `/api/tags`, the
`variants --discover` command, the TOML variant file and option checking."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from arena.errors import RemoteError, SpecError
from arena.settings import Settings
from backends.ollama import OllamaBackend, OllamaOptions, discover
from backends.registry import BackendContext, default_registry
from backends.variant_file import read_variant_file
from cli import main as cli_main
from tests.servers.fake_ollama import EMBEDDING, GEMMA4_31B, GEMMA4_E4B, TEXT_ONLY, FakeOllama
from tests.servers.llamacpp import free_port


def test_discover_lists_pulled_models_as_specs(fake_ollama: FakeOllama) -> None:
    models = asyncio.run(discover(fake_ollama.url))
    assert [m.tag for m in models] == sorted(m.tag for m in (GEMMA4_E4B, GEMMA4_31B, TEXT_ONLY, EMBEDDING))
    e4b = next(m for m in models if m.tag == "gemma4:e4b")
    assert e4b.spec == f"ollama:gemma4:e4b?host={fake_ollama.url}"
    assert (e4b.size_bytes, e4b.family, e4b.quantization) == (GEMMA4_E4B.size, "gemma4", "Q4_K_M")


def test_discover_on_a_server_that_is_down_says_to_start_it() -> None:
    with pytest.raises(RemoteError, match=r"cannot reach Ollama at .*ollama serve"):
        asyncio.run(discover(f"http://127.0.0.1:{free_port()}"))


def test_variants_discover_command_prints_the_specs(
    fake_ollama: FakeOllama, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["variants", "--discover", "--ollama-host", fake_ollama.url]) == 0
    out = capsys.readouterr().out
    assert f"ollama:gemma4:31b?host={fake_ollama.url}" in out and "Q4_K_M" in out
    assert cli_main(["variants", "--discover", "--json", "--ollama-host", fake_ollama.url]) == 0
    assert {m["tag"] for m in json.loads(capsys.readouterr().out)} >= {"gemma4:e4b", "gemma4:31b"}


def test_compare_prints_ollamas_own_figures_beside_ours(
    fake_ollama: FakeOllama, capsys: pytest.CaptureFixture[str], settings: Settings
) -> None:
    spec = f"ollama:{TEXT_ONLY.tag}?host={fake_ollama.url}"
    assert cli_main(["compare", "--variants", spec, "--prompt", "count"], settings=settings) == 0
    out = capsys.readouterr().out
    assert "TTFT" in out and "engine's own figures:" in out
    assert "eval_count" in out and "ps_size_vram_bytes 0" in out


def test_ollama_variant_in_the_toml_file_takes_every_key_as_an_option(
    fake_ollama: FakeOllama, tmp_path: Path
) -> None:
    file = tmp_path / "variants.toml"
    file.write_text(f'''
[[variants]]
spec = "ollama:gemma4:31b"
host = "{fake_ollama.url}"
label = "31B on the box"
num_ctx = 8192
preload = false
read_timeout = 300
''')
    registry = default_registry()
    (spec,) = read_variant_file(file, registry)
    backend = registry.create(spec, _context(tmp_path))
    assert isinstance(backend, OllamaBackend) and backend.name == "31B on the box"
    assert backend.options.num_ctx == 8192 and backend.options.preload is False
    assert backend.options.timeouts.read_s == 300 and backend.options.host == fake_ollama.url
    report = asyncio.run(backend.load())
    assert report.capabilities.context_length == 8192


def test_host_comes_from_ollama_host_when_not_given() -> None:
    options = OllamaOptions.from_spec_options("gemma4:e4b", {}, env={"OLLAMA_HOST": "gpu-box"})
    assert options.host == "http://gpu-box:11434"
    assert OllamaOptions.from_spec_options("gemma4:e4b", {}, env={}).host == "http://127.0.0.1:11434"


def test_unknown_or_bad_options_are_refused_at_the_boundary() -> None:
    with pytest.raises(SpecError, match=r"unknown option.*nm_ctx"):
        OllamaOptions.from_spec_options("gemma4:e4b", {"nm_ctx": "1"})
    with pytest.raises(SpecError, match="read_timeout"):
        OllamaOptions.from_spec_options("gemma4:e4b", {"read_timeout": "soon"})
    with pytest.raises(SpecError, match="modalities"):
        OllamaOptions.from_spec_options("gemma4:e4b", {"modalities": "text,video"})


def _context(tmp_path: Path) -> BackendContext:
    return BackendContext(settings=Settings(tmp_path / "d", tmp_path / "c", tmp_path / "d" / "a.db"))

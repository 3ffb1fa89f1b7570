"""`python app.py space-bundle`: the folder it writes is a Hugging Face Space, read back the way the
Hub reads it (huggingface_hub's card parser), installed from what the lock pins, and importable.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import SpaceCard
from huggingface_hub.repocard import metadata_load
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from arena.settings import Settings
from backends.registry import default_registry
from backends.variant_file import read_limits_table, read_variant_file
from cli import build_parser, main
from cli.space_bundle import suggest_hardware
from tests.test_lock import locked_versions

REPO = Path(__file__).resolve().parents[1]
E4B, E2B = "hf:google/gemma-4-E4B-it", "hf:google/gemma-4-E2B-it"
CODE = {"app.py", "arena", "backends", "cli", "storage", "ui"}


def bundle(capsys: pytest.CaptureFixture[str], settings: Settings, out: Path, *args: str) -> tuple[int, str, str]:
    code = main(["space-bundle", "--out", str(out), *args], settings=settings)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def front_matter(out: Path) -> dict[str, Any]:
    data = metadata_load(out / "README.md")
    assert data is not None, "README.md has no YAML front matter"
    return data


def closure(roots: list[Requirement]) -> set[str]:
    """Every distribution installed here that `roots` need, markers evaluated on this machine."""
    seen: set[tuple[str, tuple[str, ...]]] = set()
    todo = list(roots)
    while todo:
        requirement = todo.pop()
        key = (canonicalize_name(requirement.name), tuple(sorted(requirement.extras)))
        if key in seen:
            continue
        seen.add(key)
        for text in metadata.requires(requirement.name) or []:
            needed = Requirement(text)
            environments = [{"extra": extra} for extra in requirement.extras] or [{"extra": ""}]
            if needed.marker is None or any(needed.marker.evaluate(env) for env in environments):
                todo.append(needed)
    return {name for name, _ in seen}


def test_demo_bundle_is_a_gradio_space_on_the_free_cpu(
    capsys: pytest.CaptureFixture[str], settings: Settings, tmp_path: Path
) -> None:
    out = tmp_path / "space"
    code, stdout, _ = bundle(capsys, settings, out)
    assert code == 0 and "hf upload" in stdout
    assert {p.name for p in out.iterdir()} == CODE | {"README.md", "requirements.txt", "variants.toml"}
    data = front_matter(out)
    for key in ("title", "emoji", "colorFrom", "colorTo", "short_description", "python_version"):
        assert isinstance(data[key], str) and data[key], key
    assert (data["sdk"], data["app_file"], data["hf_oauth"]) == ("gradio", "app.py", True)
    assert data["sdk_version"] == str(locked_versions()["gradio"])
    assert data["suggested_hardware"] == "cpu-basic"
    assert len(data["short_description"]) <= 60  # the Hub's limit
    assert "models" not in data and "preload_from_hub" not in data and "datasets" not in data
    card = SpaceCard.load(out / "README.md")
    assert card.data.to_dict()["sdk"] == "gradio" and "# Gemma Arena" in card.text
    specs = read_variant_file(out / "variants.toml", default_registry())
    assert [str(spec) for spec in specs] == ["demo:e2b", "demo:e4b", "demo:26b-a4b", "demo:31b"]


def test_hub_checkpoints_are_listed_and_preloaded_and_others_are_not(
    capsys: pytest.CaptureFixture[str], settings: Settings, tmp_path: Path
) -> None:
    out = tmp_path / "space"
    lineup = ["demo:e2b", f"{E4B}?dtype=bfloat16&label=E4B", E2B, "hf:google/gemma-4-31B-it?revision=abc123",
              "ollama:gemma4:e4b", "openai:http://gpu-box:8000/v1#google/gemma-4-31B-it"]
    code, _, _ = bundle(capsys, settings, out, "--variants", *lineup, "--hardware", "a100-large")
    assert code == 0
    data = front_matter(out)
    assert data["models"] == ["google/gemma-4-E4B-it", "google/gemma-4-E2B-it", "google/gemma-4-31B-it"]
    # preload_from_hub pins a revision only after a file list: a pinned checkpoint is fetched at start-up
    assert data["preload_from_hub"] == ["google/gemma-4-E4B-it", "google/gemma-4-E2B-it"]
    assert data["suggested_hardware"] == "a100-large"
    readme = (out / "README.md").read_text()
    assert "[google/gemma-4-E4B-it](https://huggingface.co/google/gemma-4-E4B-it)" in readme


def test_requirements_are_the_locked_runtime_closure(
    capsys: pytest.CaptureFixture[str], settings: Settings, tmp_path: Path
) -> None:
    out = tmp_path / "space"
    assert bundle(capsys, settings, out)[0] == 0
    text = (out / "requirements.txt").read_text()
    assert "index-url" not in text  # no local index: PyPI's wheels
    pins = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            requirement = Requirement(line)  # an option line (--extra-index-url) would not parse
            (spec,) = requirement.specifier
            assert spec.operator == "==" and "+" not in spec.version, line
            pins[canonicalize_name(requirement.name)] = Version(spec.version)
    locked = locked_versions()
    assert {name: version for name, version in pins.items() if locked.get(name) != version} == {}
    for needed in ("gradio", "torch", "torchvision", "transformers", "sqlite-utils", "argon2-cffi", "huggingface-hub"):
        assert needed in pins, needed
    for tool in ("playwright", "pytest", "pytest-timeout", "llama-cpp-python", "ruff", "mypy", "gguf", "bitsandbytes"):
        assert tool not in pins, tool
    assert ("spaces" in pins) == ("spaces" in locked)

    # Against what is installed: everything the app's dependencies require is pinned, and nothing
    # that only the test and quantization extras bring in.
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    roots = [Requirement(text) for text in pyproject["project"]["dependencies"]]
    roots += [Requirement("spaces")] if "spaces" in locked else []
    runtime = closure(roots)
    extras = [Requirement(text) for group in pyproject["project"]["optional-dependencies"].values() for text in group]
    only_for_tools = closure(roots + extras) - runtime
    assert sorted(runtime - pins.keys()) == []
    assert sorted(only_for_tools & pins.keys()) == []


def test_bundled_code_is_what_the_app_imports(
    capsys: pytest.CaptureFixture[str], settings: Settings, tmp_path: Path
) -> None:
    out = tmp_path / "space"
    assert bundle(capsys, settings, out)[0] == 0
    assert not list(out.rglob("__pycache__")) and not list(out.rglob("test_*.py"))
    assert not (out / "spaces").exists(), "a spaces/ folder would shadow ZeroGPU's `spaces` package"
    probe = (
        "import importlib.util, json, sys, app, ui.app, cli.serve, backends.hf.worker, storage\n"
        "ours = {n: m.__file__ for n, m in sys.modules.items() if n.split('.')[0] in "
        "('app', 'arena', 'backends', 'cli', 'storage', 'ui') and getattr(m, '__file__', None)}\n"
        "spec = importlib.util.find_spec('spaces')\n"
        "print(json.dumps({'ours': ours, 'spaces': spec.origin if spec else None}))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    result = subprocess.run([sys.executable, "-c", probe], cwd=out, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.splitlines()[-1])
    outside = {name: path for name, path in found["ours"].items() if not Path(path).is_relative_to(out)}
    assert len(found["ours"]) > 20 and outside == {}
    if importlib.util.find_spec("spaces") is not None:  # installed here: the bundle must not shadow it
        assert not Path(found["spaces"]).is_relative_to(out)


def test_variant_file_round_trips_with_the_config_tables_and_dataset(
    capsys: pytest.CaptureFixture[str], settings: Settings, tmp_path: Path
) -> None:
    config = tmp_path / "lineup.toml"
    config.write_text(
        '[[variants]]\nspec = "demo:e2b"\nlabel = "tiny"\n\n'
        f'[[variants]]\nspec = "{E4B}"\nlabel = "E4B 4-bit"\nquantize = "4bit"\n'
        'max_memory = { 0 = "20GiB", cpu = "64GiB" }\n\n'
        '[limits]\nmax_prompt_chars = 16_000\naudio_types = ["wav", "flac"]\n\n'
        '[space]\nadmins = ["alice"]\ndataset = "old/votes"\n'
    )
    out = tmp_path / "space"
    code, _, _ = bundle(capsys, settings, out, "--config", str(config), "--dataset", "team/arena-votes")
    assert code == 0
    registry = default_registry()
    assert read_variant_file(out / "variants.toml", registry) == read_variant_file(config, registry)
    assert read_limits_table(out / "variants.toml") == {"max_prompt_chars": 16000, "audio_types": ["wav", "flac"]}
    written = tomllib.loads((out / "variants.toml").read_text())
    assert written["space"] == {"admins": ["alice"], "dataset": "team/arena-votes"}
    assert front_matter(out)["datasets"] == ["team/arena-votes"]
    assert "HF_TOKEN" in (out / "README.md").read_text()

    from_specs = tmp_path / "from-specs"
    specs = ["demo:31b?label=big", f"{E2B}?dtype=bfloat16&threads=2"]
    assert bundle(capsys, settings, from_specs, "--variants", *specs)[0] == 0
    assert read_variant_file(from_specs / "variants.toml", registry) == [registry.parse(s) for s in specs]
    assert "space" not in tomllib.loads((from_specs / "variants.toml").read_text())


def test_zero_gpu_is_suggested_only_when_asked_and_leaves_the_lineup_alone(
    capsys: pytest.CaptureFixture[str], settings: Settings, tmp_path: Path
) -> None:
    out = tmp_path / "space"
    code, _, _ = bundle(capsys, settings, out, "--variants", E4B, "demo:e2b", "--hardware", "zero-a10g")
    assert code == 0
    assert front_matter(out)["suggested_hardware"] == "zero-a10g" and "@spaces.GPU" in (out / "README.md").read_text()
    # serve notices ZeroGPU when it starts; the same variant file serves on any hardware
    registry = default_registry()
    assert read_variant_file(out / "variants.toml", registry) == [registry.parse(E4B), registry.parse("demo:e2b")]


@pytest.mark.parametrize(
    ("lineup", "flavor"),
    [
        (["demo:e2b", "ollama:gemma4:e4b"], "cpu-basic"),
        ([E2B], "l4x1"),  # weights + KV at 8,192 tokens: 10.3 GB
        ([E4B], "l4x1"),  # 16.0 GB
        ([E2B, E4B], "l40sx1"),  # 26.3 GB
        (["hf:google/gemma-4-26B-A4B-it"], "a100-large"),  # 52.0 GB
        (["hf:google/gemma-4-26B-A4B-it?quantize=4bit"], "a100-large"),  # 48.8 GB: its experts stay bf16
        (["hf:google/gemma-4-31B-it"], "a100-large"),  # 64.1 GB
        (["hf:google/gemma-4-31B-it?quantize=4bit"], "l40sx1"),  # 21.2 GB: over an L4's 20.5 usable
    ],
)
def test_suggested_hardware_holds_the_lineup_in_one_gpu(lineup: list[str], flavor: str) -> None:
    hardware = suggest_hardware([default_registry().parse(text) for text in lineup])
    assert (hardware.flavor, hardware.warning) == (flavor, None)


def test_a_lineup_no_single_gpu_holds_is_warned_about() -> None:
    registry = default_registry()
    both = ["hf:google/gemma-4-26B-A4B-it", "hf:google/gemma-4-31B-it"]
    hardware = suggest_hardware([registry.parse(text) for text in both])
    assert hardware.flavor == "a100-large" and hardware.warning and "= 116.0 GB" in hardware.warning
    unknown = suggest_hardware([registry.parse("hf:someone/other-model")])
    assert unknown.flavor == "a100-large" and unknown.warning and "--hardware" in unknown.warning


def test_unknown_hardware_is_refused_before_anything_is_written(
    capsys: pytest.CaptureFixture[str], settings: Settings, tmp_path: Path
) -> None:
    out = tmp_path / "space"
    code, _, err = bundle(capsys, settings, out, "--hardware", "gpu-huge")
    assert code == 2 and "--hardware gpu-huge is not a Space hardware flavor" in err and "a100-large" in err
    assert not out.exists()
    assert bundle(capsys, settings, out, "--hardware", "a10g-large")[0] == 0
    assert front_matter(out)["suggested_hardware"] == "a10g-large"


def test_existing_folder_is_refused_unless_forced_and_force_keeps_other_files(
    capsys: pytest.CaptureFixture[str], settings: Settings, tmp_path: Path
) -> None:
    out = tmp_path / "space"
    (out / ".git").mkdir(parents=True)
    (out / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    code, _, err = bundle(capsys, settings, out)
    assert code == 2 and "exists and is not empty" in err and "--force" in err
    assert {p.name for p in out.iterdir()} == {".git"}
    (out / "ui").mkdir()
    (out / "ui" / "stale.py").write_text("")
    assert bundle(capsys, settings, out, "--force")[0] == 0
    assert (out / ".git" / "HEAD").read_text() == "ref: refs/heads/main\n"
    assert not (out / "ui" / "stale.py").exists() and (out / "ui" / "app.py").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--variants", "hf:/models/gemma"], "is not a Hub model id"),
        (["--dataset", "votes"], "give OWNER/NAME"),
        (["--variants", "nope:x"], "unknown variant spec"),
    ],
)
def test_what_cannot_go_to_a_space_is_refused(
    capsys: pytest.CaptureFixture[str], settings: Settings, tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "space"
    code, _, err = bundle(capsys, settings, out, *args)
    assert code == 2 and message in err and not out.exists()


def test_the_sources_cannot_be_the_output(capsys: pytest.CaptureFixture[str], settings: Settings) -> None:
    for out in (REPO, REPO / "ui" / "bundle"):
        code, _, err = bundle(capsys, settings, out, "--force")
        assert code == 2 and "inside the sources" in err
    assert not (REPO / "ui" / "bundle").exists()


def test_space_bundle_and_its_options_are_documented() -> None:
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    command = commands["space-bundle"]
    assert command.description
    for action in command._actions:
        assert action.help, f"space-bundle {action.option_strings} has no help"

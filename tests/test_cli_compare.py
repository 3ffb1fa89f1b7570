"""`python app.py compare` as a user runs it: a real subprocess on the demo variants."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from storage import open_store
from tests.support.media import write_png, write_wav

ROOT = Path(__file__).resolve().parents[1]


def app(*args: str, timeout: float = 300, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "app.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, input=stdin
    )


def test_help_lists_the_subcommands() -> None:
    done = app("--help")
    assert done.returncode == 0
    for command in ("compare", "variants"):
        assert command in done.stdout


def test_compare_json_has_one_result_per_variant_with_stats(tmp_path: Path) -> None:
    image = write_png(tmp_path / "p.png")
    audio = write_wav(tmp_path / "a.wav")
    done = app(
        "compare", "--variants", "demo:e2b", "demo:31b", "--prompt", "Which fits?", "--image", str(image),
        "--audio", str(audio), "--max-new-tokens", "12", "--seed", "1", "--json", "--db", str(tmp_path / "a.db"),
    )
    assert done.returncode == 3, done.stderr  # 31B cannot take audio: done, one variant failed
    document = json.loads(done.stdout)
    results = {r["variant"]: r for r in document["results"]}
    assert list(results) == ["demo:e2b", "demo:31b"]
    ok = results["demo:e2b"]
    assert ok["error"] is None and ok["text"] and ok["thinking"] == ""
    stats = ok["stats"]
    for key in ("ttft_s", "tokens_per_s", "total_s", "input_tokens", "output_tokens", "peak_memory_bytes", "load_s"):
        assert isinstance(stats[key], (int, float)), key
    assert stats["output_tokens"] == 12
    assert "cannot take audio" in results["demo:31b"]["error"]
    assert document["request"]["images"][0]["sha256"]
    with open_store(tmp_path / "a.db") as store:  # recorded, with both runs
        battle = store.battle(document["battle_id"])
        assert battle is not None and battle.variants == ("demo:e2b", "demo:31b")
        assert battle.errors[0][0] == "demo:31b"


@pytest.mark.parametrize("source", ["file", "standard input"])
def test_prompt_file_or_standard_input_is_sent_as_the_prompt(tmp_path: Path, source: str) -> None:
    text = "Line one of a prompt\nand line two, with ünïcode."
    prompt_file = tmp_path / "prompt.txt"
    prompt_file.write_text(text, encoding="utf-8")
    name, stdin = (str(prompt_file), None) if source == "file" else ("-", text)
    done = app("compare", "--variants", "demo:e2b", "--prompt-file", name, "--max-new-tokens", "2", "--json",
               stdin=stdin)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["request"]["prompt"] == text
    assert document["results"][0]["error"] is None


def test_compare_text_output_shows_answers_and_stats() -> None:
    done = app("compare", "--variants", "demo:e2b", "--prompt", "Hi", "--max-new-tokens", "6", "--thinking")
    assert done.returncode == 0, done.stderr
    assert "=== demo:e2b ===" in done.stdout and "TTFT" in done.stdout and "tok/s" in done.stdout
    assert "[demo:e2b]" in done.stderr  # loading progress


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--prompt", "   "], "--prompt is empty"),
        (["--prompt", "x", "--image", "missing.png"], "image file missing.png does not exist"),
        (["--prompt", "x", "--image", "pyproject.toml"], "pyproject.toml is not an image"),
        (["--prompt", "x", "--audio", "pyproject.toml"], "pyproject.toml is not an audio file"),
        (["--prompt", "x", "--variants", "gpt:4"], "unknown variant spec 'gpt:4'"),
        (["--prompt", "x", "--variants", "demo:e9b"], "unknown demo variant 'e9b'"),
        (["--prompt", "x", "--tools", "[{]"], "--tools is not valid JSON"),
        (["--prompt", "x", "--max-new-tokens", "0"], "--max-new-tokens must be at least 1"),
        (["--prompt", "x", "--max-new-tokens", "5000"], "--max-new-tokens must be between 1 and 4,096, not 5,000"),
        (["--prompt", "x", "--seed", str(2**70)], "--seed must be between 0 and 2,147,483,647, not 1,180,591,620"),
        (["--max-new-tokens", "5"], "one of the arguments --prompt --prompt-file is required"),
        (["--prompt", "x", "--prompt-file", "p.txt"], "argument --prompt-file: not allowed with argument --prompt"),
        (["--prompt-file", "missing.txt"], "--prompt-file missing.txt does not exist"),
        (["--prompt", "x", "--temperature", "hot"], "invalid float value"),
    ],
)
def test_bad_arguments_exit_non_zero_with_one_line_and_no_traceback(args: list[str], message: str) -> None:
    done = app("compare", *args, timeout=60)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert done.stdout == ""

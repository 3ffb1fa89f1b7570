"""`python app.py compare` as a user runs it: a real subprocess on the demo variants."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from arena.errors import UsageError
from arena.limits import Limits
from arena.requests import read_messages_file
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
        (["--max-new-tokens", "5"], "one of the arguments --prompt --prompt-file --messages is required"),
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


# --- compare --messages FILE: a conversation of several turns ------------------------------------------


def write_messages(folder: Path, turns: object) -> Path:
    path = folder / "talk.json"
    path.write_text(json.dumps(turns), encoding="utf-8")
    return path


def test_messages_run_in_order_and_a_variant_failing_a_turn_is_left_out_of_the_next(tmp_path: Path) -> None:
    (tmp_path / "media").mkdir()
    write_wav(tmp_path / "media" / "tone.wav")
    messages = write_messages(tmp_path, ["Hello there", {"text": "What is this?", "files": ["media/tone.wav"]},
                                         "And now?"])
    done = app("compare", "--variants", "demo:e2b", "demo:31b", "--messages", str(messages), "--max-new-tokens",
               "4", "--json", "--db", str(tmp_path / "a.db"))
    assert done.returncode == 3, done.stderr  # 31B cannot take audio: it fails turn 2
    document = json.loads(done.stdout)
    turns = document["turns"]
    assert [t["request"]["prompt"] for t in turns] == ["Hello there", "What is this?", "And now?"]
    assert [t["variants"] for t in turns] == [["demo:e2b", "demo:31b"], ["demo:e2b", "demo:31b"], ["demo:e2b"]]
    assert "cannot take audio" in turns[1]["results"][1]["error"]
    assert document["left_out"] == {"demo:31b": 2}
    assert "demo:31b failed turn 2 and is left out of the turns after it" in done.stderr
    assert turns[1]["request"]["audio"][0]["name"] == "tone.wav"
    e2b_input = [t["results"][0]["stats"]["input_tokens"] for t in turns]
    assert e2b_input[0] < e2b_input[1] < e2b_input[2]  # each turn resends the ones before it
    first, second, third = (t["battle_id"] for t in turns)
    assert third is None  # one variant left: a battle needs two
    with open_store(tmp_path / "a.db") as store:
        stored = [store.battle(first), store.battle(second)]
        assert [(b.parent_id, b.turn) for b in stored if b is not None] == [(None, 1), (first, 2)]


def test_messages_text_output_shows_each_turns_answers_with_stats(tmp_path: Path) -> None:
    messages = write_messages(tmp_path, ["Hi", {"text": "Tell me more"}])
    done = app("compare", "--variants", "demo:e2b", "--messages", str(messages), "--max-new-tokens", "3",
               "--thinking")
    assert done.returncode == 0, done.stderr
    assert "##### turn 1 of 2: Hi" in done.stdout and "##### turn 2 of 2: Tell me more" in done.stdout
    assert done.stdout.count("=== demo:e2b ===") == 2 and done.stdout.count("\nTTFT ") == 2


@pytest.mark.parametrize(
    ("turns", "message"),
    [
        ({"text": "hi"}, "must hold a JSON list of user turns, each a string or"),
        ([], "holds no turns: put at least one user turn in its list"),
        (["fine", 42], "turn 2 of {file} is a JSON number; each turn is a string or"),
        (["fine", {"txt": "hi"}], "turn 2 of {file} has 'txt': a turn takes only 'text' and 'files'"),
        ([{"files": []}], "turn 1 of {file} needs a 'text' string, and has none"),
        ([{"text": "hi", "files": "a.png"}], "turn 1 of {file}: 'files' must be a list of file names"),
        (["ok", "  "], "turn 2 of {file} is empty: give the text to send"),
        (["ok", "x" * 32_001], "turn 2 of {file} has 32,001 characters; at most 32,000 are taken: shorten it, "
                               "or raise --max-prompt-chars"),
        ([{"text": "hi", "files": ["a.png"] * 9}], "turn 1 of {file} has 9 attached files; at most 8 are taken: "
                                                   "attach fewer, or raise --max-files"),
        (["turn"] * 21, "messages file {file} has 21 turns; at most 20 are taken: send fewer, or raise --max-turns"),
        (["ok", {"text": "see", "files": ["gone.png"]}], "turn 2 of {file}: attached file {folder}/gone.png does "
                                                          "not exist (files are relative to the messages file's"),
    ],
)
def test_a_bad_messages_file_is_refused_naming_the_turn(tmp_path: Path, turns: object, message: str) -> None:
    file = write_messages(tmp_path, turns)
    with pytest.raises(UsageError) as caught:
        read_messages_file(file)
    assert message.format(file=file, folder=tmp_path) in str(caught.value)


def test_a_messages_file_that_is_not_json_or_missing_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "talk.json"
    with pytest.raises(UsageError, match="does not exist"):
        read_messages_file(file)
    file.write_text('["one", ', encoding="utf-8")
    with pytest.raises(UsageError, match="is not valid JSON: Expecting value at line 1"):
        read_messages_file(file)
    file.write_bytes(b'["\xff"]')
    with pytest.raises(UsageError, match="is not UTF-8 text"):
        read_messages_file(file)


def test_a_huge_messages_file_is_refused_without_being_read_whole(tmp_path: Path) -> None:
    file = write_messages(tmp_path, ["x" * 10] * 1_000)
    with pytest.raises(UsageError, match="has more than 4,156 characters; at most 4,156 are taken"):
        read_messages_file(file, Limits(max_turns=1, max_prompt_chars=10))


def test_a_messages_file_tells_images_from_audio_by_content_per_turn(tmp_path: Path) -> None:
    write_png(tmp_path / "p.png").rename(tmp_path / "clip.wav")  # an image, whatever its name
    write_wav(tmp_path / "tone.wav")
    file = write_messages(tmp_path, ["plain", {"text": "both", "files": ["clip.wav", str(tmp_path / "tone.wav")]}])
    plain, both = read_messages_file(file, Limits(max_turns=2))
    assert (plain.prompt, plain.images, plain.audio) == ("plain", (), ())
    assert [m.mime for m in both.images] == ["image/png"] and [m.name for m in both.audio] == ["tone.wav"]
    with pytest.raises(UsageError, match="has 2 turns; at most 1 are taken"):
        read_messages_file(file, Limits(max_turns=1))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--prompt", "x"], "argument --prompt: not allowed with argument --messages"),
        (["--image", "p.png"], "--image and --audio attach files to --prompt; with --messages, list each turn's"),
        (["--seed", "-1"], "--seed must be between 0 and 2,147,483,647, not -1"),
        ([], "turn 1 of {file} is a JSON number"),
    ],
)
def test_bad_messages_arguments_exit_with_one_line_before_any_variant_loads(
    tmp_path: Path, args: list[str], message: str
) -> None:
    file = write_messages(tmp_path, [1] if not args else ["hi"])
    db = tmp_path / "votes.db"
    done = app("compare", "--messages", str(file), *args, "--db", str(db), timeout=60)
    assert done.returncode == 2
    assert message.format(file=file) in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert done.stdout == "" and not db.exists()

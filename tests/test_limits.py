"""What one request may ask: every limit refused with a message that names it, before any work is done."""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from arena.errors import MediaError, UsageError
from arena.limits import DEFAULT_LIMITS, FLAGS, Limits
from arena.measure import Result, Stats
from arena.media import check_media, read_audio, read_image
from arena.requests import build_request, split_media
from arena.settings import Settings
from backends.base import Request
from backends.registry import default_registry
from backends.variant_file import read_limits_table, read_variant_file
from cli import main
from cli.compare import read_prompt_file
from cli.limits import add_limit_arguments, limits_from
from storage import open_store
from storage.exports import LEADERBOARD_COLUMNS, write_leaderboard_csv
from tests.support.media import write_png, write_wav
from tests.test_cli_compare import app

TEN_MB = 10_000_000
FORMULA = '=HYPERLINK("http://x","y")'


def answer(variant: str, text: str, tokens_per_s: float | None = None) -> Result:
    return Result(variant=variant, text=text, stats=Stats(tokens_per_s=tokens_per_s))


def refused(error: type[Exception] = UsageError, **request: Any) -> str:
    """The message build_request refuses `request` with."""
    with pytest.raises(error) as caught:
        build_request(**{"prompt": "hi", **request})
    return str(caught.value)


# --- text: prompt, system prompt, tools ------------------------------------------------------------


def test_a_10_mb_prompt_is_refused_before_any_attached_file_is_read(tmp_path: Path) -> None:
    message = refused(prompt="x" * TEN_MB, images=[tmp_path / "missing.png"], files=[tmp_path / "gone.wav"])
    assert message == (
        "the prompt has 10,000,000 characters; at most 32,000 are taken: shorten it, or raise --max-prompt-chars"
    )


def test_a_prompt_at_the_limit_is_taken_and_one_character_more_is_not() -> None:
    limits = Limits(max_prompt_chars=10)
    assert build_request("x" * 10, limits=limits).prompt == "x" * 10
    assert "11 characters; at most 10" in refused(prompt="x" * 11, limits=limits)


def test_system_prompt_and_tools_json_have_their_own_limits() -> None:
    assert "the system prompt has 8,001 characters; at most 8,000" in refused(system="s" * 8_001)
    tools = json.dumps([{"type": "function", "function": {"name": "f", "description": "d" * 16_000}}])
    assert "the tools JSON has" in refused(tools=tools) and "--max-tools-chars" in refused(tools=tools)


@pytest.mark.parametrize(
    ("seed", "message"),
    [
        (2**70, "the seed must be between 0 and 2,147,483,647, not 1,180,591,620,717,411,303,424"),
        (-1, "the seed must be between 0 and 2,147,483,647, not -1"),
        (float("inf"), "the seed must be a whole number, not inf"),
        (2.5, "the seed must be a whole number, not 2.5"),
    ],
)
def test_a_seed_outside_what_every_engine_takes_is_refused(seed: Any, message: str) -> None:
    assert message in refused(seed=seed)


def test_seeds_at_both_ends_of_the_range_are_taken() -> None:
    assert build_request("hi", seed=0).seed == 0
    assert build_request("hi", seed=2**31 - 1).seed == 2**31 - 1
    assert build_request("hi", seed=7.0).seed == 7  # the web form's numbers may come as floats


def test_max_new_tokens_must_be_between_1_and_the_cap() -> None:
    assert build_request("hi", max_new_tokens=4096).max_new_tokens == 4096
    assert "max new tokens must be between 1 and 4,096, not 4,097" in refused(max_new_tokens=4097)
    assert "raise --max-new-tokens-cap" in refused(max_new_tokens=4097)
    assert refused(max_new_tokens=0) == "max new tokens must be at least 1, not 0"
    assert "between 1 and 64" in refused(max_new_tokens=65, limits=Limits(max_new_tokens_cap=64))


# --- media: size, type, pixels, duration, count ------------------------------------------------------


def test_a_40_second_clip_is_refused_saying_the_model_would_cut_it(tmp_path: Path) -> None:
    clip = write_wav(tmp_path / "talk.wav", seconds=40.0)
    message = refused(MediaError, audio=[clip])
    assert message == (
        "talk.wav is 40.0 s long; Gemma 4's audio encoder takes at most 30 s and would cut the rest: "
        "trim it to 30 s or less, or split it"
    )
    assert refused(MediaError, files=[clip]) == message  # the web form's path: type told by content


def test_a_30_second_clip_is_taken(tmp_path: Path) -> None:
    request = build_request("hi", audio=[write_wav(tmp_path / "talk.wav", seconds=30.0)])
    assert request.audio[0].mime == "audio/wav"


def test_a_lower_audio_limit_names_its_flag(tmp_path: Path) -> None:
    clip = write_wav(tmp_path / "talk.wav", seconds=12.0)
    message = refused(MediaError, audio=[clip], limits=Limits(max_audio_s=10))
    assert message == "talk.wav has 12.0 s of audio; at most 10 s are taken: trim it, or raise --max-audio-s"


def test_an_oversized_file_is_refused_before_it_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    huge = tmp_path / "huge.png"
    with huge.open("wb") as stream:
        stream.truncate(2**31)  # sparse: 2 GiB by stat, nothing on disk

    def no_reading(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the file was opened")

    monkeypatch.setattr("arena.media.open", no_reading, raising=False)
    for request in ({"images": [huge]}, {"audio": [huge]}, {"files": [huge]}):
        message = refused(MediaError, **request)
        assert message == ("huge.png has 2.0 GiB; at most 20.0 MiB are taken: send a smaller or more compressed "
                           "file, or raise --max-upload-mb")


def test_media_already_in_memory_is_held_to_the_same_limits(tmp_path: Path) -> None:
    image = read_image(write_png(tmp_path / "p.png"))
    clip = read_audio(write_wav(tmp_path / "a.wav", seconds=2.0))
    assert build_request("hi", images=[image], audio=[clip]).images == (image,)
    assert "at most 1.0 KiB" in refused(MediaError, images=[image], limits=Limits(max_upload_bytes=1024))
    assert "at most 1 s" in refused(MediaError, audio=[clip], limits=Limits(max_audio_s=1))
    with pytest.raises(MediaError, match="is not an image"):
        check_media(type(image)(kind="image", data=b"not an image", mime="image/png", name="x.png"))


@pytest.mark.parametrize("how", ["images", "files"])
def test_a_file_that_is_not_an_image_is_refused_whatever_its_name(tmp_path: Path, how: str) -> None:
    fake = tmp_path / "photo.png"
    fake.write_text("just text")
    message = refused(MediaError, **{how: [fake]})
    assert message.startswith("photo.png is ") and "PNG, JPEG, WebP, GIF or BMP" in message


def test_an_image_type_the_model_code_does_not_read_is_refused(tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "scan.tiff")
    assert refused(MediaError, images=[tmp_path / "scan.tiff"]) == (
        "scan.tiff is TIFF, which is not taken; this arena takes PNG, JPEG, WebP, GIF or BMP images: convert it"
    )


def test_types_left_out_of_the_limits_are_refused_naming_the_flag(tmp_path: Path) -> None:
    png = write_png(tmp_path / "p.png")
    limits = Limits(image_types=("jpeg",), audio_types=())
    assert refused(MediaError, images=[png], limits=limits) == (
        "p.png is PNG, which is not taken; this arena takes JPEG images: convert it, or add png to --image-types"
    )
    assert "this arena takes no audio" in refused(MediaError, audio=[write_wav(tmp_path / "a.wav")], limits=limits)


def test_attachments_are_told_apart_by_content_not_by_name(tmp_path: Path) -> None:
    image_named_wav = write_png(tmp_path / "i.png").rename(tmp_path / "clip.wav")
    clip_named_png = write_wav(tmp_path / "a.wav").rename(tmp_path / "photo.png")
    images, audio = split_media([image_named_wav, clip_named_png])
    assert [m.mime for m in images] == ["image/png"] and [m.mime for m in audio] == ["audio/wav"]


def test_an_image_with_too_many_pixels_is_refused_from_its_header(tmp_path: Path) -> None:
    from PIL import Image

    Image.new("1", (5000, 4000)).save(tmp_path / "poster.png")  # 1 bit a pixel: a small file
    assert refused(MediaError, images=[tmp_path / "poster.png"]) == (
        "poster.png has 20,000,000 pixels (5000 x 4000); at most 16,777,216 are taken: downscale it "
        "(the model sees at most ~2.6 million of them), or raise --max-image-pixels"
    )


def test_too_many_attachments_are_refused_before_any_is_read(tmp_path: Path) -> None:
    missing = [tmp_path / f"{n}.png" for n in range(9)]
    assert refused(MediaError, files=missing) == (
        "the request has 9 attached files; at most 8 are taken: attach fewer, or raise --max-files"
    )


# --- Limits from a mapping, the variant file and the flags -------------------------------------------


def test_an_unknown_limit_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(UsageError) as caught:
        Limits.from_mapping({"max_promt_chars": 10})
    assert "unknown limit 'max_promt_chars'; the known ones are max_prompt_chars, max_system_chars" in str(caught.value)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"max_prompt_chars": "10"}, "max_prompt_chars must be a whole number, not '10'"),
        ({"max_queue": True}, "max_queue must be a whole number, not True"),
        ({"max_files": 0}, "max_files must be at least 1, not 0"),
        ({"max_turns": 0}, "max_turns must be at least 1, not 0"),
        ({"max_turns": 2.5}, "max_turns must be a whole number, not 2.5"),
        ({"max_seed": 2**32}, "max_seed must be between 0 and 2,147,483,647"),
        ({"max_audio_s": 40}, "max_audio_s must be above 0 and at most 30: Gemma 4's audio encoder takes 30 s"),
        ({"max_audio_s": "long"}, "max_audio_s must be a number of seconds, not 'long'"),
        ({"audio_types": ["wav", "m4a"]}, "audio_types: m4a cannot be read here; the types known are wav, flac"),
        ({"image_types": 3}, "image_types must be a list of type names"),
    ],
)
def test_a_limit_of_the_wrong_type_or_range_is_refused(values: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError) as caught:
        Limits.from_mapping(values)
    assert message in str(caught.value)


def test_from_mapping_changes_only_what_it_is_given() -> None:
    limits = Limits.from_mapping({"max_prompt_chars": 100, "image_types": ["PNG", "jpg"], "max_audio_s": 10})
    assert (limits.max_prompt_chars, limits.image_types, limits.max_audio_s) == (100, ("png", "jpeg"), 10.0)
    assert limits.max_queue == DEFAULT_LIMITS.max_queue


def limit_args(*argv: str, serving: bool = True) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_limit_arguments(parser, serving=serving)
    return parser.parse_args(list(argv))


def test_every_limit_has_a_flag_and_compare_leaves_out_the_servers_own() -> None:
    assert set(vars(limit_args())) == {f"limit_{name}" for name in FLAGS}
    assert "limit_max_queue" not in vars(limit_args(serving=False))
    assert "limit_max_concurrent_per_user" not in vars(limit_args(serving=False))


def test_flags_override_defaults_with_upload_size_in_mib() -> None:
    limits = limits_from(limit_args("--max-upload-mb", "0.5", "--audio-types", "wav,flac", "--max-queue", "3"), None)
    assert (limits.max_upload_bytes, limits.audio_types, limits.max_queue) == (524_288, ("wav", "flac"), 3)
    assert limits_from(limit_args(), None) == DEFAULT_LIMITS
    with pytest.raises(UsageError, match="--max-audio-s must be above 0 and at most 30"):
        limits_from(limit_args("--max-audio-s", "45"), None)
    for size in ("0", "-1", "inf", "lots"):
        with pytest.raises(SystemExit):  # argparse's own one-line error
            limit_args("--max-upload-mb", size)


VARIANT_FILE = """
[[variants]]
spec = "demo:e2b"

[[variants]]
spec = "demo:31b"

[limits]
max_prompt_chars = 1_000
audio_types = ["wav"]
max_concurrent_per_user = 1
"""


def test_the_variant_files_limits_table_applies_and_flags_override_it(tmp_path: Path) -> None:
    file = tmp_path / "arena.toml"
    file.write_text(VARIANT_FILE)
    assert [spec.prefix for spec in read_variant_file(file, default_registry())] == ["demo", "demo"]
    table = read_limits_table(file)
    limits = limits_from(limit_args(), table)
    assert (limits.max_prompt_chars, limits.audio_types, limits.max_concurrent_per_user) == (1_000, ("wav",), 1)
    assert limits.max_upload_bytes == DEFAULT_LIMITS.max_upload_bytes
    assert limits_from(limit_args("--max-prompt-chars", "50"), table).max_prompt_chars == 50
    assert "at most 1,000 are taken" in refused(prompt="x" * 1_001, limits=limits)


def test_a_variant_file_without_limits_gives_none(tmp_path: Path) -> None:
    file = tmp_path / "arena.toml"
    file.write_text('[[variants]]\nspec = "demo:e2b"\n')
    assert read_limits_table(file) is None


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("[limits]\nmax_upload_mb = 5\n", "[limits]: unknown limit 'max_upload_mb'; the known ones are max_prompt"),
        ('[limits]\nmax_prompt_chars = "lots"\n', "[limits]: max_prompt_chars must be a whole number, not 'lots'"),
        ("limits = 5\n", "limits must be a table"),
    ],
)
def test_a_bad_limits_table_is_refused_naming_the_file(tmp_path: Path, table: str, message: str) -> None:
    file = tmp_path / "arena.toml"
    file.write_text(table + '[[variants]]\nspec = "demo:e2b"\n')
    with pytest.raises(UsageError) as caught:
        read_limits_table(file)
    assert f"variant file {file}" in str(caught.value) and message in str(caught.value)


# --- the command line --------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["file", "standard input"])
def test_a_10_mb_prompt_is_refused_without_loading_a_variant_or_opening_the_store(
    tmp_path: Path, source: str
) -> None:
    big = tmp_path / "big.txt"
    big.write_text("x" * TEN_MB)
    db = tmp_path / "votes.db"
    name, stdin = (str(big), None) if source == "file" else ("-", "x" * TEN_MB)
    done = app("compare", "--variants", "demo:e2b", "demo:e4b", "--prompt-file", name, "--db", str(db),
               stdin=stdin, timeout=60)
    assert done.returncode == 2
    shown = str(big) if source == "file" else "- (standard input)"
    assert done.stderr == (f"error: --prompt-file {shown} has more than 32,000 characters; at most 32,000 are "
                           "taken: shorten it, or raise --max-prompt-chars\n")
    assert done.stdout == "" and not db.exists()  # no variant loaded (no progress lines), nothing stored


def test_reading_a_prompt_stops_one_character_past_the_limit() -> None:
    stream = io.StringIO("x" * TEN_MB)
    with pytest.raises(UsageError, match="more than 100 characters"):
        read_prompt_file("-", Limits(max_prompt_chars=100), stdin=stream)
    assert stream.tell() == 101
    assert read_prompt_file("-", Limits(max_prompt_chars=100), stdin=io.StringIO("y" * 100)) == "y" * 100


def test_limit_flags_apply_to_compare(tmp_path: Path) -> None:
    done = app("compare", "--prompt", "hello world", "--max-prompt-chars", "5", timeout=60)
    assert done.returncode == 2
    assert done.stderr == ("error: --prompt has 11 characters; at most 5 are taken: shorten it, "
                           "or raise --max-prompt-chars\n")
    clip = write_wav(tmp_path / "long.wav", seconds=40.0)
    done = app("compare", "--prompt", "x", "--audio", str(clip), timeout=60)
    assert done.returncode == 2 and "long.wav is 40.0 s long; Gemma 4's audio encoder takes at most 30 s" in done.stderr


# --- CSV exports: no formulas ---------------------------------------------------------------------


def test_csv_exports_neutralize_formulas_and_jsonl_keeps_them_verbatim(
    capsys: pytest.CaptureFixture[str], settings: Settings, tmp_path: Path
) -> None:
    with open_store(settings.db_path) as store:
        battle = store.record_comparison(
            Request(FORMULA, system="@SUM(A1)"),
            [(FORMULA, "demo:e2b"), ("-2+3", "demo:e4b")],
            [answer(FORMULA, "+1 day", tokens_per_s=-1.5), answer("-2+3", "\tTAB")],
            mode="blind",
        )
        store.record_vote(battle, "a")
    out = tmp_path / "votes.csv"
    assert main(["export", "--format", "csv", "--out", str(out)], settings=settings) == 0
    with out.open(newline="") as stream:
        (row,) = list(csv.DictReader(stream))
    assert row["prompt"] == "'" + FORMULA
    assert (row["a_variant"], row["a_text"], row["b_variant"], row["b_text"]) == (
        "'" + FORMULA, "'+1 day", "'-2+3", "'\tTAB"
    )
    assert row["a_tokens_per_s"] == "-1.5"  # a number, not a formula
    assert json.loads(row["request"])["prompt"] == FORMULA  # JSON text starts with {, safe as it is

    jsonl = tmp_path / "votes.jsonl"
    assert main(["export", "--format", "jsonl", "--out", str(jsonl)], settings=settings) == 0
    record = json.loads(jsonl.read_text())
    assert record["request"]["prompt"] == FORMULA and record["sides"][0]["text"] == "+1 day"

    board = tmp_path / "board.csv"
    assert main(["export", "--format", "leaderboard-csv", "--out", str(board), "--rounds", "10"],
                settings=settings) == 0
    assert {row["variant"] for row in csv.DictReader(board.open(newline=""))} == {"'" + FORMULA, "'-2+3"}
    capsys.readouterr()


def test_leaderboard_csv_neutralizes_text_cells_and_leaves_numbers(tmp_path: Path) -> None:
    row = SimpleNamespace(**{name: 0 for name in LEADERBOARD_COLUMNS})
    row.__dict__.update(rank=1, variant="@cmd", rating=-3.5, ci_low=-4.0, ci_high="=1+1", votes=2)
    out = tmp_path / "board.csv"
    assert write_leaderboard_csv([row], out) == 1
    (cells,) = list(csv.DictReader(out.open(newline="")))
    assert list(cells) == list(LEADERBOARD_COLUMNS)
    assert [cells[name] for name in ("rank", "variant", "rating", "ci_low", "ci_high", "votes")] == [
        "1", "'@cmd", "-3.5", "-4.0", "'=1+1", "2"]

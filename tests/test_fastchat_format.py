"""FastChat clean-battle files (storage.fastchat): reading, reporting bad lines, writing, the fast path."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from arena.errors import UsageError
from arena.ratings import PairOutcome
from storage import fastchat_scan
from storage.fastchat import (
    BattleRecord,
    Message,
    Skipped,
    read_battle_table,
    read_battles,
    write_battles,
)

RICH = BattleRecord(
    model_a="gemma-4-e2b-it",
    model_b="gemma-4-31b-it",
    outcome="a",
    tstamp=1_717_000_000.25,
    question_id="q-1",
    judge="ann",
    anony=True,
    conversation_a=(Message("user", 'say "hi"\nplease'), Message("assistant", "héllo {}")),
    conversation_b=(Message("user", 'say "hi"\nplease'), Message("assistant", "hi")),
    language="English",
)
RECORDS = (
    RICH,
    BattleRecord("gemma-4-31b-it", "gemma-4-e4b-it", "b", 1_717_000_001.0),
    BattleRecord("gemma-4-e4b-it", "gemma-4-e2b-it", "tie", 1_717_000_002.5, judge="bob"),
    BattleRecord("gemma-4-e2b-it", "gemma-4-e4b-it", "both_bad", 1_717_000_003.0, anony=True),
)


def pairs(records: tuple[BattleRecord, ...]) -> list[PairOutcome]:
    return [record.pair() for record in records]


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def battle(model_a: str = "x", model_b: str = "y", winner: str = "model_a", **extra: Any) -> str:
    return json.dumps({"model_a": model_a, "model_b": model_b, "winner": winner, **extra})


# --- round trip and layout ------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_fastchat_round_trip(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"battles.{fmt}"
    assert write_battles(RECORDS, path, format=fmt) == len(RECORDS)
    read = read_battles(path)
    assert (read.records, read.skipped, read.format) == (RECORDS, (), fmt)
    table = read_battle_table(path)
    assert table.fast and table.format == fmt
    assert table.battles.pairs() == pairs(RECORDS) == read.battles().pairs()


def test_writer_follows_fastchat_field_conventions(tmp_path: Path) -> None:
    path = tmp_path / "battles.jsonl"
    write_battles([RICH, BattleRecord("x", "y", "both_bad")], path)
    first, second = (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines())
    assert list(first)[:4] == ["model_a", "model_b", "winner", "tstamp"]
    assert set(first) == {
        "question_id",
        "model_a",
        "model_b",
        "winner",
        "judge",
        "conversation_a",
        "conversation_b",
        "turn",
        "anony",
        "language",
        "tstamp",
    }
    assert first["conversation_a"] == [
        {"role": "user", "content": 'say "hi"\nplease'},
        {"role": "assistant", "content": "héllo {}"},
    ]
    assert (first["winner"], first["anony"], first["turn"], first["judge"]) == ("model_a", True, 1, "ann")
    assert (second["winner"], second["anony"], second["language"], second["conversation_b"]) == (
        "tie (bothbad)",
        False,
        "unknown",
        [],
    )
    assert "héllo" in path.read_text(encoding="utf-8")  # written as UTF-8, like FastChat


@pytest.mark.parametrize(
    ("winner", "outcome"),
    [("model_a", "a"), ("model_b", "b"), ("tie", "tie"), ("tie (bothbad)", "both_bad")],
)
def test_winner_values_map_to_outcomes(tmp_path: Path, winner: str, outcome: str) -> None:
    path = write_lines(tmp_path / "one.jsonl", [battle(winner=winner)])
    assert read_battles(path).records[0].outcome == outcome
    assert read_battle_table(path).battles.pairs() == [PairOutcome("x", "y", outcome)]


def test_writes_mappings_to_an_open_stream_as_exports_do() -> None:
    stream = io.StringIO()
    exported = {
        "question_id": 7,
        "model_a": "x",
        "model_b": "y",
        "outcome": "tie",
        "judge": None,
        "conversation_a": [{"role": "user", "content": "hi"}],
        "conversation_b": [],
        "turn": 1,
        "anony": True,
        "language": None,
        "tstamp": 5.0,
    }
    assert write_battles([exported], stream) == 1
    written = json.loads(stream.getvalue())
    assert (written["question_id"], written["winner"], written["language"]) == ("7", "tie", "unknown")
    assert written["conversation_a"] == [{"role": "user", "content": "hi"}]


def test_a_failed_write_leaves_no_file_behind(tmp_path: Path) -> None:
    path = tmp_path / "battles.jsonl"
    with pytest.raises(ValueError, match="unknown outcome"):
        write_battles([RICH, {"model_a": "x", "model_b": "y", "outcome": "draw"}], path)
    assert list(tmp_path.iterdir()) == []


def test_unknown_format_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="jsonl, json"):
        write_battles(RECORDS, tmp_path / "x.csv", format="csv")


# --- bad lines ------------------------------------------------------------------------------------


def test_malformed_line_is_reported_with_line_number(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "battles.jsonl", [battle(), battle("y", "z"), '{"model_a": "x", "mod', battle()])
    for reader in (read_battles, read_battle_table):
        with pytest.raises(UsageError, match=r"1 of 4 lines.*line 3: not valid JSON.*strict=False"):
            reader(path)
    lenient = read_battles(path, strict=False)
    assert [(s.kind, s.number) for s in lenient.skipped] == [("line", 3)]
    assert [r.model_b for r in lenient.records] == ["y", "z", "y"]
    table = read_battle_table(path, strict=False)
    assert (len(table.battles), table.skipped, table.fast) == (3, lenient.skipped, False)


def test_unknown_winner_is_rejected(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "battles.jsonl", [battle(), battle(winner="draw"), battle(winner="model_b")])
    with pytest.raises(UsageError, match=r"line 2: unknown winner 'draw' \(expected one of model_a, model_b, tie"):
        read_battle_table(path)
    assert read_battles(path, strict=False).skipped == (
        Skipped("line", 2, "unknown winner 'draw' (expected one of model_a, model_b, tie, tie (bothbad))"),
    )


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('["model_a", "x"]', "not a JSON object"),
        (json.dumps({"model_b": "y", "winner": "tie"}), "no model_a"),
        (battle("x", "x"), "two different variants"),
        (battle("", "y"), "model_a must be a variant name"),
        (json.dumps({"model_a": "x", "model_b": "y"}), "no winner"),
        (battle(tstamp="noon"), "tstamp must be a number"),
        (battle(tstamp=True), "tstamp must be a number"),
    ],
)
def test_each_kind_of_bad_battle_says_what_is_wrong(tmp_path: Path, line: str, reason: str) -> None:
    path = write_lines(tmp_path / "battles.jsonl", [battle(), line])
    for reader in (read_battles, read_battle_table):
        [skipped] = reader(path, strict=False).skipped
        assert skipped.number == 2 and reason in skipped.reason


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({"anony": "yes"}, "anony must be true or false"),
        ({"turn": 0}, "turn must be a whole number"),
        ({"conversation_a": "hi"}, "conversation_a must be a list"),
        ({"conversation_b": [{"role": "user", "content": ["img", "text"]}]}, "multimodal"),
    ],
)
def test_full_records_check_the_other_fields_too(tmp_path: Path, extra: dict[str, Any], reason: str) -> None:
    path = write_lines(tmp_path / "battles.jsonl", [battle(**extra)])
    [skipped] = read_battles(path, strict=False).skipped
    assert reason in skipped.reason
    assert len(read_battle_table(path).battles) == 1  # ratings need only the rated fields


def test_bad_item_in_json_array_is_reported_by_index(tmp_path: Path) -> None:
    items = [json.loads(battle()), {"model_a": "x", "model_b": "y", "winner": "draw"}, json.loads(battle())]
    path = tmp_path / "battles.json"
    path.write_text(json.dumps(items, indent=2), encoding="utf-8")
    with pytest.raises(UsageError, match=r"1 of 3 items.*item 1: unknown winner 'draw'"):
        read_battles(path)
    assert [str(s) for s in read_battle_table(path, strict=False).skipped] == [
        "item 1: unknown winner 'draw' (expected one of model_a, model_b, tie, tie (bothbad))"
    ]


def test_invalid_json_array_is_refused_with_its_position(tmp_path: Path) -> None:
    path = tmp_path / "battles.json"
    path.write_text("[\n" + battle() + ",\n" + battle()[:-5] + "\n]\n", encoding="utf-8")
    for strict in (True, False):
        with pytest.raises(UsageError, match=r"not valid JSON at line 3 column .*JSONL"):
            read_battle_table(path, strict=strict)


def test_refusal_lists_the_first_few_and_counts_the_rest(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "battles.jsonl", [battle(winner=f"w{i}") for i in range(8)] + [battle()])
    with pytest.raises(UsageError, match=r"8 of 9 lines.*line 5: .*; 3 more\)") as refused:
        read_battles(path)
    assert "line 6" not in str(refused.value)


# --- file shapes ----------------------------------------------------------------------------------


def test_reads_fastchat_public_layout(tmp_path: Path) -> None:
    # FastChat's clean_battle files: a JSON array with indent, its own key order, extra fields
    items = [
        {
            "question_id": "abc",
            "model_a": "x",
            "model_b": "y",
            "winner": "tie (bothbad)",
            "judge": "arena_user_1",
            "turn": 1,
            "anony": True,
            "language": "English",
            "tstamp": 1712345678.9,
            "conv_metadata": {"sum_assistant_a_tokens": 10, "model_a": "not this one"},
            "category_tag": {"criteria_v0.1": {"code": False}},
            "dedup_tag": {"high_freq": False},
        },
        {
            "question_id": "def",
            "model_a": "y",
            "model_b": "x",
            "winner": "model_a",
            "judge": "arena_user_2",
            "turn": 2,
            "anony": False,
            "language": "German",
            "tstamp": 1712345679,
        },
    ]
    path = tmp_path / "clean_battle.json"
    path.write_text(json.dumps(items, indent=2), encoding="utf-8")
    read = read_battles(path)
    assert [(r.model_a, r.outcome, r.judge, r.turn, r.anony, r.language) for r in read.records] == [
        ("x", "both_bad", "arena_user_1", 1, True, "English"),
        ("y", "a", "arena_user_2", 2, False, "German"),
    ]
    table = read_battle_table(path)
    assert not table.fast
    assert table.battles.pairs() == [
        PairOutcome("x", "y", "both_bad", 1712345678.9),
        PairOutcome("y", "x", "a", 1712345679.0),
    ]


def test_fast_path_agrees_with_the_slow_path_on_the_same_battles(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    names = ["gemma-4-e2b-it", "gemma-4-e4b-it", "gemma-4-31b-it", "é-variant"]
    outcomes = ["a", "b", "tie", "both_bad"]
    records = []
    for i in range(500):
        first, second = rng.choice(len(names), 2, replace=False)
        records.append(
            BattleRecord(
                names[first],
                names[second],
                outcomes[rng.integers(4)],
                1e9 + rng.random() * 1e6,
                judge=f"u{i}",
                conversation_a=(Message("user", '"}{\n'),),
            )
        )
    fast = tmp_path / "fast.jsonl"
    write_battles(records, fast)
    shuffled = tmp_path / "slow.jsonl"  # same battles, keys in another order: the slow path
    lines = [json.dumps(dict(reversed(json.loads(line).items()))) for line in fast.read_text().splitlines()]
    write_lines(shuffled, lines)
    fast_table, slow_table = read_battle_table(fast), read_battle_table(shuffled)
    assert fast_table.fast and not slow_table.fast
    assert fast_table.battles.models == slow_table.battles.models
    for column in ("a", "b", "outcome", "tstamp"):
        np.testing.assert_array_equal(getattr(fast_table.battles, column), getattr(slow_table.battles, column))


def _many(count: int) -> list[BattleRecord]:
    rng = np.random.default_rng(1)
    names = ["e2b", "e4b", "26b-a4b", "31b"]
    outcomes = ["a", "b", "tie", "both_bad"]
    records = []
    for i in range(count):
        first, second = rng.choice(len(names), 2, replace=False)
        records.append(BattleRecord(names[first], names[second], outcomes[rng.integers(4)], 1e9 + i))
    return records


@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_a_large_file_read_in_two_halves_at_once_gives_the_same_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    path = tmp_path / f"battles.{fmt}"
    write_battles(_many(3001), path, format=fmt)
    whole = read_battle_table(path)
    monkeypatch.setattr(fastchat_scan, "_PARALLEL_BYTES", 1024)  # split even this small file
    splits: list[int | None] = []
    real = fastchat_scan._middle
    monkeypatch.setattr(fastchat_scan, "_middle", lambda *a: splits.append(real(*a)) or splits[-1])
    halves = read_battle_table(path)
    assert splits and splits[0] and halves.fast and whole.fast  # it was split, and read fast
    assert halves.battles.models == whole.battles.models
    for column in ("a", "b", "outcome", "tstamp"):
        np.testing.assert_array_equal(getattr(halves.battles, column), getattr(whole.battles, column))


def test_a_bad_line_in_the_second_half_still_sends_the_file_to_the_slow_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "battles.jsonl"
    write_battles(_many(2000), path)
    lines = path.read_text().splitlines()
    lines[1500] = json.dumps({"model_b": "31b", "model_a": "e2b", "winner": "model_a", "tstamp": 5.0})
    path.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(fastchat_scan, "_PARALLEL_BYTES", 1024)
    table = read_battle_table(path)
    assert not table.fast and len(table.battles) == 2000
    assert table.battles.pairs()[1500] == PairOutcome("e2b", "31b", "a", 5.0)


@pytest.mark.parametrize(
    "odd_line",
    [
        battle('quo\\"ted', "y", tstamp=1.0),  # an escaped name
        battle("x", "y", tstamp=None),  # no time
        json.dumps({"model_b": "y", "model_a": "x", "winner": "tie", "tstamp": 1.0}),  # other key order
        "  " + battle(tstamp=1.0),  # leading spaces
    ],
)
def test_an_odd_line_sends_the_file_to_the_slow_path(tmp_path: Path, odd_line: str) -> None:
    path = tmp_path / "battles.jsonl"
    write_battles([RECORDS[1], RECORDS[2]], path)
    path.write_text(path.read_text() + odd_line + "\n" + battle("p", "q", tstamp=9.0) + "\n")
    table = read_battle_table(path)
    assert not table.fast
    assert len(table.battles) == 4 and table.battles.pairs()[-1] == PairOutcome("p", "q", "a", 9.0)
    assert table.battles.pairs()[2] == read_battles(path).records[2].pair()


def test_truncated_last_line_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "battles.jsonl"
    write_battles(RECORDS, path)
    path.write_bytes(path.read_bytes()[:-40])  # a writer that died mid-line
    with pytest.raises(UsageError, match="line 4: not valid JSON"):
        read_battle_table(path)


@pytest.mark.parametrize("damage", ["truncate", "join"])
def test_a_damaged_middle_line_is_not_read_past(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "battles.jsonl"
    write_battles(RECORDS, path)
    lines = path.read_text(encoding="utf-8").splitlines()
    if damage == "truncate":
        lines[1] = lines[1][:-30]
    else:  # two files joined where the first had no last newline
        lines[1:3] = [lines[1] + lines[2]]
    write_lines(path, lines)
    with pytest.raises(UsageError, match="line 2: not valid JSON"):
        read_battle_table(path)


def test_blank_lines_byte_order_mark_and_missing_last_newline_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "battles.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + (battle() + "\n\n" + battle("y", "z") + "\r\n\n" + battle("z", "x")).encode())
    assert [p.model_a for p in read_battle_table(path).battles.pairs()] == ["x", "y", "z"]
    assert len(read_battles(path).records) == 3


@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_one_battle_without_last_newline_takes_the_fast_path(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"one.{fmt}"
    write_battles(RECORDS[:1], path, format=fmt)
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    table = read_battle_table(path)
    assert table.fast and table.battles.pairs() == pairs(RECORDS[:1])


@pytest.mark.parametrize("content", ["", "\n", "[]", "[]\n"])
def test_empty_files_give_no_battles(tmp_path: Path, content: str) -> None:
    path = tmp_path / "empty.json"
    path.write_text(content)
    assert len(read_battle_table(path).battles) == 0
    assert read_battles(path).records == ()
    stream = io.StringIO()
    write_battles([], stream, format="json")
    assert json.loads(stream.getvalue()) == []


def test_missing_file_is_a_usage_error_naming_the_path(tmp_path: Path) -> None:
    for reader in (read_battles, read_battle_table):
        with pytest.raises(UsageError, match=r"nowhere\.jsonl does not exist"):
            reader(tmp_path / "nowhere.jsonl")
        with pytest.raises(UsageError, match="is a folder"):
            reader(tmp_path)

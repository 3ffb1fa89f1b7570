"""FastChat clean-battle files (storage.fastchat, storage.fastchat_reader): both layouts, keys in any
order, named battles, reporting bad lines and items, writing."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from arena.errors import UsageError
from arena.ratings import PairOutcome
from storage import fastchat_reader
from storage.fastchat import BattleRecord, Exchange, Message, write_battles
from storage.fastchat_reader import Skipped, read_battle_table, read_battles

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
    BattleRecord("gemma-4-e4b-it", "gemma-4-e2b-it", "tie", 1_717_000_002.5, judge="bob", anony=False),
    BattleRecord("gemma-4-e2b-it", "gemma-4-e4b-it", "both_bad", 1_717_000_003.0, anony=True),
)


def pairs(records: tuple[BattleRecord, ...]) -> list[PairOutcome]:
    return [record.pair() for record in records]


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def battle(model_a: str = "x", model_b: str = "y", winner: str = "model_a", **extra: Any) -> str:
    return json.dumps({"model_a": model_a, "model_b": model_b, "winner": winner, **extra})


def write_array(path: Path, items: list[Any]) -> Path:
    """A JSON array as FastChat's clean_battle_data.py writes it."""
    path.write_text(json.dumps(items, indent=2, ensure_ascii=False), encoding="utf-8")
    return path


def clean_battle(model_a: str, model_b: str, winner: str, tstamp: float, *, anony: bool = True) -> dict[str, Any]:
    """One battle as FastChat's clean_battle_data.py writes it: its key order, its extra fields
    (one of which holds a model_a of its own)."""
    return {
        "question_id": f"q{tstamp:g}",
        "conv_metadata": {"sum_assistant_a_tokens": 10, "model_a": "not this one"},
        "tstamp": tstamp,
        "winner": winner,
        "judge": "arena_user_1",
        "model_b": model_b,
        "category_tag": {"criteria_v0.1": {"code": False}},
        "dedup_tag": {"high_freq": False},
        "anony": anony,
        "language": "English",
        "turn": 1,
        "model_a": model_a,
    }


# --- round trip and layout ------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_fastchat_round_trip(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"battles.{fmt}"
    assert write_battles(RECORDS, path, format=fmt) == len(RECORDS)
    read = read_battles(path)
    assert (read.records, read.skipped, read.format) == (RECORDS, (), fmt)
    table = read_battle_table(path, include_named=True)
    assert table.fast and table.format == fmt and table.named_left_out == 0
    assert table.battles.pairs() == pairs(RECORDS) == read.battles().pairs()
    blind = read_battle_table(path)
    assert blind.named_left_out == 1 and blind.battles.pairs() == pairs(RECORDS[:2] + RECORDS[3:])


def test_writer_follows_fastchat_field_conventions(tmp_path: Path) -> None:
    path = tmp_path / "battles.jsonl"
    write_battles([RICH, BattleRecord("x", "y", "both_bad", anony=False)], path)
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
        (battle(anony="yes"), "anony must be true or false"),
        (battle(model_b=7), "model_b must be a variant name, not 7"),
        ('"a battle"', "not a JSON object but a string"),
        (battle()[:-1] + ', "tstamp": 1e999}', "not valid JSON (number out of range)"),
        (battle(tstamp=float("nan")), "not valid JSON (invalid character at column 65)"),  # NaN is not JSON
        (battle() + " " + battle(), "not valid JSON (trailing characters at column 56)"),
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
        ({"turn": 0}, "turn must be a whole number"),
        ({"conversation_a": "hi"}, "conversation_a must be a list"),
        ({"conversation_b": [{"role": "user", "content": ["img", "text"]}]}, "multimodal"),
        (
            {
                "conversation_a": [{"role": "user", "content": "hi"}, {"role": "user", "content": "and?"}],
                "conversation_b": [{"role": "user", "content": "hi"}, {"role": "user", "content": "or?"}],
            },
            "different user messages (at turn 2)",
        ),
        (
            {
                "conversation_a": [{"role": "user", "content": "hi"}, {"role": "user", "content": "and?"}],
                "conversation_b": [{"role": "user", "content": "hi"}],
            },
            "different user messages (2 turns against 1)",
        ),
    ],
)
def test_full_records_check_the_other_fields_too(tmp_path: Path, extra: dict[str, Any], reason: str) -> None:
    path = write_lines(tmp_path / "battles.jsonl", [battle(**extra)])
    [skipped] = read_battles(path, strict=False).skipped
    assert reason in skipped.reason
    assert len(read_battle_table(path).battles) == 1  # ratings need only the rated fields


def conversation(*messages: tuple[str, str]) -> tuple[Message, ...]:
    return tuple(Message(role, content) for role, content in messages)


def test_a_battle_of_several_turns_reads_as_its_exchanges() -> None:
    record = BattleRecord(
        "x", "y", "a", turn=2,
        conversation_a=conversation(("system", "be brief"), ("user", "hi"), ("assistant", "x: hello"),
                                    ("user", "and?"), ("assistant", "x: more")),
        conversation_b=conversation(("user", "hi"), ("assistant", "y: hey"), ("user", "and?"), ("assistant", "y: so")),
    )  # fmt: skip
    assert record.system == "be brief"
    assert record.exchanges() == (Exchange("hi", "x: hello", "y: hey"), Exchange("and?", "x: more", "y: so"))
    # a side without its conversation answers nothing; a turn without an answer answers ""
    lone = BattleRecord(
        "x", "y", "a", conversation_a=conversation(("user", "hi"), ("user", "and?"), ("assistant", "ok"))
    )
    assert lone.exchanges() == (Exchange("hi", "", ""), Exchange("and?", "ok", ""))
    assert BattleRecord("x", "y", "a").exchanges() == ()


def test_a_battle_of_one_turn_takes_conversation_a_even_when_b_asked_otherwise(tmp_path: Path) -> None:
    asked = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    other = [{"role": "user", "content": "hey"}, {"role": "assistant", "content": "yo"}]
    path = write_lines(tmp_path / "battles.jsonl", [battle(conversation_a=asked, conversation_b=other)])
    [record] = read_battles(path).records
    assert record.exchanges() == (Exchange("hi", "hello", "yo"),)


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


def test_reads_fastchat_indented_array_with_extra_fields_in_one_pass(tmp_path: Path) -> None:
    items = [
        clean_battle("x", "y", "tie (bothbad)", 1712345678.9),
        {**clean_battle("y", "x", "model_a", 1712345679, anony=False), "turn": 2, "language": "German"},
        clean_battle("y", "z", "model_b", 1712345680),
    ]
    path = write_array(tmp_path / "clean_battle.json", items)
    read = read_battles(path)
    assert [(r.model_a, r.outcome, r.judge, r.turn, r.anony, r.language) for r in read.records] == [
        ("x", "both_bad", "arena_user_1", 1, True, "English"),
        ("y", "a", "arena_user_1", 2, False, "German"),
        ("y", "b", "arena_user_1", 1, True, "English"),
    ]
    table = read_battle_table(path)
    assert table.fast and table.format == "json" and table.named_left_out == 1
    assert table.battles.models == ("x", "y", "z")
    assert table.battles.pairs() == [
        PairOutcome("x", "y", "both_bad", 1712345678.9),
        PairOutcome("y", "z", "b", 1712345680.0),
    ]
    everything = read_battle_table(path, include_named=True)
    assert everything.named_left_out == 0 and everything.battles.pairs() == read.battles().pairs()


def test_json_lines_with_keys_in_any_order_are_read_in_one_pass(tmp_path: Path) -> None:
    battles = [
        {"model_a": "x", "model_b": "y", "winner": "model_b", "anony": True, "judge": "u1", "tstamp": 1.0},
        {"tstamp": 2.0, "judge": "u2", "anony": False, "winner": "tie", "model_b": "z", "model_a": "y"},
        {"winner": "model_a", "model_a": 'quo"ted', "model_b": "x", "tstamp": None},
        {"model_b": "é", "judge": None, "model_a": "x", "winner": "tie (bothbad)", "anony": None, "tstamp": 3},
    ]
    path = write_lines(tmp_path / "battles.jsonl", [json.dumps(b, ensure_ascii=False) for b in battles])
    table = read_battle_table(path)
    assert table.fast and table.format == "jsonl" and table.named_left_out == 1
    assert table.battles.pairs() == [
        PairOutcome("x", "y", "b", 1.0),
        PairOutcome('quo"ted', "x", "a"),
        PairOutcome("x", "é", "both_bad", 3.0),  # a missing or null anony counts as anonymous
    ]
    assert [r.anony for r in read_battles(path).records] == [True, False, True, True]


def test_both_layouts_and_every_key_order_give_the_same_table(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    names = ["gemma-4-e2b-it", "gemma-4-e4b-it", "gemma-4-31b-it", "é-variant"]
    records = []
    for i in range(500):
        first, second = rng.choice(len(names), 2, replace=False)
        records.append(
            BattleRecord(
                names[first],
                names[second],
                ["a", "b", "tie", "both_bad"][rng.integers(4)],
                1e9 + rng.random() * 1e6,
                judge=f"u{i}",
                anony=bool(rng.random() < 0.9),
                conversation_a=(Message("user", '"}{\n'),),
            )
        )
    ours = tmp_path / "ours.jsonl"
    write_battles(records, ours)
    objects = [json.loads(line) for line in ours.read_text(encoding="utf-8").splitlines()]
    reversed_lines = write_lines(tmp_path / "reversed.jsonl", [json.dumps(dict(reversed(o.items()))) for o in objects])
    array = write_array(tmp_path / "array.json", [dict(sorted(o.items())) for o in objects])
    tables = [read_battle_table(path) for path in (ours, reversed_lines, array)]
    assert all(table.fast for table in tables)
    expected = [r.pair() for r in records if r.anony]
    for table in tables:
        assert table.battles.pairs() == expected
        assert table.named_left_out == len(records) - len(expected)


@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_entry_by_entry_pass_gives_the_same_table_as_one_pass(tmp_path: Path, fmt: str) -> None:
    records = [
        BattleRecord(a, b, outcome, 1e9 + i, anony=i % 7 != 0)
        for i, (a, b, outcome) in enumerate([("e2b", "e4b", "a"), ("31b", "e2b", "tie"), ("e4b", "31b", "b")] * 40)
    ]
    good = tmp_path / f"good.{fmt}"
    write_battles(records, good, format=fmt)
    objects = [record.to_fastchat() for record in records]
    objects.insert(60, {"model_a": "e2b", "model_b": "e2b", "winner": "tie"})  # found only entry by entry
    bad = tmp_path / f"bad.{fmt}"
    if fmt == "json":
        write_array(bad, objects)
    else:
        write_lines(bad, [json.dumps(o) for o in objects])
    one_pass, each = read_battle_table(good), read_battle_table(bad, strict=False)
    assert one_pass.fast and not each.fast
    assert [str(s) for s in each.skipped] == [
        "item 60: model_a and model_b are both 'e2b': a battle needs two different variants"
        if fmt == "json"
        else "line 61: model_a and model_b are both 'e2b': a battle needs two different variants"
    ]
    assert each.named_left_out == one_pass.named_left_out == sum(not r.anony for r in records)
    assert each.battles.models == one_pass.battles.models
    for column in ("a", "b", "outcome", "tstamp"):
        np.testing.assert_array_equal(getattr(each.battles, column), getattr(one_pass.battles, column))


def test_json_lines_read_in_slices_learn_each_new_variant_and_find_bad_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # variants join over time, as on a real arena; slices of ~1 KB make every few lines a slice
    names = ["e2b", "e4b", "31b", "26b", "é-new"]
    lines = [
        json.dumps(
            {"tstamp": float(i), "winner": "tie", "model_b": names[i % min(len(names), 1 + i // 60)], "model_a": "base"}
        )
        for i in range(300)
    ]
    path = write_lines(tmp_path / "battles.jsonl", lines)
    whole = read_battle_table(path)
    monkeypatch.setattr(fastchat_reader, "_CHUNK_BYTES", 1024)
    learned: list[set[str]] = []
    learn = fastchat_reader._decoder_knowing
    monkeypatch.setattr(fastchat_reader, "_decoder_knowing", lambda names: learned.append(set(names)) or learn(names))
    sliced = read_battle_table(path)
    assert whole.fast and sliced.fast
    assert [len(names) for names in learned] == [2, 3, 4, 5, 6]  # base and e2b first, then one by one
    assert sliced.battles.models == whole.battles.models == ("26b", "31b", "base", "e2b", "e4b", "é-new")
    assert sliced.battles.pairs() == whole.battles.pairs()
    lines[250] = lines[250].replace('"tie"', '"draw"')
    lines[280] = lines[280] + lines[281]  # two battles on one line
    write_lines(path, lines)
    with pytest.raises(UsageError, match=r"line 251: unknown winner 'draw'.*line 281: not valid JSON \(trailing"):
        read_battle_table(path)


def test_bad_items_of_an_indented_array_are_reported_by_index(tmp_path: Path) -> None:
    items = [
        clean_battle("x", "y", "model_a", 1.0),
        ["model_a", "x"],
        clean_battle("x", "x", "tie", 2.0),
        {**clean_battle("x", "y", "tie", 3.0), "model_b": None},
        clean_battle("x", "y", "left", 4.0),
        clean_battle("y", "x", "model_b", 5.0),
    ]
    path = write_array(tmp_path / "clean_battle.json", items)
    for reader in (read_battles, read_battle_table):
        with pytest.raises(UsageError, match=r"4 of 6 items.*item 1: not a JSON object.*item 4: unknown winner 'left'"):
            reader(path)
    table = read_battle_table(path, strict=False)
    assert [(s.kind, s.number) for s in table.skipped] == [("item", 1), ("item", 2), ("item", 3), ("item", 4)]
    assert "model_b must be a variant name, not None" in table.skipped[2].reason
    assert table.battles.pairs() == [PairOutcome("x", "y", "a", 1.0), PairOutcome("y", "x", "b", 5.0)]


def test_named_battles_are_left_out_only_of_the_table(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "battles.jsonl", [battle(anony=False), battle("y", "z", anony=False), battle("z", "x", anony=True)]
    )
    table = read_battle_table(path)
    assert (table.battles.pairs(), table.named_left_out) == ([PairOutcome("z", "x", "a")], 2)
    assert table.battles.models == ("x", "z")  # a variant seen only in named battles is not listed
    assert len(read_battle_table(path, include_named=True).battles) == 3
    records = read_battles(path)
    assert len(records.records) == 3
    assert (len(records.anonymous_only().records), records.anonymous_only().named_left_out) == (1, 2)


@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_mode_named_keeps_only_named_battles_and_counts_the_blind_ones(tmp_path: Path, fmt: str) -> None:
    lines = [battle(anony=False), battle("y", "z", anony=False), battle("z", "x", anony=True), battle("x", "z")]
    path = (
        write_lines(tmp_path / "b.jsonl", lines)
        if fmt == "jsonl"
        else write_array(tmp_path / "b.json", [json.loads(line) for line in lines])
    )
    named = read_battle_table(path, mode="named")
    assert named.fast and named.battles.pairs() == [PairOutcome("x", "y", "a"), PairOutcome("y", "z", "a")]
    assert (named.named_left_out, named.blind_left_out) == (0, 2)  # a missing anony counts as blind
    everything = read_battle_table(path, mode="all")
    assert (len(everything.battles), everything.named_left_out, everything.blind_left_out) == (4, 0, 0)
    records = read_battles(path).of_mode("named")
    assert (len(records.records), records.blind_left_out) == (2, 2)
    with pytest.raises(UsageError, match="unknown mode 'anonymous'"):
        read_battle_table(path, mode="anonymous")


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
def test_one_battle_without_last_newline_is_read_in_one_pass(tmp_path: Path, fmt: str) -> None:
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

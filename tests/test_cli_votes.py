"""`leaderboard`, `export` and `import` on real SQLite files, in-process and as real subprocesses."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from arena.rating_tables import BOARD_COLUMNS
from arena.ratings import Battles, PairOutcome, compute_leaderboard
from arena.settings import Settings
from backends.base import Media, Request
from cli import build_parser, main
from storage import open_store
from storage.queries import RATING_MODES
from tests.test_store import answer

REPO = Path(__file__).resolve().parent.parent
E2B, E4B, B26, B31 = "demo:e2b", "demo:e4b", "demo:26b", "demo:31b"
PNG = Media(kind="image", data=b"png bytes", mime="image/png")


def fill(path: Path) -> None:
    """Two-sided votes of every kind on four variants, a best-of-three and a ranking of four."""
    plan = [
        ((E2B, E4B), "a"),
        ((E4B, B26), "b"),
        ((B26, B31), "tie"),
        ((B31, E2B), "both_bad"),
        ((E2B, B26), "a"),
        ((E4B, B31), "b"),
        ((B31, E2B), "a"),
        ((B26, E4B), "a"),
    ] * 3
    with open_store(path) as store:
        for n, (pair, outcome) in enumerate(plan):
            request = Request(f"question {n}", images=(PNG,) if n % 4 == 0 else ())
            battle_id = store.record_comparison(
                request,
                [(label, label) for label in pair],
                [answer(label, f"{label} says {n}", tokens_per_s=10.0 + n) for label in pair],
                mode="blind",
                voter="ann" if n % 2 else "bob",
            )
            store.record_vote(battle_id, outcome)
        three = store.record_comparison(
            Request("three"), [(v, v) for v in (E2B, E4B, B26)], [answer(v) for v in (E2B, E4B, B26)], voter="ann"
        )
        store.record_vote(three, best=B26)
        four = store.record_comparison(
            Request("four"),
            [(v, v) for v in (E2B, E4B, B26, B31)],
            [answer(v) for v in (E2B, E4B, B26, B31)],
            voter="bob",
        )
        store.record_vote(four, ranking=[[B31], [E2B, B26], [E4B]])


@pytest.fixture
def voted(settings: Settings) -> Settings:
    """Settings whose database holds 26 votes (24 two-sided, one best-of-three, one ranking)."""
    fill(settings.db_path)
    return settings


def run_cli(capsys: pytest.CaptureFixture[str], settings: Settings | None, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv), settings=settings)
    out, err = capsys.readouterr()
    return code, out, err


def leaderboard_json(capsys: pytest.CaptureFixture[str], settings: Settings, *argv: str) -> dict[str, Any]:
    code, out, err = run_cli(capsys, settings, "leaderboard", "--json", "--rounds", "40", *argv)
    assert code == 0, err
    return json.loads(out)


def write_jsonl(path: Path, lines: list[Any]) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def fastchat(model_a: str, model_b: str, winner: str, tstamp: float, **extra: Any) -> dict[str, Any]:
    conversation = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": f"{model_a} here"}]
    return {
        "model_a": model_a,
        "model_b": model_b,
        "winner": winner,
        "tstamp": tstamp,
        "judge": "judge-1",
        "anony": True,
        "conversation_a": conversation,
        "conversation_b": conversation,
        **extra,
    }


def vote_count(path: Path) -> int:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute("SELECT COUNT(*) FROM votes").fetchone()[0]


def test_leaderboard_json_rows_carry_rating_interval_rank_and_tallies(
    capsys: pytest.CaptureFixture[str], voted: Settings
) -> None:
    board = leaderboard_json(capsys, voted, "--mode", "all")
    assert board["battles"] == 24 + 2 + 6  # best-of-three implies 2 pairs, a ranking of four 6
    assert board["votes"] == 26 and board["mode"] == "all"
    assert [row["variant"] for row in board["rows"]] and {row["variant"] for row in board["rows"]} == {
        E2B,
        E4B,
        B26,
        B31,
    }
    for row in board["rows"]:
        assert {"variant", "rating", "ci_low", "ci_high", "rank", "votes", "wins", "losses", "ties"} <= row.keys()
        assert row["ci_low"] <= row["rating"] <= row["ci_high"]
        assert row["rank"] >= 1
    # a vote counts once for each variant in it, whatever the pairs it implies
    assert sum(row["votes"] for row in board["rows"]) == 2 * 24 + 3 + 4
    pairs = sum(row["wins"] + row["losses"] + row["ties"] + row["both_bad"] for row in board["rows"])
    assert pairs == 2 * board["battles"]


def test_leaderboard_table_names_every_variant_and_the_scale(
    capsys: pytest.CaptureFixture[str], voted: Settings
) -> None:
    code, out, _ = run_cli(capsys, voted, "leaderboard", "--rounds", "20")
    assert code == 0
    assert "mean of the 4 listed variants = 1000" in out
    assert all(variant in out for variant in (E2B, E4B, B26, B31))


def test_leaderboard_anchor_pins_one_variant(capsys: pytest.CaptureFixture[str], voted: Settings) -> None:
    board = leaderboard_json(capsys, voted, "--anchor", f"{E4B}=1200")
    [row] = [row for row in board["rows"] if row["variant"] == E4B]
    assert row["rating"] == pytest.approx(1200) and row["ci_low"] == pytest.approx(row["ci_high"])
    code, _, err = run_cli(capsys, voted, "leaderboard", "--anchor", "demo:e4b")
    assert code == 2 and "VARIANT=RATING" in err


def test_leaderboard_filters_by_category_and_voter(capsys: pytest.CaptureFixture[str], voted: Settings) -> None:
    assert leaderboard_json(capsys, voted, "--category", "image")["battles"] == 6
    assert leaderboard_json(capsys, voted, "--category", "text")["battles"] == 24 - 6
    assert leaderboard_json(capsys, voted, "--category", "text", "--mode", "all")["battles"] == 24 - 6 + 2 + 6
    assert leaderboard_json(capsys, voted, "--category", "audio")["rows"] == []
    assert leaderboard_json(capsys, voted, "--voter", "ann")["battles"] == 12
    assert leaderboard_json(capsys, voted, "--voter", "ann", "--mode", "all")["battles"] == 12 + 2


def test_leaderboard_rates_blind_votes_by_default_and_named_or_all_by_mode(
    capsys: pytest.CaptureFixture[str], voted: Settings
) -> None:
    counts = {
        mode: (board["votes"], board["battles"], board["mode"])
        for mode in RATING_MODES
        for board in [leaderboard_json(capsys, voted, "--mode", mode)]
    }
    assert counts == {"blind": (24, 24, "blind"), "named": (2, 8, "named"), "all": (26, 32, "all")}
    assert leaderboard_json(capsys, voted)["mode"] == "blind"
    assert leaderboard_json(capsys, voted, "--include-named")["battles"] == 32  # the older spelling of --mode all
    code, out, _ = run_cli(capsys, voted, "leaderboard", "--mode", "named", "--rounds", "5")
    assert code == 0 and "votes on named comparisons" in out and "2 votes, 8 pairwise outcomes" in out
    code, _, err = run_cli(capsys, voted, "leaderboard", "--include-named", "--mode", "blind")
    assert code == 2 and "--include-named means --mode all" in err


def test_one_vote_gives_a_wide_interval_and_the_shared_last_rank(
    capsys: pytest.CaptureFixture[str], voted: Settings
) -> None:
    with open_store(voted.db_path) as store:
        clip = Request("listen", audio=(Media(kind="audio", data=b"RIFF", mime="audio/wav"),))
        battle_id = store.record_comparison(clip, [(E2B, E2B), (B31, B31)], [answer(E2B), answer(B31)], mode="blind")
        store.record_vote(battle_id, "a")
    board = leaderboard_json(capsys, voted, "--category", "audio")
    assert (board["votes"], board["preliminary"]) == (1, 2)
    for row in board["rows"]:
        assert row["preliminary"] and row["rank"] == 1
        assert row["ci_high"] - row["ci_low"] > 200 and math.isfinite(row["ci_low"]) and math.isfinite(row["ci_high"])
    code, out, _ = run_cli(capsys, voted, "leaderboard", "--category", "audio", "--rounds", "5")
    assert code == 0 and "preliminary: fewer than 30 votes" in out and "share the last rank" in out


def test_leaderboard_reads_the_database_named_by_flag_or_environment(
    capsys: pytest.CaptureFixture[str],
    voted: Settings,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    elsewhere = replace(settings, db_path=tmp_path / "elsewhere.db")
    assert leaderboard_json(capsys, elsewhere, "--db", str(voted.db_path))["battles"] == 24
    monkeypatch.setenv("GEMMA_ARENA_DB", str(voted.db_path))
    code, out, err = run_cli(capsys, None, "leaderboard", "--json", "--rounds", "5")
    assert code == 0, err
    assert json.loads(out)["source"] == {"db": str(voted.db_path)}


def test_fastchat_export_says_which_votes_were_blind_and_rates_like_the_database(
    capsys: pytest.CaptureFixture[str], voted: Settings, tmp_path: Path
) -> None:
    out = tmp_path / "battles.jsonl"
    code, _, err = run_cli(capsys, voted, "export", "--format", "fastchat", "--out", str(out))
    assert code == 0 and "wrote 32 battles" in err
    records = [json.loads(line) for line in out.read_text().splitlines()]
    # 24 blind votes; the best-of-three and the ranking were named comparisons (2 + 6 pairs)
    assert [record["anony"] for record in records] == [True] * 24 + [False] * 8
    assert records[0]["winner"] == "model_a" and records[0]["judge"] == "bob"
    assert records[0]["conversation_a"][-1] == {"role": "assistant", "content": f"{E2B} says 0"}
    from_db = leaderboard_json(capsys, voted)  # blind votes, all two-sided: the file holds them as they are
    blind = leaderboard_json(capsys, voted, "--battles", str(out))
    assert blind["rows"] == from_db["rows"] and blind["win_rate"] == from_db["win_rate"]
    assert (blind["battles"], blind["named_left_out"]) == (24, 8)
    # the file has no place to say that pairs came from one vote: the ratings agree, the vote counts not
    everything = leaderboard_json(capsys, voted, "--battles", str(out), "--include-named")
    all_db = leaderboard_json(capsys, voted, "--mode", "all")
    assert everything["named_left_out"] == 0 and everything["win_rate"] == all_db["win_rate"]
    assert [(r["variant"], r["rating"], r["wins"]) for r in everything["rows"]] == [
        (r["variant"], r["rating"], r["wins"]) for r in all_db["rows"]
    ]
    assert (everything["votes"], all_db["votes"]) == (32, 26)
    named = leaderboard_json(capsys, voted, "--battles", str(out), "--mode", "named")
    assert (named["battles"], named["blind_left_out"]) == (8, 24)
    blind_db = replace(voted, db_path=tmp_path / "blind.db")  # the blind votes survive the round trip
    assert run_cli(capsys, blind_db, "import", str(out))[0] == 0
    assert leaderboard_json(capsys, blind_db)["rows"] == blind["rows"]


BATTLE_LINES = [
    fastchat("m1", "m2", "model_a", 1.0),
    fastchat("m2", "m3", "tie (bothbad)", 2.0, anony=False),
    fastchat("m1", "m3", "tie", 3.0, judge="judge-2"),
    fastchat("m3", "m1", "model_b", 4.0),
]


def stored_modes(settings: Settings) -> set[str]:
    with open_store(settings.db_path) as store:
        battles = [store.battle(battle_id) for battle_id in _battle_ids(settings.db_path)]
    return {battle.mode for battle in battles if battle}


def test_import_then_leaderboard_matches_rating_the_file(
    capsys: pytest.CaptureFixture[str], settings: Settings, tmp_path: Path
) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", BATTLE_LINES)
    code, out, _ = run_cli(capsys, settings, "import", str(source))
    assert code == 0 and "imported 3 battles" in out
    assert "left out 1 named battle (anony false" in out and "--include-named imports them too" in out
    from_file = leaderboard_json(capsys, settings, "--battles", str(source))
    assert from_file["battles"] == 3 and from_file["named_left_out"] == 1
    assert leaderboard_json(capsys, settings)["rows"] == from_file["rows"]
    with open_store(settings.db_path) as store:
        by_judge_2 = store.pair_outcomes(voter="judge-2")
    assert [(p.model_a, p.model_b, p.outcome) for p in by_judge_2] == [("m1", "m3", "tie")]
    assert stored_modes(settings) == {"blind"}


def test_include_named_imports_and_rates_named_battles_too(
    capsys: pytest.CaptureFixture[str], settings: Settings, tmp_path: Path
) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", BATTLE_LINES)
    code, out, _ = run_cli(capsys, settings, "import", "--include-named", str(source))
    assert code == 0 and "imported 4 battles" in out and "left out" not in out
    from_file = leaderboard_json(capsys, settings, "--battles", str(source), "--include-named")
    assert from_file["battles"] == 4 and from_file["named_left_out"] == 0
    assert leaderboard_json(capsys, settings, "--mode", "all")["rows"] == from_file["rows"]
    assert leaderboard_json(capsys, settings, "--include-named")["rows"] == from_file["rows"]
    assert stored_modes(settings) == {"blind", "named"}
    named = leaderboard_json(capsys, settings, "--mode", "named")
    assert (
        named["battles"] == 1
        and named["rows"] == leaderboard_json(capsys, settings, "--battles", str(source), "--mode", "named")["rows"]
    )


def test_leaderboard_on_a_battles_file_filters_by_judge_but_has_no_categories(
    capsys: pytest.CaptureFixture[str], settings: Settings, tmp_path: Path
) -> None:
    source = write_jsonl(
        tmp_path / "in.jsonl",
        [
            fastchat("m1", "m2", "model_a", 1.0),
            fastchat("m1", "m3", "tie", 2.0, judge="judge-2"),
            fastchat("m2", "m3", "tie", 3.0, judge="judge-2", anony=False),
        ],
    )
    board = leaderboard_json(capsys, settings, "--battles", str(source), "--voter", "judge-2")
    assert board["battles"] == 1 and {row["variant"] for row in board["rows"]} == {"m1", "m3"}
    assert board["named_left_out"] == 1
    both = leaderboard_json(capsys, settings, "--battles", str(source), "--voter", "judge-2", "--include-named")
    assert (both["battles"], both["named_left_out"]) == (2, 0)
    code, _, err = run_cli(capsys, settings, "leaderboard", "--battles", str(source), "--category", "image")
    assert code == 2 and "--category needs the database" in err


def clean_battle_array(path: Path, battles: list[tuple[str, str, str, bool]]) -> Path:
    """A JSON array as FastChat's clean_battle_data.py writes it: indented, its key order, its
    extra fields. Each battle is (model_a, model_b, winner, anony)."""
    items = [
        {
            "question_id": f"q{n}",
            "model_a": model_a,
            "model_b": model_b,
            "winner": winner,
            "judge": f"arena_user_{n}",
            "conv_metadata": {"sum_user_tokens": 12, "sum_assistant_a_tokens": 80},
            "category_tag": {"criteria_v0.1": {"code": False}},
            "dedup_tag": {"high_freq": False, "sampled": True},
            "anony": anony,
            "language": "English",
            "turn": 1,
            "tstamp": 1_712_345_678.0 + n,
        }
        for n, (model_a, model_b, winner, anony) in enumerate(battles)
    ]
    path.write_text(json.dumps(items, indent=2, ensure_ascii=False), encoding="utf-8")
    return path


def test_leaderboard_rates_a_fastchat_clean_battle_array_leaving_named_battles_out(
    capsys: pytest.CaptureFixture[str], settings: Settings, tmp_path: Path
) -> None:
    source = clean_battle_array(
        tmp_path / "clean_battle_20240501.json",
        [("m1", "m2", "model_a", True), ("m2", "m3", "tie", False), ("m3", "m1", "model_b", True)],
    )
    code, out, _ = run_cli(capsys, settings, "leaderboard", "--battles", str(source), "--rounds", "10")
    assert code == 0 and "2 pairwise outcomes" in out
    assert "left out 1 named battle (anony false" in out and "--include-named rates them too" in out
    board = leaderboard_json(capsys, settings, "--battles", str(source))
    assert (board["battles"], board["named_left_out"]) == (2, 1)
    assert {row["variant"]: row["wins"] for row in board["rows"]} == {"m1": 2, "m2": 0, "m3": 0}
    everything = leaderboard_json(capsys, settings, "--battles", str(source), "--include-named")
    assert (everything["battles"], everything["named_left_out"]) == (3, 0)
    assert {row["variant"]: row["ties"] for row in everything["rows"]} == {"m1": 0, "m2": 1, "m3": 1}


def test_leaderboard_names_a_bad_array_item_by_index_and_skip_bad_skips_it(
    capsys: pytest.CaptureFixture[str], settings: Settings, tmp_path: Path
) -> None:
    source = clean_battle_array(
        tmp_path / "clean_battle.json",
        [
            ("m1", "m2", "model_a", True),
            ("m2", "m2", "tie", True),
            ("m3", "m1", "left", True),
            ("m3", "m1", "tie", True),
        ],
    )
    code, out, err = run_cli(capsys, settings, "leaderboard", "--battles", str(source))
    assert code == 2 and out == ""
    assert "2 of 4 items" in err and "item 1: model_a and model_b are both 'm2'" in err
    assert "item 2: unknown winner 'left'" in err and "--skip-bad" in err
    code, out, err = run_cli(capsys, settings, "leaderboard", "--battles", str(source), "--skip-bad", "--json")
    assert code == 0 and json.loads(out)["battles"] == 2
    assert err.splitlines()[:2] == [
        "skipped item 1: model_a and model_b are both 'm2': a battle needs two different variants",
        "skipped item 2: unknown winner 'left' (expected one of model_a, model_b, tie, tie (bothbad))",
    ]


def test_leaderboard_names_bad_json_lines_in_another_key_order_by_line_number(
    capsys: pytest.CaptureFixture[str], settings: Settings, tmp_path: Path
) -> None:
    def line(model_a: str, model_b: str, winner: str, anony: object = True) -> str:
        return json.dumps(
            {"model_a": model_a, "model_b": model_b, "winner": winner, "anony": anony, "judge": "u", "tstamp": 1.0}
        )

    source = write_jsonl(
        tmp_path / "battles.jsonl",
        [line("m1", "m2", "model_a"), line("m1", "m2", "tie", anony="yes"), "{", line("m2", "m1", "model_a", False)],
    )
    code, _, err = run_cli(capsys, settings, "leaderboard", "--battles", str(source))
    assert code == 2 and "line 2: anony must be true or false, not 'yes'" in err and "line 3: not valid JSON" in err
    code, out, err = run_cli(capsys, settings, "leaderboard", "--battles", str(source), "--skip-bad", "--json")
    assert code == 0 and "skipped line 2: anony" in err and "skipped line 3: not valid JSON" in err
    assert (json.loads(out)["battles"], json.loads(out)["named_left_out"]) == (1, 1)


def test_import_of_a_fastchat_array_names_bad_items_and_skip_bad_skips_them(
    capsys: pytest.CaptureFixture[str], settings: Settings, tmp_path: Path
) -> None:
    source = clean_battle_array(
        tmp_path / "clean_battle.json",
        [("m1", "m2", "model_a", True), ("m1", "", "tie", True), ("m2", "m1", "model_b", False)],
    )
    code, _, err = run_cli(capsys, settings, "import", str(source))
    assert code == 2 and "item 1: model_b must be a variant name" in err and "nothing was taken from it" in err
    assert not settings.db_path.exists()
    code, out, _ = run_cli(capsys, settings, "import", "--skip-bad", str(source))
    assert code == 0 and "imported 1 battles" in out and "left out 1 named battle" in out
    assert "skipped 1 bad records: item 1: model_b must be a variant name" in out
    assert vote_count(settings.db_path) == 1


def test_leaderboard_on_a_battles_file_loads_no_model_or_ui_libraries(tmp_path: Path) -> None:
    source = clean_battle_array(tmp_path / "clean_battle.json", [("m1", "m2", "model_a", True)])
    script = (
        "import json, sys\n"
        "from cli import main\n"
        f"code = main(['leaderboard', '--battles', {str(source)!r}, '--json', '--rounds', '5'])\n"
        "heavy = {'torch', 'transformers', 'gradio', 'matplotlib', 'pandas'} & set(sys.modules)\n"
        "print(json.dumps({'code': code, 'heavy': sorted(heavy)}), file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert json.loads(result.stderr.splitlines()[-1]) == {"code": 0, "heavy": []}
    assert json.loads(result.stdout)["battles"] == 1


def _battle_ids(path: Path) -> list[str]:
    with closing(sqlite3.connect(path)) as conn:
        return [row[0] for row in conn.execute("SELECT id FROM battles")]


def test_import_refuses_a_file_with_bad_lines_naming_them_and_writes_nothing(
    capsys: pytest.CaptureFixture[str], voted: Settings, tmp_path: Path
) -> None:
    source = write_jsonl(
        tmp_path / "bad.jsonl",
        [
            fastchat("m1", "m2", "model_a", 1.0),
            '{"model_a": "m1", "model_b"',
            fastchat("m1", "m2", "model_a", 2.0),
            fastchat("m1", "m2", "left", 3.0),
        ],
    )
    before = vote_count(voted.db_path)
    code, _, err = run_cli(capsys, voted, "import", str(source))
    assert code == 2
    assert "line 2: not valid JSON" in err and "line 4: unknown winner 'left'" in err
    assert "nothing was taken from it" in err and "--skip-bad" in err and len(err.strip().splitlines()) == 1
    assert vote_count(voted.db_path) == before
    fresh = replace(voted, db_path=tmp_path / "never.db")
    assert run_cli(capsys, fresh, "import", str(source))[0] == 2
    assert not fresh.db_path.exists()


def test_import_skip_bad_stores_the_good_lines_and_lists_the_skipped(
    capsys: pytest.CaptureFixture[str], settings: Settings, tmp_path: Path
) -> None:
    source = write_jsonl(
        tmp_path / "bad.jsonl",
        [
            fastchat("m1", "m2", "model_a", 1.0),
            "not json",
            fastchat("m1", "m1", "tie", 2.0),
            fastchat("m2", "m1", "tie", 3.0),
        ],
    )
    code, out, _ = run_cli(capsys, settings, "import", "--skip-bad", str(source))
    assert code == 0
    assert "imported 2 battles" in out and "skipped 2 bad records: line 2:" in out and "line 3:" in out
    assert vote_count(settings.db_path) == 2


def test_importing_the_same_battles_again_stores_them_once(
    capsys: pytest.CaptureFixture[str], voted: Settings, tmp_path: Path
) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [fastchat("m1", "m2", "model_a", 1.0)])
    assert run_cli(capsys, voted, "import", str(source))[0] == 0
    code, out, _ = run_cli(capsys, voted, "import", str(source))
    assert code == 0 and "imported 0 battles" in out and "1 were already stored" in out
    exported = tmp_path / "ours.jsonl"  # our own export, brought back, is already stored too
    assert run_cli(capsys, voted, "export", "--format", "fastchat", "--out", str(exported))[0] == 0
    before = vote_count(voted.db_path)
    assert run_cli(capsys, voted, "import", str(exported))[0] == 0
    assert vote_count(voted.db_path) == before


def test_a_large_import_reports_its_progress(
    capsys: pytest.CaptureFixture[str], settings: Settings, tmp_path: Path
) -> None:
    lines = [fastchat("m1", "m2", "model_a" if i % 2 else "tie", float(i)) for i in range(25_000)]
    source = write_jsonl(tmp_path / "many.jsonl", lines)
    code, out, err = run_cli(capsys, settings, "import", str(source))
    assert code == 0 and "imported 25000 battles" in out
    assert "storing battles: 20000/25000 (80%)" in err and "25000/25000 (100%)" in err
    assert vote_count(settings.db_path) == 25_000


def test_export_csv_has_one_row_per_vote_with_every_side(
    capsys: pytest.CaptureFixture[str], voted: Settings, tmp_path: Path
) -> None:
    out = tmp_path / "votes.csv"
    assert run_cli(capsys, voted, "export", "--format", "csv", "--out", str(out))[0] == 0
    with out.open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 26
    first = rows[0]
    assert (first["a_variant"], first["b_variant"], first["outcome"]) == (E2B, E4B, "a")
    assert (first["a_text"], first["a_tokens_per_s"], first["has_image"]) == (f"{E2B} says 0", "10.0", "1")
    assert json.loads(first["request"])["images"][0]["sha256"] == PNG.sha256
    assert json.loads(rows[-1]["ranking"]) == [[B31], [E2B, B26], [E4B]] and rows[-1]["d_variant"] == B31


def test_export_jsonl_has_the_vote_and_each_side_with_stats(
    capsys: pytest.CaptureFixture[str], voted: Settings, tmp_path: Path
) -> None:
    out = tmp_path / "votes.jsonl"
    assert run_cli(capsys, voted, "export", "--format", "jsonl", "--out", str(out), "--voter", "ann")[0] == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 13 and {record["voter"] for record in records} == {"ann"}
    best = records[-1]
    assert best["vote"] == {"outcome": None, "best": B26, "ranking": None}
    assert [side["variant"] for side in best["sides"]] == [E2B, E4B, B26]
    assert records[0]["sides"][0]["stats"]["tokens_per_s"] == 11.0


def test_export_to_dash_writes_standard_output(capsys: pytest.CaptureFixture[str], voted: Settings) -> None:
    code, out, _ = run_cli(capsys, voted, "export", "--format", "jsonl", "--out", "-", "--category", "image")
    assert code == 0
    assert [json.loads(line)["has_image"] for line in out.splitlines()] == [True] * 6


def test_export_leaderboard_csv_has_the_documented_columns(
    capsys: pytest.CaptureFixture[str], voted: Settings, tmp_path: Path
) -> None:
    out = tmp_path / "board.csv"
    assert run_cli(capsys, voted, "export", "--format", "leaderboard-csv", "--out", str(out), "--rounds", "40")[0] == 0
    with out.open(newline="") as stream:
        rows = list(csv.reader(stream))
    assert rows[0] == [
        "rank", "variant", "preliminary", "rating", "ci_low", "ci_high", "votes", "wins", "losses", "ties",
        "both_bad", "elo",
    ]  # fmt: skip
    board = leaderboard_json(capsys, voted)
    assert [row[1] for row in rows[1:]] == [row["variant"] for row in board["rows"]]
    assert [float(row[3]) for row in rows[1:]] == [row["rating"] for row in board["rows"]]


def test_the_leaderboard_csv_carries_every_column_of_the_leaderboard_table(
    capsys: pytest.CaptureFixture[str], voted: Settings, tmp_path: Path
) -> None:
    from ui.leaderboard import COLUMNS, table_rows

    # one list of columns: the tab's headers, each with the fields the CSV writes for it
    assert [column.header for column in BOARD_COLUMNS] == COLUMNS
    out = tmp_path / "board.csv"
    args = ("export", "--format", "leaderboard-csv", "--out", str(out), "--rounds", "40", "--mode", "all")
    assert run_cli(capsys, voted, *args)[0] == 0
    with out.open(newline="") as stream:
        exported = list(csv.DictReader(stream))
    board = compute_leaderboard(
        Battles.from_pairs(PairOutcome(p.model_a, p.model_b, p.outcome, p.tstamp, p.vote) for p in _pairs(voted)),
        rounds=40,
    )
    table = [dict(zip(COLUMNS, row, strict=True)) for row in table_rows(board)]
    assert len(exported) == len(table) == 4
    for csv_row, shown in zip(exported, table, strict=True):
        marked = " (preliminary)" if csv_row["preliminary"] == "True" else ""
        assert csv_row["variant"] + marked == shown["variant"]
        assert int(csv_row["rank"]) == shown["rank"]
        assert round(float(csv_row["rating"]), 1) == shown["rating"]
        assert f"{float(csv_row['ci_low']):.0f} to {float(csv_row['ci_high']):.0f}" == shown["95% CI"]
        counts = ("votes", "wins", "losses", "ties", "both_bad")
        assert [int(csv_row[name]) for name in counts] == [shown[name.replace("_", " ")] for name in counts]
        assert round(float(csv_row["elo"]), 1) == shown["online Elo"]
    assert {row["preliminary"] for row in exported} == {"True"}  # 26 votes: every variant has fewer than 30


def _pairs(settings: Settings) -> list[PairOutcome]:
    with open_store(settings.db_path) as store:
        return store.pair_outcomes(mode="all")


# --- conversations of several turns, and times ------------------------------------------------------

ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def converse(path: Path) -> tuple[list[str], list[str]]:
    """A blind conversation of three turns with a system prompt, voted on its last turn, and a
    named one of two turns whose first turn was regenerated; the battle ids of each, oldest first
    (the named one: the turns the vote covers)."""
    with open_store(path) as store:
        blind: list[str] = []
        for turn in range(1, 4):
            request = Request(f"blind turn {turn}", system="answer in one line" if turn == 1 else None)
            blind.append(store.record_comparison(
                request, [(E2B, E2B), (B31, B31)], [answer(E2B, f"e2b says {turn}"), answer(B31, f"31b says {turn}")],
                mode="blind", voter="ann", parent_id=blind[-1] if blind else None,
            ))  # fmt: skip
        store.record_vote(blind[-1], "b")
        first = store.record_comparison(
            Request("named turn 1"), [(E4B, E4B), (B26, B26)], [answer(E4B, "e4b first"), answer(B26, "26b first")]
        )
        second = store.record_comparison(
            Request("named turn 2"), [(B26, B26), (E4B, E4B)], [answer(B26, "26b again"), answer(E4B, "e4b again")],
            parent_id=first,
        )  # fmt: skip
        store.record_vote(second, best=B26)
    return blind, [first, second]


def test_votes_exports_carry_iso_times_turns_and_conversations(
    capsys: pytest.CaptureFixture[str], voted: Settings, tmp_path: Path
) -> None:
    blind, named = converse(voted.db_path)
    with closing(sqlite3.connect(voted.db_path)) as conn:
        voted_at = dict(conn.execute("SELECT battle_id, created_at FROM votes").fetchall())
        served_at = dict(conn.execute("SELECT id, created_at FROM battles").fetchall())
    as_iso = {battle: datetime.fromtimestamp(when, UTC) for battle, when in voted_at.items()}
    for fmt in ("csv", "jsonl"):
        out = tmp_path / f"votes.{fmt}"
        assert run_cli(capsys, voted, "export", "--format", fmt, "--out", str(out))[0] == 0
    with (tmp_path / "votes.csv").open(newline="") as stream:
        rows = {row["battle_id"]: row for row in csv.DictReader(stream)}
    records = {record["battle_id"]: record for record in map(json.loads, (tmp_path / "votes.jsonl").open())}
    assert rows.keys() == records.keys() == voted_at.keys()
    for battle_id, record in records.items():
        for exported in (rows[battle_id], record):
            assert ISO_UTC.fullmatch(exported["voted_at"]) and ISO_UTC.fullmatch(exported["served_at"])
            when = datetime.fromisoformat(exported["voted_at"])
            assert abs((when - as_iso[battle_id]).total_seconds()) < 0.001
            served = datetime.fromisoformat(exported["served_at"]).timestamp()
            assert served == pytest.approx(served_at[battle_id], abs=0.001)
        assert all(ISO_UTC.fullmatch(side["recorded_at"]) for side in record["sides"])
    assert (rows[blind[2]]["turn"], rows[blind[2]]["conversation"]) == ("3", blind[0])
    assert (records[named[1]]["turn"], records[named[1]]["conversation"]) == (2, named[0])
    single = next(battle for battle in records if battle not in (blind[2], named[1]))
    assert (records[single]["turn"], records[single]["conversation"], records[single]["earlier_turns"]) == (
        1, single, []
    )  # fmt: skip
    earlier = records[blind[2]]["earlier_turns"]
    assert [(turn["battle_id"], turn["turn"], turn["request"]["prompt"]) for turn in earlier] == [
        (blind[0], 1, "blind turn 1"), (blind[1], 2, "blind turn 2")
    ]  # fmt: skip
    assert earlier[1]["answers"] == {E2B: "e2b says 2", B31: "31b says 2"}


def test_fastchat_export_writes_the_whole_conversation_up_to_the_vote(
    capsys: pytest.CaptureFixture[str], settings: Settings, tmp_path: Path
) -> None:
    blind, named = converse(settings.db_path)
    out = tmp_path / "battles.jsonl"
    assert run_cli(capsys, settings, "export", "--format", "fastchat", "--out", str(out))[0] == 0
    battles = {battle["question_id"]: battle for battle in map(json.loads, out.open())}
    three = battles[blind[2]]
    assert (three["turn"], three["winner"], three["anony"], three["judge"]) == (3, "model_b", True, "ann")
    assert three["conversation_a"] == [
        {"role": "system", "content": "answer in one line"},
        *(
            message
            for turn in (1, 2, 3)
            for message in (
                {"role": "user", "content": f"blind turn {turn}"},
                {"role": "assistant", "content": f"e2b says {turn}"},
            )
        ),
    ]
    assert [m["content"] for m in three["conversation_b"] if m["role"] == "assistant"] == [
        "31b says 1", "31b says 2", "31b says 3"
    ]  # fmt: skip
    assert isinstance(three["tstamp"], float)  # FastChat's own format: epoch seconds
    # a best pick of two is one pair; each side keeps its own answers, matched by name across turns
    two = battles[named[1]]
    assert (two["turn"], two["anony"], two["winner"]) == (2, False, "model_a" if two["model_a"] == B26 else "model_b")
    sides = {two["model_a"]: two["conversation_a"], two["model_b"]: two["conversation_b"]}
    assert [m["content"] for m in sides[E4B]] == ["named turn 1", "e4b first", "named turn 2", "e4b again"]
    assert [m["content"] for m in sides[B26]] == ["named turn 1", "26b first", "named turn 2", "26b again"]


def test_a_multi_turn_fastchat_file_round_trips_through_import_and_export(
    capsys: pytest.CaptureFixture[str], voted: Settings, tmp_path: Path
) -> None:
    converse(voted.db_path)
    first, again = tmp_path / "first.jsonl", tmp_path / "again.jsonl"
    assert run_cli(capsys, voted, "export", "--format", "fastchat", "--out", str(first))[0] == 0
    elsewhere = replace(voted, db_path=tmp_path / "elsewhere.db")
    code, out, _ = run_cli(capsys, elsewhere, "import", "--include-named", str(first))
    assert code == 0 and "imported 34 battles" in out  # 28 votes: 24 + 2 + 6 + 1 + 1 pairs
    assert run_cli(capsys, elsewhere, "export", "--format", "fastchat", "--out", str(again))[0] == 0
    assert [json.loads(line) for line in again.open()] == [json.loads(line) for line in first.open()]
    with open_store(elsewhere.db_path) as store:
        battle_id = next(entry.battle_id for entry in store.history("ann", limit=100) if entry.prompt == "blind turn 1")
        conversation = store.conversation(battle_id)
        assert conversation is not None
        assert [(turn.turn, turn.prompt) for turn in conversation.turns] == [
            (1, "blind turn 1"), (2, "blind turn 2"), (3, "blind turn 3")
        ]  # fmt: skip
        assert [turn.vote is not None for turn in conversation.turns] == [False, False, True]
        assert [turn.mode for turn in conversation.turns] == ["blind"] * 3
        stored = [store.battle(turn.battle_id) for turn in conversation.turns]
        assert [b.parent_id for b in stored if b] == [
            None,
            conversation.turns[0].battle_id,
            conversation.turns[1].battle_id,
        ]
        assert conversation.turns[2].answers[B31].text == "31b says 3"
        assert conversation.turns[0].request["system"] == "answer in one line"
    # imported again, nothing is repeated
    code, out, _ = run_cli(capsys, elsewhere, "import", "--include-named", str(first))
    assert code == 0 and "imported 0 battles" in out and "34 were already stored" in out


def test_leaderboard_without_a_database_says_how_to_get_one_and_creates_nothing(
    capsys: pytest.CaptureFixture[str], settings: Settings
) -> None:
    code, _, err = run_cli(capsys, settings, "leaderboard")
    assert code == 1 and "no votes database" in err and "import" in err
    assert not settings.db_path.exists()


def test_newer_database_is_refused_in_one_line(capsys: pytest.CaptureFixture[str], voted: Settings) -> None:
    with closing(sqlite3.connect(voted.db_path)) as conn, conn:
        conn.execute(
            "INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
            "VALUES ('gemma_arena', 'm002_from_the_future', 'later')"
        )
    code, out, err = run_cli(capsys, voted, "leaderboard")
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "newer Gemma Arena" in err and "m002_from_the_future" in err


def test_locked_database_is_a_one_line_error_and_loses_nothing(
    capsys: pytest.CaptureFixture[str], voted: Settings, tmp_path: Path
) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [fastchat("m1", "m2", "model_a", 1.0)])
    before = vote_count(voted.db_path)
    with closing(sqlite3.connect(voted.db_path, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")  # another program writing, for longer than the busy timeout
        code, _, err = run_cli(capsys, voted, "import", str(source))
        other.execute("ROLLBACK")
    assert code == 1 and err.count("\n") == 1 and "locked by another program" in err
    assert vote_count(voted.db_path) == before


def make_read_only(*paths: Path) -> Callable[[], None]:
    """Make files and folders read-only for this user; return how to undo it. Root ignores file
    modes, so as root the immutable attribute is used (where the file system has one)."""
    if os.geteuid() != 0:
        for path in paths:
            path.chmod(0o555 if path.is_dir() else 0o444)

        def writable_again() -> None:
            for path in paths:
                path.chmod(0o755 if path.is_dir() else 0o644)

        return writable_again
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", *map(str, paths)]).returncode:
        pytest.skip("running as root on a file system without chattr +i: nothing is read-only to root here")

    def mutable_again() -> None:
        subprocess.run(["chattr", "-i", *map(str, paths)], check=True)

    return mutable_again


def test_read_only_database_is_a_one_line_error_and_keeps_its_votes(tmp_path: Path) -> None:
    folder = tmp_path / "read-only"
    folder.mkdir()
    db = folder / "arena.db"
    fill(db)
    source = write_jsonl(tmp_path / "in.jsonl", [fastchat("m1", "m2", "model_a", 1.0)])
    undo = make_read_only(db, folder)
    try:
        result = subprocess.run(
            [sys.executable, "app.py", "import", "--db", str(db), str(source)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        undo()
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "read-only" in result.stderr and str(db) in result.stderr
    assert vote_count(db) == 26


def test_leaderboard_json_in_a_real_process(voted: Settings) -> None:
    result = subprocess.run(
        [sys.executable, "app.py", "leaderboard", "--json", "--rounds", "20", "--db", str(voted.db_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    board = json.loads(result.stdout)
    assert len(board["rows"]) == 4 and board["battles"] == 24


def test_every_new_subcommand_and_option_is_documented() -> None:
    parser = build_parser()
    commands: dict[str, Any] = next(a for a in parser._actions if a.dest == "command").choices  # type: ignore[assignment]
    for name in ("leaderboard", "export", "import"):
        command = commands[name]
        assert command.description, name
        for action in command._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"


def test_flagged_battles_are_left_out_and_counted_unless_included(
    capsys: pytest.CaptureFixture[str], voted: Settings, tmp_path: Path
) -> None:
    with open_store(voted.db_path) as store:
        battle_id = store.record_comparison(
            Request("who are you?"),
            [(E2B, E2B), (B31, B31)],
            [answer(E2B, "I am Gemma, made by Google."), answer(B31)],
            mode="blind",
            voter="ann",
        )
        store.record_vote(battle_id, "a")
    board = leaderboard_json(capsys, voted)
    assert (board["battles"], board["flagged_left_out"], board["include_flagged"]) == (24, 1, False)
    included = leaderboard_json(capsys, voted, "--include-flagged")
    assert (included["battles"], included["flagged_left_out"]) == (25, 0)
    code, out, _ = run_cli(capsys, voted, "leaderboard", "--rounds", "5")
    assert code == 0 and "left out 1 flagged battle(s)" in out and "--include-flagged rates them too" in out
    source = write_jsonl(tmp_path / "in.jsonl", BATTLE_LINES)
    code, _, err = run_cli(capsys, voted, "leaderboard", "--battles", str(source), "--include-flagged")
    assert code == 2 and "--include-flagged applies to the database" in err


def test_import_flags_answers_that_name_a_model(
    capsys: pytest.CaptureFixture[str], settings: Settings, tmp_path: Path
) -> None:
    leaky = fastchat("m1", "m2", "model_b", 9.0)
    leaky["conversation_b"] = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ChatGPT here"}]
    source = write_jsonl(tmp_path / "in.jsonl", [*BATTLE_LINES, leaky, leaky])  # the same battle twice
    code, out, _ = run_cli(capsys, settings, "import", str(source))
    assert code == 0 and "imported 4 battles" in out and "flagged 1 whose answers name a model" in out
    board = leaderboard_json(capsys, settings)
    assert (board["battles"], board["flagged_left_out"]) == (3, 1)


def test_export_takes_mode_only_for_the_leaderboard_csv(
    capsys: pytest.CaptureFixture[str], voted: Settings, tmp_path: Path
) -> None:
    votes_csv = str(tmp_path / "v.csv")
    code, _, err = run_cli(capsys, voted, "export", "--format", "csv", "--out", votes_csv, "--mode", "named")
    assert code == 2 and "--mode and --include-flagged choose what --format leaderboard-csv rates" in err
    out = tmp_path / "named.csv"
    args = ("export", "--format", "leaderboard-csv", "--out", str(out), "--rounds", "5", "--mode", "named")
    assert run_cli(capsys, voted, *args)[0] == 0
    with out.open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert {row["variant"]: int(row["votes"]) for row in rows} == {E2B: 2, E4B: 2, B26: 2, B31: 1}

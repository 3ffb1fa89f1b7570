"""Per-voter views on a real SQLite file: who voted, how, and how often they agree with everyone;
through the store, the CLI (`leaderboard --voters`, `--voter`) and the Leaderboard tab's logic."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from arena.settings import Settings
from arena.voters import VoterStats, voter_stats
from arena.votes import CastVote, Vote
from backends.base import Request
from cli import main
from storage import Store, open_store
from tests.test_store import answer
from ui.leaderboard import VOTER_COLUMNS, build_view, compute_board
from ui.services import ArenaServices

X, Y, Z = "demo:x", "demo:y", "demo:z"


def vote_on(
    store: Store,
    variants: Sequence[str],
    voter: str,
    *,
    mode: str = "blind",
    texts: Sequence[str] = (),
    **vote: Any,
) -> str:
    """A finished battle of `variants` served to `voter`, and the voter's vote on it."""
    answers = [answer(v, texts[n] if n < len(texts) else f"{v} answers") for n, v in enumerate(variants)]
    battle_id = store.record_comparison(Request("hi"), [(v, v) for v in variants], answers, mode=mode, voter=voter)
    store.record_vote(battle_id, **vote)
    return battle_id


@pytest.fixture
def crowd(settings: Settings) -> Iterator[Store]:
    """X beats Y by a wide margin: ann and bob side with the crowd, cy against it, dee only ties;
    eve ranked and picked in named comparisons."""
    with open_store(settings.db_path) as store:
        for n in range(6):
            vote_on(store, (X, Y) if n % 2 else (Y, X), "ann", outcome="b" if n % 2 == 0 else "a")  # X each time
            vote_on(store, (X, Y), "bob", outcome="a")
        for _ in range(2):
            vote_on(store, (X, Y), "cy", outcome="b")
        vote_on(store, (X, Y), "cy", outcome="both_bad")
        vote_on(store, (Y, X), "dee", outcome="tie")
        vote_on(store, (X, Y, Z), "eve", mode="named", best=X)
        vote_on(store, (X, Y, Z), "eve", mode="named", ranking=[[Y, Z], [X]])  # no single winner
        yield store


def by_voter(rows: Sequence[VoterStats]) -> dict[str, VoterStats]:
    return {row.voter: row for row in rows}


def test_voters_are_listed_per_mode(crowd: Store) -> None:
    assert crowd.voters() == crowd.voters("blind") == ["ann", "bob", "cy", "dee"]
    assert crowd.voters("named") == ["eve"]
    assert crowd.voters("all") == ["ann", "bob", "cy", "dee", "eve"]


def test_voter_stats_count_each_kind_of_vote_most_votes_first(crowd: Store) -> None:
    rows = crowd.voter_stats(mode="all")
    assert [row.voter for row in rows] == ["ann", "bob", "cy", "eve", "dee"]
    stats = by_voter(rows)
    assert (stats["ann"].votes, stats["ann"].a, stats["ann"].b) == (6, 3, 3)
    assert (stats["cy"].votes, stats["cy"].b, stats["cy"].both_bad, stats["cy"].decisive) == (3, 2, 1, 2)
    assert (stats["dee"].tie, stats["dee"].decisive) == (1, 0)
    assert (stats["eve"].votes, stats["eve"].other, stats["eve"].decisive) == (2, 2, 1)


def test_agreement_is_the_share_of_decisive_votes_won_by_the_leaderboards_favourite(crowd: Store) -> None:
    stats = by_voter(crowd.voter_stats(mode="all"))
    assert stats["ann"].agreement == stats["bob"].agreement == 1.0
    assert stats["cy"].agreement == 0.0  # both of cy's decisive votes went against the crowd
    assert stats["dee"].agreement is None  # ties only: nothing to agree on
    assert stats["eve"].agreement == 1.0  # best pick X, the favourite; the tied-top ranking does not count
    blind = by_voter(crowd.voter_stats())
    assert "eve" not in blind and blind["cy"].agreement == 0.0


def test_voter_stats_leave_flagged_battles_out_unless_asked(crowd: Store) -> None:
    vote_on(crowd, (X, Y), "fay", texts=("As Gemma, I say hi.",), outcome="a")
    assert "fay" not in by_voter(crowd.voter_stats())
    assert by_voter(crowd.voter_stats(include_flagged=True))["fay"].votes == 1
    assert crowd.voters() == ["ann", "bob", "cy", "dee", "fay"]  # a voter is a voter, flagged or not


def test_agreement_of_a_pure_computation_uses_the_ratings_given() -> None:
    votes = [CastVote("1", "ann", (X, Y), Vote(outcome="a")), CastVote("2", "ann", (X, Y), Vote(outcome="b"))]
    [row] = voter_stats(votes, ratings={X: 1100.0, Y: 900.0})
    assert (row.votes, row.decisive, row.agreement) == (2, 2, 0.5)
    assert voter_stats([CastVote("3", None, (X, Y), Vote(outcome="a"))]) == []  # no voter, no row


def leaderboard(capsys: pytest.CaptureFixture[str], settings: Settings, *argv: str) -> tuple[int, str, str]:
    code = main(["leaderboard", "--rounds", "20", *argv], settings=settings)
    out, err = capsys.readouterr()
    return code, out, err


def test_leaderboard_voters_prints_the_per_voter_table(
    crowd: Store, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = leaderboard(capsys, settings, "--voters")
    assert code == 0
    table = out.split("\nvoter ", 1)[1]
    assert "agreement" in table and "100% of 6" in table and "0% of 2" in table
    assert "eve" not in table  # named comparisons are not in the blind slice
    code, out, _ = leaderboard(capsys, settings, "--voters", "--json", "--mode", "all")
    voters = {row["voter"]: row for row in json.loads(out)["voters"]}
    assert voters["eve"] == {
        "voter": "eve",
        "votes": 2,
        "a": 0,
        "b": 0,
        "tie": 0,
        "both_bad": 0,
        "other": 2,
        "agreement": 1.0,
        "decisive": 1,
    }
    assert "voters" not in json.loads(leaderboard(capsys, settings, "--json")[1])


def test_leaderboard_voter_is_one_voters_leaderboard_and_their_row(
    crowd: Store, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = leaderboard(capsys, settings, "--voter", "cy", "--voters", "--json")
    board = json.loads(out)
    assert code == 0 and board["votes"] == 3 and board["voter"] == "cy"
    assert [row["voter"] for row in board["voters"]] == ["cy"]
    assert {row["variant"]: row["wins"] for row in board["rows"]} == {X: 0, Y: 2}


def test_leaderboard_voters_of_a_battles_file_are_its_judges(
    settings: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    lines = [
        {"model_a": "m1", "model_b": "m2", "winner": "model_a", "judge": "j1"},
        {"model_a": "m1", "model_b": "m2", "winner": "model_a", "judge": "j1"},
        {"model_a": "m2", "model_b": "m1", "winner": "model_a", "judge": "j2"},
        {"model_a": "m2", "model_b": "m1", "winner": "tie", "judge": "j3", "anony": False},
    ]
    path = tmp_path / "battles.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    code, out, _ = leaderboard(capsys, settings, "--battles", str(path), "--voters", "--json")
    voters = {row["voter"]: row for row in json.loads(out)["voters"]}
    assert code == 0 and set(voters) == {"j1", "j2"}
    assert (voters["j1"]["agreement"], voters["j2"]["agreement"]) == (1.0, 0.0)


def services_of(store: Store) -> ArenaServices:
    return cast(ArenaServices, SimpleNamespace(store=store))  # the tab's logic reads the store only


def test_leaderboard_tab_shows_the_voters_and_says_what_it_rates(crowd: Store) -> None:
    vote_on(crowd, (X, Y), "fay", texts=("I am Claude.",), outcome="a")
    view = build_view(services_of(crowd), rounds=20)
    assert [row[0] for row in view.voters] == ["ann", "bob", "cy", "dee"]
    assert all(len(row) == len(VOTER_COLUMNS) for row in view.voters)
    assert view.voters[2][-1] == "0% of 2" and view.voters[3][-1] == "-"
    assert "blind battles" in view.summary and "1 flagged battle(s) left out" in view.summary
    assert "2 variant(s) with fewer than 30 votes are preliminary" in view.summary
    assert view.voter_chart is not None and view.flagged_left_out == 1
    named = build_view(services_of(crowd), "all", mode="named", rounds=20)
    assert [row[0] for row in named.voters] == ["eve"] and "named comparisons" in named.summary
    mine = compute_board(services_of(crowd), mode="all", voter="eve", rounds=0)
    assert mine.votes == 2 and {row.variant: row.votes for row in mine.rows} == {X: 2, Y: 2, Z: 2}

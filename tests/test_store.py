"""The vote store on a real SQLite file: recording battles, runs and votes, and reading them back."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator, Sequence

import pytest

from arena.errors import StorageError
from arena.measure import Result, Stats
from arena.ratings import PairOutcome
from arena.settings import Settings
from backends.base import Media, Request, ToolCall
from storage import BattleRejected, Store, VoteRejected, open_store

PAIR = [("demo:e2b", "demo:e2b"), ("demo:e4b", "demo:e4b")]
PNG = Media(kind="image", data=b"\x89PNG fake image bytes", mime="image/png", name="cat.png")
WAV = Media(kind="audio", data=b"RIFF fake audio bytes", mime="audio/wav", name="hello.wav")


def answer(variant: str, text: str = "an answer", **stats: float) -> Result:
    return Result(variant=variant, text=text, stats=Stats(**stats))  # type: ignore[arg-type]


def failure(variant: str) -> Result:
    return Result(variant=variant, error=f"{variant} ran out of memory", error_kind="LoadError")


def finished_battle(
    store: Store,
    variants: Sequence[tuple[str, str]] = PAIR,
    request: Request | None = None,
    *,
    mode: str = "blind",
    voter: str | None = None,
) -> str:
    """A battle whose every answer came back without error."""
    battle_id = store.open_battle(request or Request("Say hi"), variants, mode=mode, voter=voter)
    store.finish_battle(battle_id, [answer(label) for label, _ in variants])
    return battle_id


@pytest.fixture(params=[True, False], ids=["group-commit", "commit-per-write"])
def fresh_store(request: pytest.FixtureRequest, settings: Settings) -> Iterator[Store]:
    """An empty store in the test's data folder, with each way of committing."""
    with open_store(settings.db_path, group_commit=request.param) as store:
        yield store


def test_open_store_creates_its_folder_and_uses_wal_with_full_sync(settings: Settings) -> None:
    assert not settings.db_path.parent.exists()
    with open_store(settings.db_path) as store, store._read() as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert settings.db_path.is_file()


def test_a_battle_is_served_then_finished_then_voted(fresh_store: Store) -> None:
    battle_id = fresh_store.open_battle(Request("Say hi"), PAIR, mode="blind", voter="ann")
    assert fresh_store.battle(battle_id).phase == "served"  # type: ignore[union-attr]
    assert fresh_store.finish_battle(battle_id, [answer("demo:e2b"), answer("demo:e4b")]) == "finished"
    vote_id = fresh_store.record_vote(battle_id, "tie")
    battle = fresh_store.battle(battle_id)
    assert battle is not None and vote_id > 0
    assert (battle.phase, battle.mode, battle.voter, battle.variants) == (
        "finished",
        "blind",
        "ann",
        ("demo:e2b", "demo:e4b"),
    )
    assert battle.vote is not None and battle.vote.outcome == "tie"


def test_vote_on_unknown_battle_is_rejected(fresh_store: Store) -> None:
    with pytest.raises(VoteRejected, match="no battle 'nope'"):
        fresh_store.record_vote("nope", "a")


def test_vote_before_every_answer_finished_is_rejected(fresh_store: Store) -> None:
    battle_id = fresh_store.open_battle(Request("Say hi"), PAIR)
    with pytest.raises(VoteRejected, match="not finished"):
        fresh_store.record_vote(battle_id, "a")


def test_vote_on_battle_with_a_failed_answer_is_rejected_without_naming_blind_variants(
    fresh_store: Store,
) -> None:
    battle_id = fresh_store.open_battle(Request("Say hi"), PAIR, mode="blind")
    assert fresh_store.finish_battle(battle_id, [answer("demo:e2b"), failure("demo:e4b")]) == "errored"
    with pytest.raises(VoteRejected, match="an answer failed") as caught:
        fresh_store.record_vote(battle_id, "a")
    assert "demo:e4b" not in str(caught.value)


def test_vote_on_named_battle_with_a_failed_answer_says_which_failed(fresh_store: Store) -> None:
    battle_id = fresh_store.record_comparison(Request("Say hi"), PAIR, [answer("demo:e2b"), failure("demo:e4b")])
    with pytest.raises(VoteRejected, match="demo:e4b: demo:e4b ran out of memory"):
        fresh_store.record_vote(battle_id, "a")


def test_named_comparison_with_a_failed_variant_takes_a_vote_among_those_that_answered(
    fresh_store: Store,
) -> None:
    variants = [("demo:e2b", "demo:e2b"), ("demo:31b", "demo:31b"), ("demo:e4b", "demo:e4b")]
    results = [answer("demo:e2b"), failure("demo:31b"), answer("demo:e4b")]
    battle_id = fresh_store.record_comparison(Request("Listen"), variants, results)
    with pytest.raises(VoteRejected, match="unknown variant 'demo:31b'"):
        fresh_store.record_vote(battle_id, best="demo:31b")  # it did not answer
    with pytest.raises(VoteRejected, match="leaves out demo:e4b"):
        fresh_store.record_vote(battle_id, ranking=[["demo:e2b"]])
    fresh_store.record_vote(battle_id, ranking=[["demo:e4b"], ["demo:e2b"]])
    assert [(p.model_a, p.model_b, p.outcome) for p in fresh_store.pair_outcomes(mode="named")] == [
        ("demo:e2b", "demo:e4b", "b")
    ]


def test_second_vote_on_a_battle_is_rejected_and_the_first_kept(fresh_store: Store) -> None:
    battle_id = finished_battle(fresh_store)
    fresh_store.record_vote(battle_id, "a")
    with pytest.raises(VoteRejected, match="already has its vote"):
        fresh_store.record_vote(battle_id, "b")
    assert [p.outcome for p in fresh_store.pair_outcomes()] == ["a"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"outcome": "left"}, "unknown outcome 'left'"),
        ({"best": "demo:e9b"}, "unknown variant 'demo:e9b'"),
        ({"ranking": [["demo:e2b"]]}, "leaves out 1 of the 2 variants"),
        ({}, "exactly one of"),
    ],
)
def test_bad_vote_is_rejected_and_the_battle_stays_votable(
    fresh_store: Store, kwargs: dict[str, object], message: str
) -> None:
    battle_id = finished_battle(fresh_store)
    with pytest.raises(VoteRejected, match=message):
        fresh_store.record_vote(battle_id, **kwargs)  # type: ignore[arg-type]
    assert fresh_store.pair_outcomes() == []
    fresh_store.record_vote(battle_id, "b")
    assert [p.outcome for p in fresh_store.pair_outcomes()] == ["b"]


def test_rejected_vote_on_a_blind_battle_names_no_variant_the_voter_did_not(fresh_store: Store) -> None:
    three = [("x", "demo:x"), ("y", "demo:y"), ("z", "demo:z")]
    battle_id = finished_battle(fresh_store, three, mode="blind")
    for kwargs in ({"best": "q"}, {"ranking": [["x"]]}):
        with pytest.raises(VoteRejected) as caught:
            fresh_store.record_vote(battle_id, **kwargs)  # type: ignore[arg-type]
        assert not re.search(r"\b[yz]\b|demo:", str(caught.value))
    named = finished_battle(fresh_store, three, mode="named")
    with pytest.raises(VoteRejected, match="leaves out y, z"):
        fresh_store.record_vote(named, ranking=[["x"]])


def test_finishing_a_battle_twice_or_with_the_wrong_number_of_results_is_refused(fresh_store: Store) -> None:
    battle_id = fresh_store.open_battle(Request("Say hi"), PAIR)
    with pytest.raises(BattleRejected, match="2 variants but 1 results"):
        fresh_store.finish_battle(battle_id, [answer("demo:e2b")])
    fresh_store.finish_battle(battle_id, [answer("demo:e2b"), answer("demo:e4b")])
    with pytest.raises(BattleRejected, match="already finished"):
        fresh_store.finish_battle(battle_id, [answer("demo:e2b"), answer("demo:e4b")])


@pytest.mark.parametrize(
    "variants", [[("x", "demo:x")], [("x", "demo:x"), ("x", "demo:y")], [(str(n), "s") for n in range(9)]]
)
def test_battle_needs_two_to_eight_distinct_variants(fresh_store: Store, variants: list[tuple[str, str]]) -> None:
    with pytest.raises(BattleRejected):
        fresh_store.open_battle(Request("Say hi"), variants)


def test_runs_keep_the_request_with_media_hashes_and_every_stat(fresh_store: Store, settings: Settings) -> None:
    request = Request("What is this?", system="Be brief", images=(PNG,), thinking=True)
    stats = Stats(
        ttft_s=0.25,
        tokens_per_s=31.5,
        total_s=2.0,
        input_tokens=300,
        output_tokens=60,
        peak_memory_bytes=5_000_000,
        load_s=4.5,
        weights_bytes=4_000_000,
        memory_kind="rss-peak",
        token_source="engine",
        server={"eval_duration": 1.5},
    )
    results = [
        Result("demo:e2b", text="A cat", thinking="hmm", tool_calls=(ToolCall("look", {"x": 1}),), stats=stats),
        failure("demo:e4b"),
    ]
    battle_id = fresh_store.record_comparison(request, PAIR, results, voter="ann")
    with sqlite3.connect(settings.db_path) as conn:
        stored = json.loads(conn.execute("SELECT request FROM battles WHERE id = ?", [battle_id]).fetchone()[0])
        runs = conn.execute(
            "SELECT text, thinking, tool_calls, error, error_kind, ttft_s, tokens_per_s, total_s, input_tokens, "
            "output_tokens, peak_memory_bytes, load_s, weights_bytes, memory_kind, token_source, server "
            "FROM runs WHERE battle_id = ? ORDER BY position",
            [battle_id],
        ).fetchall()
    assert stored == json.loads(json.dumps(request.describe()))
    assert stored["images"][0]["sha256"] == PNG.sha256
    assert runs[0] == (
        "A cat",
        "hmm",
        '[{"name": "look", "arguments": {"x": 1}}]',
        None,
        None,
        0.25,
        31.5,
        2.0,
        300,
        60,
        5_000_000,
        4.5,
        4_000_000,
        "rss-peak",
        "engine",
        '{"eval_duration": 1.5}',
    )
    assert runs[1][3:5] == ("demo:e4b ran out of memory", "LoadError")


def test_stored_records_cannot_be_updated_or_deleted(fresh_store: Store, settings: Settings) -> None:
    fresh_store.record_vote(finished_battle(fresh_store), "a")
    with sqlite3.connect(settings.db_path) as conn:
        for statement in ("UPDATE votes SET outcome = 'b'", "DELETE FROM votes", "DELETE FROM runs"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                conn.execute(statement)
    assert [p.outcome for p in fresh_store.pair_outcomes()] == ["a"]


def test_best_and_ranking_votes_become_pairwise_outcomes_in_voting_order(fresh_store: Store) -> None:
    three = [("x", "demo:x"), ("y", "demo:y"), ("z", "demo:z")]
    first = finished_battle(fresh_store, three)
    second = finished_battle(fresh_store, three)
    fresh_store.record_vote(first, best="z")
    fresh_store.record_vote(second, ranking=[["y", "z"], ["x"]])
    assert [(p.model_a, p.model_b, p.outcome) for p in fresh_store.pair_outcomes()] == [
        ("x", "z", "b"),
        ("y", "z", "b"),
        ("x", "y", "b"),
        ("x", "z", "b"),
        ("y", "z", "tie"),
    ]
    assert fresh_store.battle(second).vote.ranking == (("y", "z"), ("x",))  # type: ignore[union-attr]


def test_categories_split_votes_by_what_the_request_carried(fresh_store: Store) -> None:
    for request, outcome in [
        (Request("text"), "a"),
        (Request("pic", images=(PNG,)), "b"),
        (Request("clip", audio=(WAV,)), "tie"),
        (Request("both", images=(PNG,), audio=(WAV,)), "both_bad"),
    ]:
        fresh_store.record_vote(finished_battle(fresh_store, request=request), outcome)

    def outcomes(category: str) -> list[str]:
        return [p.outcome for p in fresh_store.pair_outcomes(category)]

    assert outcomes("all") == ["a", "b", "tie", "both_bad"]
    assert outcomes("text") == ["a"]
    assert outcomes("image") == ["b", "both_bad"]
    assert outcomes("audio") == ["tie", "both_bad"]


def test_votes_can_be_read_per_voter_defaulting_to_whom_the_battle_was_served(fresh_store: Store) -> None:
    fresh_store.record_vote(finished_battle(fresh_store, voter="ann"), "a")
    fresh_store.record_vote(finished_battle(fresh_store, voter="bob"), "b", voter="bob")
    fresh_store.record_vote(finished_battle(fresh_store), "tie", voter="cy")  # served to nobody in particular
    assert [p.outcome for p in fresh_store.pair_outcomes(voter="ann")] == ["a"]
    assert [p.outcome for p in fresh_store.pair_outcomes(voter="bob")] == ["b"]
    assert [p.outcome for p in fresh_store.pair_outcomes(voter="cy")] == ["tie"]
    assert fresh_store.voters() == ["ann", "bob", "cy"]


@pytest.mark.parametrize("mode", ["blind", "named"])
def test_only_the_voter_a_battle_was_served_to_can_vote_on_it(fresh_store: Store, mode: str) -> None:
    battle_id = finished_battle(fresh_store, mode=mode, voter="ann")
    with pytest.raises(VoteRejected, match=r"served to another voter.*start a round of your own") as caught:
        fresh_store.record_vote(battle_id, "a", voter="mallory")
    assert "ann" not in str(caught.value)
    assert fresh_store.battle(battle_id).vote is None  # type: ignore[union-attr]
    fresh_store.record_vote(battle_id, "b", voter="ann")
    assert [(p.outcome, p.vote is not None) for p in fresh_store.pair_outcomes(mode=mode)] == [("b", True)]


def test_ratings_read_blind_votes_by_default_and_named_or_all_on_request(fresh_store: Store) -> None:
    fresh_store.record_vote(finished_battle(fresh_store, mode="blind"), "a")
    fresh_store.record_vote(finished_battle(fresh_store, mode="named"), "b")
    three = [("x", "demo:x"), ("y", "demo:y"), ("z", "demo:z")]
    compared = fresh_store.record_comparison(Request("hi"), three, [answer(v) for v, _ in three])
    fresh_store.record_vote(compared, best="y")

    def outcomes(mode: str) -> list[str]:
        return [p.outcome for p in fresh_store.pair_outcomes(mode=mode)]

    assert outcomes("blind") == [p.outcome for p in fresh_store.pair_outcomes()] == ["a"]
    assert outcomes("named") == ["b", "b", "a"]
    assert outcomes("all") == ["a", "b", "b", "a"]
    with pytest.raises(StorageError, match=r"unknown mode 'anonymous'.*blind, named, all"):
        fresh_store.pair_outcomes(mode="anonymous")


def test_the_pairs_of_one_vote_name_that_vote_and_no_other(fresh_store: Store) -> None:
    four = [(v, f"demo:{v}") for v in "wxyz"]
    ranked = finished_battle(fresh_store, four)
    fresh_store.record_vote(ranked, ranking=[["z"], ["x", "y"], ["w"]])
    fresh_store.record_vote(finished_battle(fresh_store), "a")
    pairs = fresh_store.pair_outcomes()
    assert len(pairs) == 7 and len({p.vote for p in pairs[:6]}) == 1 and pairs[6].vote != pairs[0].vote
    [ranking, two_sided] = fresh_store.cast_votes()
    assert (ranking.variants, ranking.winner, two_sided.winner) == (("w", "x", "y", "z"), "z", "demo:e2b")


def test_an_answer_naming_a_model_flags_its_battle_and_keeps_it_out_of_ratings(fresh_store: Store) -> None:
    battle_id = fresh_store.open_battle(Request("Who are you?"), PAIR, voter="ann")
    fresh_store.finish_battle(
        battle_id, [Result("demo:e2b", "I am Gemma, an open model.", thinking="Google made me."), answer("demo:e4b")]
    )
    battle = fresh_store.battle(battle_id)
    assert battle is not None and battle.flagged and battle.identity_words == ("Gemma", "Google")
    fresh_store.record_vote(battle_id, "a")  # a flagged battle still takes its vote
    clean = finished_battle(fresh_store, voter="ann")
    fresh_store.record_vote(clean, "b")
    assert not fresh_store.battle(clean).flagged  # type: ignore[union-attr]
    assert [p.outcome for p in fresh_store.pair_outcomes()] == ["b"]
    assert [p.outcome for p in fresh_store.pair_outcomes(include_flagged=True)] == ["a", "b"]
    assert (fresh_store.flagged_votes(), fresh_store.flagged_votes(mode="named")) == (1, 0)
    named = fresh_store.record_comparison(Request("hi"), PAIR, [answer("demo:e2b", "Claude here"), answer("demo:e4b")])
    assert fresh_store.battle(named).identity_words == ("Claude",)  # type: ignore[union-attr]


def test_pair_outcomes_are_the_ratings_input(fresh_store: Store) -> None:
    battle_id = finished_battle(fresh_store)
    fresh_store.record_vote(battle_id, "a")
    [pair] = fresh_store.pair_outcomes()
    assert isinstance(pair, PairOutcome)
    assert (pair.model_a, pair.model_b, pair.outcome) == ("demo:e2b", "demo:e4b", "a")
    assert pair.tstamp is not None


def test_battle_counts_count_each_pair_shown_and_skip_errored_battles(fresh_store: Store) -> None:
    three = [("x", "demo:x"), ("y", "demo:y"), ("z", "demo:z")]
    fresh_store.record_vote(finished_battle(fresh_store, three), best="x")
    finished_battle(fresh_store, three[:2])
    fresh_store.record_comparison(Request("hi"), three[1:], [answer("y"), failure("z")])
    assert fresh_store.battle_counts() == {
        frozenset({"x", "y"}): 2,
        frozenset({"x", "z"}): 1,
        frozenset({"y", "z"}): 1,
    }
    assert fresh_store.battle_counts(voted_only=True) == {
        frozenset({"x", "y"}): 1,
        frozenset({"x", "z"}): 1,
        frozenset({"y", "z"}): 1,
    }


def test_speed_counts_named_and_voted_battles_but_not_an_unvoted_blind_one(fresh_store: Store) -> None:
    def battle(mode: str, rate: float) -> str:
        return finished_battle_with(fresh_store, mode, [answer(label, tokens_per_s=rate) for label, _ in PAIR])

    battle("blind", 1000.0)  # never voted on: its speed would say who "Model A" was
    fresh_store.record_vote(battle("blind", 10.0), "a")
    battle("named", 30.0)  # a comparison shows its names and stats at once
    speeds = {s.variant: (s.runs, s.median_tokens_per_s) for s in fresh_store.speed_by_variant()}
    assert speeds == {"demo:e2b": (2, 20.0), "demo:e4b": (2, 20.0)}


def finished_battle_with(store: Store, mode: str, results: Sequence[Result]) -> str:
    battle_id = store.open_battle(Request("Say hi"), PAIR, mode=mode)
    store.finish_battle(battle_id, results)
    return battle_id


def test_speed_by_variant_takes_medians_over_successful_runs(fresh_store: Store) -> None:
    for rate, ttft, peak in [(10.0, 0.1, 100), (30.0, 0.3, 300), (20.0, 0.2, 200)]:
        fresh_store.record_comparison(
            Request("hi"),
            PAIR,
            [
                answer("demo:e2b", tokens_per_s=rate, ttft_s=ttft, peak_memory_bytes=peak),
                failure("demo:e4b"),
            ],
        )
    [speed] = fresh_store.speed_by_variant()
    assert (
        speed.variant,
        speed.runs,
        speed.median_tokens_per_s,
        speed.median_ttft_s,
        speed.median_peak_memory_bytes,
    ) == ("demo:e2b", 3, 20.0, 0.2, 200)


def test_a_closed_store_refuses_to_read_or_record(settings: Settings) -> None:
    for group_commit in (True, False):
        store = open_store(settings.db_path, group_commit=group_commit)
        battle_id = finished_battle(store)
        store.close()
        with pytest.raises(StorageError, match="is closed"):
            store.record_vote(battle_id, "a")
        with pytest.raises(StorageError, match="is closed"):
            store.pair_outcomes()

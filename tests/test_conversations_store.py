"""Conversations of several turns in the vote store, on a real SQLite file: the rules of a
follow-up turn and of a vote on one, reading a conversation back, a person's history, and the
bytes of attachments."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence

import pytest

from arena.errors import StorageError
from arena.measure import Result, Stats
from arena.settings import Settings
from backends.base import Media, Request, ToolCall, Turn
from storage import BattleRejected, Store, VoteRejected, open_store
from storage.records import NewBattle, insert_battle

PAIR = [("demo:e2b", "demo:e2b"), ("demo:e4b", "demo:e4b")]
TRIO = [("demo:e2b", "demo:e2b"), ("demo:31b", "demo:31b"), ("demo:e4b", "demo:e4b")]
PNG = Media(kind="image", data=b"\x89PNG fake image bytes", mime="image/png", name="cat.png")
WAV = Media(kind="audio", data=b"RIFF fake audio bytes", mime="audio/wav", name="hello.wav")


def answer(variant: str, text: str | None = None) -> Result:
    return Result(
        variant=variant,
        text=text or f"{variant} says hello",
        thinking=f"{variant} thinks",
        tool_calls=(ToolCall("lookup", {"q": variant}),),
        stats=Stats(ttft_s=0.1, tokens_per_s=25.0, output_tokens=12, memory_kind="rss", token_source="engine"),
    )


def failure(variant: str) -> Result:
    return Result(variant=variant, error=f"{variant} ran out of memory", error_kind="LoadError")


def answers(variants: Sequence[tuple[str, str]], turn: int = 1) -> list[Result]:
    return [answer(label, f"{label} answers turn {turn}") for label, _ in variants]


@pytest.fixture(params=[True, False], ids=["group-commit", "commit-per-write"])
def fresh_store(request: pytest.FixtureRequest, settings: Settings) -> Iterator[Store]:
    """An empty store in the test's data folder, with each way of committing."""
    with open_store(settings.db_path, group_commit=request.param) as store:
        yield store


def turns(store: Store, count: int, *, mode: str = "named", voter: str | None = "ann") -> list[str]:
    """A conversation of `count` finished turns between PAIR; the battle ids, oldest first."""
    ids: list[str] = []
    for turn in range(1, count + 1):
        ids.append(
            store.record_comparison(
                Request(f"message {turn}"),
                PAIR,
                answers(PAIR, turn),
                mode=mode,
                voter=voter,
                parent_id=ids[-1] if ids else None,
            )
        )
    return ids


# --- follow-up turns -------------------------------------------------------------------------------


def test_a_follow_up_turn_points_at_its_parent_and_counts_turns(fresh_store: Store) -> None:
    first, second, third = turns(fresh_store, 3)
    battles = [fresh_store.battle(battle_id) for battle_id in (first, second, third)]
    assert [(b.parent_id, b.turn) for b in battles if b is not None] == [(None, 1), (first, 2), (second, 3)]


def test_a_follow_up_matches_sides_by_name_not_position(fresh_store: Store) -> None:
    (first,) = turns(fresh_store, 1)
    swapped = list(reversed(PAIR))
    second = fresh_store.record_comparison(Request("again"), swapped, answers(swapped, 2), voter="ann", parent_id=first)
    conversation = fresh_store.conversation(second)
    assert conversation is not None
    assert conversation.last.variants == ("demo:e4b", "demo:e2b")
    assert conversation.last.answers["demo:e2b"].text == "demo:e2b answers turn 2"


def test_a_blind_battle_takes_follow_ups_served_before_its_answers(fresh_store: Store) -> None:
    first = fresh_store.open_battle(Request("hi"), PAIR, mode="blind", voter="ann")
    fresh_store.finish_battle(first, answers(PAIR))
    second = fresh_store.open_battle(Request("and then?"), PAIR, mode="blind", voter="ann", parent_id=first)
    assert fresh_store.battle(second).phase == "served"  # type: ignore[union-attr]
    assert fresh_store.finish_battle(second, answers(PAIR, 2)) == "finished"
    assert fresh_store.battle(second).turn == 2  # type: ignore[union-attr]


def test_a_follow_up_of_an_unknown_battle_is_refused(fresh_store: Store) -> None:
    with pytest.raises(BattleRejected, match="no battle 'nope' to follow up"):
        fresh_store.record_comparison(Request("hi"), PAIR, answers(PAIR), parent_id="nope")


def test_a_follow_up_before_its_parent_finished_is_refused(fresh_store: Store) -> None:
    first = fresh_store.open_battle(Request("hi"), PAIR, mode="blind", voter="ann")
    with pytest.raises(BattleRejected, match="still answering"):
        fresh_store.open_battle(Request("next"), PAIR, mode="blind", voter="ann", parent_id=first)


def test_a_follow_up_keeps_the_parents_mode(fresh_store: Store) -> None:
    (first,) = turns(fresh_store, 1, mode="named")
    with pytest.raises(BattleRejected, match="is named, so its follow-up turns are named too, not blind"):
        fresh_store.open_battle(Request("next"), PAIR, mode="blind", voter="ann", parent_id=first)


def test_only_the_person_served_continues_a_conversation(fresh_store: Store) -> None:
    (first,) = turns(fresh_store, 1, voter="ann")
    with pytest.raises(BattleRejected, match="served to someone else") as caught:
        fresh_store.record_comparison(Request("next"), PAIR, answers(PAIR, 2), voter="bob", parent_id=first)
    assert "ann" not in str(caught.value)


def test_a_follow_up_goes_on_with_the_variants_that_answered(fresh_store: Store) -> None:
    first = fresh_store.record_comparison(
        Request("hi"), TRIO, [answer("demo:e2b"), failure("demo:31b"), answer("demo:e4b")], voter="ann"
    )
    with pytest.raises(
        BattleRejected, match=r"demo:31b did not answer in battle \w+: .* answered there \(demo:e2b, demo:e4b\)"
    ):
        fresh_store.record_comparison(Request("next"), TRIO, answers(TRIO, 2), voter="ann", parent_id=first)
    with pytest.raises(BattleRejected, match="demo:26b-a4b did not answer"):
        fresh_store.record_comparison(
            Request("next"),
            [("demo:e2b", "demo:e2b"), ("demo:26b-a4b", "demo:26b-a4b")],
            answers(PAIR, 2),
            voter="ann",
            parent_id=first,
        )
    second = fresh_store.record_comparison(Request("next"), PAIR, answers(PAIR, 2), voter="ann", parent_id=first)
    assert fresh_store.battle(second).turn == 2  # type: ignore[union-attr]


def test_a_blind_follow_up_after_a_failed_side_is_refused_without_naming_it(fresh_store: Store) -> None:
    first = fresh_store.open_battle(Request("hi"), PAIR, mode="blind", voter="ann")
    fresh_store.finish_battle(first, [answer("demo:e2b"), failure("demo:e4b")])
    with pytest.raises(BattleRejected, match="one did not; start a new battle") as caught:
        fresh_store.open_battle(Request("next"), PAIR, mode="blind", voter="ann", parent_id=first)
    assert "demo:e4b" not in str(caught.value)


def test_a_voted_conversation_takes_no_follow_up(fresh_store: Store) -> None:
    first, second = turns(fresh_store, 2)
    fresh_store.record_vote(second, "a")
    with pytest.raises(
        BattleRejected, match=r"this conversation has a vote \(battle \w+ or a turn before it\): start a new one"
    ):
        fresh_store.record_comparison(Request("more"), PAIR, answers(PAIR, 3), voter="ann", parent_id=second)
    # regenerating the voted turn from the turn before starts a branch of its own: no vote in its chain
    sibling = fresh_store.record_comparison(Request("again"), PAIR, answers(PAIR, 2), voter="ann", parent_id=first)
    assert fresh_store.battle(sibling).turn == 2  # type: ignore[union-attr]


def test_a_refused_follow_up_stores_nothing(fresh_store: Store) -> None:
    _, second = turns(fresh_store, 2)
    fresh_store.record_vote(second, "tie")
    with pytest.raises(BattleRejected):
        fresh_store.record_comparison(
            Request("more", images=(PNG,)), PAIR, answers(PAIR), voter="ann", parent_id=second
        )
    with fresh_store._read() as db:
        assert db.execute("SELECT COUNT(*) FROM battles").fetchone()[0] == 2
        assert db.execute("SELECT COUNT(*) FROM media").fetchone()[0] == 0


def test_a_stored_battle_claiming_another_turn_is_refused(fresh_store: Store) -> None:
    # what a replayed journal record that was tampered with would ask
    (first,) = turns(fresh_store, 1)
    battle = NewBattle(
        "claims-3", 1.7e9, "named", "ann", tuple(PAIR), "hi", "{}", False, False, parent_id=first, turn=3
    )
    with pytest.raises(BattleRejected, match="says it is turn 3, but it follows turn 1"):
        fresh_store.write(lambda db: insert_battle(db, battle))
    assert fresh_store.battle("claims-3") is None


# --- votes on a conversation -----------------------------------------------------------------------


def test_a_vote_on_an_earlier_turn_is_refused(fresh_store: Store) -> None:
    first, second = turns(fresh_store, 2)
    with pytest.raises(VoteRejected, match="not the last turn of its conversation: vote on its last turn"):
        fresh_store.record_vote(first, "a")
    fresh_store.record_vote(second, "b")
    conversation = fresh_store.conversation(second)
    assert conversation is not None and conversation.vote is not None and conversation.vote.outcome == "b"


def test_a_vote_under_a_voted_turn_is_refused(settings: Settings) -> None:
    # Votes refuse follow-ups, so this chain is built the way a race between two clients could
    # leave it: the follow-up committed, then a vote on its parent slipped in. The store must still
    # refuse the second vote.
    with open_store(settings.db_path) as store:
        first, second = turns(store, 2)
    with sqlite3.connect(settings.db_path) as raw:
        raw.execute("INSERT INTO votes (battle_id, created_at, voter, outcome) VALUES (?, 1.0, 'ann', 'a')", [first])
    with open_store(settings.db_path) as store:
        with pytest.raises(VoteRejected, match="has a vote on an earlier turn"):
            store.record_vote(second, "b")
        assert store.battle(second).vote is None  # type: ignore[union-attr]


def test_a_vote_on_a_regenerated_turn_covers_its_own_branch(fresh_store: Store) -> None:
    first, second = turns(fresh_store, 2)
    sibling = fresh_store.record_comparison(Request("again"), PAIR, answers(PAIR, 2), voter="ann", parent_id=first)
    fresh_store.record_vote(sibling, "a")
    with pytest.raises(VoteRejected, match="not the last turn"):
        fresh_store.record_vote(first, "a")
    assert fresh_store.battle(second).vote is None  # type: ignore[union-attr]


# --- reading a conversation back -------------------------------------------------------------------


def test_conversation_reads_every_turn_oldest_first_with_answers_by_variant(fresh_store: Store) -> None:
    first = fresh_store.record_comparison(
        Request("look", system="be brief", images=(PNG,)), PAIR, answers(PAIR, 1), voter="ann"
    )
    second = fresh_store.record_comparison(
        Request("listen", audio=(WAV,)), PAIR, answers(PAIR, 2), voter="ann", parent_id=first
    )
    third = fresh_store.record_comparison(Request("sum up"), PAIR, answers(PAIR, 3), voter="ann", parent_id=second)
    fresh_store.record_vote(third, best="demo:e4b")
    conversation = fresh_store.conversation(third)
    assert conversation is not None
    assert conversation.id == first
    assert [(t.battle_id, t.turn, t.prompt) for t in conversation.turns] == [
        (first, 1, "look"),
        (second, 2, "listen"),
        (third, 3, "sum up"),
    ]
    opening = conversation.turns[0]
    assert opening.request == Request("look", system="be brief", images=(PNG,)).describe()
    assert opening.media == (PNG.sha256,)
    assert conversation.turns[1].media == (WAV.sha256,)
    assert (opening.mode, opening.voter, opening.variants, opening.phase) == (
        "named",
        "ann",
        ("demo:e2b", "demo:e4b"),
        "finished",
    )
    side = opening.answers["demo:e4b"]
    assert (side.text, side.thinking, side.tool_calls, side.error) == (
        "demo:e4b answers turn 1",
        "demo:e4b thinks",
        (ToolCall("lookup", {"q": "demo:e4b"}),),
        None,
    )
    assert (side.stats.ttft_s, side.stats.tokens_per_s, side.stats.output_tokens, side.stats.memory_kind) == (
        0.1,
        25.0,
        12,
        "rss",
    )
    assert [turn.vote for turn in conversation.turns[:2]] == [None, None]
    assert conversation.last.vote is not None and conversation.last.vote.best == "demo:e4b"
    # read at an earlier turn, the conversation stops there
    assert [t.turn for t in fresh_store.conversation(second).turns] == [1, 2]  # type: ignore[union-attr]
    assert fresh_store.conversation("nope") is None


def test_a_conversation_gives_each_variant_its_own_history_with_the_attachments(fresh_store: Store) -> None:
    first = fresh_store.record_comparison(Request("look", images=(PNG,)), PAIR, answers(PAIR, 1), voter="ann")
    second = fresh_store.record_comparison(
        Request("listen", audio=(WAV,)), PAIR, answers(PAIR, 2), voter="ann", parent_id=first
    )
    conversation = fresh_store.conversation(second)
    assert conversation is not None
    assert conversation.history_for("demo:e2b", fresh_store.media) == (
        Turn("look", "demo:e2b answers turn 1", images=(PNG,)),
        Turn("listen", "demo:e2b answers turn 2", audio=(WAV,)),
    )
    with pytest.raises(StorageError, match="demo:31b has no answer at turn 1"):
        conversation.history_for("demo:31b", fresh_store.media)
    with pytest.raises(StorageError, match=r"the image cat\.png of turn 1 is not stored"):
        conversation.history_for("demo:e2b", lambda sha256: None)


def test_a_conversation_shows_a_turn_still_answering(fresh_store: Store) -> None:
    first = fresh_store.open_battle(Request("hi"), PAIR, mode="blind", voter="ann")
    conversation = fresh_store.conversation(first)
    assert conversation is not None and conversation.last.phase == "served" and conversation.last.answers == {}


# --- media -----------------------------------------------------------------------------------------


def test_attachments_are_stored_once_by_hash(fresh_store: Store) -> None:
    fresh_store.record_comparison(Request("look", images=(PNG,), audio=(WAV,)), PAIR, answers(PAIR))
    fresh_store.open_battle(Request("look again", images=(PNG,)), PAIR)
    with fresh_store._read() as db:
        assert db.execute("SELECT sha256, kind, mime FROM media ORDER BY kind").fetchall() == [
            (WAV.sha256, "audio", "audio/wav"),
            (PNG.sha256, "image", "image/png"),
        ]
    assert fresh_store.media(PNG.sha256) == Media("image", PNG.data, "image/png")
    assert fresh_store.media(WAV.sha256) == Media("audio", WAV.data, "audio/wav")
    assert fresh_store.media("0" * 64) is None


def test_only_the_new_turns_attachments_are_stored_not_its_history(fresh_store: Store) -> None:
    history = (Turn("earlier", "an answer", images=(PNG,)),)
    fresh_store.record_comparison(Request("now", audio=(WAV,), history=history), PAIR, answers(PAIR))
    assert fresh_store.media(PNG.sha256) is None
    assert fresh_store.media(WAV.sha256) is not None


# --- history ---------------------------------------------------------------------------------------


def test_history_lists_each_conversation_by_its_last_turn_newest_first(fresh_store: Store) -> None:
    older = turns(fresh_store, 3)
    single = fresh_store.record_comparison(Request("one question"), PAIR, answers(PAIR), voter="ann")
    fresh_store.record_vote(single, "a")
    entries = fresh_store.history("ann")
    assert [(e.battle_id, e.conversation, e.turns, e.prompt) for e in entries] == [
        (single, single, 1, "one question"),
        (older[2], older[0], 3, "message 1"),
    ]
    voted, open_ = entries
    assert (voted.has_vote, voted.vote.outcome if voted.vote else None, voted.votable) == (True, "a", False)
    assert (open_.has_vote, open_.votable, open_.phase, open_.mode) == (False, True, "finished", "named")
    assert open_.variants == ("demo:e2b", "demo:e4b")
    assert open_.started_at < open_.created_at


def test_history_leaves_out_superseded_regenerations(fresh_store: Store) -> None:
    first, second = turns(fresh_store, 2)
    regenerated = fresh_store.record_comparison(Request("again"), PAIR, answers(PAIR, 2), voter="ann", parent_id=first)
    assert [e.battle_id for e in fresh_store.history("ann")] == [regenerated]
    again = fresh_store.record_comparison(Request("once more"), PAIR, answers(PAIR, 2), voter="ann", parent_id=first)
    assert [e.battle_id for e in fresh_store.history("ann")] == [again]
    assert second not in {e.battle_id for e in fresh_store.history(None)}


def test_history_is_per_voter_and_everyones_for_none(fresh_store: Store) -> None:
    (ann,) = turns(fresh_store, 1, voter="ann")
    (bob,) = turns(fresh_store, 1, voter="bob")
    assert [e.battle_id for e in fresh_store.history("ann")] == [ann]
    assert [e.battle_id for e in fresh_store.history("bob")] == [bob]
    assert [e.battle_id for e in fresh_store.history(None)] == [bob, ann]
    assert fresh_store.history("carol") == []


def test_history_pages_with_limit_and_before(fresh_store: Store) -> None:
    ids = [turns(fresh_store, 1)[0] for _ in range(5)]
    page = fresh_store.history("ann", limit=2)
    assert [e.battle_id for e in page] == [ids[4], ids[3]]
    rest = fresh_store.history("ann", limit=10, before=page[-1].created_at)
    assert [e.battle_id for e in rest] == list(reversed(ids[:3]))
    with pytest.raises(StorageError, match="1 entry or more"):
        fresh_store.history("ann", limit=0)


def test_history_says_which_conversations_can_take_a_vote(fresh_store: Store) -> None:
    served = fresh_store.open_battle(Request("hi"), PAIR, mode="blind", voter="ann")
    failed = fresh_store.open_battle(Request("hi"), PAIR, mode="blind", voter="ann")
    fresh_store.finish_battle(failed, [answer("demo:e2b"), failure("demo:e4b")])
    partly = fresh_store.record_comparison(
        Request("hi"), TRIO, [answer("demo:e2b"), failure("demo:31b"), answer("demo:e4b")], voter="ann"
    )
    entries = {e.battle_id: e for e in fresh_store.history("ann")}
    assert (entries[served].phase, entries[served].votable) == ("served", False)
    assert (entries[failed].phase, entries[failed].votable) == ("errored", False)
    # a named comparison takes a vote among the variants that answered
    assert (entries[partly].phase, entries[partly].votable) == ("errored", True)


def test_a_vote_after_a_turn_where_a_model_named_itself_stays_out_of_the_ratings(settings: Settings) -> None:
    """Turn 1: Model A says it is Gemma. Voting after turn 2, whose answers name nobody, must not
    let that vote into the ratings: the conversation is flagged from turn 1 on."""
    with open_store(settings.db_path) as store:
        first = store.open_battle(Request("who are you?"), PAIR, mode="blind", voter="ann")
        store.finish_battle(first, [answer("demo:e2b", "I am Gemma, made by Google."), answer("demo:e4b", "A model.")])
        second = store.open_battle(Request("and then?"), PAIR, mode="blind", voter="ann", parent_id=first)
        store.finish_battle(second, answers(PAIR, 2))
        store.record_vote(second, "a", voter="ann")
        stored = store.battle(second)
        assert stored is not None and stored.flagged and set(stored.identity_words) >= {"Gemma", "Google"}
        assert store.pair_outcomes() == [] and store.flagged_votes() == 1
        assert len(store.pair_outcomes(include_flagged=True)) == 1

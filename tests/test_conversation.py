"""A conversation of several turns: each variant's own history, who continues, regenerate, clear."""

from __future__ import annotations

from typing import Any

import pytest

from arena.conversation import Conversation
from arena.measure import Result
from backends.base import Media, Request, ToolCall, Turn

PHOTO = Media("image", b"\x89PNG-photo", "image/png", "photo.png")
CLIP = Media("audio", b"RIFF-clip", "audio/wav", "clip.wav")


def answered(variant: str, text: str, **fields: Any) -> Result:
    return Result(variant=variant, text=text, **fields)


def failed(variant: str) -> Result:
    return Result(variant=variant, error=f"{variant} cannot take audio", error_kind="UnsupportedInput")


def two_turns() -> Conversation:
    conversation = Conversation(["a", "b"])
    conversation.add_turn(
        Request("What is in the photo?", images=(PHOTO,), max_new_tokens=8),
        {"a": answered("a", "A cat.", thinking="It looks furry."), "b": answered("b", "A dog.")},
        battle_id="battle-1",
    )
    conversation.add_turn(
        Request("And this sound?", audio=(CLIP,)),
        {"a": answered("a", "A purr.", tool_calls=(ToolCall("lookup", {"word": "purr"}),)),
         "b": answered("b", "A bark.")},
        battle_id="battle-2",
    )
    return conversation


def test_each_variant_is_sent_its_own_answers_without_thinking_or_tool_calls() -> None:
    conversation = two_turns()
    follow_up = Request("Which is louder?", max_new_tokens=16)
    for_a, for_b = (conversation.request_for(v, follow_up) for v in ("a", "b"))
    assert for_a.history == (
        Turn("What is in the photo?", "A cat.", images=(PHOTO,)),
        Turn("And this sound?", "A purr.", audio=(CLIP,)),
    )
    assert [t.answer for t in for_b.history] == ["A dog.", "A bark."]
    assert (for_a.prompt, for_a.max_new_tokens) == ("Which is louder?", 16)  # the new turn as it was sent
    assert for_a.modalities == {"text", "image", "audio"}  # the history's media count
    assert conversation.requests_for(follow_up) == [for_a, for_b]


def test_a_turn_is_kept_without_the_history_it_was_sent_with() -> None:
    conversation = two_turns()
    sent = conversation.request_for("a", Request("Third"))
    conversation.add_turn(sent, {"a": answered("a", "x"), "b": answered("b", "y")})
    assert conversation.turns[-1].request == Request("Third")
    assert len(conversation.request_for("a", Request("Fourth")).history) == 3  # not 2 + 2 nested


def test_parent_id_is_the_last_turns_battle_id() -> None:
    conversation = Conversation(["a", "b"])
    assert conversation.parent_id is None and conversation.battle_ids == ()
    conversation.add_turn(Request("one"), {"a": answered("a", "1"), "b": answered("b", "1")}, battle_id="first")
    assert conversation.parent_id == "first"
    conversation.add_turn(Request("two"), {"a": answered("a", "2"), "b": answered("b", "2")})  # not recorded
    assert conversation.battle_ids == ("first", None) and conversation.parent_id is None


def test_a_variant_that_fails_a_turn_is_left_out_of_the_following_ones() -> None:
    conversation = Conversation(["e2b", "31b", "e4b"])
    conversation.add_turn(Request("Hi"), {v: answered(v, "hello") for v in conversation.variants})
    conversation.add_turn(
        Request("What is this?", audio=(CLIP,)),
        {"e2b": answered("e2b", "a purr"), "31b": failed("31b"), "e4b": answered("e4b", "a bell")},
    )
    assert conversation.continuing() == ("e2b", "e4b")
    assert conversation.left_out() == {"31b": 2}
    assert [len(r.history) for r in conversation.requests_for(Request("More?"))] == [2, 2]
    with pytest.raises(ValueError, match="31b did not answer turn 2 and is out of this conversation"):
        conversation.request_for("31b", Request("More?"))
    with pytest.raises(ValueError, match="31b left this conversation earlier"):
        conversation.add_turn(Request("More?"), {"31b": answered("31b", "?")})
    conversation.add_turn(Request("More?"), {"e2b": answered("e2b", "more")})  # e4b not asked: out too
    assert conversation.continuing() == ("e2b",) and conversation.left_out() == {"31b": 2, "e4b": 3}


def test_regenerate_last_drops_the_turn_and_returns_what_it_sent() -> None:
    conversation = two_turns()
    again = conversation.regenerate_last()
    assert again == Request("And this sound?", audio=(CLIP,))
    assert len(conversation.turns) == 1 and conversation.parent_id == "battle-1"
    assert [t.answer for t in conversation.request_for("b", again).history] == ["A dog."]


def test_regenerating_a_failed_turn_brings_its_variant_back() -> None:
    conversation = Conversation(["a", "b"])
    conversation.add_turn(Request("Hi"), {"a": answered("a", "hello"), "b": failed("b")})
    assert conversation.continuing() == ("a",)
    conversation.regenerate_last()
    assert conversation.continuing() == ("a", "b") and conversation.left_out() == {}
    conversation.clear()
    with pytest.raises(ValueError, match="no turn to regenerate"):
        conversation.regenerate_last()


def test_clear_starts_over_with_the_same_variants_and_mode() -> None:
    conversation = two_turns()
    conversation.mode = "blind"
    conversation.clear()
    assert conversation.turns == () and conversation.parent_id is None
    assert (conversation.variants, conversation.mode) == (("a", "b"), "blind")
    assert conversation.request_for("a", Request("Fresh")).history == ()


def test_results_of_variants_not_in_the_conversation_are_refused() -> None:
    conversation = Conversation(["a", "b"])
    with pytest.raises(ValueError, match="c not in this conversation"):
        conversation.add_turn(Request("Hi"), {"c": answered("c", "?")})
    with pytest.raises(ValueError, match="c is not in this conversation"):
        conversation.request_for("c", Request("Hi"))
    assert conversation.turns == ()
    with pytest.raises(ValueError, match="at least one variant"):
        Conversation([])
    with pytest.raises(ValueError, match="once"):
        Conversation(["a", "a"])

"""The token-level parser of Gemma 4 output: channels, tool calls, token accounting."""

from __future__ import annotations

import itertools

from backends.base import ToolCall
from backends.hf.gemma_output import parse_tool_call
from tests.support.toy_gemma import EVERYTHING, one_at_a_time, parser, summary


def run(ids: list[int]) -> list:  # type: ignore[type-arg]
    return one_at_a_time(ids)


def test_plain_text_is_answer_and_every_token_is_counted() -> None:
    chunks = run([12, 13, 0])
    assert "".join(c.text for c in chunks) == "Hello world"
    assert {c.channel for c in chunks} == {"answer"}
    assert sum(c.tokens for c in chunks) == 3


def test_thought_channel_becomes_thinking_and_markers_vanish() -> None:
    chunks = run([1, 10, 11, 14, 14, 2, 12, 13])
    thinking = "".join(c.text for c in chunks if c.channel == "thinking")
    answer = "".join(c.text for c in chunks if c.channel == "answer")
    assert thinking == "hmmhmm"
    assert answer == "Hello world"
    assert sum(c.tokens for c in chunks) == 8


def test_unterminated_thinking_stays_thinking() -> None:
    chunks = run([1, 10, 11, 14])
    assert [(c.channel, c.text) for c in chunks if c.text] == [("thinking", "hmm")]


def test_tool_call_tokens_become_one_tool_call() -> None:
    chunks = run([12, 3, 15, 5, 16, 5, 17, 4])
    calls = [c.tool_call for c in chunks if c.tool_call]
    assert calls == [ToolCall("get_weather", {"city": "Oslo"})]
    assert "".join(c.text for c in chunks) == "Hello"
    assert sum(c.tokens for c in chunks) == 8


def test_incomplete_multibyte_character_is_held_back_until_complete() -> None:
    p = parser()
    assert p.feed(18) == []
    chunks = p.feed(19)
    assert [c.text for c in chunks] == ["é"] and chunks[0].tokens == 2


def test_feeding_tokens_in_batches_gives_what_one_at_a_time_gives() -> None:
    expected = summary(one_at_a_time(EVERYTHING))
    assert expected == ("Helloé worldHello", "hmmhmm", [ToolCall("get_weather", {"city": "Oslo"})], len(EVERYTHING))
    n = len(EVERYTHING)
    # batches of every equal size, and every way of cutting the tokens into up to three batches
    cuttings = [list(range(size, n, size)) for size in range(1, n + 1)]
    cuttings += [list(cuts) for k in (1, 2) for cuts in itertools.combinations(range(1, n), k)]
    for cuts in cuttings:
        p, chunks = parser(), []
        for start, stop in itertools.pairwise([0, *cuts, n]):
            chunks += p.feed_many(EVERYTHING[start:stop])
        chunks += p.finish()
        assert summary(chunks) == expected, cuts
        assert not any("<|" in c.text or "|>" in c.text for c in chunks)


def test_a_batch_is_decoded_into_one_chunk_per_run_of_text() -> None:
    p = parser()
    assert [(c.text, c.tokens) for c in p.feed_many([12, 13, 12])] == [("Hello worldHello", 3)]
    chunks = p.feed_many([13, 1, 10, 11, 14])  # text, then a thinking channel opens
    assert [(c.channel, c.text, c.tokens) for c in chunks] == [("answer", " world", 2), ("thinking", "hmm", 3)]


def test_a_batch_ending_mid_character_holds_the_character_back() -> None:
    p = parser()
    assert p.feed_many([12, 18]) == []  # "Hello" waits with the incomplete "é"
    assert [(c.text, c.tokens) for c in p.feed_many([19])] == [("Helloé", 3)]


def test_tool_call_arguments_follow_gemma_literal_syntax() -> None:
    call = parse_tool_call('call:book{city:<|"|>Oslo, NO<|"|>,nights:3,flex:true,tags:[<|"|>a<|"|>,2],who:{n:1}}')
    assert call == ToolCall("book", {"city": "Oslo, NO", "nights": 3, "flex": True, "tags": ["a", 2], "who": {"n": 1}})


def test_malformed_tool_call_keeps_the_raw_arguments() -> None:
    call = parse_tool_call('call:book{city:<|"|>Oslo')
    assert call.name == "book" and "_unparsed" in call.arguments


def test_empty_tool_call_has_no_arguments() -> None:
    assert parse_tool_call("call:ping{}") == ToolCall("ping", {})

"""The token-level parser of Gemma 4 output: channels, tool calls, token accounting."""

from __future__ import annotations

from backends.base import ToolCall
from backends.hf.gemma_output import GemmaOutputParser, Markers, parse_tool_call

# A toy vocabulary: ids 0-9 are markers/specials, 10+ are text pieces.
VOCAB = {
    0: "<eos>", 1: "<|channel>", 2: "<channel|>", 3: "<|tool_call>", 4: "<tool_call|>", 5: '<|"|>',
    10: "thought", 11: "\n", 12: "Hello", 13: " world", 14: "hmm", 15: "call:get_weather{city:",
    16: "Oslo", 17: "}", 18: "\xc3", 19: "\xa9",
}
SPECIAL = {0, 1, 2, 3, 4, 5}


def decode(ids: list[int], keep_special: bool = False) -> str:
    raw = "".join(VOCAB[i] for i in ids if keep_special or i not in SPECIAL)
    # pieces 18+19 are the two bytes of "é": alone, the first is an incomplete character
    return raw.encode("latin-1", errors="ignore").decode("utf-8", errors="replace") if "\xc3" in raw else raw


def parser() -> GemmaOutputParser:
    return GemmaOutputParser(
        decode=decode,
        decode_raw=lambda ids: decode(ids, keep_special=True),
        markers=Markers(channel_open=1, channel_close=2, tool_call_open=3, tool_call_close=4),
        hidden_ids=SPECIAL,
    )


def run(ids: list[int]) -> list:  # type: ignore[type-arg]
    p = parser()
    chunks = [c for i in ids for c in p.feed(i)]
    return chunks + p.finish()


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


def test_tool_call_arguments_follow_gemma_literal_syntax() -> None:
    call = parse_tool_call('call:book{city:<|"|>Oslo, NO<|"|>,nights:3,flex:true,tags:[<|"|>a<|"|>,2],who:{n:1}}')
    assert call == ToolCall("book", {"city": "Oslo, NO", "nights": 3, "flex": True, "tags": ["a", 2], "who": {"n": 1}})


def test_malformed_tool_call_keeps_the_raw_arguments() -> None:
    call = parse_tool_call('call:book{city:<|"|>Oslo')
    assert call.name == "book" and "_unparsed" in call.arguments


def test_empty_tool_call_has_no_arguments() -> None:
    assert parse_tool_call("call:ping{}") == ToolCall("ping", {})

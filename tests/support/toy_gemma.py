"""A toy Gemma 4 vocabulary and its output parser, for tests of the token-level parsing and shipping."""

from __future__ import annotations

from backends.base import Chunk
from backends.hf.gemma_output import GemmaOutputParser, Markers

# ids 0-9 are markers/specials, 10+ are text pieces.
VOCAB = {
    0: "<eos>",
    1: "<|channel>",
    2: "<channel|>",
    3: "<|tool_call>",
    4: "<tool_call|>",
    5: '<|"|>',
    10: "thought",
    11: "\n",
    12: "Hello",
    13: " world",
    14: "hmm",
    15: "call:get_weather{city:",
    16: "Oslo",
    17: "}",
    18: "\xc3",
    19: "\xa9",
}
SPECIAL = {0, 1, 2, 3, 4, 5}
#: Thinking, an answer with a two-token "é" in it, a tool call, an end of turn: every path of the parser.
EVERYTHING = [1, 10, 11, 14, 14, 2, 12, 18, 19, 13, 3, 15, 5, 16, 5, 17, 4, 12, 0]


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


def one_at_a_time(ids: list[int]) -> list[Chunk]:
    p = parser()
    return [c for i in ids for c in p.feed(i)] + p.finish()


def summary(chunks: list[Chunk]) -> tuple[str, str, list[object], int]:
    """What a stream adds up to: answer text, thinking text, tool calls, tokens."""
    return (
        "".join(c.text for c in chunks if c.channel == "answer"),
        "".join(c.text for c in chunks if c.channel == "thinking"),
        [c.tool_call for c in chunks if c.tool_call],
        sum(c.tokens for c in chunks),
    )

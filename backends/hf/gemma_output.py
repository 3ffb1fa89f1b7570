"""Turns the tokens a Gemma 4 model generates into answer text, a thinking trace and tool calls.

Gemma 4 marks its output with single special tokens (each marker is one token in its tokenizer):
`<|channel>thought\n ... <channel|>` around thinking, and `<|tool_call>call:NAME{...}<tool_call|>`
around a tool call whose strings are quoted by `<|"|>`. Working on token ids rather than decoded
text means a marker is never split across chunks and every token is counted exactly once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from backends.base import Channel, Chunk, ToolCall

QUOTE = '<|"|>'


@dataclass(frozen=True)
class Markers:
    channel_open: int | None
    channel_close: int | None
    tool_call_open: int | None
    tool_call_close: int | None

    @classmethod
    def from_vocab(cls, token_to_id: Callable[[str], int | None]) -> Markers:
        return cls(
            channel_open=token_to_id("<|channel>"),
            channel_close=token_to_id("<channel|>"),
            tool_call_open=token_to_id("<|tool_call>"),
            tool_call_close=token_to_id("<tool_call|>"),
        )


class GemmaOutputParser:
    """Feed generated token ids, one at a time or several at once; get back the chunks they complete.

    `decode` turns ids into text without special tokens; `decode_raw` keeps them (for the `<|"|>`
    quotes inside tool calls). `hidden_ids` are special tokens that are never shown (end of turn,
    padding, media placeholders).

    Markers are handled token by token, so none is ever split and every token is counted once:
    each chunk carries the tokens seen since the previous chunk. Text is decoded once per call,
    over a short window (the ids since the previous call's boundary), so feeding a batch costs one
    decode, and each token costs the same however long the answer grows.
    """

    def __init__(
        self,
        decode: Callable[[list[int]], str],
        decode_raw: Callable[[list[int]], str],
        markers: Markers,
        hidden_ids: Iterable[int],
    ) -> None:
        self._decode = decode
        self._decode_raw = decode_raw
        self._markers = markers
        self._hidden = frozenset(hidden_ids)
        self._channel: Channel = "answer"
        self._in_header = False  # between <|channel> and the newline that ends its name
        self._header = ""
        self._in_tool_call = False
        self._tool_ids: list[int] = []
        self._segment: list[int] = []  # ids of the current run of text in one channel
        # The decoding window: ids [start:end] of the segment decode to `text`, all of it sent.
        self._window_start = 0
        self._window_end = 0
        self._window_text = ""
        self._pending_tokens = 0  # tokens seen but not yet reported in a chunk

    def feed(self, token_id: int) -> list[Chunk]:
        return self.feed_many((token_id,))

    def feed_many(self, token_ids: Iterable[int]) -> list[Chunk]:
        """The chunks that `token_ids`, in order, complete; the same text and token counts
        whether a run of tokens is fed at once or one by one."""
        out: list[Chunk] = []
        m = self._markers
        for token_id in token_ids:
            self._pending_tokens += 1
            if token_id == m.tool_call_open:
                out += self._close_segment()
                self._in_tool_call, self._tool_ids = True, []
            elif self._in_tool_call:
                if token_id != m.tool_call_close:
                    self._tool_ids.append(token_id)
                else:
                    self._in_tool_call = False
                    out.append(self._take(Chunk(tool_call=parse_tool_call(self._decode_raw(self._tool_ids)))))
            elif token_id == m.channel_open:
                out += self._close_segment()
                self._in_header, self._header = True, ""
            elif token_id == m.channel_close:
                out += self._close_segment()
                self._channel, self._in_header = "answer", False
            elif token_id in self._hidden:
                continue
            elif self._in_header:
                self._header += self._decode([token_id])
                if "\n" in self._header:
                    name, _, rest = self._header.partition("\n")
                    self._in_header = False
                    self._channel = "thinking" if name.strip() == "thought" else "answer"
                    if rest:
                        out.append(self._take(Chunk(text=rest, channel=self._channel)))
            else:
                self._segment.append(token_id)  # decoded below, once for the whole call
        out += self._advance_window()
        return out

    def finish(self) -> list[Chunk]:
        """Flush what is left at the end of generation (an unfinished tool call is shown as text)."""
        out = self._close_segment()
        if self._in_tool_call and self._tool_ids:
            out.append(Chunk(text=self._decode(self._tool_ids), channel=self._channel))
            self._in_tool_call = False
        if self._pending_tokens:
            out.append(self._take(Chunk(channel=self._channel)))
        return out

    def _advance_window(self) -> list[Chunk]:
        """Send the text of the ids added since the window last moved. Only the window is decoded
        (from the previous boundary), so the cost does not grow with the answer."""
        if len(self._segment) == self._window_end:
            return []
        window = self._decode(self._segment[self._window_start:])
        if window.endswith("\ufffd"):  # a multi-byte character is not complete yet
            return []
        delta = window[len(self._window_text):]
        self._window_start, self._window_end = self._window_end, len(self._segment)
        self._window_text = self._decode(self._segment[self._window_start:])
        return [self._take(Chunk(text=delta, channel=self._channel))] if delta else []

    def _close_segment(self) -> list[Chunk]:
        window = self._decode(self._segment[self._window_start:]) if self._segment else ""
        delta = window[len(self._window_text):]
        self._segment, self._window_start, self._window_end, self._window_text = [], 0, 0, ""
        return [self._take(Chunk(text=delta, channel=self._channel))] if delta else []

    def _take(self, chunk: Chunk) -> Chunk:
        tokens, self._pending_tokens = self._pending_tokens, 0
        return Chunk(text=chunk.text, channel=chunk.channel, tokens=tokens, tool_call=chunk.tool_call)


def parse_tool_call(text: str) -> ToolCall:
    """Parse `call:NAME{key:<|"|>text<|"|>,n:1,...}` (Gemma 4's tool-call syntax)."""
    body = text.strip()
    if body.startswith("call:"):
        body = body[len("call:"):]
    name, brace, rest = body.partition("{")
    if not brace:
        return ToolCall(name=name.strip(), arguments={})
    try:
        value, _ = _Reader("{" + rest).read_value(0)
        arguments = value if isinstance(value, dict) else {"value": value}
    except ValueError:
        arguments = {"_unparsed": "{" + rest}
    return ToolCall(name=name.strip(), arguments=arguments)


class _Reader:
    """A small reader for Gemma's argument literals: bare keys, `<|"|>`-quoted strings."""

    def __init__(self, text: str) -> None:
        self.text = text

    def read_value(self, i: int) -> tuple[Any, int]:
        i = self._skip(i)
        t = self.text
        if t.startswith(QUOTE, i):
            end = t.find(QUOTE, i + len(QUOTE))
            if end < 0:
                raise ValueError("unterminated string")
            return t[i + len(QUOTE):end], end + len(QUOTE)
        if t.startswith("{", i):
            return self._read_object(i + 1)
        if t.startswith("[", i):
            return self._read_array(i + 1)
        j = i
        while j < len(t) and t[j] not in ",}]":
            j += 1
        token = t[i:j].strip()
        if not token:
            raise ValueError("empty value")
        try:
            return json.loads(token), j
        except json.JSONDecodeError:
            return token, j

    def _read_object(self, i: int) -> tuple[dict[str, Any], int]:
        out: dict[str, Any] = {}
        i = self._skip(i)
        while i < len(self.text) and self.text[i] != "}":
            colon = self.text.find(":", i)
            if colon < 0:
                raise ValueError("key without value")
            key = self.text[i:colon].strip().replace(QUOTE, "")
            out[key], i = self.read_value(colon + 1)
            i = self._skip(i)
            if i < len(self.text) and self.text[i] == ",":
                i = self._skip(i + 1)
        if i >= len(self.text):
            raise ValueError("unterminated object")
        return out, i + 1

    def _read_array(self, i: int) -> tuple[list[Any], int]:
        out: list[Any] = []
        i = self._skip(i)
        while i < len(self.text) and self.text[i] != "]":
            value, i = self.read_value(i)
            out.append(value)
            i = self._skip(i)
            if i < len(self.text) and self.text[i] == ",":
                i = self._skip(i + 1)
        if i >= len(self.text):
            raise ValueError("unterminated array")
        return out, i + 1

    def _skip(self, i: int) -> int:
        while i < len(self.text) and self.text[i].isspace():
            i += 1
        return i

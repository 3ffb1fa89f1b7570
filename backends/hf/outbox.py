"""How a worker's answer crosses the pipe: several tokens to a message, at most one every `hold_s`.

A demo token takes 1.5-3 ms on a CPU. Sent one at a time, a token cost the worker ~0.25 ms and
the app ~0.15 ms more than plain `generate()` (parsing, pickling, the write, and the wake-ups it
causes on both sides), and on a busy machine every message the app wakes up for may also take the
CPU from the worker for a while. So generation hands its token ids to an `Outbox`, which parses
what has gathered in one go and ships it as one ("chunks", id, [Chunk, ...]) message, at most one
every `hold_s`; in between, a token costs a list append and a clock read.

Shipping happens on the generation thread, between two tokens, and never waits on the pipe: if the
app has not read enough of it to take a message at once, the tokens keep gathering. (A sender
thread of its own cost ~4x more per message: every time it wants the GIL, the generation thread,
which drops and retakes the GIL around each torch call, has to wake it up again and again.)

What the measuring wrapper takes from the stream stays exact:

- TTFT: the first chunk is not held back: it is sent the moment its token has been parsed.
- tokens/s: measured from the first chunk to the last. The end of generation sends what is left
  at once, so the last chunk arrives as soon as it was made; the chunks in between may arrive up
  to `hold_s` late, which moves neither end of the interval.
- token counts: every chunk carries the number of tokens it accounts for (the parser counts each
  token once), and the engine reports its own total with the usage.
- cancellation: unaffected. The engine's stopping criterion checks the cancel flag every token.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from backends.base import Chunk
from backends.hf.gemma_output import GemmaOutputParser

Send = Callable[[tuple[Any, ...]], None]


class Outbox:
    """Takes one request's token ids as they are generated and ships them as chunks.

    `can_send()` says whether the pipe takes a message without blocking. Use the outbox as a
    context manager around generation: leaving it ships everything still pending (and the parser's
    final chunks), so a message sent afterwards ("done") comes last.
    """

    #: After a message, how long tokens gather before the next one (seconds): the UI shows at most
    #: 20 updates a second anyway. The first chunk and the end of generation never wait for it.
    hold_s = 0.05

    def __init__(self, send: Send, can_send: Callable[[], bool], request_id: int, parser: GemmaOutputParser) -> None:
        self._send = send
        self._can_send = can_send
        self._request_id = request_id
        self._parser = parser
        self._ids: list[int] = []
        self._next_at = 0.0  # time.monotonic() from which the next message may go; 0: the first
        self._ended = False

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.end()

    def put(self, token_ids: list[int]) -> None:
        """New tokens, from the generation thread."""
        self._ids += token_ids
        if self._next_at and time.monotonic() < self._next_at:
            return
        if not self._can_send():  # the app is behind: let the tokens gather rather than wait
            return
        chunks = self._parser.feed_many(self._ids)
        self._ids = []
        if chunks:
            self._ship(chunks)

    def end(self) -> None:
        """Generation is over: ship what is left now. Safe to call more than once."""
        if self._ended:
            return
        self._ended = True
        chunks = self._parser.feed_many(self._ids) + self._parser.finish()
        self._ids = []
        if chunks:
            self._ship(chunks)

    def _ship(self, chunks: list[Chunk]) -> None:
        self._send(("chunks", self._request_id, chunks))
        self._next_at = time.monotonic() + self.hold_s

"""How a worker ships an answer's chunks: the first at once, the rest gathered, all in order.

The outbox and the parser are the real ones (on a toy vocabulary). Most tests record messages in
a list, since what matters is which messages are sent and in what order; one uses a real pipe the
app does not read. The whole path, real pipe and model, is exercised in test_hf_backend.py.
"""

from __future__ import annotations

import multiprocessing
import threading
from typing import Any

from backends.base import Chunk
from backends.hf.outbox import Outbox
from backends.hf.worker import _writable
from tests.support.toy_gemma import EVERYTHING, one_at_a_time, parser, summary


class Pipe:
    def __init__(self) -> None:
        self.messages: list[tuple[Any, ...]] = []
        self.open = True  # whether it takes a message without blocking

    def send(self, message: tuple[Any, ...]) -> None:
        assert self.open, "sent to a pipe that would have blocked"
        self.messages.append(message)

    def outbox(self, hold_s: float) -> Outbox:
        box = Outbox(self.send, lambda: self.open, 7, parser())
        box.hold_s = hold_s
        return box

    def chunks(self) -> list[Chunk]:
        return [chunk for message in self.messages if message[0] == "chunks" for chunk in message[2]]


def test_first_chunk_is_sent_as_soon_as_its_token_is_parsed() -> None:
    pipe = Pipe()
    with pipe.outbox(hold_s=60) as box:
        box.put([1])  # <|channel>: nothing to show yet
        assert pipe.messages == []
        for token in (10, 11, 14):  # thought \n hmm
            box.put([token])
        assert pipe.messages == [("chunks", 7, [Chunk("hmm", "thinking", 4)])]


def test_tokens_made_within_the_hold_travel_in_one_message() -> None:
    pipe = Pipe()
    with pipe.outbox(hold_s=60) as box:
        for token in (12, 13, 12, 13):
            box.put([token])
        assert len(pipe.messages) == 1
    # the end of generation does not wait out the hold
    assert pipe.messages == [
        ("chunks", 7, [Chunk("Hello", tokens=1)]),
        ("chunks", 7, [Chunk(" worldHello world", tokens=3)]),
    ]


def test_without_a_hold_every_token_goes_at_once() -> None:
    pipe = Pipe()
    with pipe.outbox(hold_s=0) as box:
        for token in (12, 13, 12):
            box.put([token])
    assert [m[2] for m in pipe.messages] == [
        [Chunk("Hello", tokens=1)],
        [Chunk(" world", tokens=1)],
        [Chunk("Hello", tokens=1)],
    ]


def test_tokens_gather_while_the_app_is_behind_and_go_together_after() -> None:
    pipe = Pipe()
    with pipe.outbox(hold_s=0) as box:
        box.put([12])
        pipe.open = False
        for token in (13, 12):
            box.put([token])
        assert len(pipe.messages) == 1
        pipe.open = True
        box.put([13])
    assert pipe.messages[1:] == [("chunks", 7, [Chunk(" worldHello world", tokens=3)])]


def test_generation_does_not_wait_on_a_real_pipe_the_app_does_not_read() -> None:
    app, worker = multiprocessing.Pipe()
    can_send = _writable(worker)
    assert can_send()
    while can_send():  # the app falls far behind
        worker.send_bytes(b"x" * 4096)
    sent: list[tuple[Any, ...]] = []

    def send(message: tuple[Any, ...]) -> None:
        worker.send(message)
        sent.append(message)

    def generate() -> None:
        for token in (12, 13, 12):
            box.put([token])

    box = Outbox(send, can_send, 7, parser())
    box.hold_s = 0
    putting = threading.Thread(target=generate)
    putting.start()
    putting.join(10)
    assert not putting.is_alive() and sent == []  # kept the tokens instead of waiting
    while app.poll(0):  # the app catches up
        app.recv_bytes()
    box.put([13])
    assert sent == [("chunks", 7, [Chunk("Hello worldHello world", tokens=4)])]
    assert app.recv() == sent[0]


def test_everything_arrives_in_order_and_counted_once_however_it_is_sent() -> None:
    expected = summary(one_at_a_time(EVERYTHING))
    for hold_s, blocked in ((0, set()), (0, {3, 4, 5, 9, 10, 15}), (60, set())):
        pipe = Pipe()
        with pipe.outbox(hold_s) as box:
            for i, token in enumerate(EVERYTHING):
                pipe.open = i not in blocked
                box.put([token])
            pipe.open = True
        assert summary(pipe.chunks()) == expected, (hold_s, blocked)


def test_a_message_sent_after_the_outbox_comes_after_all_its_chunks() -> None:
    pipe = Pipe()
    with pipe.outbox(hold_s=60) as box:
        for token in (12, 13, 12, 0):
            box.put([token])
        box.end()  # as the streamer does when generate() finishes; leaving ends it again
    pipe.send(("done", 7))
    assert [m[0] for m in pipe.messages] == ["chunks", "chunks", "done"]
    assert sum(c.tokens for c in pipe.chunks()) == 4  # the end-of-turn token too, once

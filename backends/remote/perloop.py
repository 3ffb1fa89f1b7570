"""One HTTP client per event loop.

An httpx connection belongs to the event loop that opened it. The CLI runs loading and
comparing in one loop, but a UI may load a variant in one loop and stream from another; a client
made for the current loop avoids "attached to a different loop" errors and still reuses
keep-alive connections within a loop (so TTFT does not include a new TCP handshake each time).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerLoop(Generic[T]):
    """Makes a client with `make()` the first time it is asked for in each running loop."""

    def __init__(self, make: Callable[[], T], close: Callable[[T], Awaitable[None]]) -> None:
        self._make = make
        self._close = close
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: T | None = None

    def get(self) -> T:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            # The old client's loop is gone or elsewhere: its connections cannot be closed from
            # here, and dropping it lets them be collected with that loop.
            self._client, self._loop = self._make(), loop
        return self._client

    async def close(self) -> None:
        client, loop = self._client, self._loop
        self._client = self._loop = None
        if client is not None and loop is asyncio.get_running_loop():
            with contextlib.suppress(Exception):  # closing must not fail because a server vanished
                await self._close(client)

"""Sessions kept on the server under a key the browser holds, so a reload finds them again.

Gradio gives every page load a fresh gr.State. The page also holds a random key in the browser's
localStorage (a gr.BrowserState, encrypted with a secret of this server); on load, the session
stored under that key, with its conversations, is put back into the page's gr.State. The key is
the only thing the browser keeps: conversations, and a battle's pair, stay on the server.

Kept in memory, the newest `capacity` sessions: a server restart forgets them (what was recorded
stays in the votes database, and the History tab lists it).
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

S = TypeVar("S")

#: How long a key is (bytes of randomness, before encoding): not guessable.
KEY_BYTES = 24


class SessionRegistry(Generic[S]):
    def __init__(self, new: Callable[[], S], capacity: int = 5000) -> None:
        self._new = new
        self._capacity = capacity
        self._sessions: OrderedDict[str, S] = OrderedDict()
        self._lock = threading.Lock()

    def restore(self, key: str | None) -> tuple[str, S, bool]:
        """(key, session, restored): the session kept under `key`, or a new one under a new key
        when there is none (an unknown, expired or missing key)."""
        with self._lock:
            if key and key in self._sessions:
                self._sessions.move_to_end(key)
                return key, self._sessions[key], True
            return (*self._add(self._new()), False)

    def replace(self, session: S) -> tuple[str, S]:
        """Keep `session` under a new key (another user signed in on this browser)."""
        with self._lock:
            return self._add(session)

    def _add(self, session: S) -> tuple[str, S]:
        key = secrets.token_urlsafe(KEY_BYTES)
        self._sessions[key] = session
        while len(self._sessions) > self._capacity:
            self._sessions.popitem(last=False)
        return key, session

    def __len__(self) -> int:
        return len(self._sessions)

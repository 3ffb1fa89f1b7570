"""Who is asking, and what they may do: the caller of each event, their role, and the per-user
limits on generations running at once and on votes.

With a users file (`serve --users FILE`) Gradio's login stands in front of the app, and the
caller is the logged-in user: their name is the voter recorded, their role (voter or admin)
decides whether they may export everyone's prompts and answers or make the server reach another
host. Without one, everybody is the one local voter (`--voter`); on a loopback address that
person is the machine's owner and an admin, while on a network address served with `--no-auth`
nobody is (exports and discovery stay on the command line).

Limits count per user, or per client address where nobody logs in: a browser opening more tabs
or an API script opening more sessions is still one user.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from arena.errors import UsageError

#: Looks a logged-in user's role up: "admin", "voter", or None for a name that is not (or no
#: longer) in the users file.
RoleOf = Callable[[str], "str | None"]


class AccessDenied(UsageError):
    """The caller may not do this (not an admin, not logged in, not their session)."""


class TooBusy(UsageError):
    """The caller is over a per-user limit; the message says when to try again."""


@dataclass(frozen=True)
class Caller:
    """The person behind one event. `name` is what their votes are recorded under; `key` is what
    per-user limits count by."""

    name: str
    admin: bool
    key: str


class Access:
    def __init__(
        self,
        role_of: RoleOf | None = None,
        *,
        local_voter: str = "local",
        local_admin: bool = True,
        max_concurrent: int = 2,
        max_votes_per_minute: int = 20,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_concurrent < 1 or max_votes_per_minute < 1:
            raise UsageError("the per-user limits (generations at once, votes a minute) must be 1 or more")
        self.role_of = role_of
        self.local_voter = local_voter
        self.local_admin = local_admin
        self.max_concurrent = max_concurrent
        self.max_votes_per_minute = max_votes_per_minute
        self._clock = clock
        self._lock = threading.Lock()
        self._running: collections.Counter[str] = collections.Counter()
        self._votes: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)

    @property
    def logins(self) -> bool:
        """Whether people log in (a users file is in front of the app)."""
        return self.role_of is not None

    def caller(self, request: Any) -> Caller:
        """The caller of the event `request` (a gr.Request; None for calls from Python)."""
        username = getattr(request, "username", None)
        if self.role_of is None:
            client = getattr(request, "client", None)
            address = getattr(client, "host", None) or "local"
            return Caller(self.local_voter, self.local_admin, f"address:{address}")
        role = self.role_of(username) if username else None
        if not username or role is None:  # Gradio lets no one in without a login; a user removed since is out now
            raise AccessDenied("you are not logged in (or your user was removed): reload the page and log in")
        return Caller(str(username), role == "admin", f"user:{username}")

    def require_admin(self, caller: Caller, what: str) -> None:
        if not caller.admin:
            how = ("ask an admin of this server" if self.logins
                   else "run it on the server's machine with `python app.py` (the command line)")
            raise AccessDenied(f"{what} is for admins only: {how}")

    @contextlib.contextmanager
    def generating(self, caller: Caller) -> Iterator[None]:
        """Hold one of the caller's generation slots for the duration; refuse at once (TooBusy)
        when all of them are taken, before any work is done."""
        with self._lock:
            if self._running[caller.key] >= self.max_concurrent:
                raise TooBusy(
                    f"you already have {self._running[caller.key]} comparisons or battles running (at most "
                    f"{self.max_concurrent} at once per user): wait for one to finish, or stop it"
                )
            self._running[caller.key] += 1
        try:
            yield
        finally:
            with self._lock:
                self._running[caller.key] -= 1
                if not self._running[caller.key]:
                    del self._running[caller.key]

    def count_vote(self, caller: Caller) -> None:
        """Take one of the caller's votes of the last minute, or refuse (TooBusy) when they have
        cast `max_votes_per_minute` already. Called before the vote is recorded."""
        now = self._clock()
        with self._lock:
            recent = self._votes[caller.key]
            while recent and recent[0] <= now - 60.0:
                recent.popleft()
            if len(recent) >= self.max_votes_per_minute:
                wait = 60.0 - (now - recent[0])
                raise TooBusy(
                    f"you voted {len(recent)} times in the last minute (at most {self.max_votes_per_minute}): "
                    f"read the answers before voting; try again in {max(1, round(wait))} s"
                )
            recent.append(now)

    def refund_vote(self, caller: Caller) -> None:
        """Give back the vote `count_vote` took when the store refused the vote itself."""
        with self._lock:
            recent = self._votes.get(caller.key)
            if recent:
                recent.pop()

"""Who is asking, and what they may do: the caller of each event, their role, and the per-user
limits on generations running at once and on votes.

With a users file (`serve --users FILE`) Gradio's login stands in front of the app, and the
caller is the logged-in user: their name is the voter recorded, their role (voter or admin)
decides whether they may export everyone's prompts and answers or make the server reach another
host. Without one, everybody is the one local voter (`--voter`); on a loopback address that
person is the machine's owner and an admin, while on a network address served with `--no-auth`
nobody is (exports and discovery stay on the command line).

On a Hugging Face Space people sign in with Hugging Face instead (`space_caller`): the signed-in
user's Hugging Face username is the voter, the variant file's `[space]` table names the admins
and may refuse votes from people not signed in or not in an organization. Everyone may compare
and battle; someone not signed in votes (where allowed) as `ANONYMOUS`.

Limits count per user, or per client address where nobody logs in: a browser opening more tabs
or an API script opening more sessions is still one user.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from arena.errors import UsageError
from backends.variant_file import SpaceSettings

#: Looks a logged-in user's role up: "admin", "voter", or None for a name that is not (or no
#: longer) in the users file.
RoleOf = Callable[[str], "str | None"]

#: The voter of everyone not signed in on a Space. No Hugging Face username has parentheses, so
#: no signed-in user's votes are ever counted with theirs.
ANONYMOUS = "(anonymous)"


class AccessDenied(UsageError):
    """The caller may not do this (not an admin, not logged in, not their session)."""


class TooBusy(UsageError):
    """The caller is over a per-user limit; the message says when to try again."""


@dataclass(frozen=True)
class Caller:
    """The person behind one event. `name` is what their votes are recorded under; `key` is what
    per-user limits count by; `vote_refusal`, when set, is why they may not vote (they may still
    compare and battle)."""

    name: str
    admin: bool
    key: str
    vote_refusal: str | None = None
    #: Whether `name` stands for many people (visitors not signed in on a Space; everyone on a
    #: server without logins on a network address): what is kept per person (History) is not
    #: theirs to see.
    shared: bool = False


def space_caller(profile: Mapping[str, Any] | None, space: SpaceSettings, address: str) -> Caller:
    """Who calls on a Hugging Face Space, from their sign-in (`gr.OAuthProfile`, the OpenID
    userinfo: `preferred_username`, and `orgs`, each with its `preferred_username`) or None, and
    the `[space]` table. `address` counts the per-user limits of people not signed in."""
    if profile is None:
        refusal = None
        if space.organization:
            refusal = (f"only members of the Hugging Face organization {space.organization} may vote here: "
                       "sign in with Hugging Face (the button at the top of the page)")
        elif space.require_sign_in:
            refusal = "sign in with Hugging Face to vote (the button at the top of the page)"
        return Caller(ANONYMOUS, False, f"address:{address}", refusal, shared=True)
    username = str(profile.get("preferred_username") or "")
    if not username:  # Hugging Face always names the user; a session without it is not a sign-in
        raise AccessDenied("your Hugging Face sign-in has no username: sign out and in again")
    refusal = None
    if space.organization and not _member_of(profile, space.organization):
        refusal = (f"only members of the Hugging Face organization {space.organization} may vote here, and "
                   f"{username} is not one (or did not let this Space see it: sign out, then sign in again "
                   "and allow the organization)")
    admin = username.casefold() in {name.casefold() for name in space.admins}
    return Caller(username, admin, f"hf:{username.casefold()}", refusal)


def _member_of(profile: Mapping[str, Any], organization: str) -> bool:
    """Whether the signed-in user's organizations include `organization`, by its handle (its
    `preferred_username`; its `name` is a display name anyone could give their own organization)."""
    orgs = profile.get("orgs") or []
    return any(isinstance(org, Mapping) and str(org.get("preferred_username", "")).casefold()
               == organization.casefold() for org in orgs)


class Access:
    def __init__(
        self,
        role_of: RoleOf | None = None,
        *,
        local_voter: str = "local",
        local_admin: bool = True,
        space: SpaceSettings | None = None,
        max_concurrent: int = 2,
        max_votes_per_minute: int = 20,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_concurrent < 1 or max_votes_per_minute < 1:
            raise UsageError("the per-user limits (generations at once, votes a minute) must be 1 or more")
        if role_of is not None and space is not None:
            raise UsageError("on a Hugging Face Space people sign in with Hugging Face: no users file there")
        self.role_of = role_of
        #: On a Hugging Face Space: the `[space]` table (sign-in with Hugging Face decides the caller).
        self.space = space
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
        """Whether people log in (a users file is in front of the app, or Hugging Face's sign-in)."""
        return self.role_of is not None or self.space is not None

    def caller(self, request: Any, profile: Mapping[str, Any] | None = None) -> Caller:
        """The caller of the event `request` (a gr.Request; None for calls from Python), signed
        in as `profile` (a gr.OAuthProfile, on a Space; None otherwise)."""
        if self.space is not None:
            return space_caller(profile, self.space, _address(request, forwarded=True))
        username = getattr(request, "username", None)
        if self.role_of is None:  # the one local person on a loopback address; anyone, on a network one
            return Caller(self.local_voter, self.local_admin, f"address:{_address(request)}",
                          shared=not self.local_admin)
        role = self.role_of(username) if username else None
        if not username or role is None:  # Gradio lets no one in without a login; a user removed since is out now
            raise AccessDenied("you are not logged in (or your user was removed): reload the page and log in")
        return Caller(str(username), role == "admin", f"user:{username}")

    def require_admin(self, caller: Caller, what: str) -> None:
        if not caller.admin:
            if self.space is not None:
                how = "ask an admin of this Space (the [space] table of its variant file names them)"
            elif self.logins:
                how = "ask an admin of this server"
            else:
                how = "run it on the server's machine with `python app.py` (the command line)"
            raise AccessDenied(f"{what} is for admins only: {how}")

    def require_own(self, caller: Caller, what: str) -> None:
        """Refuse (AccessDenied) what is kept per person to a caller whose name many share."""
        if caller.shared:
            how = ("sign in with Hugging Face (the button at the top of the page)" if self.space is not None
                   else "ask for a login on this server (`serve --users FILE`)")
            raise AccessDenied(f"{what} is kept per person, and you are not signed in as one: {how}")

    def require_vote(self, caller: Caller) -> None:
        """Refuse (AccessDenied, saying why) a caller who may not vote here."""
        if caller.vote_refusal:
            raise AccessDenied(caller.vote_refusal)

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


def _address(request: Any, forwarded: bool = False) -> str:
    """The client's address. On a Space the app sees only Hugging Face's proxy, which names the
    client first in X-Forwarded-For (`forwarded`); elsewhere the connection's own address counts."""
    if forwarded:
        headers = getattr(request, "headers", None) or {}
        client = str(headers.get("x-forwarded-for") or "").split(",")[0].strip()
        if client:
            return client
    return getattr(getattr(request, "client", None), "host", None) or "local"

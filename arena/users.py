"""Who may use a shared server, and as what: the users file.

A TOML file, one `[[users]]` table per user with `name`, `role` (`voter` or `admin`) and
`password_hash` (argon2id, from argon2-cffi; a password is never stored or logged). The CLI
(`python app.py users add|remove|list`) is what writes it: under a file lock, so two commands at
once both land, and atomically (a temp file renamed into place, mode 0600), so a reader never
sees half a file.

The server reads it through `UserDirectory`, which checks the file's identity on each call and
reloads it when it changed, so `users add` and `users remove` take effect without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import tempfile
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal, cast

import argon2
from argon2.exceptions import InvalidHashError, VerificationError
from filelock import FileLock, Timeout

from arena.errors import UsageError

__all__ = [
    "MIN_PASSWORD_LENGTH",
    "ROLES",
    "Role",
    "User",
    "UserDirectory",
    "UserError",
    "UserFile",
    "UsersFileError",
    "add_user",
    "list_users",
    "remove_user",
]

log = logging.getLogger(__name__)

Role = Literal["voter", "admin"]
ROLES: tuple[Role, ...] = ("voter", "admin")
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
# Names show in exports and the UI: a conservative ASCII set, nothing to escape or confuse.
_NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")
_ADD_HINT = "python app.py users add NAME --role admin"
_HEADER = (
    "# Gemma Arena users: who may log in to a shared server, and their role (voter or admin).\n"
    "# Written by `python app.py users add|remove`, which rewrites the whole file (comments are not kept).\n"
    "# Passwords are stored only as argon2id hashes.\n"
)


class UserError(UsageError):
    """A user that cannot be added or removed as asked (bad name, short password, unknown role...)."""


class UsersFileError(UsageError):
    """The users file is missing, unreadable, malformed, or held by another command."""


@dataclass(frozen=True)
class User:
    """Someone who may log in; `role` says what they may do there."""

    name: str
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class _Entry:
    user: User
    password_hash: str


# --- validation (the CLI's boundary) --------------------------------------------------------------


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise UserError(
            f"{name!r} is not a valid user name: use 1-64 characters among letters, digits and . _ - @ "
            "(e.g. ann, ann.lee, ann@example.org)"
        )
    return name


def check_role(role: str) -> Role:
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    return cast(Role, role)


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"the password is too short: use at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise UserError(f"the password is too long: use at most {MAX_PASSWORD_LENGTH} characters")
    return password


# --- hashing ----------------------------------------------------------------------------------------


@cache
def _hasher() -> argon2.PasswordHasher:
    return argon2.PasswordHasher()  # argon2id with RFC 9106's low-memory profile (64 MiB, 3 passes)


@cache
def _dummy_hash() -> str:
    """A hash no password matches, checked for unknown names so that they take as long as known ones."""
    return _hasher().hash(os.urandom(32).hex())


def hash_password(password: str) -> str:
    return _hasher().hash(check_password(password))


# --- the file ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UserFile:
    """One reading of the users file: its users and their password hashes."""

    path: Path
    entries: tuple[_Entry, ...] = ()
    # (inode, mtime, size) when read: os.replace gives each write a new inode, so a change is seen
    # even within the file system's mtime granularity.
    stamp: tuple[int, int, int] | None = None

    @classmethod
    def load(cls, path: str | Path) -> UserFile:
        """Read and check the file; UsersFileError, saying what to do, if it is missing or malformed."""
        path = Path(path)
        try:
            with open(path, "rb") as file:
                info = os.fstat(file.fileno())
                data = tomllib.load(file)
        except FileNotFoundError:
            raise UsersFileError(f"no users file at {path}: create it with `{_ADD_HINT} --file {path}`") from None
        except tomllib.TOMLDecodeError as exc:
            raise UsersFileError(
                f"the users file {path} is not valid TOML ({exc}): fix it, or remove it "
                f"and add the users again with `{_ADD_HINT}`"
            ) from None
        except OSError as exc:
            raise UsersFileError(f"cannot read the users file {path}: {exc.strerror or exc}") from None
        entries = _parse(path, data)
        return cls(path, entries, (info.st_ino, info.st_mtime_ns, info.st_size))

    @property
    def users(self) -> tuple[User, ...]:
        return tuple(entry.user for entry in self.entries)

    def get(self, name: str) -> User | None:
        entry = self._entry(name)
        return entry.user if entry else None

    def verify(self, name: str, password: str) -> User | None:
        """The user if `password` is theirs, else None. An unknown name costs one hash check too."""
        entry = self._entry(name)
        try:
            _hasher().verify(entry.password_hash if entry else _dummy_hash(), password)
        except (VerificationError, InvalidHashError):
            return None
        return entry.user if entry else None

    def _entry(self, name: str) -> _Entry | None:
        return next((entry for entry in self.entries if entry.user.name == name), None)


def _parse(path: Path, data: dict[str, Any]) -> tuple[_Entry, ...]:
    def malformed(what: str) -> UsersFileError:
        return UsersFileError(
            f"the users file {path} is malformed: {what}; fix it, or remove it and add "
            f"the users again with `{_ADD_HINT}`"
        )

    if set(data) - {"users"}:
        raise malformed(f"unexpected top-level keys {sorted(set(data) - {'users'})} (only [[users]] tables)")
    tables = data.get("users", [])
    if not isinstance(tables, list):
        raise malformed("`users` must be a list of [[users]] tables")
    entries: list[_Entry] = []
    for number, table in enumerate(tables, 1):
        where = f"user {number}"
        if not isinstance(table, dict):
            raise malformed(f"{where} is not a table")
        if set(table) != {"name", "role", "password_hash"}:
            raise malformed(f"{where} must have exactly name, role and password_hash (it has {sorted(table)})")
        name, role, password_hash = table["name"], table["role"], table["password_hash"]
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise malformed(f"{where} has an invalid name {name!r}")
        if role not in ROLES:
            raise malformed(f"{name} has an unknown role {role!r} (use {' or '.join(ROLES)})")
        if not isinstance(password_hash, str) or not password_hash.startswith("$argon2"):
            raise malformed(f"{name}'s password_hash is not an argon2 hash")
        try:
            argon2.extract_parameters(password_hash)
        except InvalidHashError:
            raise malformed(f"{name}'s password_hash is not an argon2 hash") from None
        if any(entry.user.name == name for entry in entries):
            raise malformed(f"{name} appears twice")
        entries.append(_Entry(User(name, role), password_hash))
    return tuple(entries)


def _render(entries: tuple[_Entry, ...]) -> str:
    # json.dumps of these strings (checked ASCII names, roles, argon2's $-and-base64 hashes) is a valid
    # TOML basic string; tomllib has no writer, and this shape needs none.
    blocks = [
        f"[[users]]\nname = {json.dumps(e.user.name)}\nrole = {json.dumps(e.user.role)}\n"
        f"password_hash = {json.dumps(e.password_hash)}\n"
        for e in entries
    ]
    return "\n".join([_HEADER, *blocks])


def _write_atomically(path: Path, text: str) -> None:
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a crash
    finally:
        os.close(dir_fd)


@contextlib.contextmanager
def _locked(path: Path, timeout_s: float) -> Iterator[tuple[_Entry, ...]]:
    """Hold the file's lock; yield its entries (none if it does not exist yet)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsersFileError(f"cannot create the folder {path.parent}: {exc.strerror or exc}") from None
    lock = FileLock(path.with_name(path.name + ".lock"), timeout=timeout_s, mode=0o600)
    try:
        lock.acquire()
    except Timeout:
        raise UsersFileError(
            f"the users file {path} is busy: another `users` command has held "
            f"{lock.lock_file} for {timeout_s:g} s; try again when it is done"
        ) from None
    try:
        yield UserFile.load(path).entries if path.exists() else ()
    finally:
        lock.release()


def add_user(
    path: str | Path,
    name: str,
    password: str,
    role: str = "voter",
    *,
    replace: bool = False,
    timeout_s: float = 10.0,
) -> User:
    """Add a user (or, with `replace`, set an existing user's password and role); returns it."""
    path = Path(path)
    user = User(check_name(name), check_role(role))
    password_hash = hash_password(password)  # before the lock: it takes a while
    with _locked(path, timeout_s) as entries:
        existing = next((e for e in entries if e.user.name.casefold() == name.casefold()), None)
        if existing and existing.user.name != name:
            raise UserError(
                f"{existing.user.name!r} already exists in {path}: names that differ only in "
                "case would be mistaken for each other; pick another name"
            )
        if existing and not replace:
            raise UserError(
                f"{name!r} already exists in {path}: to set a new password or role, run "
                f"`python app.py users add {name} --replace`"
            )
        new = _Entry(user, password_hash)
        updated = tuple(new if e is existing else e for e in entries) if existing else (*entries, new)
        _write_atomically(path, _render(updated))
    return user


def remove_user(path: str | Path, name: str, *, timeout_s: float = 10.0) -> User:
    """Remove a user; UserError if there is none of that name. Returns who was removed."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"no user {name!r}: there is no users file at {path} yet")
    with _locked(path, timeout_s) as entries:
        gone = next((e for e in entries if e.user.name == name), None)
        if gone is None:
            names = ", ".join(e.user.name for e in entries) or "none"
            raise UserError(f"no user {name!r} in {path} (users: {names})")
        _write_atomically(path, _render(tuple(e for e in entries if e is not gone)))
    return gone.user


def list_users(path: str | Path) -> tuple[User, ...]:
    """The users of the file, in its order; none if it does not exist yet."""
    path = Path(path)
    return UserFile.load(path).users if path.exists() else ()


# --- what the server uses ----------------------------------------------------------------------------


class UserDirectory:
    """The users file as a running server sees it: re-read whenever it changed on disk.

    Opening it is strict (a missing, malformed or empty file is a UsersFileError). Later, a file
    that cannot be read (a bad hand edit, removed) keeps the last good reading in force, with a
    warning in the log, so a typo does not lock every user out.
    """

    def __init__(self, path: str | Path, *, max_parallel_checks: int = 4) -> None:
        self.path = Path(path)
        self._file = UserFile.load(self.path)
        if not self._file.entries:
            raise UsersFileError(
                f"the users file {self.path} has no users, so nobody could log in: "
                f"add one with `{_ADD_HINT} --file {self.path}`"
            )
        self._stamp = self._file.stamp
        self._reload_lock = threading.Lock()
        # Each check holds 64 MiB for ~0.1 s: a burst of logins must not exhaust memory.
        self._checks = threading.BoundedSemaphore(max_parallel_checks)
        _dummy_hash()  # now, so the first unknown name is not slower than a known one

    def current(self) -> UserFile:
        """The file's users as they are on disk now (the last good reading if it cannot be read)."""
        try:
            info = os.stat(self.path)
            stamp: tuple[int, int, int] | None = (info.st_ino, info.st_mtime_ns, info.st_size)
        except OSError:
            stamp = None
        if stamp == self._stamp:
            return self._file
        with self._reload_lock:
            if stamp != self._stamp:
                try:
                    self._file = UserFile.load(self.path)
                    self._stamp = self._file.stamp
                except UsersFileError as exc:
                    log.warning("keeping the users read before: %s", exc)
                    self._stamp = stamp  # warn once per change, not on every login
            return self._file

    def verify(self, name: str, password: str) -> User | None:
        """The user if the password is theirs; None for a wrong password or an unknown name alike."""
        with self._checks:
            return self.current().verify(name, password)

    def role_of(self, name: str) -> Role | None:
        """The user's role now; None if there is no such user (any more)."""
        user = self.current().get(name)
        return user.role if user else None

    def check(self, username: str, password: str) -> bool:
        """Gradio's `launch(auth=...)` contract, blocking: True if the login is good."""
        return self.verify(username, password) is not None

    async def authenticate(self, username: str, password: str) -> bool:
        """Gradio's `launch(auth=...)` contract as a coroutine, so the hash check (~0.1 s of CPU) runs
        in a thread instead of stalling the server's event loop; Gradio awaits a coroutine function."""
        return await asyncio.to_thread(self.check, username, password)

"""`python app.py users add|remove|list`: who may log in to a shared server, and as what."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path
from typing import Any

from arena.settings import Settings
from arena.users import MIN_PASSWORD_LENGTH, ROLES, UserError, add_user, check_password, list_users, remove_user
from cli import EXIT_OK


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "users",
        help="add, remove or list the users who may log in to a shared server",
        description="The users file holds each user's name, role (voter or admin) and an argon2 hash of "
        "their password. A running server sees changes at once, without a restart.",
    )
    actions = p.add_subparsers(dest="users_action", metavar="ACTION", required=True)

    add = actions.add_parser(
        "add",
        help="add a user (asks for the password twice)",
        description=f"Add a user. Names: 1-64 letters, digits and . _ - @. Passwords: at least "
        f"{MIN_PASSWORD_LENGTH} characters, asked for twice, or read from standard input.",
    )
    add.add_argument("name", metavar="NAME")
    add.add_argument("--role", choices=ROLES, default="voter", help="what the user may do (default: voter)")
    add.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input (for scripts)",
    )
    add.add_argument(
        "--replace", action="store_true", help="if the user exists, set this password and role instead of refusing"
    )
    add.set_defaults(handler=run_add)

    remove = actions.add_parser("remove", help="remove a user", description="Remove a user.")
    remove.add_argument("name", metavar="NAME")
    remove.set_defaults(handler=run_remove)

    show = actions.add_parser(
        "list",
        help="list the users and their roles (never their passwords)",
        description="List the users and their roles.",
    )
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=run_list)

    for parser in (add, remove, show):
        parser.add_argument(
            "--file",
            type=Path,
            metavar="PATH",
            help="the users file (default: GEMMA_ARENA_USERS, else the data folder's users.toml)",
        )


def users_file(args: argparse.Namespace, settings: Settings) -> Path:
    return Path(args.file) if args.file else settings.users_path


def read_password(name: str, from_stdin: bool) -> str:
    """The new password: the first line of standard input, or typed twice without echo."""
    if from_stdin:
        line = sys.stdin.readline()
        if not line.strip("\r\n"):
            raise UserError(
                "no password on standard input: pipe it in, e.g. `printf '%s\\n' \"$PW\" | "
                f"python app.py users add {name} --password-stdin`"
            )
        return line.removesuffix("\n").removesuffix("\r")
    try:
        password = check_password(getpass.getpass(f"Password for {name}: "))
        again = getpass.getpass("Same password again: ")
    except EOFError:
        raise UserError("no terminal to type the password on: use --password-stdin") from None
    if password != again:
        raise UserError("the two passwords differ: run the command again")
    return password


def run_add(args: argparse.Namespace, settings: Settings) -> int:
    path = users_file(args, settings)
    password = read_password(args.name, args.password_stdin)
    user = add_user(path, args.name, password, args.role, replace=args.replace)
    print(f"saved {user.name} ({user.role}) in {path}", file=sys.stderr)
    return EXIT_OK


def run_remove(args: argparse.Namespace, settings: Settings) -> int:
    path = users_file(args, settings)
    user = remove_user(path, args.name)
    print(f"removed {user.name} ({user.role}) from {path}", file=sys.stderr)
    return EXIT_OK


def run_list(args: argparse.Namespace, settings: Settings) -> int:
    path = users_file(args, settings)
    users = list_users(path)
    if args.json:
        print(json.dumps([{"name": u.name, "role": u.role} for u in users], indent=2))
    elif not users:
        print(f"no users in {path}: add one with `python app.py users add NAME --role admin`", file=sys.stderr)
    else:
        width = max(len(u.name) for u in users)
        for user in users:
            print(f"{user.name:<{width}}  {user.role}")
    return EXIT_OK

"""The command line: one argparse parser, each subcommand contributed by its own module.

Every subcommand module has `add_parser(subparsers)` that registers its arguments and sets
`handler`, a function `(args, settings) -> exit code`. Exit codes: 0 done, 1 failed, 2 bad usage,
3 done but some variants failed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from arena.errors import ArenaError, UsageError
from arena.settings import Settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line, without the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"error: {message} (see: {self.prog} --help)\n")


DB_HELP = "the votes database (default: GEMMA_ARENA_DB, else the data folder's arena.db)"


def add_db_argument(parser: argparse._ActionsContainer, help: str = DB_HELP) -> None:
    """`--db PATH`, which every subcommand takes (main() applies it to the settings)."""
    parser.add_argument("--db", type=Path, metavar="PATH", help=help)


def build_parser() -> argparse.ArgumentParser:
    from cli import (
        compare,
        doctor,
        export,
        generate,
        importer,
        leaderboard,
        report,
        serve,
        space_bundle,
        users,
        variants,
    )

    parser = _Parser(
        prog="python app.py",
        description="Gemma Arena: compare Gemma 4 variants side by side on your prompts and machine.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in (serve, compare, generate, leaderboard, report, export, importer, variants, users, space_bundle,
                   doctor):
        module.add_parser(sub)
    return parser


def _commands(parser: argparse.ArgumentParser) -> set[str]:
    for action in parser._actions:  # argparse offers no public way to list subcommands
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in _commands(parser) and argv[0] not in ("-h", "--help")):
        argv.insert(0, "serve")  # `python app.py [--port ...]` serves the UI
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USAGE
    settings = (settings or Settings.from_env()).with_db(getattr(args, "db", None))
    try:
        return int(args.handler(args, settings))
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ArenaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130

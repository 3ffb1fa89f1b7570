"""Gemma Arena's one entry point.

    python app.py                  serve the web UI on the demo variants
    python app.py compare ...      compare variants from the command line
    python app.py --help           every subcommand

It builds settings from the environment and hands over to the subcommand; nothing else.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from cli import main as cli_main

    return cli_main(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())

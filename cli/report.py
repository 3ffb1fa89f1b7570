"""`python app.py report`: the decision report (rating with its interval, win rate, speed,
memory and fit per variant; quality against cost with the Pareto front; a recommendation that
states its uncertainty) as one self-contained HTML file, or Markdown with its charts beside it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from arena.errors import UsageError
from arena.report import DEFAULT_TARGET_WIDTH
from arena.settings import Settings
from arena.variant_fits import DEFAULT_CONTEXT_TOKENS
from cli import EXIT_OK, add_db_argument
from cli.leaderboard import add_rating_options, add_vote_filters, build_leaderboard, rating_mode, select_battles
from storage import open_store
from storage.exports import open_output

FORMATS = {".html": "html", ".htm": "html", ".md": "markdown", ".markdown": "markdown"}


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="the decision report: which variant to use, from the votes, the measured runs and this machine",
        description="Per variant: the rating with its 95% interval, win rate, median time to first token and "
        "decode tokens/s, memory, and whether it fits this machine; a chart of quality against speed and "
        "memory with the Pareto front; and a recommendation that says how sure it is (overlapping intervals "
        "are a tie; for wide intervals, about how many more votes would narrow them). --out FILE.html writes "
        "one self-contained file that opens offline; --out FILE.md writes Markdown with the charts as PNG "
        "files beside it; without --out the Markdown (no charts) goes to standard output.",
    )
    add_db_argument(p)
    add_vote_filters(p)
    add_rating_options(p)
    p.add_argument("--out", type=Path, metavar="FILE", help="FILE.html or FILE.md: the format follows the extension")
    p.add_argument(
        "--context",
        type=int,
        default=DEFAULT_CONTEXT_TOKENS,
        metavar="N",
        help=f"tokens of context to size the KV cache for in the fit estimates (default {DEFAULT_CONTEXT_TOKENS})",
    )
    p.add_argument(
        "--target-width",
        type=float,
        default=DEFAULT_TARGET_WIDTH,
        metavar="ELO",
        help="the interval width (Elo) the votes-needed estimates aim at (default %(default)g)",
    )
    p.set_defaults(handler=run)


def output_format(out: Path | None) -> str:
    """'html' or 'markdown' from the extension of `out` (None: Markdown to standard output)."""
    if out is None:
        return "markdown"
    found = FORMATS.get(out.suffix.lower())
    if found is None:
        raise UsageError(
            f"--out {out}: the format follows the extension; end the name in .html (one self-contained file) "
            "or .md (Markdown, charts as PNG files beside it)"
        )
    return found


def run(args: argparse.Namespace, settings: Settings) -> int:
    from arena.machine import probe
    from ui.report import gather_report, scope_line
    from ui.report_charts import report_charts
    from ui.report_render import render_html, render_markdown

    fmt = output_format(args.out)
    if args.context < 1:
        raise UsageError(f"--context must be at least 1 token, not {args.context}")
    if not args.target_width > 0:
        raise UsageError(f"--target-width must be above 0 Elo, not {args.target_width:g}")
    if args.out is not None and not args.out.expanduser().parent.is_dir():
        raise UsageError(f"cannot write {args.out}: the folder {args.out.expanduser().parent} does not exist")
    selection = select_battles(args, settings)
    board = build_leaderboard(args, settings, selection)
    machine = probe().machine
    with open_store(settings.db_path, create=False) as store:
        report = gather_report(
            board, store, machine, settings.cache_dir, context_tokens=args.context, target_width=args.target_width
        )
    scope = scope_line(rating_mode(args), args.category, args.voter, machine, args.context)
    scope += "".join(f" Note: {note}." for note in selection.notes())
    if args.out is None:
        print(render_markdown(report, scope), end="")
        return EXIT_OK
    out = args.out.expanduser()
    charts = report_charts(report)
    if fmt == "html":
        text = render_html(report, scope, charts)
        written = [out]
    else:
        names = {name: f"{out.stem}-{name}.png" for name in charts}
        for name, png in charts.items():
            _write_bytes(out.with_name(names[name]), png)
        text = render_markdown(report, scope, names)
        written = [out, *(out.with_name(name) for name in names.values())]
    with open_output(out) as stream:
        stream.write(text)
    print(f"wrote {', '.join(str(path) for path in written)}", file=sys.stderr)
    return EXIT_OK


def _write_bytes(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from exc

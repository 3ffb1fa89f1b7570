"""The decision report gathered from the store and this machine: what `python app.py report`
and the Report tab show. Plain functions; no Gradio here.

    markdown, html = report_view(services, mode="blind", category="all")
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arena.hardware import Machine
from arena.ratings import Leaderboard
from arena.report import DEFAULT_TARGET_WIDTH, Report, build_report
from arena.units import format_bytes
from arena.variant_fits import DEFAULT_CONTEXT_TOKENS, fit_verdicts
from ui.report_charts import report_charts
from ui.report_render import render_html, render_html_fragment, render_markdown, report_css

if TYPE_CHECKING:
    from storage import Store
    from ui.services import ArenaServices

_MODE_WORDS = {"blind": "blind votes", "named": "votes on named comparisons", "all": "all votes"}


def gather_report(
    board: Leaderboard,
    store: Store,
    machine: Machine,
    cache_dir: Path,
    *,
    context_tokens: int = DEFAULT_CONTEXT_TOKENS,
    target_width: float = DEFAULT_TARGET_WIDTH,
) -> Report:
    """The report of `board`: the store's speed figures, each variant's fit on `machine` from the
    spec it last ran as (`arena.variant_fits`), the recommendation, and where each variant wins in
    each judged prompt set."""
    from ui.judge import set_report_sections

    specs = store.variant_specs()
    fits = fit_verdicts({name: specs.get(name) for name in board.models}, machine, cache_dir, context_tokens)
    report = build_report(board, store.speed_by_variant(), fits, target_width=target_width)
    return replace(report, sets=tuple(set_report_sections(store)))


def machine_line(machine: Machine) -> str:
    """This machine in a few words: cores, RAM, GPUs."""
    gpus = ", ".join(f"{gpu.name} ({format_bytes(gpu.total_bytes)})" for gpu in machine.gpus) or "no GPU"
    return f"{machine.cpu_cores} CPU cores, {format_bytes(machine.ram_total_bytes)} RAM, {gpus}"


def scope_line(mode: str, category: str, voter: str | None, machine: Machine, context_tokens: int) -> str:
    """What the report is of: which votes, and the machine its fit verdicts are for."""
    who = f" by {voter}" if voter else ""
    return (
        f"From {_MODE_WORDS.get(mode, mode)}{who} in category {category}. Fits are memory estimates for this "
        f"machine ({machine_line(machine)}) at a context of {context_tokens:,} tokens."
    )


def report_view(services: ArenaServices, mode: str = "blind", category: str = "all",
                **options: Any) -> tuple[str, str]:
    """(Markdown, HTML) of the report for the stored votes of `mode` in `category`: the Markdown
    without charts (it says the HTML has them), the HTML one self-contained document with them.
    `options` are `build_report_of`'s."""
    report, scope = build_report_of(services, mode, category, **options)
    return render_markdown(report, scope), render_html(report, scope, report_charts(report))


def report_page(services: ArenaServices, mode: str = "blind", category: str = "all",
                **options: Any) -> tuple[str, str]:
    """What the Report tab shows: (an HTML fragment for the page, its styles scoped to it, charts
    embedded; the self-contained HTML document to download), from one computation. `options`
    are `build_report_of`'s."""
    report, scope = build_report_of(services, mode, category, **options)
    charts = report_charts(report)
    fragment = f"<style>{report_css()}</style>{render_html_fragment(report, scope, charts)}"
    return fragment, render_html(report, scope, charts)


def build_report_of(
    services: ArenaServices,
    mode: str = "blind",
    category: str = "all",
    *,
    machine: Machine | None = None,
    cache_dir: Path | None = None,
    rounds: int = 1000,
    context_tokens: int = DEFAULT_CONTEXT_TOKENS,
    target_width: float = DEFAULT_TARGET_WIDTH,
) -> tuple[Report, str]:
    """The report of the stored votes of `mode` in `category`, and the line saying what it is of.

    `machine` defaults to a probe of this one (`arena.machine.probe`: psutil, NVML or
    torch.cuda); `cache_dir`, where demo variants are built, to the settings of the environment."""
    from ui.leaderboard import compute_board

    if machine is None:
        from arena.machine import probe

        machine = probe().machine
    if cache_dir is None:
        from arena.settings import Settings

        cache_dir = Settings.from_env().cache_dir
    board = compute_board(services, category, mode=mode, rounds=rounds)
    report = gather_report(
        board, services.store, machine, cache_dir, context_tokens=context_tokens, target_width=target_width
    )
    return report, scope_line(mode, category, None, machine, context_tokens)

"""The handlers of the tabs that look things up rather than run variants: Leaderboard, Variants,
Report and Export. A base class of `ui.app.ArenaApp`, which builds the components and wires the
events (`ArenaApp._wire`); here only what each event does, as in `ui.app`: handlers translate
between Gradio values and plain ones and return dicts keyed by component.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from arena.errors import ArenaError, UsageError
from arena.units import format_bytes, format_seconds
from storage.exports import write_leaderboard_csv
from ui.errors import user_error
from ui.handlers import Handlers
from ui.leaderboard import build_view, compute_board
from ui.lookup_layout import EVERYONE, OLLAMA_HOST_BOX
from ui.views import md_code, md_escape

if TYPE_CHECKING:
    from ui.lookup_layout import ExportTab, LeaderboardTab, ReportTab, VariantsTab


class LookupTabs(Handlers):
    """Leaderboard, Variants, Report and Export handlers over the app's services and access."""

    leaderboard: LeaderboardTab
    variants: VariantsTab
    report: ReportTab
    export: ExportTab
    export_dir: Path

    # ------------------------------------------------------------- leaderboard
    async def refresh_leaderboard(self, category: str | None = None, mode: str | None = None,
                                  voter: str | None = None, request: gr.Request | None = None,
                                  profile: gr.OAuthProfile | None = None) -> dict[Any, Any]:
        """The leaderboard of `category` ("all", "text", "image", "audio") from the votes of `mode`
        ("blind" battles, the default; "named" comparisons; "all") by `voter` (empty or
        "everyone": all voters): summary, table (one row per variant), its charts, and the
        per-voter table (admins; others see their own row). Anyone may see everyone's
        leaderboard and their own; another voter's is for admins."""
        try:
            caller = self.access.caller(request, profile)
            who = None if voter in (None, "", EVERYONE) else str(voter)
            if who is not None and who != caller.name:
                self.access.require_admin(caller, "Another voter's leaderboard")
            view = await asyncio.to_thread(build_view, self.services, category or "all", mode=mode or "blind",
                                           voter=who)
        except ArenaError as exc:
            raise refused(exc, "a leaderboard") from exc
        # the voters table and chart: everyone's for admins, a voter's own row only for the others
        voters = view.voters if caller.admin else [row for row in view.voters if row and row[0] == caller.name]
        lb = self.leaderboard
        return {lb.summary: view.summary, lb.table: view.table, lb.ci_chart: view.ci_chart,
                lb.win_rate_chart: view.win_rate_chart, lb.quality_chart: view.quality_speed_chart,
                lb.voters: voters, lb.voter_chart: view.voter_chart if caller.admin else None}

    async def voter_choices(self, request: gr.Request | None = None, profile: gr.OAuthProfile | None = None) -> Any:
        """The Voter selector: everyone, yourself, and (admins) every voter who voted."""
        caller = self.access.caller(request, profile)
        names = await asyncio.to_thread(self.services.store.voters, mode="all") if caller.admin else []
        choices = [EVERYONE, *dict.fromkeys([caller.name, *names])]
        return gr.Dropdown(choices=choices)

    # ---------------------------------------------------------------- variants
    def variant_status(self, request: gr.Request | None = None,
                       profile: gr.OAuthProfile | None = None) -> dict[Any, Any]:
        """The Variants table, from each variant's state (the same one Compare and Battle read).
        The workers' memory now is shown to admins only: refreshed every second, it would show
        a voter which two variants are answering their blind battle."""
        try:
            live = self.access.caller(request, profile).admin
        except UsageError:
            live = False
        rows = []
        now = time.monotonic()
        for variant in self.services.lineup.variants:
            state = variant.state
            report = variant.report
            caps = variant.backend.capabilities if variant.backend else None
            rows.append([
                variant.name, state.label(now),
                ", ".join(m for m in ("text", "image", "audio") if caps and m in caps.modalities),
                "yes" if caps and caps.tools else "no", "yes" if caps and caps.thinking else "no",
                format_seconds(report.load_s) if report else "-",
                format_bytes(report.weights_bytes) if report else "-",
                format_bytes(process_memory(variant.backend)) if live and state.phase in ("ready", "restarting")
                else "-",
                report.device if report else "-",
                state.detail or variant.progress[1],
            ])
        return {self.variants.table: rows, self.variants.memory: self.services.memory_summary()}

    async def load_variant(self, name: str | None = None, request: gr.Request | None = None,
                           profile: gr.OAuthProfile | None = None) -> str:
        """Load the variant `name` (unloaded, or unavailable) within the server's memory budget;
        returns its new status. One that would not fit is refused with the estimate, what is
        loaded and the budget (or, with `--evict lru`, the least recently used are unloaded
        first). Admins only."""
        return await self._change_variant(self.services.load_variant, "Loading a variant", name, request, profile)

    async def unload_variant(self, name: str | None = None, request: gr.Request | None = None,
                             profile: gr.OAuthProfile | None = None) -> str:
        """Unload the variant `name`, freeing its memory until it is loaded again (battles do not
        draw it meanwhile); returns its new status. Admins only."""
        return await self._change_variant(self.services.unload_variant, "Unloading a variant", name, request,
                                          profile)

    async def _change_variant(self, change: Callable[[str], str], what: str, name: str | None,
                              request: gr.Request | None, profile: gr.OAuthProfile | None) -> str:
        try:
            self.access.require_admin(self.access.caller(request, profile), what)
            if not name:
                raise UsageError("pick a variant first")
            return await asyncio.to_thread(change, str(name))
        except ArenaError as exc:
            raise refused(exc, what.lower()) from exc

    async def discover_ollama(self, host: str | None = None, request: gr.Request | None = None,
                              profile: gr.OAuthProfile | None = None) -> str:
        """The models pulled on the Ollama server at `host` (empty: OLLAMA_HOST or the local
        default), as specs to start the app with; or why they could not be listed (an address
        that is not one is refused before anything connects). Admins only: it makes the server
        connect to any host."""
        from backends.ollama import discover

        try:
            self.access.require_admin(self.access.caller(request, profile), "Listing an Ollama server's models")
        except UsageError as exc:
            raise user_error(exc, action="listing an Ollama server's models") from exc
        try:
            models = await discover((host or "").strip() or os.environ.get("OLLAMA_HOST") or None,
                                    where=f'in the "{OLLAMA_HOST_BOX}" box above')
        except UsageError as exc:
            return f"**Not a server address.** {md_message(str(exc))}"
        except ArenaError as exc:
            return f"**Could not list models:** {md_message(str(exc))}"
        if not models:
            return "No models pulled on that server yet (`ollama pull gemma4:e4b`)."
        lines = ["Start the app with any of these specs (`python app.py --variants SPEC ...`):", ""]
        lines += [f"- {md_code(m.spec)} {format_bytes(m.size_bytes)} {md_escape(m.parameter_size)} "
                  f"{md_escape(m.quantization)}" for m in models]
        return "\n".join(lines)

    # ------------------------------------------------------------------ export
    def _export_handler(self, fmt: str) -> Callable[..., Any]:
        """`export_file` for one format (see `_battle_vote_handler` for why not a partial)."""

        async def export(request: gr.Request | None = None, profile: gr.OAuthProfile | None = None) -> str:
            return await self.export_file(fmt, request, profile)

        return export

    # ------------------------------------------------------------------ report
    async def build_report(self, mode: str | None = None, category: str | None = None,
                           request: gr.Request | None = None,
                           profile: gr.OAuthProfile | None = None) -> dict[Any, Any]:
        """The decision report from the votes of `mode` ("blind", "named", "all") in `category`:
        the page (HTML, charts embedded) and the same as one self-contained HTML file."""
        from ui.report import report_page

        try:
            self.access.caller(request, profile)  # logged in (and not removed since)
            page, document = await asyncio.to_thread(report_page, self.services, mode or "blind", category or "all")
        except ArenaError as exc:
            raise refused(exc, "a report") from exc
        out = Path(tempfile.mkdtemp(dir=self.export_dir)) / "gemma-arena-report.html"
        out.write_text(document, encoding="utf-8")
        return {self.report.page: page, self.report.file: str(out)}

    async def export_file(self, fmt: str, request: gr.Request | None = None,
                          profile: gr.OAuthProfile | None = None) -> str:
        """Write the export `fmt` (csv, jsonl, fastchat: the votes, admins only; leaderboard-csv:
        anyone) to a new file of its own; returns its path."""
        suffix = {"fastchat": "jsonl", "leaderboard-csv": "csv"}.get(fmt, fmt)
        try:
            if fmt in self.export.VOTE_FORMATS:  # votes with everyone's prompts and answers
                self.access.require_admin(self.access.caller(request, profile),
                                          "Exporting everyone's prompts and answers")
        except UsageError as exc:
            raise user_error(exc, action=f"the {fmt} export") from exc
        # a folder of its own per export: two admins exporting at once never share a file
        out = Path(tempfile.mkdtemp(dir=self.export_dir)) / f"gemma-arena-{fmt}.{suffix}"
        try:
            if fmt == "leaderboard-csv":
                board = await asyncio.to_thread(compute_board, self.services, "all")
                await asyncio.to_thread(write_leaderboard_csv, board.rows, out)
            else:
                await asyncio.to_thread(self.services.store.export, fmt, out)
        except ArenaError as exc:
            raise refused(exc, f"the {fmt} export") from exc
        return str(out)


def refused(exc: ArenaError, action: str) -> gr.Error:
    """The gr.Error for a handler's failure: a user's mistake or a refusal (UsageError) logs one
    line (`ui.errors.user_error`); anything else is the server's and keeps its traceback."""
    if isinstance(exc, UsageError):
        return user_error(exc, action=action)
    return gr.Error(str(exc))


#: An error message as inert Markdown with no escaping showing (commands and URLs as code spans).
md_message = md_escape


def process_memory(backend: object) -> int | None:
    """The resident memory (RSS) of a backend's worker process now; None without one (a remote
    variant, an in-process one: its memory is the app's) or when it cannot be read."""
    import psutil

    pid = getattr(backend, "pid", None)
    if not isinstance(pid, int):
        return None
    try:
        return int(psutil.Process(pid).memory_info().rss)
    except psutil.Error:
        return None

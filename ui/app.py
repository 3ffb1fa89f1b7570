"""The Gradio app: layout from `ui.layout`, every event wired in `_wire`, logic in the flows.

Handlers here only translate between Gradio values and the flows' plain values; they return
dicts keyed by component. Variant identities of blind battles live in `Session` (a gr.State),
which never reaches the browser.

Every handler that needs its caller takes `request: gr.Request | None` and, for a Space's
sign-in with Hugging Face, `profile: gr.OAuthProfile | None`: Gradio fills both by type hint and
leaves them out of the API's parameters.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from arena.errors import ArenaError, UsageError
from ui import charts
from ui.access import ANONYMOUS, Access, AccessDenied, Caller
from ui.battle import OUTCOME_TEXT, SIDES, BattleFlow, BattleState
from ui.compare import MAX_PANELS, CompareFlow, CompareState, ComparisonOutcome, ranking_from_ranks
from ui.layout import (
    EXPORT_FORMATS,
    FormSettings,
    Panel,
    render_battle,
    render_compare,
    render_export,
    render_leaderboard,
    render_report,
    render_sign_in,
    render_variants,
)
from ui.lookup_tabs import LookupTabs
from ui.services import ArenaServices
from ui.views import PanelView, md_escape

DEMO_NOTICE = (
    "ℹ️ The `demo:` variants are tiny **random-weight stand-ins** for Gemma 4, built on this machine: "
    "their answers are random tokens, while their architecture, speed and memory figures are real. "
    "Start the app with `--variants hf:google/gemma-4-E4B-it ...`, `ollama:...` or `openai:...` for real answers."
)

CSS = """
.arena-panel { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 6px; }
.arena-panel .stats { font-size: 0.85em; }
.send-status { min-height: 2em; }
"""


@dataclass
class Session:
    """One browser session's state (a gr.State: it never reaches the browser)."""

    compare: CompareState = field(default_factory=CompareState)
    battle: BattleState = field(default_factory=BattleState)
    #: The last streamed panels of each tab, for the step that finishes them.
    compare_outcome: ComparisonOutcome | None = None
    battle_outcome: ComparisonOutcome | None = None
    #: The logged-in user the session was first used by: nobody else may use it.
    owner: str | None = None


class ArenaApp(LookupTabs):
    """The page. `sign_in` adds the "Sign in with Hugging Face" button (on a Space whose OAuth app
    is on: Gradio then serves the login routes); who may vote then follows `access.space`."""

    def __init__(self, services: ArenaServices, access: Access | None = None, *, sign_in: bool = False) -> None:
        self.services = services
        self.access = access or Access()
        self.compare_flow = CompareFlow(services)
        self.battle_flow = BattleFlow(services)
        self.export_dir = Path(tempfile.mkdtemp(prefix="gemma-arena-export-"))
        with gr.Blocks(title="Gemma Arena") as self.blocks:
            self.session = gr.State(Session())
            gr.Markdown("# Gemma Arena\nWhich Gemma 4 variant for your machine? Compare, vote, and see.")
            self.sign_in = render_sign_in() if sign_in else None
            if any(v.spec.prefix == "demo" for v in services.lineup.variants):
                gr.Markdown(DEMO_NOTICE, elem_id="demo-notice")
            with gr.Tabs():
                with gr.Tab("Compare", id="compare"):
                    self.compare = render_compare(services.names, services.limits.max_new_tokens_cap)
                with gr.Tab("Battle", id="battle"):
                    self.battle = render_battle(services.limits.max_new_tokens_cap)
                with gr.Tab("Leaderboard", id="leaderboard") as self.leaderboard_tab:
                    self.leaderboard = render_leaderboard()
                with gr.Tab("Variants", id="variants"):
                    self.variants = render_variants(services.names)
                with gr.Tab("Report", id="report") as self.report_tab:
                    self.report = render_report()
                with gr.Tab("Export", id="export"):
                    self.export = render_export()
            self._wire()

    # ------------------------------------------------------------------ wiring
    def _wire(self) -> None:
        """Every event, in one place. Sending is three steps: set the panels up, stream (only the
        text boxes are outputs, so each update is cheap), then show stats, chart and votes.

        Every event says where its progress shows (`progress_on`): Gradio's page keeps a loading
        status for each component any event has ever had as a target, and refreshes all of them,
        copying each one's props (and its children's), on every message of every event. With the
        default (all outputs) a session that had sent one prompt held ~50 such components; each
        streamed update then cost the page ~25 ms and the first token waited ~80 ms behind them
        (docs/benchmarks.md). So progress shows on one component where it tells the user
        something (a status line under Send while an answer streams), and nowhere else.
        """
        c, b, lb, v, ex = self.compare, self.battle, self.leaderboard, self.variants, self.export
        compare_outputs = [c.chart, c.best, c.vote_best, c.vote_ranking, c.vote_message, *c.ranks]
        compare_outputs += [o for p in c.panels for o in p.outputs]
        preview = {"fn": self.preview_compare, "inputs": [c.variants, c.prompt], "outputs": compare_outputs,
                   **progress_on(), "api_visibility": "private"}
        c.variants.change(**preview)
        c.prompt.change(**preview, trigger_mode="always_last")
        stream = c.send.click(
            self.start_compare, [c.variants, c.prompt, c.settings.thinking], compare_outputs,
            **progress_on(), api_visibility="private",
        ).success(
            self.run_compare, [self.session, c.variants, c.prompt, *c.settings.inputs],
            [*(o for p in c.panels for o in p.live_outputs), c.result], **progress_on(c.status), api_name="compare",
            postprocess=False,
        )
        stream.success(self.finish_compare, [self.session], [self.session, *compare_outputs],
                       **progress_on(c.chart), api_visibility="private")
        c.stop.click(None, cancels=[stream], api_visibility="private")
        leaderboard_outputs = [lb.summary, lb.table, lb.ci_chart, lb.win_rate_chart, lb.quality_chart, lb.voters,
                               lb.voter_chart]
        refresh = {"fn": self.refresh_leaderboard, "inputs": lb.inputs, "outputs": leaderboard_outputs,
                   **progress_on(lb.summary)}
        compare_vote_outputs = [self.session, c.vote_message, c.vote_best, c.vote_ranking]
        # Not preprocessed: the Radio would refuse any name outside its choices, which only the page's
        # finish step fills (an API client never runs it); `vote_best` checks the name against the
        # session's comparison instead. (A gr.Radio subclass would do it too, but Gradio writes a .pyi
        # stub next to the module of every Component subclass when the class is created.)
        c.vote_best.click(self.vote_best, [self.session, c.best], compare_vote_outputs, preprocess=False,
                          **progress_on(c.vote_message), api_name="vote_best").then(**refresh, api_visibility="private")
        c.vote_ranking.click(self.vote_ranking, [self.session, *c.ranks], compare_vote_outputs,
                             **progress_on(c.vote_message), api_name="vote_ranking"
                             ).then(**refresh, api_visibility="private")

        battle_outputs = [self.session, b.reveal, *b.votes.values(), *(o for p in b.panels for o in p.outputs)]
        b.send.click(
            self.start_battle, [b.settings.thinking], battle_outputs[1:], **progress_on(), api_visibility="private"
        ).success(
            self.run_battle, [self.session, b.prompt, *b.settings.inputs],
            [*(o for p in b.panels for o in p.live_outputs), b.result], **progress_on(b.status), api_name="battle",
            postprocess=False,
        ).success(self.finish_battle, [self.session], battle_outputs, **progress_on(), api_visibility="private")
        for outcome, button in b.votes.items():
            button.click(self._battle_vote_handler(outcome), [self.session],
                         [self.session, b.reveal, *b.votes.values()], **progress_on(b.reveal),
                         api_name=f"vote_{outcome}", api_description=f"Vote '{OUTCOME_TEXT[outcome]}' on the "
                         "session's finished battle; returns the reveal (names and stats).",
                         ).then(**refresh, api_visibility="private")
        b.new_round.click(self.new_round, [self.session], [*battle_outputs, b.prompt], **progress_on(),
                          api_name="new_round")

        lb.category.change(**refresh, api_name="leaderboard")
        for selector in (lb.mode, lb.voter):
            selector.change(**refresh, api_visibility="private")
        lb.refresh.click(**refresh, api_visibility="private")
        rp = self.report
        report = {"fn": self.build_report, "inputs": [rp.mode, rp.category], "outputs": [rp.page, rp.file],
                  **progress_on(rp.page)}
        rp.build.click(**report, api_name="report", api_description="The decision report: returns the page "
                       "(HTML) and the same as one self-contained HTML file.")
        self.report_tab.select(**report, api_visibility="private")  # built when opened, not on page load
        # Drawn when the tab is opened, not on page load: the charts take CPU a first prompt needs.
        self.leaderboard_tab.select(**refresh, api_visibility="private")
        self.leaderboard_tab.select(self.voter_choices, None, [lb.voter], **progress_on(), api_visibility="private")
        # What this caller may use: exports of everyone's votes and discovery are for admins.
        caller_outputs = [ex.admins_only, v.discover_box, v.manage_box, *(ex.buttons[fmt] for fmt in ex.VOTE_FORMATS)]
        caller_outputs += [self.sign_in.status] if self.sign_in else []
        self.blocks.load(self.caller_view, None, caller_outputs, **progress_on(), api_visibility="private")
        if self.sign_in is not None:
            self.blocks.load(self.sign_in.check, None, [self.sign_in.button], **progress_on(),
                             api_visibility="private")
        # Refreshed every second for as long as the page is open: a worker that dies later shows at once.
        status = {"fn": self.variant_status, "inputs": None, "outputs": [v.table, v.memory], **progress_on(),
                  "api_visibility": "private"}
        self.blocks.load(**status)  # the table has a status column: no spinner over it
        v.timer.tick(**status)
        v.load.click(self.load_variant, [v.manage_name], [v.manage_message], **progress_on(v.manage_message),
                     api_name="load_variant").then(**status)
        v.unload.click(self.unload_variant, [v.manage_name], [v.manage_message], **progress_on(v.manage_message),
                       api_name="unload_variant").then(**status)
        v.discover.click(self.discover_ollama, [v.discover_host], [v.discovered], **progress_on(v.discovered),
                         api_name="discover_ollama")
        for fmt, button in ex.buttons.items():
            button.click(self._export_handler(fmt), None, [ex.file], **progress_on(ex.file),
                         api_name=f"export_{fmt}", api_description=f"Export {EXPORT_FORMATS[fmt]}; returns the file.")

    # ----------------------------------------------------------------- compare
    def preview_compare(self, selected: list[str], message: dict[str, Any] | None) -> dict[Any, Any]:
        views = self.compare_flow.preview(selected or [], message)
        return self._panels(self.compare.panels, views) | self._compare_votes(None)

    def start_compare(self, selected: list[str], message: dict[str, Any] | None, thinking: bool) -> dict[Any, Any]:
        views = self.compare_flow.preview(selected or [], message)
        return (self._panels(self.compare.panels, views, expect_thinking=bool(thinking))
                | self._compare_votes(None) | {self.compare.chart: None})

    async def run_compare(
        self, session: Session, variants: list[str] | None = None, prompt: dict[str, Any] | None = None,
        system: str | None = None, temperature: float | None = None, top_p: float | None = None,
        top_k: float | None = None, max_new_tokens: float | None = None, seed: str | None = None,
        thinking: bool | None = None, tools: str | None = None, request: gr.Request | None = None,
        profile: gr.OAuthProfile | None = None,
    ) -> AsyncIterator[list[Any]]:
        """Send `prompt` ({"text", "files"}) to `variants` side by side and record the comparison.
        Streams each panel's answer and thinking; the last output, set when all have ended, is
        {"battle_id", "vote_on", "results": [{"variant", "text", "thinking", "tool_calls", "stats",
        "error", "error_kind"}]}: a variant that failed has its error there. `seed` empty: a
        random one."""
        session.compare_outcome = None
        try:
            caller = self._caller(session, request, profile)
            options = FormSettings.options(system, temperature, top_p, top_k, max_new_tokens, seed, thinking, tools)
            with self.access.generating(caller):
                async for outcome in self.compare_flow.run(session.compare, variants or [], prompt, options,
                                                           voter=caller.name):
                    session.compare_outcome = outcome  # the session is mutated in place: gr.State keeps it
                    yield [*self._live(outcome.views, len(self.compare.panels)), outcome.summary]
        except ArenaError as exc:
            raise gr.Error(str(exc)) from exc
        finally:
            self._mark_used(session.compare_outcome)

    async def finish_compare(self, session: Session) -> dict[Any, Any]:
        outcome = session.compare_outcome
        if outcome is None:
            return {self.session: session}
        results = [r for r in outcome.results if r is not None]
        chart = await asyncio.to_thread(charts.stats_chart, results) if any(r.ok for r in results) else None
        return (self._panels(self.compare.panels, outcome.views) | self._compare_votes(session.compare)
                | {self.session: session, self.compare.chart: chart})

    def vote_best(self, session: Session, best: str | None = None, request: gr.Request | None = None,
                  profile: gr.OAuthProfile | None = None) -> dict[Any, Any]:
        """Vote `best` (a variant name) the best answer of the session's last comparison;
        returns the confirmation. A name that did not answer there is refused."""
        if not best:
            raise gr.Error("pick the best answer first")
        return self._compare_vote(session, request, profile, best=str(best))  # not preprocessed: the raw value sent

    def vote_ranking(self, session: Session, rank_1: str | None = None, rank_2: str | None = None,
                     rank_3: str | None = None, rank_4: str | None = None,
                     request: gr.Request | None = None, profile: gr.OAuthProfile | None = None) -> dict[Any, Any]:
        """Rank the answers of the session's last comparison: `rank_N` is the rank ("1" = best,
        equal ranks tie) of the Nth variant that answered, in the order `/compare` listed them in
        `vote_on`; returns the confirmation. One parameter per rank dropdown (MAX_PANELS of them):
        named, so an API client can call it with keywords."""
        ranks = (rank_1, rank_2, rank_3, rank_4)
        try:
            ranking = ranking_from_ranks(session.compare.votable, ranks)
        except UsageError as exc:
            raise gr.Error(str(exc)) from exc
        return self._compare_vote(session, request, profile, ranking=ranking)

    def _compare_vote(self, session: Session, request: gr.Request | None, profile: gr.OAuthProfile | None,
                      **vote: Any) -> dict[Any, Any]:
        try:
            caller = self._caller(session, request, profile)
            message = self._counted_vote(caller, lambda: self.compare_flow.vote(session.compare, voter=caller.name,
                                                                                 **vote))
        except UsageError as exc:
            raise gr.Error(str(exc)) from exc
        off = gr.Button(interactive=False)
        return {self.session: session, self.compare.vote_message: message,
                self.compare.vote_best: off, self.compare.vote_ranking: off}

    def _compare_votes(self, state: CompareState | None) -> dict[Any, Any]:
        """Vote controls: enabled once a comparison of 2+ variants is stored and not yet voted."""
        c = self.compare
        names = list(state.votable) if state else []
        active = bool(names)
        out = {c.best: gr.Radio(choices=names, value=None), c.vote_best: gr.Button(interactive=active),
               c.vote_ranking: gr.Button(interactive=active), c.vote_message: ""}
        for i, dropdown in enumerate(c.ranks):
            shown = active and i < len(names)
            out[dropdown] = gr.Dropdown(label=f"rank of {names[i]}" if shown else "", value=None, visible=shown)
        return out

    # ------------------------------------------------------------------ battle
    def start_battle(self, thinking: bool) -> dict[Any, Any]:
        views = [PanelView(title=side) for side in SIDES]
        return (self._panels(self.battle.panels, views, expect_thinking=bool(thinking)) | self._battle_votes(False)
                | {self.battle.reveal: ""})

    async def run_battle(
        self, session: Session, prompt: dict[str, Any] | None = None, system: str | None = None,
        max_new_tokens: float | None = None, thinking: bool | None = None, tools: str | None = None,
        request: gr.Request | None = None, profile: gr.OAuthProfile | None = None,
    ) -> AsyncIterator[list[Any]]:
        """A blind battle: two variants drawn at random answer `prompt` ({"text", "files"}) as
        Model A and Model B, sampled as the model family recommends with a seed only the server
        knows. Both answers stream at one common pace; the last output, set when both have
        ended, is {"can_vote", "results": [{"side", "text", "thinking", "tool_calls", "error",
        "error_kind"}]}, with no names or stats and error messages redacted until the vote."""
        session.battle_outcome = None
        try:
            caller = self._caller(session, request, profile)
            options = FormSettings.options(system, None, None, None, max_new_tokens, None, thinking, tools)
            with self.access.generating(caller):
                async for outcome in self.battle_flow.run(session.battle, prompt, options, voter=caller.name):
                    session.battle_outcome = outcome
                    yield [*self._live(outcome.views, len(self.battle.panels)), outcome.summary]
        except ArenaError as exc:
            raise gr.Error(str(exc)) from exc
        finally:
            self._mark_used(session.battle_outcome)

    def finish_battle(self, session: Session) -> dict[Any, Any]:
        views = session.battle_outcome.views if session.battle_outcome else []
        note = "" if session.battle.can_vote else "This battle had an error and takes no vote: start a new round."
        # both thinking boxes show when thinking was asked or either side thought: a side without
        # a trace looks like one with an empty trace
        thinking = session.battle.thinking or any(view.thinking for view in views)
        return (self._panels(self.battle.panels, views, expect_thinking=thinking)
                | self._battle_votes(session.battle.can_vote) | {self.session: session, self.battle.reveal: note})

    def vote_battle(self, outcome: str, session: Session, request: gr.Request | None = None,
                    profile: gr.OAuthProfile | None = None) -> dict[Any, Any]:
        try:
            caller = self._caller(session, request, profile)
            reveal = self._counted_vote(caller, lambda: self.battle_flow.vote(session.battle, outcome,
                                                                               voter=caller.name))
        except UsageError as exc:
            raise gr.Error(str(exc)) from exc
        return {self.session: session, self.battle.reveal: reveal} | self._battle_votes(False)

    def _battle_vote_handler(self, outcome: str) -> Callable[..., dict[Any, Any]]:
        """`vote_battle` for one outcome. A function of its own, not functools.partial: Gradio
        finds the gr.Request parameter by the handler's type hints, which a partial hides."""

        def vote(session: Session, request: gr.Request | None = None,
                 profile: gr.OAuthProfile | None = None) -> dict[Any, Any]:
            return self.vote_battle(outcome, session, request, profile)

        return vote

    def new_round(self, session: Session, request: gr.Request | None = None,
                  profile: gr.OAuthProfile | None = None) -> dict[Any, Any]:
        """Forget the session's battle (voted or not) and clear the Battle tab for the next prompt."""
        try:
            self._caller(session, request, profile)
        except UsageError as exc:
            raise gr.Error(str(exc)) from exc
        self.battle_flow.new_round(session.battle)
        views = [PanelView(title="Model A"), PanelView(title="Model B")]
        return (self._panels(self.battle.panels, views) | self._battle_votes(False)
                | {self.session: session, self.battle.reveal: "", self.battle.prompt: None})

    def _battle_votes(self, enabled: bool) -> dict[Any, Any]:
        return {button: gr.Button(interactive=enabled) for button in self.battle.votes.values()}

    # -------------------------------------------------------------------- page
    def caller_view(self, request: gr.Request | None = None, profile: gr.OAuthProfile | None = None) -> dict[Any, Any]:
        """Hide what this caller may not use (the server refuses it anyway); on a Space, say who
        they are signed in as and whether they may vote."""
        try:
            caller: Caller | None = self.access.caller(request, profile)
        except UsageError:
            caller = None
        admin = caller is not None and caller.admin
        ex = self.export
        shown: dict[Any, Any] = {ex.admins_only: gr.Markdown(visible=not admin),
                                 self.variants.discover_box: gr.Accordion(visible=admin),
                                 self.variants.manage_box: gr.Accordion(visible=admin)}
        if self.sign_in is not None:
            shown[self.sign_in.status] = sign_in_status(caller)
        return shown | {ex.buttons[fmt]: gr.Button(visible=admin) for fmt in ex.VOTE_FORMATS}

    # ----------------------------------------------------------------- helpers
    def _mark_used(self, outcome: ComparisonOutcome | None) -> None:
        """The variants that answered are the last to be unloaded to make room (`--evict lru`)."""
        if outcome is not None:
            self.services.mark_used(r.variant for r in outcome.results if r is not None and r.ok)

    def _caller(self, session: Session, request: gr.Request | None, profile: gr.OAuthProfile | None = None) -> Caller:
        """Who sends this event; a session first used by one logged-in user is theirs alone
        (another user who got hold of its id is refused)."""
        caller = self.access.caller(request, profile)
        if self.access.logins:
            if session.owner is None:
                session.owner = caller.key
            elif session.owner != caller.key:
                raise AccessDenied("this session belongs to another user: reload the page")
        return caller

    def _counted_vote(self, caller: Caller, record: Callable[[], str]) -> str:
        """Record a vote of a caller who may vote, under their per-user rate limit; a vote the
        store refuses is not counted."""
        self.access.require_vote(caller)
        self.access.count_vote(caller)
        try:
            return record()
        except BaseException:
            self.access.refund_vote(caller)
            raise

    @staticmethod
    def _panels(panels: list[Any], views: list[PanelView], expect_thinking: bool = False) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for i, panel in enumerate(panels[:MAX_PANELS]):
            out |= panel.show(views[i] if i < len(views) else None, expect_thinking)
        return out

    @staticmethod
    def _live(views: list[PanelView], panels: int) -> list[str]:
        """The streaming step's values: answer and thinking of each panel, in `live_outputs` order."""
        return [text for i in range(panels) for text in Panel.live(views[i] if i < len(views) else None)]


def sign_in_status(caller: Caller | None) -> str:
    """The line under the sign-in button: who the votes are recorded under, or why there are none."""
    if caller is None:
        return "Your sign-in could not be read: sign out and in again."
    if caller.name == ANONYMOUS:
        if caller.vote_refusal:
            return f"Not signed in: you can compare and battle, but {caller.vote_refusal}."
        return (f"Not signed in: you can compare, battle and vote; your votes are recorded as `{ANONYMOUS}`. "
                "Sign in to vote under your Hugging Face name.")
    who = f"Signed in as **{md_escape(caller.name)}**" + (" (admin)" if caller.admin else "")
    if caller.vote_refusal:
        return f"{who}: you can compare and battle, but {caller.vote_refusal}."
    return f"{who}: your votes are recorded under your Hugging Face name."


def progress_on(component: Any = None) -> dict[str, Any]:
    """An event's progress keywords: Gradio's spinner and timer on `component` alone, or (None) on
    nothing. See `ArenaApp._wire` for why no event shows it on all its outputs."""
    if component is None:
        return {"show_progress": "hidden", "show_progress_on": []}
    return {"show_progress": "full", "show_progress_on": [component]}

"""The Gradio app: layout from `ui.layout`, every event wired in `_wire`, logic in the flows.

Handlers here only translate between Gradio values and the flows' plain values; they return
dicts keyed by component. Variant identities of blind battles live in `Session` (a gr.State),
which never reaches the browser.

Every handler that needs its caller takes `request: gr.Request | None` and, for a Space's
sign-in with Hugging Face, `profile: gr.OAuthProfile | None`: Gradio fills both by type hint and
leaves them out of the API's parameters.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import gradio as gr

from arena.errors import UsageError
from ui import charts
from ui.access import ANONYMOUS, Access, Caller
from ui.battle import OUTCOME_TEXT, BattleFlow
from ui.battle_tab import BattleHandlers
from ui.compare import CompareFlow
from ui.compare_tab import CompareHandlers
from ui.handlers import Session, progress_on
from ui.history import COLUMNS as HISTORY_COLUMNS
from ui.history import HistoryFlow
from ui.history_tab import HistoryHandlers
from ui.judge import JudgeFlow
from ui.judge_layout import render_judge
from ui.judge_tab import JudgeHandlers
from ui.layout import render_battle, render_compare, render_history, render_result, render_sign_in
from ui.lookup_layout import (
    DOWNLOAD_JS,
    EXPORT_FORMATS,
    render_export,
    render_leaderboard,
    render_report,
    render_variants,
)
from ui.lookup_tabs import LookupTabs
from ui.services import ArenaServices
from ui.sessions import SessionRegistry
from ui.style import CSS
from ui.views import md_escape

DEMO_NOTICE = (
    "ℹ️ The `demo:` variants are tiny **random-weight stand-ins** for Gemma 4, built on this machine: "
    "their answers are random tokens, while their architecture, speed and memory figures are real. "
    "Start the app with `--variants hf:google/gemma-4-E4B-it ...`, `ollama:...` or `openai:...` for real answers."
)

class ArenaApp(CompareHandlers, BattleHandlers, LookupTabs, JudgeHandlers, HistoryHandlers):
    """The page. `sign_in` adds the "Sign in with Hugging Face" button (on a Space whose OAuth app
    is on: Gradio then serves the login routes); who may vote then follows `access.space`."""

    def __init__(self, services: ArenaServices, access: Access | None = None, *, sign_in: bool = False) -> None:
        self.services = services
        self.access = access or Access()
        self.compare_flow = CompareFlow(services)
        self.battle_flow = BattleFlow(services)
        self.history_flow = HistoryFlow(services)
        self.judge_flow = JudgeFlow(services.store, voter=services.voter)
        self.export_dir = Path(tempfile.mkdtemp(prefix="gemma-arena-export-"))
        self.registry: SessionRegistry[Session] = SessionRegistry(Session)
        with gr.Blocks(title="Gemma Arena") as self.blocks:
            self.session = gr.State(Session())
            # the key of this browser's session on the server (`ui.sessions`): a reload finds it again
            self.browser_key = gr.BrowserState(None, storage_key="gemma-arena-session")
            gr.Markdown("# Gemma Arena\nWhich Gemma 4 variant for your machine? Compare, vote, and see.")
            self.sign_in = render_sign_in() if sign_in else None
            if any(v.spec.prefix == "demo" for v in services.lineup.variants):
                gr.Markdown(DEMO_NOTICE, elem_id="demo-notice")
            self.loading_timer = gr.Timer(1.0)
            self.raw = gr.Checkbox(False, label="Show answers as raw text (not rendered as Markdown)",
                                   elem_id="raw-toggle", container=False)
            with gr.Tabs() as self.tabs:
                with gr.Tab("Compare", id="compare"):
                    self.compare = render_compare(services.names, services.limits.max_new_tokens_cap)
                with gr.Tab("Battle", id="battle"):
                    self.battle = render_battle(services.limits.max_new_tokens_cap)
                with gr.Tab("Judge", id="judge") as self.judge_tab:
                    self.judge = render_judge()
                    self.judge_result = render_result("judge-result")
                with gr.Tab("History", id="history") as self.history_tab:
                    self.history = render_history(HISTORY_COLUMNS)
                    self.history_result = render_result("history-result")
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
        compare_outputs = [c.chart, c.best, c.vote_best, c.vote_ranking, c.vote_message, *c.ranks, c.preview,
                           c.buttons.regenerate]
        compare_outputs += [o for p in c.panels for o in p.outputs]
        compare_live = [*(o for p in c.panels for o in p.live_outputs), c.result]
        preview = {"fn": self.preview_compare, "inputs": [self.session, c.variants, c.prompt],
                   "outputs": compare_outputs, **progress_on(), "api_visibility": "private"}
        c.variants.change(**preview)
        c.prompt.change(**preview, trigger_mode="always_last")
        finish_compare = {"fn": self.finish_compare, "inputs": [self.session], "outputs": [self.session,
                          *compare_outputs], **progress_on(c.chart), "api_visibility": "private"}
        c.send.click(
            self.start_compare, [self.session, c.variants, c.prompt, c.settings.thinking], compare_outputs,
            **progress_on(), api_visibility="private",
        ).success(
            self.run_compare, [self.session, c.variants, c.prompt, *c.settings.inputs], compare_live,
            **progress_on(c.status), api_name="compare", postprocess=False,
        ).success(**finish_compare)
        c.buttons.regenerate.click(
            self.start_regenerate_compare, [self.session, c.settings.thinking], compare_outputs, **progress_on(),
            api_visibility="private",
        ).success(
            self.regenerate_compare, [self.session, *c.settings.inputs], compare_live, **progress_on(c.status),
            api_name="regenerate_compare", postprocess=False,
        ).success(**finish_compare)
        # Stop asks the answers to end where they are (not a cancel of the event): the finish step
        # then shows them marked "stopped", with the figures measured so far.
        c.stop.click(self.stop_compare, [self.session], None, **progress_on(), api_name="stop_compare",
                     concurrency_limit=None)
        c.buttons.clear.click(self.clear_compare, [self.session, c.variants],
                              [self.session, c.prompt, *compare_outputs], **progress_on(), api_name="new_conversation")
        leaderboard_outputs = [lb.summary, lb.table, lb.ci_chart, lb.win_rate_chart, lb.quality_chart, lb.voters,
                               lb.voter_chart]
        refresh = {"fn": self.refresh_leaderboard, "inputs": lb.inputs, "outputs": leaderboard_outputs,
                   **progress_on(lb.summary)}
        compare_vote_outputs = [self.session, c.vote_message, c.vote_best, c.vote_ranking, c.buttons.regenerate]
        after_vote = {"fn": self.after_compare_vote, "inputs": [self.session], "outputs": [c.preview],
                      **progress_on(), "api_visibility": "private"}
        # Not preprocessed: the Radio would refuse any name outside its choices, which only the page's
        # finish step fills (an API client never runs it); `vote_best` checks the name against the
        # session's comparison instead. (A gr.Radio subclass would do it too, but Gradio writes a .pyi
        # stub next to the module of every Component subclass when the class is created.)
        c.vote_best.click(self.vote_best, [self.session, c.best], compare_vote_outputs, preprocess=False,
                          **progress_on(c.vote_message), api_name="vote_best"
                          ).success(**after_vote).then(**refresh, api_visibility="private")
        c.vote_ranking.click(self.vote_ranking, [self.session, *c.ranks], compare_vote_outputs,
                             **progress_on(c.vote_message), api_name="vote_ranking"
                             ).success(**after_vote).then(**refresh, api_visibility="private")

        battle_outputs = [self.session, b.reveal, b.buttons.regenerate, *b.votes.values(),
                          *(o for p in b.panels for o in p.outputs)]
        battle_live = [*(o for p in b.panels for o in p.live_outputs), b.result]
        finish_battle = {"fn": self.finish_battle, "inputs": [self.session], "outputs": battle_outputs,
                         **progress_on(), "api_visibility": "private"}
        b.send.click(
            self.start_battle, [self.session, b.prompt, b.settings.thinking], battle_outputs[1:], **progress_on(),
            api_visibility="private",
        ).success(
            self.run_battle, [self.session, b.prompt, *b.settings.inputs], battle_live, **progress_on(b.status),
            api_name="battle", postprocess=False,
        ).success(**finish_battle)
        b.buttons.regenerate.click(
            self.start_regenerate_battle, [self.session, b.settings.thinking], battle_outputs[1:], **progress_on(),
            api_visibility="private",
        ).success(
            self.regenerate_battle, [self.session, *b.settings.inputs], battle_live, **progress_on(b.status),
            api_name="regenerate_battle", postprocess=False,
        ).success(**finish_battle)
        b.buttons.stop.click(self.stop_battle, [self.session], None, **progress_on(), api_name="stop_battle",
                             concurrency_limit=None)
        battle_panels = [o for p in b.panels for o in p.outputs]
        for outcome, button in b.votes.items():
            # the endpoint returns the reveal alone; the panels show it next, in a step of the page's own
            button.click(self._battle_vote_handler(outcome), [self.session],
                         [self.session, b.reveal, b.buttons.regenerate, *b.votes.values()], **progress_on(b.reveal),
                         api_name=f"vote_{outcome}", api_description=f"Vote '{OUTCOME_TEXT[outcome]}' on the "
                         "session's battle (the vote covers its whole conversation); returns the reveal (names "
                         "and stats).",
                         ).success(self.reveal_battle, [self.session], battle_panels, **progress_on(),
                                   api_visibility="private").then(**refresh, api_visibility="private")
        b.new_round.click(self.new_round, [self.session], [*battle_outputs, b.prompt], **progress_on(),
                          api_name="new_round")

        # The raw-text switch is the page's alone: a class on <body> shows `.answer-raw` instead
        # of `.answer-rendered` in every panel, streaming or not; nothing is sent to the server.
        self.raw.change(None, [self.raw], None, js="(raw) => { document.body.classList.toggle('arena-raw', raw); }",
                        **progress_on(), api_visibility="private")
        # A reload (or a reconnect) finds this browser's session again, with its conversations.
        restored = [self.session, self.browser_key, *compare_outputs, *battle_outputs[1:]]
        self.blocks.load(self.restore_session, [self.browser_key, c.variants], restored, **progress_on(),
                         api_visibility="private")
        # While variants load, the Compare panels say how far each is, until a comparison is shown;
        # the timer stops once every variant has settled (no event a second for the page's lifetime).
        self.loading_timer.tick(self.tick_loading, [self.session, c.variants],
                                [self.loading_timer, *(o for p in c.panels for o in p.outputs)], **progress_on(),
                                api_visibility="private")

        self.wire_judge(self.session, progress_on)
        h = self.history
        listing = {"fn": self.list_history, "inputs": [self.session], "outputs": [self.session, h.table,
                   self.history_result], **progress_on(h.table)}
        h.refresh.click(**listing, api_name="history", api_description="Your past conversations, newest first: "
                        "returns the table and [{battle_id, conversation, kind, started_at, last_turn_at, turns, "
                        "prompt, variants (none for a blind battle before its vote), vote, can_vote}].")
        self.history_tab.select(self.show_history, [self.session], [self.session, h.table, self.history_result,
                                h.message], **progress_on(h.table), api_visibility="private")
        h.table.select(self.pick_history, [self.session], [h.battle_id, h.view], **progress_on(),
                       api_visibility="private")
        h.open.click(self.open_history, [self.session, h.battle_id], [self.session, h.message],
                     **progress_on(h.message), api_name="open_history",
                     api_description="Open a past conversation (`battle_id` from /history) in its tab, to vote on "
                     "it with /vote_best, /vote_ranking or /vote_a ... (or ask a follow-up); returns what was done.",
                     ).success(self.show_opened, [self.session], [self.tabs, *compare_outputs, *battle_outputs[1:]],
                               **progress_on(), api_visibility="private")

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
            # one click: the file is written, then the page downloads it at once (a DownloadButton's
            # own download would be of the file written by the click before)
            button.click(self._export_handler(fmt), None, [ex.file], **progress_on(ex.file),
                         api_name=f"export_{fmt}", api_description=f"Export {EXPORT_FORMATS[fmt]}; returns the file.",
                         ).success(None, [ex.file], None, js=DOWNLOAD_JS, api_visibility="private")

    # -------------------------------------------------------------------- page
    def show_opened(self, session: Session) -> dict[Any, Any]:
        """The tab a conversation was opened in, with its panels and votes."""
        if session.opened is None:
            return {}
        tab, session.opened = session.opened, None
        out: dict[Any, Any] = {self.tabs: gr.Tabs(selected=tab)}
        if tab == "compare":
            state = session.compare
            session.compare_outcome = None
            return (out | self._panels(self.compare.panels, state.views) | self._compare_votes(state)
                    | {self.compare.chart: None, self.compare.buttons.regenerate:
                       gr.Button(interactive=self._can_regenerate(state)),
                       self.compare.preview: self.compare_flow.next_send(state, state.variants_picked, None)})
        battle = session.battle
        session.battle_outcome = None
        views = self.battle_flow.revealed(battle) if battle.phase == "voted" else battle.views
        return (out | self._panels(self.battle.panels, views, expect_thinking=battle.thinking)
                | self._battle_votes(battle.can_vote)
                | {self.battle.reveal: "", self.battle.buttons.regenerate:
                   gr.Button(interactive=self._battle_regenerates(battle))})

    def launch(self, **options: Any) -> Any:
        """Start the server with the page's CSS (Gradio 6 takes it at launch)."""
        return self.blocks.launch(css=CSS, **options)

    def restore_session(self, key: str | None, selected: list[str] | None, request: gr.Request | None = None,
                        profile: gr.OAuthProfile | None = None) -> dict[Any, Any]:
        """On page load: the session kept under this browser's key, with the panels, votes and
        reveal as they were; a new session (and key) when there is none, or when it belongs to
        another user who signed in on this browser."""
        key, session, found = self.registry.restore(key)
        if found and self.access.logins and session.owner is not None:
            try:
                caller = self.access.caller(request, profile)
            except UsageError:
                caller = None
            if caller is None or caller.key != session.owner:
                key, session = self.registry.replace(Session())
                found = False
        out: dict[Any, Any] = {self.session: session, self.browser_key: key}
        compare, battle = session.compare, session.battle
        if compare.shown:
            finished = [r for r in session.compare_outcome.results if r is not None] if session.compare_outcome else []
            if any(r.ok for r in finished):
                out[self.compare.chart] = charts.stats_chart(finished)
            out |= (self._panels(self.compare.panels, compare.views) | self._compare_votes(compare)
                    | {self.compare.buttons.regenerate: gr.Button(interactive=self._can_regenerate(compare)),
                       self.compare.preview: self.compare_flow.next_send(compare, compare.variants_picked, None)})
            if compare.voted:
                out[self.compare.vote_message] = "This conversation has your vote."
        elif self.services.loading:  # the page's first paint says how far each variant is
            out |= self._panels(self.compare.panels, self.compare_flow.preview(selected or [], None))
        if battle.views:
            voted = battle.phase == "voted"
            views = self.battle_flow.revealed(battle) if voted else battle.views
            out |= (self._panels(self.battle.panels, views, expect_thinking=battle.thinking)
                    | self._battle_votes(battle.can_vote)
                    | {self.battle.reveal: battle.reveal if voted else "",
                       self.battle.buttons.regenerate: gr.Button(interactive=self._battle_regenerates(battle))})
        return out

    def loading_notes(self, session: Session, selected: list[str] | None) -> dict[Any, Any]:
        """The Compare panels' notes while variants load ("still loading (40%: ...)"); nothing once
        all are settled or a comparison is on the panels."""
        if session.compare.shown or not self.services.loading:
            return {}
        return self._panels(self.compare.panels, self.compare_flow.preview(selected or [], None))

    def tick_loading(self, session: Session, selected: list[str] | None) -> dict[Any, Any]:
        """`loading_notes` each second, and the timer stopped once nothing loads any more."""
        if not self.services.loading:
            return {self.loading_timer: gr.Timer(active=False)}
        return self.loading_notes(session, selected)

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

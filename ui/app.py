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
from ui.battle import OUTCOME_TEXT, BattleFlow, BattleState
from ui.compare import MAX_PANELS, CompareFlow, CompareState, ComparisonOutcome, ranking_from_ranks
from ui.errors import user_error
from ui.history import COLUMNS as HISTORY_COLUMNS
from ui.history import HistoryFlow, entry_json, row
from ui.judge import JudgeFlow
from ui.judge_layout import render_judge
from ui.judge_tab import JudgeHandlers
from ui.layout import FormSettings, Panel, render_battle, render_compare, render_history, render_result, render_sign_in
from ui.lookup_layout import (
    DOWNLOAD_JS,
    EXPORT_FORMATS,
    LEADERBOARD_CSS,
    render_export,
    render_leaderboard,
    render_report,
    render_variants,
)
from ui.lookup_tabs import LookupTabs
from ui.services import ArenaServices
from ui.sessions import SessionRegistry
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
/* answers: rendered Markdown, or (the raw-text switch) the text as the model wrote it */
.answer-rendered, .answer-raw { max-height: 32em; overflow: auto; overflow-wrap: anywhere; }
.answer-raw { display: none; white-space: pre-wrap; font-family: var(--font-mono); font-size: 0.9em; margin: 0; }
/* !important: Gradio also adds a copy of each rule under its container, more specific than these */
.arena-raw .answer-raw { display: block !important; }
.arena-raw .answer-rendered { display: none !important; }
.answer-rendered pre { overflow-x: auto; }
.answer-rendered table { display: block; overflow-x: auto; }
.history .turn-user { margin: 4px 0; padding: 4px 8px; border-radius: 6px;
                      background: var(--background-fill-secondary); }
.history .turn-label { font-weight: 600; }
.history .attachment { margin-left: 6px; font-size: 0.85em; }
.history .turn-answer { margin: 4px 0 10px 0; padding-left: 8px; border-left: 3px solid var(--border-color-primary); }
.history .answer-rendered, .history .answer-raw { max-height: 12em; }
@media (max-width: 640px) {
  .answer-rendered, .answer-raw { max-height: 16em; }
  .send-row button, .vote-row button { min-width: 45% !important; }
}
""" + LEADERBOARD_CSS


@dataclass
class Session:
    """One browser's state (a gr.State: it never reaches the browser). Kept in `SessionRegistry`
    under a key the browser holds, so a reload finds its conversations again."""

    compare: CompareState = field(default_factory=CompareState)
    battle: BattleState = field(default_factory=BattleState)
    #: The last streamed panels of each tab, for the step that finishes them.
    compare_outcome: ComparisonOutcome | None = None
    battle_outcome: ComparisonOutcome | None = None
    #: The logged-in user the session was first used by: nobody else may use it.
    owner: str | None = None
    #: The tab a conversation from History was just opened in (its panels are drawn next).
    opened: str | None = None
    #: The battle ids of the History table's rows, as last listed for this session.
    history_ids: list[str] = field(default_factory=list)
    #: Set by Stop while a tab's answers stream (`asyncio.Event`s of the server's loop).
    compare_stop: asyncio.Event | None = None
    battle_stop: asyncio.Event | None = None

    def __deepcopy__(self, memo: dict[int, Any]) -> Session:
        # gr.State deep-copies its initial value for each new page: a fresh Session is that copy
        return Session()


class ArenaApp(LookupTabs, JudgeHandlers):
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
        # While variants load, the Compare panels say how far each is, until a comparison is shown.
        v.timer.tick(self.loading_notes, [self.session, c.variants], [o for p in c.panels for o in p.outputs],
                     **progress_on(), api_visibility="private")

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

    # ----------------------------------------------------------------- compare
    def preview_compare(self, session: Session, selected: list[str] | None,
                        message: dict[str, Any] | None) -> dict[Any, Any]:
        """What the next Send will do, under it. Typing or picking other variants never touches
        a comparison on the panels (answered, stopped or failed, voted or not); with none shown,
        the panels follow the selection (names, and notes such as "still loading")."""
        state = session.compare
        out: dict[Any, Any] = {self.compare.preview: self.compare_flow.next_send(state, selected or [], message)}
        if not state.shown:
            out |= self._panels(self.compare.panels, self.compare_flow.preview(selected or [], message))
        return out

    def start_compare(self, session: Session, selected: list[str] | None, message: dict[str, Any] | None,
                      thinking: bool) -> dict[Any, Any]:
        """The panels as Send starts: the conversation so far and the new prompt, answers empty."""
        views = self.compare_flow.pending(session.compare, selected or [], message)
        return (self._panels(self.compare.panels, views, expect_thinking=bool(thinking))
                | self._compare_votes(None) | {self.compare.chart: None, self.compare.preview: "",
                                               self.compare.buttons.regenerate: gr.Button(interactive=False)})

    def start_regenerate_compare(self, session: Session, thinking: bool) -> dict[Any, Any]:
        views = self.compare_flow.pending(session.compare, None, None, regenerate=True)
        return (self._panels(self.compare.panels, views, expect_thinking=bool(thinking))
                | self._compare_votes(None) | {self.compare.chart: None,
                                               self.compare.buttons.regenerate: gr.Button(interactive=False)})

    async def run_compare(
        self, session: Session, variants: list[str] | None = None, prompt: dict[str, Any] | None = None,
        system: str | None = None, temperature: float | None = None, top_p: float | None = None,
        top_k: float | None = None, max_new_tokens: float | None = None, seed: str | None = None,
        thinking: bool | None = None, tools: str | None = None, request: gr.Request | None = None,
        profile: gr.OAuthProfile | None = None,
    ) -> AsyncIterator[list[Any]]:
        """Send `prompt` ({"text", "files"}) to `variants` side by side and record the comparison:
        a follow-up turn when the session's conversation has the same variants and no vote yet
        (each variant answers with its own history), else the first turn of a new conversation.
        Streams each panel's answer (HTML) and thinking; the last output, set when all have
        ended, is {"battle_id", "turn", "vote_on", "no_vote", "results": [{"variant", "text",
        "thinking", "tool_calls", "stats", "error", "error_kind"}]}: a variant that failed has
        its error there. `seed` empty: a random one."""
        options_of = (system, temperature, top_p, top_k, max_new_tokens, seed, thinking, tools)
        async for update in self._stream_compare(session, request, profile, variants or [], prompt, options_of):
            yield update

    async def regenerate_compare(
        self, session: Session, system: str | None = None, temperature: float | None = None,
        top_p: float | None = None, top_k: float | None = None, max_new_tokens: float | None = None,
        seed: str | None = None, thinking: bool | None = None, tools: str | None = None,
        request: gr.Request | None = None, profile: gr.OAuthProfile | None = None,
    ) -> AsyncIterator[list[Any]]:
        """Send the last turn of the session's comparison again (new answers, stored beside the
        old ones); streams and returns as `/compare` does."""
        options_of = (system, temperature, top_p, top_k, max_new_tokens, seed, thinking, tools)
        async for update in self._stream_compare(session, request, profile, None, None, options_of,
                                                 regenerate=True):
            yield update

    async def _stream_compare(self, session: Session, request: gr.Request | None,
                              profile: gr.OAuthProfile | None, variants: list[str] | None,
                              prompt: dict[str, Any] | None, options_of: tuple[Any, ...],
                              regenerate: bool = False) -> AsyncIterator[list[Any]]:
        session.compare_outcome = None
        session.compare_stop = stop = asyncio.Event()
        try:
            caller = self._caller(session, request, profile)
            options = FormSettings.options(*options_of)
            with self.access.generating(caller):
                async for outcome in self.compare_flow.run(session.compare, variants or [], prompt, options,
                                                           voter=caller.name, regenerate=regenerate, stop=stop):
                    session.compare_outcome = outcome  # the session is mutated in place: gr.State keeps it
                    yield [*self._live(outcome.views, len(self.compare.panels)), outcome.summary]
        except ArenaError as exc:
            raise user_error(exc, action="a comparison") from exc
        finally:
            session.compare_stop = None
            self._mark_used(session.compare_outcome)

    async def stop_compare(self, session: Session) -> None:
        """Stop the session's comparison: each answer ends where it is, marked stopped, with the
        figures measured so far; a stopped turn takes no vote."""
        if session.compare_stop is not None:
            session.compare_stop.set()

    async def finish_compare(self, session: Session) -> dict[Any, Any]:
        outcome = session.compare_outcome
        if outcome is None:
            return {self.session: session}
        results = [r for r in outcome.results if r is not None]
        chart = await asyncio.to_thread(charts.stats_chart, results) if any(r.ok for r in results) else None
        state = session.compare
        return (self._panels(self.compare.panels, outcome.views) | self._compare_votes(state)
                | {self.session: session, self.compare.chart: chart,
                   self.compare.preview: self.compare_flow.next_send(state, state.variants_picked, None),
                   self.compare.buttons.regenerate: gr.Button(interactive=self._can_regenerate(state))})

    @staticmethod
    def _can_regenerate(state: CompareState) -> bool:
        return state.conversation is not None and bool(state.conversation.turns) and not state.voted

    def clear_compare(self, session: Session, selected: list[str] | None = None,
                      request: gr.Request | None = None, profile: gr.OAuthProfile | None = None) -> dict[Any, Any]:
        """Start a new conversation: the session's comparison is forgotten (what was stored stays,
        in History) and the panels show `selected` again."""
        try:
            self._caller(session, request, profile)
        except UsageError as exc:
            raise user_error(exc, action="a new conversation") from exc
        session.compare.clear()
        session.compare_outcome = None
        return (self._panels(self.compare.panels, self.compare_flow.preview(selected or [], None))
                | self._compare_votes(None)
                | {self.session: session, self.compare.chart: None, self.compare.prompt: None,
                   self.compare.preview: "", self.compare.buttons.regenerate: gr.Button(interactive=False)})

    def vote_best(self, session: Session, best: str | None = None, request: gr.Request | None = None,
                  profile: gr.OAuthProfile | None = None) -> dict[Any, Any]:
        """Vote `best` (a variant name) the best answer of the session's comparison: the vote
        covers its whole conversation; returns the confirmation. A name that did not answer its
        last turn is refused."""
        if not best:
            raise user_error("pick the best answer first", action="a vote")
        return self._compare_vote(session, request, profile, best=str(best))  # not preprocessed: the raw value sent

    def vote_ranking(self, session: Session, rank_1: str | None = None, rank_2: str | None = None,
                     rank_3: str | None = None, rank_4: str | None = None,
                     request: gr.Request | None = None, profile: gr.OAuthProfile | None = None) -> dict[Any, Any]:
        """Rank the answers of the session's comparison (the vote covers its whole conversation):
        `rank_N` is the rank ("1" = best, equal ranks tie) of the Nth variant that answered, in
        the order `/compare` listed them in `vote_on`; returns the confirmation. One parameter per
        rank dropdown (MAX_PANELS of them): named, so an API client can call it with keywords."""
        ranks = (rank_1, rank_2, rank_3, rank_4)
        try:
            ranking = ranking_from_ranks(session.compare.votable, ranks)
        except UsageError as exc:
            raise user_error(exc, action="a vote") from exc
        return self._compare_vote(session, request, profile, ranking=ranking)

    def _compare_vote(self, session: Session, request: gr.Request | None, profile: gr.OAuthProfile | None,
                      **vote: Any) -> dict[Any, Any]:
        try:
            caller = self._caller(session, request, profile)
            message = self._counted_vote(caller, lambda: self.compare_flow.vote(session.compare, voter=caller.name,
                                                                                 **vote))
        except UsageError as exc:
            raise user_error(exc, action="a vote") from exc
        off = gr.Button(interactive=False)
        return {self.session: session, self.compare.vote_message: message,
                self.compare.vote_best: off, self.compare.vote_ranking: off, self.compare.buttons.regenerate: off}

    def after_compare_vote(self, session: Session) -> str:
        """The line under Send once the vote has ended the conversation."""
        state = session.compare
        return self.compare_flow.next_send(state, state.variants_picked, None)

    def _compare_votes(self, state: CompareState | None) -> dict[Any, Any]:
        """Vote controls: enabled once a comparison of 2+ variants is stored and not yet voted;
        otherwise the message says why there is no vote."""
        c = self.compare
        names = list(state.votable) if state else []
        active = bool(names)
        message = state.no_vote if state is not None and not state.voted else ""
        out = {c.best: gr.Radio(choices=names, value=None), c.vote_best: gr.Button(interactive=active),
               c.vote_ranking: gr.Button(interactive=active), c.vote_message: message}
        for i, dropdown in enumerate(c.ranks):
            shown = active and i < len(names)
            out[dropdown] = gr.Dropdown(label=f"rank of {names[i]}" if shown else "", value=None, visible=shown)
        return out

    # ------------------------------------------------------------------ battle
    def start_battle(self, session: Session, message: dict[str, Any] | None, thinking: bool) -> dict[Any, Any]:
        """The panels as Send starts: a follow-up shows the conversation so far and the prompt;
        a new battle clears both panels (its pair is drawn by the next step)."""
        views = self.battle_flow.pending(session.battle, message)
        return (self._panels(self.battle.panels, views, expect_thinking=bool(thinking)) | self._battle_votes(False)
                | {self.battle.reveal: "", self.battle.buttons.regenerate: gr.Button(interactive=False)})

    def start_regenerate_battle(self, session: Session, thinking: bool) -> dict[Any, Any]:
        views = self.battle_flow.pending(session.battle, None, regenerate=True)
        return (self._panels(self.battle.panels, views, expect_thinking=bool(thinking)) | self._battle_votes(False)
                | {self.battle.reveal: "", self.battle.buttons.regenerate: gr.Button(interactive=False)})

    async def run_battle(
        self, session: Session, prompt: dict[str, Any] | None = None, system: str | None = None,
        max_new_tokens: float | None = None, thinking: bool | None = None, tools: str | None = None,
        request: gr.Request | None = None, profile: gr.OAuthProfile | None = None,
    ) -> AsyncIterator[list[Any]]:
        """A blind battle: two variants drawn at random answer `prompt` ({"text", "files"}) as
        Model A and Model B, sampled as the model family recommends with a seed only the server
        knows. While the last turn is finished and not voted on, `prompt` is a follow-up to the
        same pair (each answers with its own history). Both answers stream at one common pace;
        the last output, set when both have ended, is {"can_vote", "turn", "results": [{"side",
        "text", "thinking", "tool_calls", "error", "error_kind"}]}, with no names or stats and
        error messages redacted until the vote."""
        options = (system, None, None, None, max_new_tokens, None, thinking, tools)
        async for update in self._stream_battle(session, request, profile, prompt, options):
            yield update

    async def regenerate_battle(
        self, session: Session, system: str | None = None, max_new_tokens: float | None = None,
        thinking: bool | None = None, tools: str | None = None, request: gr.Request | None = None,
        profile: gr.OAuthProfile | None = None,
    ) -> AsyncIterator[list[Any]]:
        """Send the battle's last turn again to the same pair (new answers, a new secret seed);
        streams and returns as `/battle` does."""
        options = (system, None, None, None, max_new_tokens, None, thinking, tools)
        async for update in self._stream_battle(session, request, profile, None, options, regenerate=True):
            yield update

    async def _stream_battle(self, session: Session, request: gr.Request | None, profile: gr.OAuthProfile | None,
                             prompt: dict[str, Any] | None, options_of: tuple[Any, ...],
                             regenerate: bool = False) -> AsyncIterator[list[Any]]:
        session.battle_outcome = None
        session.battle_stop = stop = asyncio.Event()
        try:
            caller = self._caller(session, request, profile)
            options = FormSettings.options(*options_of)
            with self.access.generating(caller):
                async for outcome in self.battle_flow.run(session.battle, prompt, options, voter=caller.name,
                                                          regenerate=regenerate, stop=stop):
                    session.battle_outcome = outcome
                    yield [*self._live(outcome.views, len(self.battle.panels)), outcome.summary]
        except ArenaError as exc:
            raise user_error(exc, action="a battle") from exc
        finally:
            session.battle_stop = None
            self._mark_used(session.battle_outcome)

    async def stop_battle(self, session: Session) -> None:
        """Stop the session's battle: both answers end where they are, and the turn takes no vote."""
        if session.battle_stop is not None:
            session.battle_stop.set()

    def finish_battle(self, session: Session) -> dict[Any, Any]:
        views = session.battle_outcome.views if session.battle_outcome else session.battle.views
        state = session.battle
        note = "" if state.can_vote else ("This turn was stopped or had an error and takes no vote: regenerate it, "
                                          "or start a new round.")
        # both thinking boxes show when thinking was asked or either side thought: a side without
        # a trace looks like one with an empty trace
        thinking = state.thinking or any(view.thinking for view in views)
        return (self._panels(self.battle.panels, views, expect_thinking=thinking)
                | self._battle_votes(state.can_vote)
                | {self.session: session, self.battle.reveal: note,
                   self.battle.buttons.regenerate: gr.Button(interactive=self._battle_regenerates(state))})

    @staticmethod
    def _battle_regenerates(state: BattleState) -> bool:
        return (state.conversation is not None and bool(state.conversation.turns)
                and state.phase in ("finished", "errored"))

    def vote_battle(self, outcome: str, session: Session, request: gr.Request | None = None,
                    profile: gr.OAuthProfile | None = None) -> dict[Any, Any]:
        try:
            caller = self._caller(session, request, profile)
            reveal = self._counted_vote(caller, lambda: self.battle_flow.vote(session.battle, outcome,
                                                                               voter=caller.name))
        except UsageError as exc:
            raise user_error(exc, action="a vote") from exc
        return ({self.session: session, self.battle.reveal: reveal,
                 self.battle.buttons.regenerate: gr.Button(interactive=False)} | self._battle_votes(False))

    def reveal_battle(self, session: Session) -> dict[Any, Any]:
        """The panels after the vote: names in their headers, the winner marked, speed and memory."""
        if session.battle.phase != "voted":
            return {}
        revealed = self.battle_flow.revealed(session.battle)
        return self._panels(self.battle.panels, revealed, expect_thinking=session.battle.thinking)

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
            raise user_error(exc, action="a new round") from exc
        self.battle_flow.new_round(session.battle)
        session.battle_outcome = None
        views = [PanelView(title="Model A"), PanelView(title="Model B")]
        return (self._panels(self.battle.panels, views) | self._battle_votes(False)
                | {self.session: session, self.battle.reveal: "", self.battle.prompt: None,
                   self.battle.buttons.regenerate: gr.Button(interactive=False)})

    def _battle_votes(self, enabled: bool) -> dict[Any, Any]:
        return {button: gr.Button(interactive=enabled) for button in self.battle.votes.values()}

    # ----------------------------------------------------------------- history
    async def list_history(self, session: Session, request: gr.Request | None = None,
                           profile: gr.OAuthProfile | None = None) -> dict[Any, Any]:
        try:
            caller = self._caller(session, request, profile)
            self.access.require_own(caller, "History")
        except UsageError as exc:
            raise user_error(exc, action="history") from exc
        entries = await asyncio.to_thread(self.history_flow.entries, caller.name)
        session.history_ids = [entry.battle_id for entry in entries]
        return {self.session: session, self.history.table: [row(entry) for entry in entries],
                self.history_result: [entry_json(entry) for entry in entries]}

    async def show_history(self, session: Session, request: gr.Request | None = None,
                           profile: gr.OAuthProfile | None = None) -> dict[Any, Any]:
        """The History tab as it opens: the list, or (a caller whose name many share) why there is none."""
        try:
            return await self.list_history(session, request, profile) | {self.history.message: ""}
        except gr.Error as exc:
            return {self.history.message: str(exc.message)}

    def pick_history(self, session: Session, event: gr.SelectData, request: gr.Request | None = None,
                     profile: gr.OAuthProfile | None = None) -> dict[Any, Any]:
        index = event.index[0] if isinstance(event.index, (list, tuple)) else event.index
        if not isinstance(index, int) or not 0 <= index < len(session.history_ids):
            return {}
        battle_id = session.history_ids[index]
        try:
            caller = self._caller(session, request, profile)
            self.access.require_own(caller, "History")
            view = self.history_flow.conversation_html(battle_id, caller.name)
        except UsageError as exc:
            raise user_error(exc, action="history") from exc
        return {self.history.battle_id: battle_id, self.history.view: view}

    def open_history(self, session: Session, battle_id: str | None = None, request: gr.Request | None = None,
                     profile: gr.OAuthProfile | None = None) -> dict[Any, Any]:
        """Open one of your past conversations (`battle_id` from `/history`) in its tab: vote on it
        there, or ask a follow-up; returns what was done."""
        try:
            caller = self._caller(session, request, profile)
            self.access.require_own(caller, "History")
            opened = self.history_flow.open(battle_id or "", caller.name, session.compare, session.battle)
        except ArenaError as exc:
            raise user_error(exc, action="opening a conversation") from exc
        session.opened = opened.tab
        return {self.session: session, self.history.message: opened.message}

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

    # -------------------------------------------------------------------- page
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

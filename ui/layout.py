"""The page's components, built in small render functions. No events here: see `ui.app`.

elem_ids listed in the README are stable hooks for automation: keep them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from arena.errors import UsageError
from ui.compare import MAX_PANELS, FormOptions
from ui.leaderboard import CATEGORY_LABELS, COLUMNS, VOTER_COLUMNS
from ui.views import PanelView

STATUS_COLUMNS = ["variant", "status", "takes", "tools", "thinking", "load time", "weights", "process memory",
                  "device", "note"]
EXPORT_FORMATS = {
    "csv": "Votes (CSV)",
    "jsonl": "Votes (JSONL)",
    "fastchat": "FastChat battles (JSONL)",
    "leaderboard-csv": "Leaderboard (CSV)",
}


@dataclass
class Panel:
    column: Any
    title: Any
    note: Any
    thinking_box: Any
    thinking: Any
    answer: Any
    stats: Any

    @property
    def outputs(self) -> list[Any]:
        return [self.column, self.title, self.note, self.thinking_box, self.thinking, self.answer, self.stats]

    @property
    def live_outputs(self) -> list[Any]:
        """What changes while an answer streams: the two text boxes alone. Every output of a
        streaming event costs Gradio and the browser time on every update, changed or not."""
        return [self.answer, self.thinking]

    @staticmethod
    def live(view: PanelView | None) -> list[str]:
        return ["", ""] if view is None else [view.answer, view.thinking]

    def show(self, view: PanelView | None, expect_thinking: bool = False) -> dict[Any, Any]:
        """Component values for a view (None hides the panel). The thinking box shows when the
        view has thinking, or (before streaming) when thinking was asked for."""
        if view is None:
            return {self.column: gr.Column(visible=False)}
        label = "Thinking" + (f" ({len(view.thinking)} characters)" if view.thinking else "")
        return {
            self.column: gr.Column(visible=True),
            self.title: f"### {_escape_title(view.title)}",
            self.note: view.note,
            self.thinking_box: gr.Accordion(label=label, visible=bool(view.thinking) or expect_thinking),
            self.thinking: view.thinking,
            self.answer: view.answer,
            self.stats: view.stats,
        }


def _escape_title(title: str) -> str:
    from ui.views import md_escape

    return md_escape(title)


def render_panel(elem_id: str, title: str, visible: bool = True) -> Panel:
    with gr.Column(elem_id=elem_id, elem_classes=["arena-panel"], min_width=240, visible=visible) as column:
        heading = gr.Markdown(f"### {title}")
        note = gr.Markdown("")
        with gr.Accordion("Thinking", open=False, visible=False) as box:
            thinking = gr.Textbox(show_label=False, lines=4, max_lines=12, interactive=False,
                                  elem_classes=["thinking"])
        answer = gr.Textbox(label="Answer", lines=8, max_lines=24, interactive=False, elem_classes=["answer"])
        stats = gr.Markdown("", elem_classes=["stats"])
    return Panel(column, heading, note, box, thinking, answer, stats)


@dataclass
class FormSettings:
    """The Settings accordion. A battle's has no sampling controls (None): battles always sample
    as the model family recommends, with a seed only the server knows."""

    system: Any
    temperature: Any
    top_p: Any
    top_k: Any
    max_new_tokens: Any
    seed: Any
    thinking: Any
    tools: Any

    @property
    def inputs(self) -> list[Any]:
        shown = [self.system, self.temperature, self.top_p, self.top_k, self.max_new_tokens, self.seed, self.thinking,
                 self.tools]
        return [component for component in shown if component is not None]

    @staticmethod
    def options(system: str | None, temperature: float | None, top_p: float | None, top_k: float | None,
                max_new_tokens: float | None, seed: str | float | None, thinking: bool | None,
                tools: str | None) -> FormOptions:
        """Options from the settings' values; None (an API caller that left one out) is its default.
        Raises UsageError for a seed that is not a whole number."""
        return FormOptions(
            system=system or "",
            temperature=FormOptions.temperature if temperature is None else float(temperature),
            top_p=FormOptions.top_p if top_p is None else float(top_p),
            top_k=FormOptions.top_k if top_k is None else int(top_k),
            max_new_tokens=int(max_new_tokens or FormOptions.max_new_tokens),
            seed=parse_seed(seed),
            thinking=bool(thinking),
            tools=tools or "",
        )


def parse_seed(seed: str | float | None) -> int | None:
    """The Seed box's value: empty means none (a fresh random seed each time). A text box rather
    than a number box: an empty number box sends 0, a fixed seed nobody chose."""
    text = "" if seed is None else str(seed).strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value.is_integer():
        raise UsageError(f"the seed {text[:40]!r} is not a whole number: give one, or leave it empty for a random seed")
    return int(value)


def render_settings(prefix: str, *, sampling: bool = True, max_new_tokens: int = 4096) -> FormSettings:
    """`max_new_tokens`: the slider's top, the server's cap (the server checks it on every request)."""
    with gr.Accordion("Settings", open=False, elem_id=f"{prefix}-settings"):
        system = gr.Textbox(label="System prompt", lines=2)
        temperature = top_p = top_k = seed = None
        with gr.Row():
            if sampling:
                temperature = gr.Slider(0, 2, value=FormOptions.temperature, step=0.05,
                                        label="Temperature (0 = greedy)", elem_id=f"{prefix}-temperature")
                top_p = gr.Slider(0.05, 1, value=FormOptions.top_p, step=0.05, label="Top-p")
                top_k = gr.Slider(0, 200, value=FormOptions.top_k, step=1, label="Top-k (0 = off)")
            max_new = gr.Slider(1, max_new_tokens, value=min(FormOptions.max_new_tokens, max_new_tokens), step=1,
                                label="Max new tokens", elem_id=f"{prefix}-max-new-tokens")
            if sampling:
                seed = gr.Textbox(value="", label="Seed (empty: a random one)", elem_id=f"{prefix}-seed")
        if not sampling:
            gr.Markdown("Battles sample as Gemma 4's model card recommends, with a random seed that only the "
                        "server knows, so nobody can reproduce an answer by name in the Compare tab.")
        thinking = gr.Checkbox(label="Thinking (the chat template's enable_thinking)", value=False)
        tools = gr.Code(label="Tools (JSON list of OpenAI-style functions)", language="json", value="")
    return FormSettings(system, temperature, top_p, top_k, max_new, seed, thinking, tools)


def render_status(elem_id: str) -> Any:
    """An empty line under Send that carries Gradio's progress (spinner and timer) while answers
    stream: the one component the streaming event shows progress on (see `ui.app.ArenaApp._wire`)."""
    return gr.Markdown("", elem_id=elem_id, elem_classes=["send-status"])


def render_prompt(elem_id: str, placeholder: str) -> Any:
    return gr.MultimodalTextbox(
        elem_id=elem_id,
        placeholder=placeholder,
        file_types=["image", "audio"],
        file_count="multiple",
        sources=["upload", "microphone"],
        show_label=False,
        submit_btn=False,
    )


@dataclass
class CompareTab:
    variants: Any
    prompt: Any
    send: Any
    stop: Any
    status: Any
    settings: FormSettings
    panels: list[Panel]
    chart: Any
    best: Any
    vote_best: Any
    ranks: list[Any]
    vote_ranking: Any
    vote_message: Any
    result: Any


def render_result(elem_id: str) -> Any:
    """A hidden JSON value that the streaming event sets once, when the run ends: what an API
    client gets as the endpoint's last output (each variant's answer and error). The page shows
    the same through its panels, so it stays hidden."""
    return gr.JSON(label="Result", visible=False, elem_id=elem_id)


def render_compare(names: list[str], max_new_tokens: int = 4096) -> CompareTab:
    variants = gr.CheckboxGroup(names, value=names[:MAX_PANELS], label=f"Variants (pick 1 to {MAX_PANELS})",
                                elem_id="compare-variants")
    prompt = render_prompt("compare-prompt", "Type a prompt; attach an image or audio clip (or record one)")
    with gr.Row():
        send = gr.Button("Send to all", variant="primary", elem_id="compare-send")
        stop = gr.Button("Stop", variant="stop", elem_id="compare-stop")
    status = render_status("compare-status")
    settings = render_settings("compare", max_new_tokens=max_new_tokens)
    with gr.Row(equal_height=False):
        # one panel per variant selected at load; the rest appear when more are picked
        panels = [render_panel(f"compare-panel-{i}", names[i] if i < len(names) else "", visible=i < len(names))
                  for i in range(MAX_PANELS)]
    chart = gr.Plot(label="Stats of this comparison", elem_id="compare-chart")
    with gr.Accordion("Vote", open=True, elem_id="compare-vote"):
        with gr.Row():
            best = gr.Radio([], label="Which answer is best?", elem_id="compare-best")
            vote_best = gr.Button("Vote for the best", elem_id="compare-vote-best", interactive=False)
        with gr.Row():
            # value=None: a Dropdown otherwise starts on its first choice, and a rank left out would be 1
            ranks = [gr.Dropdown(choices=[str(r) for r in range(1, MAX_PANELS + 1)], value=None, label="",
                                 visible=False, elem_id=f"compare-rank-{i}") for i in range(MAX_PANELS)]
            vote_ranking = gr.Button("Submit ranking", elem_id="compare-vote-ranking", interactive=False)
        vote_message = gr.Markdown("", elem_id="compare-vote-message")
    result = render_result("compare-result")
    return CompareTab(variants, prompt, send, stop, status, settings, panels, chart, best, vote_best, ranks,
                      vote_ranking, vote_message, result)


@dataclass
class BattleTab:
    prompt: Any
    send: Any
    status: Any
    settings: FormSettings
    panels: list[Panel]
    votes: dict[str, Any]
    reveal: Any
    new_round: Any
    result: Any


def render_battle(max_new_tokens: int = 4096) -> BattleTab:
    gr.Markdown("Two anonymous variants answer the same prompt. Vote, and only then see who they were.")
    prompt = render_prompt("battle-prompt", "Type a prompt for a blind battle")
    send = gr.Button("Send", variant="primary", elem_id="battle-send")
    status = render_status("battle-status")
    settings = render_settings("battle", sampling=False, max_new_tokens=max_new_tokens)
    with gr.Row(equal_height=False):
        panels = [render_panel("battle-panel-a", "Model A"), render_panel("battle-panel-b", "Model B")]
    with gr.Row():
        votes = {
            "a": gr.Button("👈 A is better", elem_id="vote-a", interactive=False),
            "b": gr.Button("👉 B is better", elem_id="vote-b", interactive=False),
            "tie": gr.Button("🤝 Tie", elem_id="vote-tie", interactive=False),
            "both_bad": gr.Button("👎 Both are bad", elem_id="vote-bothbad", interactive=False),
        }
    reveal = gr.Markdown("", elem_id="battle-reveal")
    new_round = gr.Button("New round", elem_id="new-round")
    result = render_result("battle-result")
    return BattleTab(prompt, send, status, settings, panels, votes, reveal, new_round, result)


@dataclass
class LeaderboardTab:
    category: Any
    mode: Any
    voter: Any
    refresh: Any
    summary: Any
    table: Any
    ci_chart: Any
    win_rate_chart: Any
    quality_chart: Any
    voters: Any
    voter_chart: Any

    @property
    def inputs(self) -> list[Any]:
        return [self.category, self.mode, self.voter]


#: The voter selector's value for everyone's votes.
EVERYONE = "everyone"
MODE_LABELS = {"blind": "Blind battles", "named": "Named comparisons", "all": "Both"}


def render_leaderboard() -> LeaderboardTab:
    with gr.Row():
        category = gr.Radio([(label, key) for key, label in CATEGORY_LABELS.items()], value="all",
                            label="Category", elem_id="leaderboard-category")
        mode = gr.Radio([(label, key) for key, label in MODE_LABELS.items()], value="blind",
                        label="Votes", elem_id="leaderboard-mode")
        # custom values allowed: the names are filled in when the tab opens, and an API client may
        # name a voter without them (the server checks who may see whose votes)
        voter = gr.Dropdown([EVERYONE], value=EVERYONE, label="Voter", allow_custom_value=True,
                            elem_id="leaderboard-voter")
        refresh = gr.Button("Refresh", elem_id="leaderboard-refresh")
    summary = gr.Markdown("", elem_id="leaderboard-summary")
    table = gr.Dataframe(headers=COLUMNS, value=[], interactive=False, elem_id="leaderboard-table")
    ci_chart = gr.Plot(label="Ratings with 95 % confidence intervals", elem_id="leaderboard-ci")
    quality_chart = gr.Plot(label="Quality against speed and memory, on this machine", elem_id="leaderboard-quality")
    win_rate_chart = gr.Plot(label="Win rates and battle counts", elem_id="leaderboard-winrate")
    with gr.Accordion("Voters", open=False, elem_id="leaderboard-voters-box"):
        gr.Markdown("Per voter: votes, how they split, and how often the voter picked the variant the overall "
                    "ratings favour. A voter far from the others (always A, always a tie, rarely agreeing) "
                    "stands out here.")
        voters = gr.Dataframe(headers=VOTER_COLUMNS, value=[], interactive=False, elem_id="leaderboard-voters")
        voter_chart = gr.Plot(label="How each voter splits their votes", elem_id="leaderboard-voter-chart")
    return LeaderboardTab(category, mode, voter, refresh, summary, table, ci_chart, win_rate_chart, quality_chart,
                          voters, voter_chart)


@dataclass
class VariantsTab:
    table: Any
    memory: Any
    timer: Any
    manage_box: Any
    manage_name: Any
    load: Any
    unload: Any
    manage_message: Any
    discover_box: Any
    discover_host: Any
    discover: Any
    discovered: Any


def render_variants(names: list[str]) -> VariantsTab:
    gr.Markdown("The variants this server loaded, how loading went, and what each can take. The demo variants "
                "are tiny random-weight stand-ins: their answers are random tokens. Weights are measured at "
                "load; process memory is the variant's worker process now (its RAM).")
    table = gr.Dataframe(headers=STATUS_COLUMNS, value=[], interactive=False, elem_id="variants-table")
    memory = gr.Markdown("", elem_id="variants-memory")
    timer = gr.Timer(1.0)
    with gr.Accordion("Load and unload variants (admins)", open=False, visible=False) as manage_box:
        with gr.Row():
            # custom values allowed: an API client names the variant; the server checks the name
            name = gr.Dropdown(names, value=names[0] if names else None, label="Variant", allow_custom_value=True,
                               scale=3, elem_id="variants-manage-name")
            load = gr.Button("Load", scale=1, elem_id="variants-load")
            unload = gr.Button("Unload", scale=1, elem_id="variants-unload")
        message = gr.Markdown("", elem_id="variants-manage-message")
    with gr.Accordion("Discover Ollama models (admins)", open=False) as box:
        with gr.Row():
            host = gr.Textbox(label="Ollama host (empty: OLLAMA_HOST or http://127.0.0.1:11434)", scale=3)
            discover = gr.Button("Discover", scale=1, elem_id="ollama-discover")
        discovered = gr.Markdown("")
    return VariantsTab(table, memory, timer, manage_box, name, load, unload, message, box, host, discover, discovered)


@dataclass
class SignIn:
    button: Any
    status: Any
    #: The button's own page-load check of who is signed in (it relabels itself "Logout (NAME)"),
    #: taken from Gradio so `ArenaApp._wire` wires it like the page's other load events.
    check: Any


def render_sign_in() -> SignIn:
    """The "Sign in with Hugging Face" button of a Space, and a line saying who the votes are
    recorded under (filled when the page loads)."""
    with gr.Row(equal_height=True):
        button = gr.LoginButton(scale=0, min_width=260, elem_id="sign-in")
        status = gr.Markdown("", elem_id="sign-in-status")
    # Left to Gradio, that check would be a public API endpoint (/_check_login_status), with a spinner.
    attached = button.load_event_to_attach
    assert attached is not None, "gr.LoginButton attaches its check of who is signed in"
    button.load_event_to_attach = None
    check = attached[0]
    return SignIn(button, status, check)


@dataclass
class ReportTab:
    mode: Any
    category: Any
    build: Any
    page: Any
    file: Any


def render_report() -> ReportTab:
    gr.Markdown("Which variant to pick, from the votes and this machine: ratings with their intervals, speed, "
                "memory, whether each fits here, the Pareto front, and a recommendation that says how sure it is. "
                "Download it as one HTML file that opens offline.")
    with gr.Row():
        category = gr.Radio([(label, key) for key, label in CATEGORY_LABELS.items()], value="all",
                            label="Category", elem_id="report-category")
        mode = gr.Radio([(label, key) for key, label in MODE_LABELS.items()], value="blind", label="Votes",
                        elem_id="report-mode")
        build = gr.Button("Build the report", elem_id="report-build")
    page = gr.HTML("", elem_id="report-page")
    file = gr.File(label="The report as one HTML file", elem_id="report-file", interactive=False)
    return ReportTab(mode, category, build, page, file)


@dataclass
class ExportTab:
    buttons: dict[str, Any]
    file: Any
    admins_only: Any

    #: The exports that hold everyone's prompts and answers (admins only); the leaderboard's is open.
    VOTE_FORMATS = ("csv", "jsonl", "fastchat")


def render_export() -> ExportTab:
    gr.Markdown("Download the votes and the leaderboard. The FastChat format works with lmarena's notebooks "
                "and with `python app.py leaderboard --battles FILE`.")
    admins_only = gr.Markdown("The votes, with everyone's prompts and answers, are exported by the admins of "
                              "this arena; the leaderboard is yours to download.", visible=False,
                              elem_id="export-admins-only")
    with gr.Row():
        buttons = {fmt: gr.Button(label, elem_id=f"export-{fmt}") for fmt, label in EXPORT_FORMATS.items()}
    file = gr.File(label="Download", elem_id="export-file", interactive=False)
    return ExportTab(buttons, file, admins_only)

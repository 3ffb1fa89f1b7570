"""The page's components, built in small render functions. No events here: see `ui.app`.

elem_ids listed in the README are stable hooks for automation: keep them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from arena.errors import UsageError
from ui.compare import MAX_PANELS, FormOptions
from ui.markdown import answer_html
from ui.views import PanelView, md_escape


@dataclass
class Panel:
    column: Any
    title: Any
    note: Any
    history: Any
    thinking_box: Any
    thinking: Any
    answer: Any
    stats: Any

    @property
    def outputs(self) -> list[Any]:
        return [self.column, self.title, self.note, self.history, self.thinking_box, self.thinking, self.answer,
                self.stats]

    @property
    def live_outputs(self) -> list[Any]:
        """What changes while an answer streams: the answer and the thinking alone. Every output of
        a streaming event costs Gradio and the browser time on every update, changed or not."""
        return [self.answer, self.thinking]

    @staticmethod
    def live(view: PanelView | None) -> list[str]:
        return ["", ""] if view is None else [answer_html(view.answer), view.thinking]

    def show(self, view: PanelView | None, expect_thinking: bool = False) -> dict[Any, Any]:
        """Component values for a view (None hides the panel). The thinking box shows when the
        view has thinking, or (before streaming) when thinking was asked for."""
        if view is None:
            return {self.column: gr.Column(visible=False)}
        label = "Thinking" + (f" ({len(view.thinking)} characters)" if view.thinking else "")
        return {
            self.column: gr.Column(visible=True),
            self.title: f"### {md_escape(view.title)}{view.badge}",
            self.note: view.note,
            self.history: view.history,
            self.thinking_box: gr.Accordion(label=label, visible=bool(view.thinking) or expect_thinking),
            self.thinking: view.thinking,
            self.answer: answer_html(view.answer, placeholder=view.placeholder),
            self.stats: view.stats,
        }


def render_panel(elem_id: str, title: str, visible: bool = True) -> Panel:
    with gr.Column(elem_id=elem_id, elem_classes=["arena-panel"], min_width=240, visible=visible) as column:
        heading = gr.Markdown(f"### {md_escape(title)}", elem_classes=["panel-title"])
        note = gr.Markdown("", elem_classes=["panel-note"])
        # the earlier turns of the conversation, and the prompt of this one (set between turns)
        history = gr.HTML("", elem_classes=["history"])
        with gr.Accordion("Thinking", open=False, visible=False) as box:
            thinking = gr.Textbox(show_label=False, lines=4, max_lines=12, interactive=False,
                                  elem_classes=["thinking"])
        # Markdown rendered and sanitized on the server (`ui.markdown`); the raw text beside it
        answer = gr.HTML(answer_html(""), elem_classes=["answer"])
        stats = gr.Markdown("", elem_classes=["stats"])
    return Panel(column, heading, note, history, box, thinking, answer, stats)


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
class Conversing:
    """The buttons under a tab's prompt: send, stop, regenerate the last turn, start over."""

    send: Any
    stop: Any
    regenerate: Any
    clear: Any


def render_conversing(prefix: str, send_label: str, clear_label: str, clear_id: str) -> Conversing:
    with gr.Row(elem_classes=["send-row"]):
        send = gr.Button(send_label, variant="primary", elem_id=f"{prefix}-send", min_width=100)
        stop = gr.Button("Stop", variant="stop", elem_id=f"{prefix}-stop", min_width=80)
        regenerate = gr.Button("Regenerate", elem_id=f"{prefix}-regenerate", interactive=False, min_width=100)
        clear = gr.Button(clear_label, elem_id=clear_id, min_width=100)
    return Conversing(send, stop, regenerate, clear)


@dataclass
class CompareTab:
    variants: Any
    prompt: Any
    buttons: Conversing
    status: Any
    preview: Any
    settings: FormSettings
    panels: list[Panel]
    chart: Any
    best: Any
    vote_best: Any
    ranks: list[Any]
    vote_ranking: Any
    vote_message: Any
    result: Any

    @property
    def send(self) -> Any:
        return self.buttons.send

    @property
    def stop(self) -> Any:
        return self.buttons.stop


def render_result(elem_id: str) -> Any:
    """A hidden JSON value that the streaming event sets once, when the run ends: what an API
    client gets as the endpoint's last output (each variant's answer and error). The page shows
    the same through its panels, so it stays hidden."""
    return gr.JSON(label="Result", visible=False, elem_id=elem_id)


def render_compare(names: list[str], max_new_tokens: int = 4096) -> CompareTab:
    variants = gr.CheckboxGroup(names, value=names[:MAX_PANELS], label=f"Variants (pick 1 to {MAX_PANELS})",
                                elem_id="compare-variants")
    prompt = render_prompt("compare-prompt", "Type a prompt, or a follow-up; attach an image or audio clip "
                           "(or record one)")
    buttons = render_conversing("compare", "Send to all", "New conversation", "compare-clear")
    status = render_status("compare-status")
    # what the next Send will do (a follow-up or a new conversation, variants that will be skipped):
    # said here, so typing never touches the panels of a comparison not yet voted on
    preview = gr.Markdown("", elem_id="compare-preview")
    settings = render_settings("compare", max_new_tokens=max_new_tokens)
    with gr.Row(equal_height=False):
        # one panel per variant selected at load; the rest appear when more are picked
        panels = [render_panel(f"compare-panel-{i}", names[i] if i < len(names) else "", visible=i < len(names))
                  for i in range(MAX_PANELS)]
    # the vote comes right under the answers, before the chart (on a phone it is not 3,000 px down)
    with gr.Group(elem_id="compare-vote"):
        with gr.Row():
            best = gr.Radio([], label="Which answer is best? (the vote covers the whole conversation)",
                            elem_id="compare-best")
            vote_best = gr.Button("Vote for the best", elem_id="compare-vote-best", interactive=False)
        with gr.Row():
            # value=None: a Dropdown otherwise starts on its first choice, and a rank left out would be 1
            ranks = [gr.Dropdown(choices=[str(r) for r in range(1, MAX_PANELS + 1)], value=None, label="",
                                 visible=False, elem_id=f"compare-rank-{i}") for i in range(MAX_PANELS)]
            vote_ranking = gr.Button("Submit ranking", elem_id="compare-vote-ranking", interactive=False)
        vote_message = gr.Markdown("", elem_id="compare-vote-message")
    gr.Markdown("#### Stats of this comparison", elem_classes=["chart-heading"])
    chart = gr.Plot(show_label=False, elem_id="compare-chart")
    result = render_result("compare-result")
    return CompareTab(variants, prompt, buttons, status, preview, settings, panels, chart, best, vote_best, ranks,
                      vote_ranking, vote_message, result)


@dataclass
class BattleTab:
    prompt: Any
    buttons: Conversing
    status: Any
    settings: FormSettings
    panels: list[Panel]
    votes: dict[str, Any]
    reveal: Any
    result: Any

    @property
    def send(self) -> Any:
        return self.buttons.send

    @property
    def new_round(self) -> Any:
        return self.buttons.clear


def render_battle(max_new_tokens: int = 4096) -> BattleTab:
    gr.Markdown("Two anonymous variants answer the same prompt, and your follow-ups. Vote after any turn "
                "(the vote covers the whole conversation), and only then see who they were.")
    prompt = render_prompt("battle-prompt", "Type a prompt for a blind battle, or a follow-up")
    buttons = render_conversing("battle", "Send", "New round", "new-round")
    status = render_status("battle-status")
    settings = render_settings("battle", sampling=False, max_new_tokens=max_new_tokens)
    with gr.Row(equal_height=False):
        panels = [render_panel("battle-panel-a", "Model A"), render_panel("battle-panel-b", "Model B")]
    with gr.Row(elem_classes=["vote-row"]):
        votes = {
            "a": gr.Button("👈 A is better", elem_id="vote-a", interactive=False, min_width=100),
            "b": gr.Button("👉 B is better", elem_id="vote-b", interactive=False, min_width=100),
            "tie": gr.Button("🤝 Tie", elem_id="vote-tie", interactive=False, min_width=100),
            "both_bad": gr.Button("👎 Both are bad", elem_id="vote-bothbad", interactive=False, min_width=100),
        }
    reveal = gr.Markdown("", elem_id="battle-reveal")
    result = render_result("battle-result")
    return BattleTab(prompt, buttons, status, settings, panels, votes, reveal, result)


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
class HistoryTab:
    refresh: Any
    table: Any
    battle_id: Any
    view: Any
    open: Any
    message: Any


def render_history(columns: list[str]) -> HistoryTab:
    gr.Markdown("Your past comparisons and battles, newest first, with their answers. One not yet voted on can be "
                "opened in its tab and voted on now (a blind battle stays blind until the vote). The CLI's "
                "`compare` records its comparisons here too.")
    refresh = gr.Button("Refresh", elem_id="history-refresh")
    table = gr.Dataframe(headers=columns, value=[], interactive=False, wrap=True, elem_id="history-table")
    with gr.Row():
        # filled by picking a row; an API client gives the id `/history` listed
        battle_id = gr.Textbox(label="Conversation (its last turn's id)", elem_id="history-battle-id", scale=3)
        open_button = gr.Button("Open to vote or continue", elem_id="history-open", scale=1)
    message = gr.Markdown("", elem_id="history-message")
    view = gr.HTML("", elem_id="history-view")
    return HistoryTab(refresh, table, battle_id, view, open_button, message)

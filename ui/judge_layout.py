"""The Judge tab's components: a set, a prompt, answers A and B, four verdicts, skip, the reveal.

No events here (they are wired with the app's others in `ui.app`); `JudgeTab.show` and
`JudgeTab.revealed` turn `ui.judge.JudgeFlow`'s plain values into component updates. The pair's
token stays in `token` (a gr.State: never sent to the browser). Keyboard shortcuts
(`SHORTCUTS_JS`, run once at page load) click the buttons by their elem_ids.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import gradio as gr

from ui.layout import Panel, render_panel
from ui.views import PanelView

VERDICT_IDS = {"a": "judge-vote-a", "b": "judge-vote-b", "tie": "judge-vote-tie", "both_bad": "judge-vote-bothbad"}
SKIP_ID = "judge-skip"

#: Keys -> the button they click: 1/a, 2/b, 3/t, 4/n for the verdicts, s to skip. Never while
#: typing (a text box, a dropdown's search, anything editable), with a modifier key held, on a
#: key held down, or when the button is hidden (another tab) or disabled (no pair shown).
SHORTCUTS_JS = """
() => {
  if (window.__judgeShortcuts) { return; }
  window.__judgeShortcuts = true;
  const keys = __KEYS__;
  const typing = (node) => !!node && (node.isContentEditable ||
      ["INPUT", "TEXTAREA", "SELECT"].includes(node.tagName) || !!(node.closest && node.closest("[contenteditable]")));
  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.repeat || event.ctrlKey || event.metaKey || event.altKey) { return; }
    const path = event.composedPath ? event.composedPath() : [event.target];
    if (path.some(typing) || typing(document.activeElement)) { return; }
    const id = keys[(event.key || "").toLowerCase()];
    if (!id) { return; }
    const holder = document.getElementById(id);
    const button = holder && (holder.tagName === "BUTTON" ? holder : holder.querySelector("button"));
    if (!button || button.disabled || button.offsetParent === null) { return; }
    event.preventDefault();
    button.click();
  });
}
""".replace("__KEYS__", json.dumps({
    "1": VERDICT_IDS["a"], "a": VERDICT_IDS["a"], "2": VERDICT_IDS["b"], "b": VERDICT_IDS["b"],
    "3": VERDICT_IDS["tie"], "t": VERDICT_IDS["tie"], "4": VERDICT_IDS["both_bad"], "n": VERDICT_IDS["both_bad"],
    "s": SKIP_ID,
}))


@dataclass
class JudgeTab:
    sets: Any
    start: Any
    status: Any
    prompt: Any
    images: Any
    audio: Any
    panels: list[Panel]
    votes: dict[str, Any]
    skip: Any
    reveal: Any
    token: Any
    tag: Any
    standings: Any
    refresh_standings: Any

    def show(self, view: dict[str, Any], images: list[str] | None = None,
             audio: list[str] | None = None) -> dict[Any, Any]:
        """Component values for a blind pair (`JudgeFlow.next_pair`), or for "nothing left";
        `images` / `audio`: the prompt's attachments as files (`JudgeFlow.media_files`)."""
        token = view.get("token")
        updates: dict[Any, Any] = {
            self.status: view.get("message", ""),
            self.reveal: "",
            self.token: token,
            self.prompt: gr.Textbox(value=view.get("prompt", ""), visible=token is not None),
            self.images: gr.Gallery(value=images or [], visible=bool(images)),
            self.audio: gr.Audio(value=audio[0] if audio else None, visible=bool(audio)),
            self.skip: gr.Button(interactive=token is not None),
        }
        for button in self.votes.values():
            updates[button] = gr.Button(interactive=token is not None)
        for panel, side in zip(self.panels, ("a", "b"), strict=True):
            shown = view.get(side)
            updates.update(panel.show(None if shown is None else PanelView(
                title=side.upper(), answer=_with_calls(shown), thinking=shown.get("thinking", ""), status="done")))
        return updates

    def after_vote(self, reveal: dict[str, Any], view: dict[str, Any], images: list[str] | None = None,
                   audio: list[str] | None = None) -> dict[Any, Any]:
        """Component values for judging on without a click: the next pair, with the reveal of the
        pair just judged above it."""
        return {**self.show(view, images, audio), self.reveal: "**Previous pair:** " + reveal["markdown"]}

    def revealed(self, reveal: dict[str, Any]) -> dict[Any, Any]:
        """Component values once the verdict is stored: who was who, with stats; no second vote."""
        updates: dict[Any, Any] = {self.reveal: reveal["markdown"], self.token: None,
                                   self.skip: gr.Button(interactive=False)}
        for button in self.votes.values():
            updates[button] = gr.Button(interactive=False)
        return updates


def _with_calls(side: dict[str, Any]) -> str:
    calls = "".join(f"\n\n[tool call] {call['name']}({json.dumps(call['arguments'], ensure_ascii=False)})"
                    for call in side.get("tool_calls", []))
    return side.get("text", "") + calls


def render_judge() -> JudgeTab:
    """The tab's components, in reading order."""
    gr.Markdown("Judge a prompt set's stored answers, blind: no waiting for generation. Pick the better "
                "answer (keys 1/A, 2/B, 3/T tie, 4/N both bad, S skip); who was who shows after your verdict.")
    with gr.Row(equal_height=True):
        # custom values allowed: the sets are listed when the tab opens, and an API client names one
        # without them (the server refuses a set it does not have)
        sets = gr.Dropdown(choices=[], value=None, label="Prompt set", elem_id="judge-set", scale=3,
                           allow_custom_value=True)
        start = gr.Button("Judge this set", variant="primary", elem_id="judge-start", scale=1, min_width=120)
    status = gr.Markdown("", elem_id="judge-status")
    prompt = gr.Textbox(label="Prompt", lines=3, max_lines=16, interactive=False, visible=False,
                        elem_id="judge-prompt")
    images = gr.Gallery(label="Attached images", visible=False, elem_id="judge-images", height=240)
    audio = gr.Audio(label="Attached audio", visible=False, interactive=False, elem_id="judge-audio")
    with gr.Row(equal_height=False):
        panels = [render_panel("judge-panel-a", "A", visible=False), render_panel("judge-panel-b", "B", visible=False)]
    with gr.Row(elem_classes=["vote-row"]):
        votes = {
            "a": gr.Button("👈 A is better (1)", elem_id=VERDICT_IDS["a"], interactive=False, min_width=100),
            "b": gr.Button("👉 B is better (2)", elem_id=VERDICT_IDS["b"], interactive=False, min_width=100),
            "tie": gr.Button("🤝 Tie (3)", elem_id=VERDICT_IDS["tie"], interactive=False, min_width=100),
            "both_bad": gr.Button("👎 Both are bad (4)", elem_id=VERDICT_IDS["both_bad"], interactive=False,
                                  min_width=100),
        }
        skip = gr.Button("Skip (S)", elem_id=SKIP_ID, interactive=False, min_width=80)
    reveal = gr.Markdown("", elem_id="judge-reveal")
    token = gr.State(None)
    with gr.Accordion("Where each variant wins", open=False, elem_id="judge-standings-box"):
        with gr.Row(equal_height=True):
            tag = gr.Dropdown(choices=[], value=None, label="Tag (empty: every prompt)", elem_id="judge-tag",
                              allow_custom_value=True, scale=3)
            refresh = gr.Button("Show", elem_id="judge-standings-refresh", scale=1, min_width=80)
        standings = gr.Markdown("", elem_id="judge-standings")
    return JudgeTab(sets, start, status, prompt, images, audio, panels, votes, skip, reveal, token, tag, standings,
                    refresh)

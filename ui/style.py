"""The page's CSS (Gradio 6 takes it at launch: `ArenaApp.launch`)."""

from __future__ import annotations

from ui.lookup_layout import LEADERBOARD_CSS

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

"""What a panel shows, as plain values, and the text the UI renders from our own data.

Model output reaches the page only through `ui.markdown` (Markdown rendered, then sanitized: no
script, handler, frame or remote load survives) or as plain text (the thinking box, the raw view).
Everything of ours that goes into Markdown (names, errors, stats) passes through `md_escape`.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from arena.measure import Result, Stats
from arena.units import format_bytes, format_seconds

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~&\"'])")


_CODE_OR_URL = re.compile(r"`([^`]*)`|(https?://[^\s`]+?)(?=[.,;:!?)'\"]*(?:\s|$))")


def md_escape(text: str) -> str:
    """Make `text` inert in Markdown, shown as written with no escaping showing: every character
    with a meaning (angle brackets included) is backslash-escaped, so links, images and tags are
    shown, never followed; but what it quotes in backticks, and every URL, become code spans. A
    URL must not be escaped: the page's Markdown turns a bare URL into a link before escapes
    apply, so the backslashes would show in it (`http://127\\.0\\.0\\.1`)."""
    parts, at = [], 0
    for match in _CODE_OR_URL.finditer(text):
        parts += [_escape_plain(text[at:match.start()]), md_code(match[1] if match[1] is not None else match[2])]
        at = match.end()
    return "".join([*parts, _escape_plain(text[at:])])


def _escape_plain(text: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", text).replace("\n", " ")


def md_code(text: str) -> str:
    """`text` as a Markdown code span, shown exactly as written: nothing inside a code span is
    escaped (a backslash would show), so a backtick, which would end it, becomes a quote."""
    return "`" + text.replace("`", "'").replace("\n", " ") + "`"


@dataclass(frozen=True)
class PanelView:
    """One panel of a comparison or battle. `status`: waiting, streaming, done, error, skipped
    (the variant cannot take the request: nothing was sent), stopped (the user pressed Stop).

    `history` is the HTML of the conversation's earlier turns and this turn's prompt
    (`conversation_html`); `badge` follows the title (a battle's winner mark); `placeholder`
    shows in an empty answer."""

    title: str
    answer: str = ""
    thinking: str = ""
    stats: str = ""
    note: str = ""
    status: str = "waiting"
    history: str = ""
    badge: str = ""
    placeholder: str = ""

    def with_result(self, result: Result) -> PanelView:
        calls = "".join(
            f"\n\n[tool call] {call.name}({_json(call.arguments)})" for call in result.tool_calls
        )
        view = replace(self, answer=result.text + calls, thinking=result.thinking)
        if result.error_kind == "UnsupportedInput":
            return replace(view, stats="", note=f"**Skipped:** {md_escape(skip_reason(result.error or ''))}",
                           status="skipped")
        if result.error_kind == STOPPED:
            tokens = result.stats.output_tokens or 0
            return replace(view, stats=stats_markdown(result.stats),
                           note=f"**Stopped** after {tokens} token{'s' * (tokens != 1)}: the answer is cut short.",
                           status="stopped")
        return replace(
            view,
            stats=stats_markdown(result.stats, ok=result.ok),
            note=f"**Error:** {md_escape(result.error)}" if result.error else "",
            status="error" if result.error else "done",
        )


#: The error kind of a run the user stopped (`arena.measure`).
STOPPED = "Stopped"
_CANNOT_TAKE = re.compile(r"cannot take ([a-z]+(?: or [a-z]+)*)")


def skip_reason(error: str) -> str:
    """'cannot take audio' from a variant's UnsupportedInput message, without its name (which a
    battle must not show) or the advice meant for the command line."""
    if (found := _CANNOT_TAKE.search(error)) is not None:
        return f"cannot take {found.group(1)}"
    if "does not support tools" in error:
        return "does not support tools"
    return "cannot take this request"


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def stats_markdown(stats: Stats, ok: bool = True) -> str:
    rate = "-" if stats.tokens_per_s is None else f"{stats.tokens_per_s:.1f} tok/s"
    tokens = f"{stats.input_tokens if stats.input_tokens is not None else '-'} in / {stats.output_tokens} out"
    if stats.token_source == "chunks":
        tokens += " (estimated from chunks)"
    timing = f"TTFT **{format_seconds(stats.ttft_s)}** · decode **{rate}** · total **{format_seconds(stats.total_s)}**"
    if stats.queue_wait_s is not None and stats.queue_wait_s >= 0.01:
        timing += f" · waited in line {format_seconds(stats.queue_wait_s)} (not in TTFT)"
    if stats.stalled:
        timing += " · stalled (left out of speed medians)"
    lines = [
        timing,
        f"tokens {tokens} · {memory_text(stats)} · load {format_seconds(stats.load_s)}",
    ]
    if stats.server:
        engine = ", ".join(f"{md_escape(k)} {v:.3g}" for k, v in sorted(stats.server.items()))
        lines.append(f"engine's own figures: {engine}")
    return "  \n".join(lines) if ok or stats.total_s else ""


def memory_text(stats: Stats) -> str:
    """The variant's own memory (weights + this request's peak) with the process total beside it,
    each labelled; a remote engine's figure as it reports it."""
    if stats.request_peak_bytes is None:
        label = f" ({md_escape(stats.memory_kind)})" if stats.memory_kind else ""
        process = format_bytes(stats.peak_memory_bytes)
        return f"peak memory {process}{label} · weights {format_bytes(stats.weights_bytes)}"
    kind = f", {md_escape(stats.memory_kind)}" if stats.memory_kind else ""
    return (
        f"peak memory **{format_bytes(stats.own_memory_bytes)}**: weights {format_bytes(stats.weights_bytes)} "
        f"+ this request {format_bytes(stats.request_peak_bytes)} "
        f"(process {format_bytes(stats.peak_memory_bytes)}{kind})"
    )


@dataclass(frozen=True)
class ShownTurn:
    """One turn of a conversation as a panel shows it: the user's message, the names of its
    attachments, and this panel's answer (None: the turn being answered now)."""

    prompt: str
    attachments: tuple[str, ...] = ()
    answer: str | None = None


def conversation_html(turns: Sequence[ShownTurn]) -> str:
    """The earlier turns of a panel's conversation and the prompt of the current one, as safe
    HTML: the user's words as text, each earlier answer rendered as Markdown (`ui.markdown`)."""
    from ui.markdown import answer_html

    parts = []
    for number, turn in enumerate(turns, start=1):
        files = "".join(f'<span class="attachment">📎 {html.escape(name)}</span>' for name in turn.attachments)
        parts.append(f'<div class="turn-user"><span class="turn-label">You, turn {number}:</span> '
                     f'{html.escape(turn.prompt)}{files}</div>')
        if turn.answer is not None:
            parts.append(f'<div class="turn-answer">{answer_html(turn.answer)}</div>')
    return "".join(parts)

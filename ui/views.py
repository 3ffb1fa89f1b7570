"""What a panel shows, as plain values, and the text the UI renders from our own data.

Model output is never rendered as Markdown or HTML: answers and thinking go into plain text
boxes. Everything that does go into Markdown (names, errors, stats) passes through `md_escape`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace

from arena.measure import Result, Stats
from arena.units import format_bytes, format_seconds

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~&\"'])")


def md_escape(text: str) -> str:
    """Make `text` inert in Markdown: every character with a meaning (angle brackets included)
    is backslash-escaped, so links, images and tags are shown as written, never followed."""
    return _MD_SPECIAL.sub(r"\\\1", text).replace("\n", " ")


@dataclass(frozen=True)
class PanelView:
    """One panel of a comparison or battle. `status`: waiting, streaming, done, error."""

    title: str
    answer: str = ""
    thinking: str = ""
    stats: str = ""
    note: str = ""
    status: str = "waiting"

    def with_result(self, result: Result) -> PanelView:
        note = f"**Error:** {md_escape(result.error)}" if result.error else ""
        calls = "".join(
            f"\n\n[tool call] {call.name}({_json(call.arguments)})" for call in result.tool_calls
        )
        return replace(
            self,
            answer=result.text + calls,
            thinking=result.thinking,
            stats=stats_markdown(result.stats, ok=result.ok),
            note=note,
            status="error" if result.error else "done",
        )


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

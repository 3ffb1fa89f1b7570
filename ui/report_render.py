"""The decision report as Markdown and as one self-contained HTML file. Pure: a `Report` and the
charts' PNG bytes in, text out; writing files is the caller's (`cli.report`).

The HTML needs nothing outside itself: CSS inline, charts as `data:image/png;base64` images, no
script, and a Content-Security-Policy that forbids loading anything else, so it opens offline
and sends no request. Every string that comes from data (variant names, fit verdicts, notes) is
escaped (`html.escape`, `md_text`).
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Mapping, Sequence

from arena.report import Report, ReportRow
from arena.units import format_bytes, format_seconds

TITLE = "Gemma Arena: decision report"
CHART_CAPTIONS = {
    "quality-cost": "Quality against cost: rating (95 % interval) against median decode speed and against memory; "
    "the Pareto front ringed.",
    "win-rates": "Pairwise win rates: how often the row beat the column when one of them won (ties left out), "
    "with the battles behind each.",
}

# What makes text active in Markdown anywhere in a line (links, images, tags, entities, emphasis,
# code, table cells, headings, `$` math where a renderer has it); `-`, `+` and `1.` only at a line's start.
_MD_ACTIVE = re.compile(r"([\\`*_{}\[\]<>|&~!#$])")
_MD_BULLET = re.compile(r"^(\s*)([-+])(?=\s|$)")
_MD_NUMBERED = re.compile(r"^(\s*\d+)([.)])(?=\s|$)")

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
_CSS = """
.gemma-report { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d1d1f;
  max-width: 1200px; margin: 1.5rem auto; padding: 0 1rem; line-height: 1.45; }
.gemma-report h1 { font-size: 1.5rem; margin-bottom: 0.2rem; }
.gemma-report h2 { font-size: 1.15rem; margin-top: 1.6rem; border-bottom: 1px solid #ddd; }
.gemma-report .scope { color: #555; margin-top: 0; }
.gemma-report .recommendation { background: #f3f7ff; border-left: 4px solid #4c72b0; padding: 0.6rem 1rem; }
.gemma-report .recommendation p:first-child { font-weight: 600; }
.gemma-report table { border-collapse: collapse; font-size: 0.9rem; width: 100%; }
.gemma-report th, .gemma-report td { border: 1px solid #ddd; padding: 0.3rem 0.5rem; text-align: right;
  vertical-align: top; }
.gemma-report th { background: #f5f5f5; text-align: left; }
.gemma-report td.variant, .gemma-report td.fit { text-align: left; overflow-wrap: anywhere; }
.gemma-report tr.front td.variant { font-weight: 600; }
.gemma-report figure { margin: 1rem 0; }
.gemma-report img { max-width: 100%; height: auto; border: 1px solid #eee; }
.gemma-report figcaption, .gemma-report .notes { color: #555; font-size: 0.85rem; }
"""


def columns(report: Report) -> list[str]:
    """The variants table's headings (Markdown and HTML alike)."""
    return [
        "rank",
        "variant",
        "rating",
        "95% CI",
        "votes",
        "win rate",
        "median TTFT",
        "median decode tokens/s",
        f"median {report.memory_label}",
        "fits this machine",
        "Pareto front",
        f"more votes for a {report.target_width:g}-Elo interval",
    ]


def cells(row: ReportRow) -> list[str]:
    """One row's cells as plain text (not escaped yet)."""
    return [
        str(row.rank),
        row.variant + (" (preliminary)" if row.preliminary else ""),
        f"{row.rating:.0f}",
        f"{row.ci_low:.0f} to {row.ci_high:.0f}",
        str(row.votes),
        "-" if row.win_rate is None else f"{row.win_rate:.0%}",
        format_seconds(row.median_ttft_s),
        "-" if row.median_tokens_per_s is None else f"{row.median_tokens_per_s:.1f}",
        format_bytes(row.memory_bytes),
        row.fit,
        "yes" if row.on_front else "",
        str(row.more_votes) if row.more_votes else "-",
    ]


def md_text(text: str) -> str:
    """`text` made inert in Markdown, yet readable as plain text: the characters that can start a
    link, image, tag, entity, emphasis, code span, table cell, heading or math anywhere are
    backslash-escaped, a list or quote marker at its start too; newlines become spaces."""
    flat = _MD_ACTIVE.sub(r"\\\1", text.replace("\r", " ").replace("\n", " "))
    return _MD_NUMBERED.sub(r"\1\\\2", _MD_BULLET.sub(r"\1\\\2", flat))


def render_markdown(report: Report, scope: str = "", charts: Mapping[str, str] | None = None) -> str:
    """The report in Markdown: recommendation, variants table, notes, and the charts as images
    at the relative paths of `charts` (name -> path), or a note that the HTML report has them."""
    heads = columns(report)
    lines = [f"# {TITLE}", ""]
    if scope:
        lines += [md_text(scope), ""]
    lines += ["## Recommendation", ""]
    lines += [f"- {md_text(line)}" for line in report.recommendation.lines]
    lines += ["", "## Variants", ""]
    if report.rows:
        lines.append("| " + " | ".join(heads) + " |")
        lines.append("|" + "|".join("---" if n in (1, 9) else "---:" for n in range(len(heads))) + "|")
        lines += ["| " + " | ".join(md_text(cell) for cell in cells(row)) + " |" for row in report.rows]
    else:
        lines.append("No votes in this slice yet.")
    lines += [""] + [f"- {md_text(note)}" for note in report.notes]
    if report.sets:
        lines += ["", "## Prompt sets: where each variant wins", ""]
        lines += [section + "\n" for section in report.sets]
    lines += ["", "## Charts", ""]
    if charts:
        for name, path in charts.items():
            caption = CHART_CAPTIONS.get(name, name)
            lines += [f"![{md_text(caption)}]({_md_path(path)})", "", f"*{md_text(caption)}*", ""]
    else:
        lines.append("Charts are in the HTML report (`python app.py report --out report.html`).")
    return "\n".join(lines).rstrip() + "\n"


def _md_path(path: str) -> str:
    """A relative path as a Markdown link target: angle brackets keep spaces and parentheses whole."""
    return "<" + path.replace("<", "%3C").replace(">", "%3E") + ">"


def render_html(report: Report, scope: str = "", charts: Mapping[str, bytes] | None = None) -> str:
    """The report as one HTML document that needs nothing else: the charts (name -> PNG bytes)
    embedded as data URIs, the CSS inline, no script."""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(TITLE)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"{render_html_fragment(report, scope, charts)}\n</body>\n</html>\n"
    )


def render_html_fragment(report: Report, scope: str = "", charts: Mapping[str, bytes] | None = None) -> str:
    """The report's body alone, in a `<main class="gemma-report">` (what `render_html` wraps;
    for a page that has its own head, with `report_css()`)."""
    e = html.escape
    parts = [f'<main class="gemma-report">\n<h1>{e(TITLE)}</h1>']
    if scope:
        parts.append(f'<p class="scope">{e(scope)}</p>')
    parts.append('<h2>Recommendation</h2>\n<section class="recommendation" id="recommendation">')
    parts += [f"<p>{e(line)}</p>" for line in report.recommendation.lines]
    parts.append("</section>\n<h2>Variants</h2>")
    parts.append(_table(report) if report.rows else "<p>No votes in this slice yet.</p>")
    parts.append('<ul class="notes">' + "".join(f"<li>{e(note)}</li>" for note in report.notes) + "</ul>")
    if report.sets:
        from ui.markdown import render_markdown as safe_markdown

        parts.append('<h2>Prompt sets: where each variant wins</h2>\n<section class="sets" id="prompt-sets">')
        parts += [safe_markdown(section) for section in report.sets]
        parts.append("</section>")
    if charts:
        parts.append("<h2>Charts</h2>")
        for name, png in charts.items():
            caption = CHART_CAPTIONS.get(name, name)
            data = base64.b64encode(png).decode("ascii")
            parts.append(
                f'<figure id="chart-{e(name)}"><img alt="{e(caption)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{e(caption)}</figcaption></figure>"
            )
    parts.append("</main>")
    return "\n".join(parts)


def report_css() -> str:
    """The report's CSS, scoped to `.gemma-report`."""
    return _CSS


def _table(report: Report) -> str:
    e = html.escape
    head = "".join(f'<th scope="col">{e(text)}</th>' for text in columns(report))
    body = "\n".join(_tr(row, cells(row)) for row in report.rows)
    return f'<table id="variants"><thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table>'


def _tr(row: ReportRow, texts: Sequence[str]) -> str:
    classes = {1: "variant", 9: "fit"}
    tds = "".join(
        f'<td class="{classes[n]}">{html.escape(text)}</td>' if n in classes else f"<td>{html.escape(text)}</td>"
        for n, text in enumerate(texts)
    )
    return f'<tr class="{"front" if row.on_front else "other"}">{tds}</tr>'

"""The look-up tabs' components: Leaderboard, Variants, Report and Export. No events here: see
`ui.app` (wiring) and `ui.lookup_tabs` (handlers).

elem_ids listed in the README are stable hooks for automation: keep them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from ui.leaderboard import CATEGORY_LABELS, COLUMNS, VOTER_COLUMNS, legend

STATUS_COLUMNS = ["variant", "status", "takes", "tools", "thinking", "load time", "weights", "process memory",
                  "device", "note"]
EXPORT_FORMATS = {
    "csv": "Votes (CSV)",
    "jsonl": "Votes (JSONL)",
    "fastchat": "FastChat battles (JSONL)",
    "leaderboard-csv": "Leaderboard (CSV)",
}

#: The leaderboard's columns hidden on narrow screens: the table keeps rank, variant, rating, its
#: interval and votes, which then fit 500 px without scrolling sideways.
NARROW_HIDDEN_COLUMNS = ("wins", "losses", "ties", "both bad", "online Elo")
#: The shares of the narrow table's width its columns get (the variant's name and the interval wrap;
#: the headers' sort menus are hidden to leave their names room: the rows come ranked).
NARROW_WIDTHS = {"rank": 12, "variant": 31, "rating": 17, "95% CI": 26, "votes": 14}


def _leaderboard_css() -> str:
    """`LEADERBOARD_CSS`, from the DOM of Gradio 6's Dataframe: the header is a <table> whose <th>
    carry `data-heading` (0-based column), the rows shown are <div class="virtual-row"> of
    <div class="body-cell" data-col=N>, and a hidden <tbody class="sizing-body"> of <td>s sizes
    the columns. Gradio sets each column an inline width measured on the whole table, so the
    narrow table overrides them: shares of its width, the same for header and rows."""
    table = "#leaderboard-table"
    hidden = ",\n  ".join(
        f'{table} th[data-heading="{i}"], {table} .body-cell[data-col="{i}"], '
        f"{table} tbody.sizing-body td:nth-child({i + 1})"
        for i in (COLUMNS.index(name) for name in NARROW_HIDDEN_COLUMNS)
    )
    widths = "\n  ".join(
        f'{table} th[data-heading="{i}"], {table} .body-cell[data-col="{i}"] {{ width: {share}% !important; '
        f"min-width: 0 !important; max-width: none !important; flex: 0 0 {share}% !important; }}"
        for i, share in ((COLUMNS.index(name), share) for name, share in NARROW_WIDTHS.items())
    )
    return f"""
@media (max-width: 640px) {{
  {hidden} {{ display: none !important; }}
  {table} table.header-table {{ width: 100% !important; table-layout: fixed; }}
  {table} .virtual-body {{ width: 100% !important; }}
  {widths}
  {table} .body-cell span {{ white-space: normal; overflow-wrap: anywhere; }}
  {table} th span.header {{ white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }}
  {table} th .cell-menu-button {{ display: none !important; }}
}}
"""


#: CSS for the page (`gr.Blocks(css=...)`): the leaderboard table narrow-friendly below 640 px.
LEADERBOARD_CSS = _leaderboard_css()

#: Runs in the browser after an export's file is ready: downloads it (the value of the gr.File it
#: was written to), so one click on a format's button produces the file and downloads it.
DOWNLOAD_JS = """(file) => {
  if (file && file.url) {
    const link = document.createElement("a");
    link.href = file.url;
    link.download = file.orig_name || "";
    document.body.appendChild(link);
    link.click();
    link.remove();
  }
  return [];
}"""


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
    gr.Markdown(legend(), elem_id="leaderboard-legend")
    # headings of their own: a Plot's label sits over the top of the chart, covering its title
    ci_chart = _chart("Ratings with 95 % confidence intervals", "leaderboard-ci")
    quality_chart = _chart("Quality against speed and memory, on this machine", "leaderboard-quality")
    win_rate_chart = _chart("Win rates and battle counts", "leaderboard-winrate")
    with gr.Accordion("Voters", open=False, elem_id="leaderboard-voters-box"):
        gr.Markdown("Per voter: votes, how they split, and how often the voter picked the variant the overall "
                    "ratings favour. A voter far from the others (always A, always a tie, rarely agreeing) "
                    "stands out here.")
        voters = gr.Dataframe(headers=VOTER_COLUMNS, value=[], interactive=False, elem_id="leaderboard-voters")
        voter_chart = _chart("How each voter splits their votes", "leaderboard-voter-chart")
    return LeaderboardTab(category, mode, voter, refresh, summary, table, ci_chart, win_rate_chart, quality_chart,
                          voters, voter_chart)


#: The label of the box where an admin types the Ollama server's address (errors name it).
OLLAMA_HOST_BOX = "Ollama host"


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
            host = gr.Textbox(label=f"{OLLAMA_HOST_BOX} (empty: OLLAMA_HOST or http://127.0.0.1:11434)",
                              placeholder="http://gpu-box:11434 or gpu-box:11434", scale=3,
                              elem_id="ollama-host")
            discover = gr.Button("Discover", scale=1, elem_id="ollama-discover")
        discovered = gr.Markdown("")
    return VariantsTab(table, memory, timer, manage_box, name, load, unload, message, box, host, discover, discovered)


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
        # one click: the handler writes the file into `file`, then DOWNLOAD_JS downloads it (a
        # DownloadButton downloads its own value as it is clicked, which is the previous file)
        buttons = {fmt: gr.DownloadButton(label, elem_id=f"export-{fmt}") for fmt, label in EXPORT_FORMATS.items()}
    file = gr.File(label="Last export (downloaded already; click to download again)", elem_id="export-file",
                   interactive=False)
    return ExportTab(buttons, file, admins_only)


def _chart(title: str, elem_id: str) -> Any:
    gr.Markdown(f"#### {title}", elem_classes=["chart-heading"])
    return gr.Plot(show_label=False, elem_id=elem_id)

"""The rough edges a new user met on the Leaderboard, Variants and Export tabs and in the charts:
charts that say when they are empty and never hide a pair that tied, labels that do not overlap,
a leaderboard that explains itself and its odd slices (no votes, one vote, only ties), a narrow
table, Ollama addresses checked before connecting with messages that render cleanly, one-click
exports, and refusals that log one line.

Charts are checked through the Figure's artists (texts, patches, images), never pixels. The store
is a real SQLite file; scripted backends stand in for models (these are the tabs' flows, not
generation).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import gradio as gr
import httpx
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text

from arena.errors import RemoteError, StorageError, UsageError
from arena.ratings import Battles, Leaderboard, PairOutcome, compute_leaderboard
from backends.ollama.discover import check_host, discover
from storage import VariantSpeed
from tests.support.scripted import ScriptedBackend, tokens
from tests.support.ui import drain, free_port, scripted_services
from ui import charts
from ui.access import Access
from ui.battle import BattleFlow, BattleState
from ui.compare import FormOptions
from ui.leaderboard import COLUMNS, legend, summary, table_rows
from ui.lookup_layout import (
    LEADERBOARD_CSS,
    NARROW_HIDDEN_COLUMNS,
    NARROW_WIDTHS,
    ExportTab,
    LeaderboardTab,
    VariantsTab,
    render_export,
    render_leaderboard,
    render_variants,
)
from ui.lookup_tabs import LookupTabs, md_message, refused
from ui.services import ArenaServices

P = PairOutcome


def board_of(*pairs: PairOutcome, rounds: int = 100) -> Leaderboard:
    return compute_leaderboard(Battles.from_pairs(list(pairs)), rounds=rounds, seed=0)


def texts_of(fig: Any) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts] + [t.get_text() for t in fig.texts]


def cell_texts(ax: Any) -> dict[tuple[int, int], str]:
    """The text drawn in each cell of a matrix panel, by (row, column)."""
    return {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts}


# ------------------------------------------------------------------------------------------ charts
def test_win_rate_chart_numbers_a_pair_that_only_tied_and_marks_pairs_never_compared() -> None:
    # x-y and y-z only tied (twice, once); x and z never met
    board = board_of(P("x", "y", "tie"), P("y", "x", "both_bad"), P("y", "z", "tie"))
    order = {name: i for i, name in enumerate(board.models)}
    x, y, z = order["x"], order["y"], order["z"]
    rates, battles = charts.win_rate_chart(board).axes
    cells = cell_texts(rates)
    assert cells[(x, y)] == cells[(y, x)] == "50 %\n2 ties"
    assert cells[(y, z)] == cells[(z, y)] == "50 %\n1 tie"
    assert cells[(x, z)] == cells[(z, x)] == charts.NEVER_COMPARED
    assert cell_texts(battles)[(x, y)] == "2" and cell_texts(battles)[(x, z)] == charts.NEVER_COMPARED
    for ax in (rates, battles):
        assert all((i, i) not in cell_texts(ax) for i in range(3))  # the diagonal has no number
        diagonal = [p for p in ax.patches if p.get_gid() == "diagonal"]
        never = [p for p in ax.patches if p.get_gid() == "never-compared"]
        assert sorted(p.get_xy() for p in diagonal) == [(i - 0.5, i - 0.5) for i in range(3)]
        assert {p.get_xy() for p in never} == {(z - 0.5, x - 0.5), (x - 0.5, z - 0.5)}
        assert all(p.get_hatch() == charts.NEVER_COMPARED_HATCH for p in never)
        assert all(p.get_hatch() is None and p.get_facecolor() != never[0].get_facecolor() for p in diagonal)
        assert len(ax.images) == 1


def test_win_rate_chart_shows_the_decisive_share_of_a_pair_with_wins() -> None:
    board = board_of(P("x", "y", "a"), P("x", "y", "a"), P("y", "x", "a"), P("x", "y", "tie"))
    x, y = board.models.index("x"), board.models.index("y")
    cells = cell_texts(charts.win_rate_chart(board).axes[0])
    assert (cells[(x, y)], cells[(y, x)]) == ("67 %", "33 %")  # ties left out, as the title says


@pytest.mark.parametrize("draw, message", [
    (lambda empty: charts.ci_chart(empty), charts.NO_VOTES),
    (lambda empty: charts.win_rate_chart(empty), charts.NO_VOTES),
    (lambda empty: charts.quality_speed_chart(empty, []), charts.NO_VOTES),
    (lambda empty: charts.voter_chart([]), charts.NO_VOTES),
    (lambda empty: charts.stats_chart([]), charts.NO_RUNS),
], ids=["ci", "win-rate", "quality", "voters", "stats"])
def test_every_chart_says_inside_the_figure_when_it_has_nothing_to_show(draw: Any, message: str) -> None:
    fig = draw(board_of())
    assert message in texts_of(fig)
    assert fig.axes and not any(ax.axison for ax in fig.axes)  # no empty frame with ticks


def test_quality_chart_says_when_the_rated_variants_have_no_measured_runs() -> None:
    board = board_of(P("x", "y", "a"))
    speeds = [VariantSpeed("someone-else", 3, 12.0, 0.1, 2.0**30)]
    fig = charts.quality_speed_chart(board, speeds)
    assert texts_of(fig).count(charts.NO_RUNS_FOR_RATED) == 2


def test_labels_of_points_close_together_do_not_overlap() -> None:
    names = ["demo:e2b", "demo:e4b", "demo:26b-a4b", "demo:31b"]
    board = board_of(*(P(a, b, "tie") for a, b in pairwise(names)))
    # two pairs of variants nearly equal in speed and memory, and every rating equal
    speeds = [VariantSpeed(name, 3, tps, 0.1, mib * 2.0**20)
              for name, tps, mib in zip(names, [10.0, 10.3, 60.0, 61.0], [100, 101, 400, 2000], strict=True)]
    fig = charts.quality_speed_chart(board, speeds)
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw_without_rendering()
    for ax in fig.axes:
        labels = [t for t in ax.texts if t.get_text() in names]
        assert sorted(t.get_text() for t in labels) == sorted(names)
        boxes = [Text.get_window_extent(t, renderer) for t in labels]  # the text, without its leader line
        overlapping = [(a.get_text(), b.get_text()) for i, (a, box) in enumerate(zip(labels, boxes, strict=True))
                       for b, other in zip(labels[i + 1:], boxes[i + 1:], strict=True) if box.overlaps(other)]
        assert overlapping == []


# ------------------------------------------------------------------------------------- leaderboard
def test_the_legend_under_the_table_explains_every_column() -> None:
    text = legend()
    for column in COLUMNS:
        if column != "variant":
            assert column.split()[0] in text, column
    for term in ("Bradley–Terry", "Elo scale", "bootstrap", "preliminary", "order of the votes"):
        assert term in text
    with gr.Blocks() as page:
        render_leaderboard()
    shown = [block for block in page.blocks.values() if block.elem_id == "leaderboard-legend"]
    assert [block.value for block in shown] == [text]  # type: ignore[attr-defined]


def test_a_slice_where_every_vote_tied_shares_rank_one_and_says_why() -> None:
    # x-y tied 40 times (settled), z tied once (preliminary): equal ratings, yet Rank (UB)
    # would put the preliminary z last
    board = board_of(*[P("x", "y", "tie")] * 40, P("y", "z", "both_bad"), rounds=50)
    assert len({round(row.rating, 6) for row in board.rows}) == 1
    assert [row[0] for row in table_rows(board)] == [1, 1, 1]
    text = summary(board, "all", "blind", None, 0)
    assert "Every vote here is a tie or both bad" in text and "share rank 1" in text


def test_a_slice_of_one_vote_says_the_ratings_rest_on_it() -> None:
    board = board_of(P("x", "y", "a"))
    text = summary(board, "all", "blind", None, 0)
    assert "rest on one vote" in text
    assert "rest on one vote" not in summary(board_of(P("x", "y", "a"), P("x", "y", "b")), "all", "blind", None, 0)


def test_the_narrow_css_hides_exactly_the_secondary_columns_below_640_px() -> None:
    media, rules = LEADERBOARD_CSS.strip().split("{", 1)
    assert media.strip() == "@media (max-width: 640px)"
    hiding = rules.split("{ display: none !important; }")[0]  # the selectors of the first rule
    secondary = {COLUMNS.index(name) for name in NARROW_HIDDEN_COLUMNS}
    assert {int(i) for i in re.findall(r'th\[data-heading="(\d+)"\]', hiding)} == secondary
    assert {int(i) for i in re.findall(r'\.body-cell\[data-col="(\d+)"\]', hiding)} == secondary
    assert {int(i) - 1 for i in re.findall(r"tbody\.sizing-body td:nth-child\((\d+)\)", hiding)} == secondary
    assert set(NARROW_WIDTHS) | set(NARROW_HIDDEN_COLUMNS) == set(COLUMNS)
    assert sum(NARROW_WIDTHS.values()) == 100


@pytest.fixture
def services(tmp_path: Path) -> Iterator[ArenaServices]:
    backends = {name: ScriptedBackend(name, tokens(4, 0.0, name[0])) for name in ("alpha", "beta")}
    services = scripted_services(backends, tmp_path / "arena.db")
    yield services
    services.close()


def tabs_on(services: ArenaServices, export_dir: Path, *, admin: bool = True) -> LookupTabs:
    """The look-up tabs' handlers on `services`, with the real components they return values for."""
    tabs = LookupTabs()
    tabs.services, tabs.access, tabs.export_dir = services, Access(local_admin=admin), export_dir
    with gr.Blocks():
        tabs.leaderboard = render_leaderboard()
        tabs.variants = render_variants(services.names)
        tabs.export = render_export()
    return tabs


def battle_and_vote(services: ArenaServices, outcome: str) -> None:
    state = BattleState()
    drain(BattleFlow(services).run(state, "hello", FormOptions(max_new_tokens=4)))
    BattleFlow(services).vote(state, outcome)


def refresh(tabs: LookupTabs) -> dict[Any, Any]:
    return asyncio.run(tabs.refresh_leaderboard("all", "blind", "everyone"))


def test_refresh_on_a_slice_without_votes_says_so_in_the_summary_and_every_chart(
    services: ArenaServices, tmp_path: Path
) -> None:
    tabs = tabs_on(services, tmp_path)
    lb: LeaderboardTab = tabs.leaderboard
    shown = refresh(tabs)
    assert shown[lb.table] == [] and shown[lb.summary].startswith("**No votes yet**")
    assert "vote in Battle or Compare" in shown[lb.summary]
    for chart in (lb.ci_chart, lb.win_rate_chart, lb.quality_chart, lb.voter_chart):
        assert charts.NO_VOTES in texts_of(shown[chart])


def test_refresh_after_one_tie_names_both_facts_and_numbers_the_pair(services: ArenaServices, tmp_path: Path) -> None:
    tabs = tabs_on(services, tmp_path)
    battle_and_vote(services, "tie")
    shown = refresh(tabs)
    lb = tabs.leaderboard
    assert [row[0] for row in shown[lb.table]] == [1, 1]
    assert "rest on one vote" in shown[lb.summary] and "Every vote here is a tie" in shown[lb.summary]
    assert "50 %\n1 tie" in texts_of(shown[lb.win_rate_chart])


# ---------------------------------------------------------------------------------- Ollama discovery
@pytest.mark.parametrize("typed", ["not a url at all", "ftp://gpu-box:11434", "http://gpu-box:99999",
                                   "http://user:secret@gpu-box", "http://", ":11434", "gpu box"])
def test_discovery_refuses_what_is_not_an_address_before_connecting(typed: str) -> None:
    asked: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        return httpx.Response(200, json={"models": []})

    with pytest.raises(UsageError, match=r'give its address in the "Ollama host" box.*gpu-box:11434'):
        asyncio.run(discover(typed, where='in the "Ollama host" box', transport=httpx.MockTransport(answer)))
    assert asked == []


@pytest.mark.parametrize("typed, address", [
    ("127.0.0.1:9", "http://127.0.0.1:9"),
    ("gpu-box", "http://gpu-box:11434"),
    (" https://gpu-box ", "https://gpu-box:443"),
    ("http://[::1]:11434/", "http://[::1]:11434"),
    ("http://proxy.lan/ollama", "http://proxy.lan:11434/ollama"),
])
def test_discovery_takes_a_url_or_host_and_port(typed: str, address: str) -> None:
    assert check_host(typed) == address


def test_discovery_messages_point_to_the_host_box_and_render_without_escapes(
    services: ArenaServices, tmp_path: Path
) -> None:
    tabs = tabs_on(services, tmp_path)
    port = free_port()
    down = asyncio.run(tabs.discover_ollama(f"127.0.0.1:{port}"))
    assert down.startswith("**Could not list models:**")
    assert f"`http://127.0.0.1:{port}`" in down and "`ollama serve`" in down
    assert "--ollama-host" not in down and 'the \\"Ollama host\\" box' in down
    not_an_address = asyncio.run(tabs.discover_ollama("not a url at all"))
    assert not_an_address.startswith("**Not a server address.**") and "Ollama host" in not_an_address
    for text in (down, not_an_address):
        for span in re.findall(r"`([^`]*)`", text):
            assert "\\" not in span  # a backslash inside a code span shows as one
        outside = re.sub(r"`[^`]*`", "", text)
        assert "http" not in outside  # a bare URL is linked before escapes apply: its backslashes show


def test_markdown_messages_keep_markup_inert() -> None:
    from markdown_it import MarkdownIt

    text = md_message("see [here](http://evil.example/x) **now** <img src=x> `rm -rf` and `a`b")
    page = MarkdownIt("commonmark").render(text)
    assert "<a" not in page and "<strong>" not in page and "<img" not in page
    assert "<code>http://evil.example/x</code>" in page and "<code>rm -rf</code>" in page


# ----------------------------------------------------------------------------------------- exports
def test_export_buttons_download_with_one_click_and_keep_their_ids() -> None:
    with gr.Blocks():
        tab: ExportTab = render_export()
    assert {fmt: type(button) for fmt, button in tab.buttons.items()} == dict.fromkeys(
        ("csv", "jsonl", "fastchat", "leaderboard-csv"), gr.DownloadButton)
    assert [button.elem_id for button in tab.buttons.values()] == [f"export-{fmt}" for fmt in tab.buttons]
    assert tab.buttons["csv"].value is None  # never a stale file of its own to download first


def test_the_app_downloads_each_export_right_after_writing_it(services: ArenaServices) -> None:
    from ui.app import ArenaApp
    from ui.lookup_layout import DOWNLOAD_JS

    app = ArenaApp(services)
    ex = app.export
    fns = list(app.blocks.fns.values())
    for fmt, button in ex.buttons.items():
        export = next(fn for fn in fns if fn.api_name == f"export_{fmt}")
        assert [t[0] for t in export.targets] == [button._id] and [o._id for o in export.outputs] == [ex.file._id]
        after = [fn for fn in fns if fn.trigger_after == export._id and fn.trigger_only_on_success]
        assert [(fn.fn, fn.js, [i._id for i in fn.inputs]) for fn in after] == [(None, DOWNLOAD_JS, [ex.file._id])]


# ----------------------------------------------------------------------------------------- refusals
class Lines(logging.Handler):
    """The records a logger emits, kept (pytest's logging plugin is off: see pyproject.toml)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def ui_log() -> Iterator[Lines]:
    log, lines = logging.getLogger("gemma_arena.ui"), Lines()
    level = log.level
    log.addHandler(lines)
    log.setLevel(logging.INFO)
    yield lines
    log.removeHandler(lines)
    log.setLevel(level)


def test_refused_actions_log_one_line_not_a_traceback(services: ArenaServices, tmp_path: Path, ui_log: Lines) -> None:
    voter = tabs_on(services, tmp_path, admin=False)
    with pytest.raises(gr.Error, match="admins only") as export:
        asyncio.run(voter.export_file("csv"))
    with pytest.raises(gr.Error, match="admins only") as discovery:
        asyncio.run(voter.discover_ollama("127.0.0.1:11434"))
    with pytest.raises(gr.Error, match="pick a variant first") as load:
        asyncio.run(tabs_on(services, tmp_path).load_variant(None))
    assert [e.value.print_exception for e in (export, discovery, load)] == [False, False, False]
    refusals = [r for r in ui_log.records if r.getMessage().startswith("refused")]
    assert len(refusals) == 3 and not any(r.exc_info for r in refusals)
    # a voter still gets the leaderboard file, and nothing was written for the refused export
    assert Path(asyncio.run(voter.export_file("leaderboard-csv"))).read_text().startswith("rank")
    assert [p.name for p in tmp_path.rglob("gemma-arena-csv.csv")] == []


def test_a_servers_failure_keeps_its_traceback() -> None:
    assert refused(StorageError("the database is locked"), "a leaderboard").print_exception is True
    assert refused(RemoteError("down"), "a leaderboard").print_exception is True
    assert refused(UsageError("bad"), "a leaderboard").print_exception is False


def test_variants_tab_names_the_host_box_the_messages_point_to() -> None:
    with gr.Blocks():
        tab: VariantsTab = render_variants(["demo:e2b"])
    assert tab.discover_host.label.startswith("Ollama host") and tab.discover_host.elem_id == "ollama-host"


# ------------------------------------------------------------------ escaping and chart labels (ui/)
def test_names_and_errors_with_addresses_show_no_escaping() -> None:
    """A spec or an error naming a server showed `http://127\\.0\\.0\\.1:9`: the page's Markdown
    links a bare URL before escapes apply. Addresses and quoted commands are code spans now."""
    from ui.views import md_escape

    title = md_escape("ollama:gemma4?host=http://127.0.0.1:9")
    assert title.endswith("`http://127.0.0.1:9`") and "\\" not in title.split("`")[1]
    error = md_escape("Ollama at http://127.0.0.1:9 is not answering: run `ollama serve`.")
    assert "`http://127.0.0.1:9`" in error and "`ollama serve`" in error
    assert md_escape("<b>x</b> [a](b)") == "\\<b\\>x\\</b\\> \\[a\\]\\(b\\)"  # markup still inert
    assert md_escape("a `back`tick`") == "a `back`tick\\`"  # a lone backtick is escaped, never left open


def test_no_chart_label_covers_its_chart(tmp_path: Path) -> None:
    """A Plot's label sits over the top of its chart, where the chart's title is: every chart of
    the page has a heading of its own instead."""
    from ui.app import ArenaApp

    services = scripted_services({"one": ScriptedBackend("one", [])}, tmp_path / "arena.db")
    try:
        app = ArenaApp(services)
        plots = [block for block in app.blocks.blocks.values() if isinstance(block, gr.Plot)]
        assert len(plots) >= 5 and all(plot.show_label is False for plot in plots)
    finally:
        services.close()

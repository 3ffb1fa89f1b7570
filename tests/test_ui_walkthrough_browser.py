"""A new user's walk-through in a real headless Chromium, at 1400 px and at a phone's 500 px: a
conversation of two turns, a reload that keeps it, a vote, the battle's reveal on its panels, the
Leaderboard, History, one-click export. Screenshots of each step go to artifacts/screenshots.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from gradio_client import Client

from backends.base import Capabilities, Chunk
from tests.support.browser import (
    answer_of,
    open_app,
    save_screenshot,
    select_tab,
    select_variants,
    text_of,
    type_prompt,
)
from tests.support.scripted import ScriptedBackend, Step
from tests.support.ui import free_port, scripted_services
from ui.app import ArenaApp
from ui.services import ArenaServices

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.timeout(300)

WAIT_MS = 90_000
TEXT = Capabilities(frozenset({"text"}), tools=False, thinking=True)
#: Long answers, with Markdown: what makes a page tall on a phone.
ANSWER = "## Steps\n\n" + "".join(f"{i}. a step with a `command --flag` in it\n" for i in range(1, 30))
WIDTHS = {"wide": 1400, "narrow": 500}


def answering(name: str) -> list[Step]:
    return [Step(0.005, Chunk(text=f"**{name}** says:\n\n", tokens=1))] + [
        Step(0.002, Chunk(text=line + "\n", tokens=1)) for line in ANSWER.splitlines()]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ArenaServices, str]]:
    backends = {name: ScriptedBackend(name, answering(name), TEXT) for name in ("north", "south", "east", "west")}
    services = scripted_services(backends, tmp_path_factory.mktemp("walkthrough") / "arena.db")
    app = ArenaApp(services)
    app.blocks.queue()
    app.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    # some blind votes, so the Leaderboard has rows (a vote through the API, as a script would cast it)
    c = Client(app.blocks.local_url, download_files=False, verbose=False)
    for outcome in ("a", "b", "tie", "a", "both_bad", "a"):
        c.predict(prompt={"text": "Warm up", "files": []}, max_new_tokens=8, api_name="/battle")
        c.predict(api_name=f"/vote_{outcome}")
        c.predict(api_name="/new_round")
    yield services, app.blocks.local_url
    app.blocks.close()
    closer = threading.Thread(target=services.close)  # not in Playwright's event loop (see test_ui_browser)
    closer.start()
    closer.join(60)


@pytest.fixture(params=list(WIDTHS))
def page(request: pytest.FixtureRequest, browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": WIDTHS[request.param], "height": 900})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.width_name = request.param  # type: ignore[attr-defined]
    yield page
    context.close()


def shot(page: Page, step: str) -> None:
    path = save_screenshot(page, f"walkthrough-{step}-{page.width_name}")  # type: ignore[attr-defined]
    assert path.read_bytes().startswith(b"\x89PNG")


def no_sideways_scroll(page: Page) -> None:
    overflow = page.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow} px"


def test_a_conversation_survives_a_reload_and_the_vote_is_in_reach(server: tuple[ArenaServices, str],
                                                                    page: Page) -> None:
    _, url = server
    open_app(page, url)
    select_variants(page, ["scripted:north", "scripted:south"])
    page.wait_for_selector("#compare-panel-2", state="hidden")
    type_prompt(page, "compare-prompt", "How do I start?")
    page.click("#compare-send")
    page.wait_for_selector("#compare-vote-best:not([disabled])")
    # Markdown is rendered: a heading, a numbered list, code
    assert page.locator("#compare-panel-0 .answer .answer-rendered h2").inner_text() == "Steps"
    assert page.locator("#compare-panel-0 .answer .answer-rendered ol li").count() == 29
    first = answer_of(page, "compare-panel-0")

    # typing the next question leaves the answers and the vote as they are
    type_prompt(page, "compare-prompt", "And then?")
    page.wait_for_function("() => document.querySelector('#compare-preview')?.textContent.includes('turn 2')")
    assert answer_of(page, "compare-panel-0") == first
    assert page.locator("#compare-vote-best").is_enabled()
    page.click("#compare-send")
    page.wait_for_function("() => document.querySelector('#compare-panel-0 .history')?.textContent"
                           ".includes('How do I start?')")
    page.wait_for_selector("#compare-vote-best:not([disabled])")
    assert "And then?" in text_of(page, "#compare-panel-0 .history")
    no_sideways_scroll(page)
    shot(page, "conversation")

    # a reload finds the conversation again, answers and vote included
    page.reload(wait_until="load")
    page.wait_for_function("() => document.querySelector('#compare-panel-0 .history')?.textContent"
                           ".includes('How do I start?')")
    page.wait_for_selector("#compare-vote-best:not([disabled])")
    assert answer_of(page, "compare-panel-0").startswith("**north** says:")

    # the vote is right under the answers, before the chart
    vote_top = page.locator("#compare-vote-best").bounding_box()
    chart_top = page.locator("#compare-chart").bounding_box()
    assert vote_top is not None and chart_top is not None and vote_top["y"] < chart_top["y"]
    page.locator("#compare-best label", has_text="scripted:south").click()
    page.click("#compare-vote-best")
    page.wait_for_function("() => document.querySelector('#compare-vote-message').textContent"
                           ".includes('2 turns')")
    shot(page, "voted")
    chart = page.locator("#compare-chart img").bounding_box()
    assert chart is not None and chart["height"] / chart["width"] > 0.35  # a chart, not a strip
    # as wide as a phone's screen allows, or at its own size on a wide one
    assert chart["width"] >= min(WIDTHS[page.width_name] * 0.8, 600)  # type: ignore[attr-defined]


def test_the_battle_reveal_names_the_sides_on_their_panels_and_marks_the_winner(
    server: tuple[ArenaServices, str], page: Page
) -> None:
    _, url = server
    open_app(page, url)
    select_tab(page, "Battle")
    type_prompt(page, "battle-prompt", "Which way?")
    page.click("#battle-send")
    page.wait_for_selector("#vote-b:not([disabled])")
    assert text_of(page, "#battle-panel-a h3") == "Model A" and text_of(page, "#battle-panel-b h3") == "Model B"
    assert text_of(page, "#battle-panel-a .stats") == ""  # speed and memory wait for the vote
    assert page.locator("#battle-stop").is_visible()
    page.click("#vote-b")
    page.wait_for_function("() => document.querySelector('#battle-panel-b h3').textContent.includes('winner')")
    a, b = text_of(page, "#battle-panel-a h3"), text_of(page, "#battle-panel-b h3")
    assert a.startswith("Model A: scripted:") and "winner" not in a
    assert b.startswith("Model B: scripted:") and b.endswith("🏆 winner")
    assert "TTFT" in text_of(page, "#battle-panel-b .stats")
    no_sideways_scroll(page)
    shot(page, "battle-reveal")


def test_the_leaderboard_fits_the_screen_and_explains_its_columns(server: tuple[ArenaServices, str],
                                                                  page: Page) -> None:
    _, url = server
    open_app(page, url)
    select_tab(page, "Leaderboard")
    page.wait_for_function("() => document.querySelectorAll('#leaderboard-table [role=gridcell]').length >= 10")
    table = page.locator("#leaderboard-table table").first
    sizes = table.evaluate("t => [t.scrollWidth, t.parentElement.clientWidth]")
    assert sizes[0] <= sizes[1] + 1, f"the table is {sizes[0]} px wide in {sizes[1]} px"
    legend = text_of(page, "#leaderboard-legend")
    assert "online Elo" in legend and "95% CI" in legend and "preliminary" in legend
    no_sideways_scroll(page)
    shot(page, "leaderboard")


def test_history_lists_the_conversations_and_export_downloads_in_one_click(
    server: tuple[ArenaServices, str], page: Page, tmp_path: Path
) -> None:
    _, url = server
    open_app(page, url)
    select_tab(page, "History")
    page.wait_for_function("() => document.querySelectorAll('#history-table [role=gridcell]').length >= 6")
    assert "blind battle" in text_of(page, "#history-table")
    no_sideways_scroll(page)
    shot(page, "history")
    select_tab(page, "Export")
    with page.expect_download() as download:
        page.click("#export-leaderboard-csv")
    saved = tmp_path / "leaderboard.csv"
    download.value.save_as(saved)
    assert saved.read_text().splitlines()[0].startswith("rank,variant")
    shot(page, "export")

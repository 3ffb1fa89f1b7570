"""The web UI end to end in a real headless Chromium: a real Gradio server in this process, on the
tiny real Gemma 4 demo variants (and, where the answer must be dictated, on scripted backends).

What is checked is what a person sees: panels that stream, buttons that enable, names that stay
hidden until the vote, a leaderboard that moves, warnings before sending, model output shown as
text and never run as markup, and a Stop button that stops.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from arena.lineup import create_lineup
from arena.settings import Settings
from backends.base import Capabilities, Chunk
from backends.registry import VariantSpec
from storage import open_store
from tests.support.browser import (
    VIEWPORT,
    Probe,
    Watch,
    answer_of,
    attach_files,
    open_app,
    save_screenshot,
    select_tab,
    select_variants,
    set_max_new_tokens,
    table_rows,
    text_of,
    type_prompt,
    values,
)
from tests.support.media import write_wav
from tests.support.scripted import ScriptedBackend, Step, registry_with, tokens
from tests.support.ui import demo_services, free_port
from ui.app import ArenaApp
from ui.services import ArenaServices

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.timeout(300)

DEMO = ["demo:e2b", "demo:31b"]
WAIT_MS = 90_000  # generous: the tests share two cores with whatever else runs
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass
class Server:
    """A launched app: its URL and the services behind it."""

    url: str
    services: ArenaServices


def launch(services: ArenaServices) -> tuple[ArenaApp, str]:
    """Serve the app as the tests in tests/test_ui_server.py do: queue, loopback, a free port."""
    app = ArenaApp(services)
    app.blocks.queue()
    app.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True,
                      run_history=False)
    return app, app.blocks.local_url


def close_services(services: ArenaServices) -> None:
    """Close the services from another thread: Playwright's sync API runs an event loop in this one,
    and closing the variants needs `asyncio.run`."""
    closer = threading.Thread(target=services.close, name="close services")
    closer.start()
    closer.join(60)


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory, demo_cache: Path) -> Iterator[Server]:
    """The app on the demo variants demo:e2b (takes audio) and demo:31b (does not), for the module."""
    data = tmp_path_factory.mktemp("browser-data")
    services = demo_services(DEMO, Settings(data, demo_cache, data / "arena.db"))
    app, url = launch(services)
    yield Server(url, services)
    app.blocks.close()
    close_services(services)


# What a model might answer that a careless UI would run or render: a script, an image whose error
# handler runs, a link, Markdown bold.
HOSTILE_ANSWER = ('Here: <script>window.__pwned=1</script><img src=x onerror="window.__pwned=2"> '
                  "and [a link](http://example.invalid) and **bold**\nsecond line\n\n"
                  "![a picture](http://example.invalid/pixel.png) [run me](javascript:window.__pwned=5) "
                  '<iframe src="http://example.invalid/frame"></iframe> [data](data:text/html,<b>x</b>)\n\n'
                  "```python\nprint('<script>')\n```")
HOSTILE_THINKING = '<img src=x onerror="window.__pwned=4">[think](http://example.invalid/t) *hmm*'
HOSTILE_LABEL = '<b>x</b><img src=x onerror="window.__pwned=3">'
TEXT = Capabilities(frozenset({"text"}), tools=False, thinking=True)


def _hostile_steps() -> list[Step]:
    thinking = [Step(0.01, Chunk(text=HOSTILE_THINKING, channel="thinking", tokens=1))]
    half = len(HOSTILE_ANSWER) // 2  # split mid-tag: the browser sees partial markup while streaming
    return thinking + [Step(0.05, Chunk(text=part, tokens=1)) for part in (HOSTILE_ANSWER[:half],
                                                                          HOSTILE_ANSWER[half:])]


@pytest.fixture(scope="module")
def scripted_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The app on scripted backends: one labelled with markup that answers with markup, one that
    answers plainly, and one slow one (2,000 tokens at 20 ms) to stop."""
    backends = {
        "hostile": ScriptedBackend("hostile", _hostile_steps(), TEXT),
        "plain": ScriptedBackend("plain", tokens(5, 0.01, "p"), TEXT),
        "slow": ScriptedBackend("slow", tokens(2000, 0.02, "s"), TEXT),
    }
    specs = [VariantSpec.parse("scripted:hostile", {"label": HOSTILE_LABEL}), VariantSpec.parse("scripted:plain"),
             VariantSpec.parse("scripted:slow")]
    db = tmp_path_factory.mktemp("browser-scripted") / "arena.db"
    lineup = create_lineup(specs, registry_with(backends), Settings(db.parent, db.parent, db))
    services = ArenaServices(lineup, open_store(db), seed=0, timeout_s=30)
    services.start_loading()
    assert services.wait_loaded(60)
    app, url = launch(services)
    yield Server(url, services)
    app.blocks.close()
    close_services(services)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context per test: a new Gradio session, no state shared between tests."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    yield page
    context.close()


def _growth(changes: list[tuple[float, Any]], final: str) -> list[str]:
    """The non-empty values a box showed before its final text, in order."""
    return [v for v in values(changes) if v and v != final]


def _assert_png(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 1000, f"no screenshot at {path}"
    assert path.read_bytes()[:8] == PNG_MAGIC


# ------------------------------------------------------------------------------------------- Compare
def test_compare_tab_shows_one_panel_per_selected_variant_at_load(demo_server: Server, page: Page) -> None:
    open_app(page, demo_server.url)
    for i, name in enumerate(DEMO):
        assert page.locator(f"#compare-panel-{i}").is_visible()
        assert text_of(page, f"#compare-panel-{i} h3") == name
    for i in (2, 3):  # only two variants are served: no empty third and fourth panel
        assert page.locator(f"#compare-panel-{i}").is_hidden()


def test_compare_streams_every_shown_panel_then_shows_its_stats(demo_server: Server, page: Page) -> None:
    open_app(page, demo_server.url)
    # 192 tokens: at a few ms a token the answers take ~10 of the UI's 50 ms update intervals or
    # more, so several snapshots reach the page even when a busy machine delays some of them.
    set_max_new_tokens(page, "compare", 192)
    type_prompt(page, "compare-prompt", "Which Gemma fits my laptop?")
    panels = [f"compare-panel-{i}" for i in range(len(DEMO))]
    watch = Watch(page, [Probe(p, f"#{p} .answer .answer-raw", "text") for p in panels]
                  + [Probe(f"{p}/stats", f"#{p} .stats", "text") for p in panels]
                  + [Probe("progress", "#compare-status [data-testid=status-tracker]", "html")])
    page.click("#compare-send")
    page.wait_for_function("() => document.querySelector('#compare-panel-0 .answer .answer-raw').textContent !== ''")
    page.locator("#compare-panel-0").scroll_into_view_if_needed()
    streaming_shot = save_screenshot(page, "compare-streaming", full_page=False)  # quick, mid-stream
    for p in panels:
        page.wait_for_function(f"() => document.querySelector('#{p} .stats').textContent.includes('TTFT')")
    final_shot = save_screenshot(page, "compare-final")
    series = watch.stop()

    for p in panels:
        final = answer_of(page, p)
        assert final, f"{p} shows no answer"
        grown = _growth(series[p], final)
        # several snapshots before the end, each extending the one before: it streamed
        assert len(grown) >= 3, f"{p} went from empty to final in {len(grown)} step(s): {grown!r}"
        assert all(len(a) < len(b) for a, b in itertools.pairwise(grown))
        assert all(final.startswith(v) for v in grown)
        stats = series[f"{p}/stats"]
        answer_done = next(t for t, v in series[p] if v == final)
        stats_shown = next(t for t, v in stats if v and "TTFT" in v)
        assert stats_shown >= answer_done - 1  # stats come with the final answer, not before it
        assert "tok/s" in stats[-1][1] and "peak memory" in stats[-1][1]
    # Gradio's progress shows on the status line under Send while the answers stream, then goes
    progress = series["progress"]
    first_token = min(next(t for t, v in series[p] if v) for p in panels)
    assert any("generating" in v for t, v in progress if t >= first_token), progress
    assert " hide" in progress[-1][1]
    assert page.locator("#compare-panel-2").is_hidden() and page.locator("#compare-panel-3").is_hidden()
    _assert_png(streaming_shot)
    _assert_png(final_shot)


def test_audio_prompt_warns_before_sending_and_only_the_audio_variant_answers(
    demo_server: Server, page: Page, tmp_path: Path
) -> None:
    open_app(page, demo_server.url)
    set_max_new_tokens(page, "compare", 16)
    attach_files(page, "compare-prompt", [write_wav(tmp_path / "clip.wav")])
    page.wait_for_function("() => document.querySelector('#compare-panel-1').textContent.includes('Cannot take "
                           "audio')")
    assert "Cannot take" not in text_of(page, "#compare-panel-0")  # e2b takes audio
    assert answer_of(page, "compare-panel-1") == ""  # a warning, before anything was sent
    type_prompt(page, "compare-prompt", "What do you hear?")
    page.click("#compare-send")
    page.wait_for_function("() => document.querySelector('#compare-panel-0 .stats').textContent.includes('TTFT')")
    page.wait_for_function("() => document.querySelector('#compare-panel-1').textContent.includes('Skipped')")
    save_screenshot(page, "compare-audio")
    assert answer_of(page, "compare-panel-0") != ""
    assert answer_of(page, "compare-panel-1") == ""
    # skipped, saying why, with no stats line (nothing was measured: nothing was sent)
    assert "Skipped: cannot take audio" in text_of(page, "#compare-panel-1")
    assert "Error" not in text_of(page, "#compare-panel-1")
    assert text_of(page, "#compare-panel-1 .stats") == ""


# -------------------------------------------------------------------------------------------- Battle
def test_blind_battle_enables_votes_when_done_then_reveals_and_moves_the_leaderboard(
    demo_server: Server, page: Page
) -> None:
    open_app(page, demo_server.url)
    select_tab(page, "Leaderboard")
    page.wait_for_function("() => document.body.textContent.includes('pairwise outcome')")  # refreshed
    rows_before = table_rows(page, "#leaderboard-table")

    select_tab(page, "Battle")
    set_max_new_tokens(page, "battle", 48)
    type_prompt(page, "battle-prompt", "Tell me a story about a llama")
    battle_tab = "[role=tabpanel]:has(#battle-panel-a)"
    watch = Watch(page, [Probe("a", "#battle-panel-a .answer .answer-raw", "text"),
                         Probe("b", "#battle-panel-b .answer .answer-raw", "text"),
                         Probe("vote-a", "#vote-a", "disabled"), Probe("vote-tie", "#vote-tie", "disabled"),
                         Probe("tab", battle_tab, "html")])
    page.click("#battle-send")
    page.wait_for_function("() => document.querySelector('#battle-panel-a .answer .answer-raw').textContent !== ''")
    page.wait_for_selector("#vote-a:not([disabled])")
    series = watch.stop()
    answers = {side: answer_of(page, f"battle-panel-{side}") for side in ("a", "b")}
    assert all(answers.values())

    # votes stay disabled while any answer is still growing; enabled only once both are final
    streaming_at = [t for side in ("a", "b") for t, v in series[side] if v and v != answers[side]]
    assert streaming_at, "no intermediate answer was seen: nothing streamed"
    enabled_at = next(t for t, disabled in series["vote-a"] if disabled is False)
    assert max(streaming_at) < enabled_at, "a vote button was enabled while an answer was still streaming"
    assert all(t <= enabled_at for side in ("a", "b") for t, v in series[side] if v == answers[side])
    assert series["vote-tie"][-1][1] is False

    # no variant name anywhere in the tab (text, attributes, hidden parts, answers) before the vote
    shown = [v for _, v in series["tab"] if v] + [page.locator(battle_tab).inner_html(), *answers.values()]
    for name in DEMO:
        assert not any(name in html for html in shown), f"{name} shown before the vote"
    assert text_of(page, "#battle-panel-a h3") == "Model A"

    page.click("#vote-a")
    page.wait_for_function("() => document.querySelector('#battle-reveal').textContent.includes('was')")
    reveal = text_of(page, "#battle-reveal")
    assert all(name in reveal for name in DEMO) and "Model A is better" in reveal
    page.wait_for_selector("#vote-a[disabled]")  # one vote per battle
    _assert_png(save_screenshot(page, "battle-reveal"))

    select_tab(page, "Leaderboard")
    page.wait_for_function("() => document.querySelectorAll('#leaderboard-table [role=gridcell]').length >= 20")
    rows = table_rows(page, "#leaderboard-table")
    assert rows != rows_before
    # columns: rank, variant (with " (preliminary)" under a few votes), rating, 95% CI, votes, ...
    votes = {row[1].split(" (")[0]: int(row[4]) for row in rows}
    assert all(votes.get(name, 0) >= 1 for name in DEMO), rows
    _assert_png(save_screenshot(page, "leaderboard"))

    select_tab(page, "Battle")
    page.click("#new-round")
    page.wait_for_function("() => document.querySelector('#battle-reveal').textContent.trim() === ''")
    page.wait_for_function("() => document.querySelector('#battle-panel-a .answer .answer-raw').textContent === '' && "
                           "document.querySelector('#battle-panel-b .answer .answer-raw').textContent === ''")
    assert page.locator("#vote-a").is_disabled()
    assert text_of(page, "#battle-panel-b h3") == "Model B"


# ------------------------------------------------------------------------------- rendering and Stop
def test_model_output_and_variant_labels_are_shown_as_text_never_run(scripted_server: Server, page: Page) -> None:
    open_app(page, scripted_server.url)
    select_variants(page, [HOSTILE_LABEL, "scripted:plain"])
    page.wait_for_selector("#compare-panel-2", state="hidden")
    type_prompt(page, "compare-prompt", "Say something dangerous")
    fetched: list[str] = []
    page.on("request", lambda request: fetched.append(request.url))
    page.click("#compare-send")
    page.wait_for_function("() => document.querySelector('#compare-panel-0 .stats').textContent.includes('TTFT')")
    page.wait_for_function("() => document.querySelector('#compare-panel-1 .stats').textContent.includes('TTFT')")
    page.wait_for_selector("#compare-vote-best:not([disabled])")
    page.locator("#compare-best label", has_text="<b>x</b>").click()
    page.click("#compare-vote-best")
    page.wait_for_function("() => document.querySelector('#compare-vote-message').textContent.includes('recorded')")
    _assert_png(save_screenshot(page, "rendering-safety"))

    assert answer_of(page, "compare-panel-0") == HOSTILE_ANSWER  # the raw view holds it as written
    page.locator("#compare-panel-0 button.label-wrap", has_text="Thinking").click()  # a closed accordion
    assert page.locator("#compare-panel-0 .thinking textarea").input_value() == HOSTILE_THINKING
    assert text_of(page, "#compare-panel-0 h3") == HOSTILE_LABEL  # escaped, so shown as written
    assert HOSTILE_LABEL in text_of(page, "#compare-variants")
    assert HOSTILE_LABEL in text_of(page, "#compare-best")
    assert HOSTILE_LABEL in text_of(page, "#compare-vote-message")
    assert page.evaluate("() => typeof window.__pwned") == "undefined"
    found = page.evaluate(
        "() => ({img: document.querySelectorAll('.arena-panel img, img[src=\"x\"]').length,"
        " frames: document.querySelectorAll('.arena-panel iframe').length,"
        " script: [...document.scripts].filter(s => s.textContent.trim().startsWith('window.__pwned')).length,"
        " handlers: [...document.querySelectorAll('.arena-panel *')].filter("
        "   e => [...e.attributes].some(a => a.name.startsWith('on'))).length,"
        " links: [...document.querySelectorAll('#compare-panel-0 .answer-rendered a')].map("
        "   a => [a.getAttribute('href'), a.getAttribute('rel'), a.getAttribute('target')]),"
        " strong: document.querySelectorAll('#compare-panel-0 .answer-rendered strong').length,"
        " code: document.querySelector('#compare-panel-0 .answer-rendered pre code')?.textContent,"
        " rendered: document.querySelector('#compare-panel-0 .answer-rendered').innerText})"
    )
    assert found["img"] == found["frames"] == found["script"] == found["handlers"] == 0, found
    # Markdown is rendered: the one http link (opening elsewhere, without the page as its opener),
    # bold, and code; the javascript: and data: links stay text, the image a note, nothing fetched
    # (the image's address is a link to follow, never loaded)
    assert found["links"] == [[url, "noopener noreferrer nofollow", "_blank"]
                              for url in ("http://example.invalid", "http://example.invalid/pixel.png")], found
    assert found["strong"] == 1 and found["code"] == "print('<script>')\n"
    assert "[image: a picture" in found["rendered"] and "javascript:" in found["rendered"]
    assert not [url for url in fetched if "example.invalid" in url], fetched
    # the raw-text switch shows the text as written in place of the rendered Markdown
    page.click("#raw-toggle input")
    page.wait_for_selector("#compare-panel-0 .answer .answer-raw", state="visible")
    assert page.locator("#compare-panel-0 .answer .answer-rendered").is_hidden()
    assert page.locator("#compare-panel-0 .answer .answer-raw").inner_text().strip() == HOSTILE_ANSWER
    page.click("#raw-toggle input")
    page.wait_for_selector("#compare-panel-0 .answer .answer-rendered", state="visible")


def settled_answer(page: Page, panel_id: str, *, quiet_s: float, within_s: float) -> str:
    """The panel's answer once it has not changed for `quiet_s`; fails if it keeps changing."""
    deadline = time.monotonic() + within_s
    last, changed_at = answer_of(page, panel_id), time.monotonic()
    while time.monotonic() - changed_at < quiet_s:
        assert time.monotonic() < deadline, f"the answer was still growing {within_s:g} s after Stop"
        time.sleep(0.1)
        now = answer_of(page, panel_id)
        if now != last:
            last, changed_at = now, time.monotonic()
    return last


def test_stop_ends_a_long_comparison(scripted_server: Server, page: Page) -> None:
    slow: ScriptedBackend = scripted_server.services.variant("scripted:slow").backend  # type: ignore[assignment]
    open_app(page, scripted_server.url)
    select_variants(page, ["scripted:slow"])
    page.wait_for_selector("#compare-panel-1", state="hidden")
    type_prompt(page, "compare-prompt", "Count forever")
    page.click("#compare-send")
    page.wait_for_function("() => document.querySelector('#compare-panel-0 .answer .answer-raw')"
                           ".textContent.length >= 20")
    growing = len(answer_of(page, "compare-panel-0"))
    page.click("#compare-stop")
    deadline = time.monotonic() + 10
    while not slow.cancelled and time.monotonic() < deadline:
        time.sleep(0.1)
    assert slow.cancelled, "the backend was still generating after Stop"
    # A live stream changes the box at least every 50 ms (the UI's update interval; a token every
    # 20 ms here), so 2 s without a change means it ended, however busy the machine is.
    stopped = settled_answer(page, "compare-panel-0", quiet_s=2.0, within_s=30.0)
    assert growing <= len(stopped) < 2000  # the whole answer is 2,000 characters
    # marked stopped, with the figures measured until then; a stopped turn takes no vote, and says so
    page.wait_for_function("() => document.querySelector('#compare-panel-0').textContent.includes('Stopped after')")
    assert "TTFT" in text_of(page, "#compare-panel-0 .stats")
    save_screenshot(page, "compare-stopped")

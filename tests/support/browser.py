"""Debian's Chromium through Playwright, and page helpers shared by the browser tests and
`bench/bench_ui.py`.

Playwright's own browser builds are not used (`playwright install` needs the internet): the system
Chromium is. A missing browser is an error with the fix in its message, never a skip, so a CI run
cannot pass by not testing.

`Watch` records, inside the page, every change of a few DOM values (an answer box, a stats line, a
button's disabled state) with its time, so tests can see a panel stream rather than only its end.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, ViewportSize

CHROMIUM = Path(os.environ.get("GEMMA_ARENA_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REPO = Path(__file__).resolve().parents[2]
VIEWPORT: ViewportSize = {"width": 1400, "height": 1000}


class BrowserUnavailable(RuntimeError):
    """Chromium or the playwright package is missing; the message says how to install them."""


def missing_browser() -> str | None:
    """Why a browser cannot be launched here, or None if it can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return ("the playwright Python package is missing: `pip install playwright` (or "
                "`bash scripts/install.sh --test`); do not run `playwright install`: the system Chromium is used")
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        return (f"no Chromium at {CHROMIUM}: `apt-get install -y chromium` (Debian's package), or point "
                "GEMMA_ARENA_CHROMIUM at a Chromium binary")
    return None


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless system Chromium, closed on exit. Raises BrowserUnavailable if it is missing."""
    why = missing_browser()
    if why is not None:
        raise BrowserUnavailable(why)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def screenshot_dir() -> Path:
    """Where screenshots go: GEMMA_ARENA_SCREENSHOTS, else artifacts/screenshots in the repository."""
    folder = Path(os.environ.get("GEMMA_ARENA_SCREENSHOTS") or REPO / "artifacts" / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# ------------------------------------------------------------------------------------------- the page
def open_app(page: Page, url: str, timeout_ms: float = 60_000) -> None:
    """Load the app and wait until the Compare tab is usable. Never "networkidle": Gradio keeps a
    connection open, so the network does not go idle."""
    page.goto(url, wait_until="load", timeout=timeout_ms)
    page.wait_for_selector("#compare-send", state="visible", timeout=timeout_ms)


def log_in(page: Page, url: str, name: str, password: str) -> None:
    """Open the app behind Gradio's login form and log in as `name`."""
    page.goto(url, wait_until="load", timeout=60_000)
    page.get_by_label("username").fill(name)
    page.get_by_label("password").fill(password)
    page.get_by_role("button", name="Login").click()
    page.wait_for_selector("#compare-send", state="visible", timeout=60_000)


def select_tab(page: Page, label: str) -> None:
    """Click the tab labelled `label` (Compare, Battle, Leaderboard, ...). On a narrow screen
    Gradio moves the tabs that do not fit into its "More tabs" menu: it is opened first."""
    tab = page.get_by_role("tab", name=label, exact=True)
    if tab.count():
        tab.click()
        return
    page.get_by_role("button", name="More tabs").click()
    page.locator("button:visible", has_text=label).last.click()


def type_prompt(page: Page, elem_id: str, text: str) -> None:
    """Type into a MultimodalTextbox's text area."""
    page.locator(f"#{elem_id} textarea").first.fill(text)


def attach_files(page: Page, elem_id: str, paths: Sequence[Path]) -> None:
    """Upload files into a MultimodalTextbox, as its paper-clip button does."""
    page.locator(f"#{elem_id} input[type=file]").first.set_input_files([str(p) for p in paths])


def set_max_new_tokens(page: Page, tab: str, tokens: int) -> None:
    """Open the tab's Settings accordion (`tab` is "compare" or "battle") and set Max new tokens.
    The accordion's content can still be mounting when its box first shows, and then the form's
    own value replaces a typed one: the number is typed again until it stays."""
    settings = page.locator(f"#{tab}-settings")
    number = settings.get_by_label("number input for Max new tokens")
    if not number.is_visible():
        settings.locator("button.label-wrap").first.click()
    for _ in range(20):
        number.fill(str(tokens))
        number.press("Tab")  # the slider takes the typed number when the box loses focus
        page.wait_for_timeout(50)
        if number.input_value() == str(tokens):
            return
    raise AssertionError(f"Max new tokens of the {tab} tab does not take {tokens}: it shows {number.input_value()}")


def select_variants(page: Page, wanted: Sequence[str]) -> None:
    """Tick exactly `wanted` in the Compare tab's variant checkboxes (by their visible label)."""
    for label in page.locator("#compare-variants label").all():
        box = label.locator("input[type=checkbox]")
        name = label.inner_text().strip()
        if box.is_checked() != (name in wanted):
            box.click()


def answer_of(page: Page, panel_id: str) -> str:
    """A panel's answer as the model wrote it (the raw text beside the rendered Markdown), trimmed."""
    return str(page.locator(f"#{panel_id} .answer .answer-raw").first.evaluate("e => e.textContent")).strip()


def text_of(page: Page, selector: str) -> str:
    """The text content of the first element matching `selector` (hidden text included)."""
    return str(page.locator(selector).first.evaluate("e => e.textContent")).strip()


def table_rows(page: Page, selector: str) -> list[list[str]]:
    """The body rows of a gr.Dataframe, as cell texts (its grid's rows; not the hidden sizing table)."""
    rows = page.locator(selector).first.evaluate(
        "e => [...e.querySelectorAll('[role=row]')].map(r => [...r.querySelectorAll('[role=gridcell]')]"
        ".map(c => c.textContent.trim()))"
    )
    return [row for row in rows if row]


def save_screenshot(page: Page, name: str, full_page: bool = True) -> Path:
    """A PNG of the page (or of the viewport only, which is quicker) under `screenshot_dir()`."""
    path = screenshot_dir() / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


# ------------------------------------------------------------------------------------------ the watch
Read = Literal["value", "text", "disabled", "html"]


@dataclass(frozen=True)
class Probe:
    """A DOM value to record: `read` a textarea's value, an element's text, a button's disabled
    state, or an element's outer HTML (attributes and hidden text included)."""

    key: str
    selector: str
    read: Read = "value"


_WATCH_JS = """
(probes) => {
  const now = () => performance.timeOrigin + performance.now();
  const read = (p) => {
    const e = document.querySelector(p.selector);
    if (!e) return null;
    if (p.read === 'value') return e.value;
    if (p.read === 'disabled') return e.disabled;
    if (p.read === 'html') return e.outerHTML;
    return e.textContent.trim();
  };
  const w = {stopped: false, series: Object.fromEntries(probes.map(p => [p.key, []]))};
  const tick = () => {
    if (w.stopped) return;
    const t = now();
    for (const p of probes) {
      const s = w.series[p.key];
      const v = read(p);
      if (!s.length || s[s.length - 1][1] !== v) s.push([t, v]);
    }
    setTimeout(tick, 2);
  };
  window.__arenaWatch = w;
  tick();
}
"""


class Watch:
    """Samples `probes` in the page every few milliseconds (in the page's own event loop, so
    nothing is missed between Playwright calls) and keeps each value change with its time:
    `performance.timeOrigin + performance.now()`, milliseconds since the epoch."""

    def __init__(self, page: Page, probes: Sequence[Probe]) -> None:
        self.page = page
        self.probes = list(probes)
        page.evaluate(_WATCH_JS, [asdict(p) for p in self.probes])

    def series(self) -> dict[str, list[tuple[float, Any]]]:
        """Every probe's changes so far: key -> [(epoch ms, value)], the first entry the value at start."""
        raw = self.page.evaluate("() => window.__arenaWatch.series")
        return {key: [(float(t), v) for t, v in changes] for key, changes in raw.items()}

    def stop(self) -> dict[str, list[tuple[float, Any]]]:
        """Stop sampling and return the series."""
        self.page.evaluate("() => { window.__arenaWatch.stopped = true; }")
        return self.series()


def values(changes: Sequence[tuple[float, Any]]) -> list[Any]:
    """The successive values of one probe, without their times."""
    return [value for _, value in changes]

"""The Judge tab: a stored prompt set judged blind by two logged-in judges, through the API
(gradio_client alone) and in two real browsers with the keyboard shortcuts; then where each
variant wins, and the judges' agreement.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from gradio_client import Client

from arena.limits import DEFAULT_LIMITS
from arena.measure import Result, Stats
from arena.users import UserDirectory, add_user
from cli.serve import launch_options
from storage.judgments import set_votes
from tests.support.browser import log_in as browser_log_in
from tests.support.browser import save_screenshot, select_tab, text_of
from tests.support.scripted import ScriptedBackend
from tests.support.ui import free_port, scripted_services
from tests.test_judge_queue import fill
from ui.access import Access
from ui.app import ArenaApp
from ui.services import ArenaServices

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.timeout(300)

PASSWORDS = {"ann": "ann-password", "ben": "ben-password"}
VARIANTS = ("v-one", "v-two", "v-three")
#: Two prompts answered by three variants: 3 pairs each, 6 in all.
PROMPTS = [("p1", ["receipts"]), ("p2", ["contracts"])]


@pytest.fixture(scope="module")
def judged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ArenaServices, str]]:
    data = tmp_path_factory.mktemp("judge")
    users = data / "users.toml"
    for name, password in PASSWORDS.items():
        add_user(users, name, password, "voter")
    directory = UserDirectory(users)
    services = scripted_services({"idle": ScriptedBackend("idle", [])}, data / "arena.db")
    # answers that do not name their variant, so a name anywhere before the verdict is a leak
    texts = {(pid, variant): Result(variant, text=f"Answer {n} to {pid}.", stats=Stats(ttft_s=0.05, output_tokens=3))
             for n, ((pid, _), variant) in enumerate(itertools.product(PROMPTS, VARIANTS))}
    fill(services.store, "team", PROMPTS, text=texts)  # judged through the API
    fill(services.store, "panel", PROMPTS, text=texts)  # judged in the browsers
    app = ArenaApp(services, Access(directory.role_of))
    app.blocks.queue()
    app.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True,
               **launch_options(DEFAULT_LIMITS, directory))
    app.start_judging()
    yield services, app.blocks.local_url
    app.blocks.close()
    services.close()


def judge_client(url: str, name: str) -> Client:
    return Client(url, auth=(name, PASSWORDS[name]), download_files=False, verbose=False)


def shown_names(value: Any) -> set[str]:
    text = str(value)
    return {name for name in VARIANTS if name in text}


def test_two_judges_through_the_api_blind_until_the_verdict_and_never_a_pair_twice(
    judged: tuple[ArenaServices, str],
) -> None:
    services, url = judged
    ann = judge_client(url, "ann")
    pairs: set[frozenset[str]] = set()
    served = ann.predict(set_name="team", api_name="/judge_next")
    for _ in range(6):
        view = served["next"]
        assert view["token"] and not shown_names(view)  # no name, speed or memory before the verdict
        assert set(view["a"]) == set(view["b"]) == {"text", "thinking", "tool_calls"}
        pair = frozenset((view["a"]["text"], view["b"]["text"]))
        assert pair not in pairs
        pairs.add(pair)
        served = ann.predict(api_name="/judge_vote_a")
        reveal = served["reveal"]
        assert {reveal["a"]["variant"], reveal["b"]["variant"]} <= set(VARIANTS)
        assert "TTFT" in reveal["a"]["stats"]
    assert served["next"]["token"] is None and "judged every pair" in served["next"]["message"]
    with pytest.raises(Exception, match="take a pair first"):
        ann.predict(api_name="/judge_vote_b")
    verdicts = set_votes(services.store, "team")
    assert len(verdicts) == 6 and {v.judge for v in verdicts} == {"ann"}
    # every verdict went through the one vote path: a blind battle with its vote, rated as any other
    assert len(services.store.pair_outcomes(voter="ann")) == 6


def test_a_token_is_one_judges_and_skip_stores_nothing(judged: tuple[ArenaServices, str]) -> None:
    services, url = judged
    ben = judge_client(url, "ben")
    first = ben.predict(set_name="team", api_name="/judge_next")["next"]
    before = len(set_votes(services.store, "team"))
    after = ben.predict(api_name="/judge_skip")["next"]
    assert after["token"] != first["token"]
    assert len(set_votes(services.store, "team")) == before
    # a verdict with someone else's token, through another client's session, is refused
    ann = judge_client(url, "ann")
    with pytest.raises(Exception, match="take a pair first"):
        ann.predict(api_name="/judge_vote_tie")


def press_until_done(page: Page, key: str, verdicts: int) -> None:
    for n in range(verdicts):
        page.wait_for_selector("#judge-vote-a:not([disabled])")
        token_text = text_of(page, "#judge-panel-a .answer .answer-raw")
        assert token_text.startswith("Answer ")
        assert not shown_names(text_of(page, "#judge-panel-a") + text_of(page, "#judge-panel-b"))
        page.keyboard.press(key)
        # the next pair is drawn with the reveal of this one above it
        page.wait_for_function(
            "(n) => { const status = document.querySelector('#judge-status').textContent;"
            " return document.querySelector('#judge-reveal').textContent.includes('Previous pair')"
            " && (status.includes(`; ${n} judged`) || status.includes('judged every pair')); }", arg=n + 1)
        assert shown_names(text_of(page, "#judge-reveal")), token_text


def log_in(page: Page, url: str, name: str) -> None:
    browser_log_in(page, url, name, PASSWORDS[name])


def test_two_judges_judge_the_set_in_browsers_with_the_keyboard_and_see_where_each_wins(
    judged: tuple[ArenaServices, str], browser: Browser,
) -> None:
    services, url = judged
    contexts = [browser.new_context(), browser.new_context()]
    try:
        pages = [context.new_page() for context in contexts]
        for page, name in zip(pages, ("ann", "ben"), strict=True):
            log_in(page, url, name)
            select_tab(page, "Judge")
            page.locator("#judge-set input").click()
            page.get_by_role("option", name="panel").click()
            page.click("#judge-start")
            page.wait_for_selector("#judge-panel-a", state="visible")
        # a key typed into a text box is text, not a verdict
        box = pages[0].locator("#judge-tag input")
        pages[0].locator("#judge-standings-box button.label-wrap").first.click()
        box.click()
        box.press("1")
        pages[0].wait_for_timeout(500)
        assert set_votes(services.store, "panel") == []
        pages[0].locator("#judge-status").click()  # out of the box: keys are verdicts again
        # both judge every pair, ann with "1" (A is better), ben with "b" (B is better), at once
        for page, key in zip(pages, ("1", "b"), strict=True):
            press_until_done(page, key, len(PROMPTS) * 3)
        for page in pages:
            page.wait_for_function("() => document.querySelector('#judge-status').textContent"
                                   ".includes('judged every pair')")
            assert page.locator("#judge-vote-a").is_disabled()
        verdicts = set_votes(services.store, "panel")
        assert sorted(v.judge for v in verdicts) == ["ann"] * 6 + ["ben"] * 6
        save_screenshot(pages[1], "judge-done")
        # where each variant wins: per set and per tag, with the judges' agreement
        ben = pages[1]
        ben.locator("#judge-standings-box button.label-wrap").first.click()
        ben.click("#judge-standings-refresh")
        ben.wait_for_function("() => document.querySelector('#judge-standings').textContent.includes('receipts')")
        standings = text_of(ben, "#judge-standings")
        assert "contracts" in standings
        assert "Krippendorff's alpha (nominal)" in standings and "over 6 pair(s) judged by two or more" in standings
        save_screenshot(ben, "judge-standings")
    finally:
        for context in contexts:
            context.close()

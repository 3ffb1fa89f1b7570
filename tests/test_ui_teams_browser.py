"""A team in real browsers: two logged-in users in two browser contexts battle and vote at once,
each on their own battle, and nothing a browser receives before the vote tells which variant is
on which side.

"Receives" is taken literally: the browser talks to the server through a recording relay
(tests/support/traffic.py), and every byte it got is searched: the page config, every event
stream, API responses, scripts. The lineup's names are public (the Compare tab lists them), so a
response may name the variants only as the whole lineup, never a part of it: naming the two
drawn, or one, is what a reveal looks like, and the same check finds the real reveal after the
vote, so it is known to see one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from arena.limits import DEFAULT_LIMITS
from arena.settings import Settings
from arena.units import format_bytes
from arena.users import UserDirectory, add_user
from cli.serve import launch_options
from tests.support.browser import log_in as browser_log_in
from tests.support.browser import select_tab, set_max_new_tokens, text_of, type_prompt
from tests.support.traffic import RecordingProxy
from tests.support.ui import demo_services, free_port
from ui.access import Access
from ui.app import ArenaApp
from ui.battle import _identifiers
from ui.services import ArenaServices

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

PASSWORDS = {"alice": "alice-password", "bob": "bob-password"}
LINEUP = ["demo:e2b", "demo:e4b", "demo:31b"]


@pytest.fixture(scope="module")
def team_server(tmp_path_factory: pytest.TempPathFactory, demo_cache: Path) -> Iterator[tuple[ArenaServices, str]]:
    data = tmp_path_factory.mktemp("team-browser")
    users = data / "users.toml"
    for name, password in PASSWORDS.items():
        add_user(users, name, password, "voter")
    directory = UserDirectory(users)
    services = demo_services(LINEUP, Settings(data, demo_cache, data / "arena.db"))
    app = ArenaApp(services, Access(directory.role_of))
    app.blocks.queue()
    port = free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                      **launch_options(DEFAULT_LIMITS, directory))  # as `serve --users` launches it
    yield services, app.blocks.local_url
    app.blocks.close()
    services.close()


def log_in(page: Page, url: str, name: str) -> None:
    browser_log_in(page, url, name, PASSWORDS[name])


def start_battle(page: Page, text: str) -> None:
    select_tab(page, "Battle")
    set_max_new_tokens(page, "battle", 24)
    type_prompt(page, "battle-prompt", text)
    page.click("#battle-send")


def wait_for_vote(page: Page) -> None:
    page.wait_for_selector("#vote-a:not([disabled])", timeout=120_000)


def test_two_logged_in_users_battle_at_once_and_each_votes_on_their_own(
    team_server: tuple[ArenaServices, str], browser: Browser,
) -> None:
    services, url = team_server
    contexts = [browser.new_context(), browser.new_context()]  # two people: no shared cookies or storage
    try:
        alice, bob = (context.new_page() for context in contexts)
        log_in(alice, url, "alice")
        log_in(bob, url, "bob")
        start_battle(alice, "Alice asks about lakes")
        start_battle(bob, "Bob asks about mountains")
        wait_for_vote(alice)
        wait_for_vote(bob)
        alice.click("#vote-a")
        bob.click("#vote-tie")
        for page, vote in ((alice, "Model A is better"), (bob, "Tie")):
            page.wait_for_function("() => document.querySelector('#battle-reveal').textContent.includes('was')")
            assert vote in text_of(page, "#battle-reveal")
            page.wait_for_selector("#vote-b[disabled]")  # one vote per battle
        with services.store._read() as db:
            stored = sorted(tuple(row) for row in db.execute(
                "SELECT b.voter, v.voter, v.outcome, b.prompt FROM votes v JOIN battles b ON b.id = v.battle_id"))
        assert stored == [("alice", "alice", "a", "Alice asks about lakes"),
                          ("bob", "bob", "tie", "Bob asks about mountains")]
        # neither page shows the other's battle
        assert "Bob" not in text_of(alice, "#battle-reveal") and "mountains" not in alice.content()
        assert "Alice" not in text_of(bob, "#battle-reveal") and "lakes" not in bob.content()
    finally:
        for context in contexts:
            context.close()


def identifiers(services: ArenaServices) -> dict[str, set[str]]:
    """Per variant, every string that would name it: label, spec, model name, engine, and its
    weights' size as the Variants tab shows it."""
    found = {}
    for variant in services.lineup.variants:
        words = {w for w in _identifiers([variant]) if len(w) > 4 and w not in {"demo"}}
        if variant.report is not None:
            words.add(format_bytes(variant.report.weights_bytes))
        found[variant.name] = words
    return found


def named_in(text: str, names: dict[str, set[str]]) -> frozenset[str]:
    return frozenset(v for v, words in names.items()
                     if any(re.search(rf"(?<![\w.]){re.escape(w)}(?![\w])", text) for w in words))


def partial_naming(parts: list[str], names: dict[str, set[str]]) -> list[tuple[frozenset[str], str]]:
    """The parts that name some of the lineup but not all of it: what would single a side out."""
    everyone = frozenset(names)
    return [(hit, part[:300]) for part in parts if (hit := named_in(part, names)) and hit != everyone]


def test_nothing_the_browser_receives_before_the_vote_names_a_side(
    team_server: tuple[ArenaServices, str], browser: Browser,
) -> None:
    services, url = team_server
    proxy = RecordingProxy(int(url.rstrip("/").rsplit(":", 1)[1]))
    # identity: the recording is plain text, whatever the server would compress
    context = browser.new_context(extra_http_headers={"Accept-Encoding": "identity"})
    try:
        page = context.new_page()
        log_in(page, proxy.url, "alice")
        select_tab(page, "Variants")  # its table lists every variant with its size: a listing, not a reveal
        page.wait_for_function("() => document.querySelector('#variants-table').textContent.includes('ready')")
        start_battle(page, "Which river is the longest?")
        wait_for_vote(page)
        page.wait_for_timeout(1500)  # a timer tick or two more, after the answers
        names = identifiers(services)
        before = proxy.received_text()
        assert any(named_in(part, names) == frozenset(names) for part in before)  # the lineup is listed
        assert any("can_vote" in part for part in before)  # the battle's own event stream was recorded
        assert partial_naming(before, names) == []
        page.click("#vote-a")
        page.wait_for_function("() => document.querySelector('#battle-reveal').textContent.includes('was')")
        page.wait_for_timeout(500)
        revealed = partial_naming(proxy.received_text(), names)
        pair = {v for hit, _ in revealed for v in hit}
        assert len(pair) == 2 and all(name in text_of(page, "#battle-reveal") for name in pair)
    finally:
        context.close()
        proxy.close()


def test_a_voter_sees_no_exports_and_a_refused_prompt_says_why_in_the_page(
    team_server: tuple[ArenaServices, str], browser: Browser,
) -> None:
    services, url = team_server
    context = browser.new_context()
    try:
        page = context.new_page()
        log_in(page, url, "bob")
        select_tab(page, "Export")  # the page's load event hid what a voter may not use
        page.wait_for_selector("#export-admins-only", state="visible")
        assert page.locator("#export-leaderboard-csv").is_visible()
        assert not any(page.locator(f"#export-{fmt}").is_visible() for fmt in ("csv", "jsonl", "fastchat"))
        with services.store._read() as db:
            before = db.execute("SELECT COUNT(*) FROM battles").fetchone()[0]
        select_tab(page, "Battle")
        type_prompt(page, "battle-prompt", "x" * (services.limits.max_prompt_chars + 1))
        page.click("#battle-send")
        toast = page.locator(".toast-body").first
        toast.wait_for(timeout=30_000)
        assert f"at most {services.limits.max_prompt_chars:,}" in toast.inner_text()
        with services.store._read() as db:
            assert db.execute("SELECT COUNT(*) FROM battles").fetchone()[0] == before
    finally:
        context.close()

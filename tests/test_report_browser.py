"""The HTML decision report in a real headless Chromium, offline: one file that shows its charts,
table and recommendation, runs nothing, and asks for nothing outside itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from arena.settings import Settings
from cli import main
from tests.test_report import FAST, HOSTILE, fill_report


def test_html_report_opens_offline_with_charts_table_and_recommendation(
    browser: Any, settings: Settings, tmp_path: Path
) -> None:
    fill_report(settings.db_path)
    out = tmp_path / "report.html"
    assert main(["report", "--rounds", "40", "--out", str(out)], settings=settings) == 0

    context = browser.new_context(offline=True)
    page = context.new_page()
    requests: list[str] = []
    problems: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))

    def refuse(dialog: Any) -> None:
        problems.append(f"dialog: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", refuse)
    try:
        page.goto(out.as_uri(), wait_until="load")
        images = page.evaluate(
            "() => [...document.images].map(i => ({src: i.src.slice(0, 22), done: i.complete, width: i.naturalWidth}))"
        )
        assert len(images) == 2
        assert all(image["done"] and image["width"] > 0 for image in images), images
        assert all(image["src"] == "data:image/png;base64," for image in images)

        names = page.locator("#variants tbody td.variant").all_inner_texts()
        assert len(names) == 3
        assert f"{HOSTILE} (preliminary)" in names  # the markup shown as text, never run
        assert page.locator("#variants tbody tr").first.is_visible()

        recommendation = page.locator("#recommendation")
        assert recommendation.is_visible()
        assert FAST in recommendation.inner_text()
    finally:
        context.close()

    assert requests and requests[0] == out.as_uri()
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
    assert not problems, problems

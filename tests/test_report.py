"""The decision report: the Pareto front, the recommendation and its uncertainty, fits from specs,
and `python app.py report` on a real SQLite file to Markdown and to one self-contained HTML file."""

from __future__ import annotations

import argparse
import base64
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from arena.errors import UsageError
from arena.hardware import GIB, Gpu, Machine
from arena.ratings import Leaderboard, Row
from arena.report import (
    UNKNOWN_FIT,
    ParetoPoint,
    ReportRow,
    build_report,
    pareto_front,
    recommend,
    votes_needed,
)
from arena.settings import Settings
from arena.variant_fits import fit_verdict, fit_verdicts
from backends.base import Request
from cli import build_parser, main
from storage import VariantSpeed, open_store
from tests.test_store import answer

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FAST, BIG = "demo:e2b", "demo:31b"
HOSTILE = "<script>alert(1)</script>"
HOSTILE_SPEC = "hf:google/gemma-4-E4B-it?quantize=4bit"
LAPTOP = Machine(cpu_cores=8, ram_total_bytes=32 * GIB)
GPU_BOX = Machine(cpu_cores=16, ram_total_bytes=128 * GIB, gpus=(Gpu("H100", 80 * GIB),))


# --- the Pareto front -----------------------------------------------------------------------------------


def test_pareto_front_drops_a_variant_another_beats_on_every_figure() -> None:
    best = ParetoPoint("best", 1100, tokens_per_s=20, memory_bytes=1e9)
    worse = ParetoPoint("worse", 1000, tokens_per_s=10, memory_bytes=2e9)
    as_good_but_bigger = ParetoPoint("bigger", 1100, tokens_per_s=20, memory_bytes=3e9)
    assert pareto_front([worse, best, as_good_but_bigger]) == ("best",)


def test_pareto_front_keeps_trade_offs_and_equal_points_in_input_order() -> None:
    quality = ParetoPoint("quality", 1200, tokens_per_s=5, memory_bytes=8e9)
    speed = ParetoPoint("speed", 1000, tokens_per_s=40, memory_bytes=4e9)
    small = ParetoPoint("small", 900, tokens_per_s=30, memory_bytes=1e9)
    twin = ParetoPoint("twin", 900, tokens_per_s=30, memory_bytes=1e9)
    assert pareto_front([quality, speed, small, twin]) == ("quality", "speed", "small", "twin")
    assert pareto_front([]) == ()


def test_pareto_front_never_drops_a_variant_on_a_figure_it_lacks() -> None:
    unmeasured = ParetoPoint("unmeasured", 1000)  # might be faster and smaller than anything
    measured = ParetoPoint("measured", 1100, tokens_per_s=20, memory_bytes=1e9)
    assert pareto_front([unmeasured, measured]) == ("unmeasured", "measured")
    # a figure neither has is left out: then rating and speed decide
    low = ParetoPoint("low", 900, tokens_per_s=10)
    high = ParetoPoint("high", 1000, tokens_per_s=15)
    assert pareto_front([low, high]) == ("high",)


# --- votes needed ---------------------------------------------------------------------------------------


def test_votes_needed_follows_the_inverse_square_root_of_votes() -> None:
    assert votes_needed(25, 200.0, 100.0) == 75  # twice as narrow: four times the votes
    assert votes_needed(10, 150.0, 100.0) == 13  # 10 * 2.25 - 10 = 12.5, rounded up
    assert votes_needed(100, 80.0, 100.0) == 0
    assert votes_needed(0, 500.0, 100.0) == 0
    with pytest.raises(ValueError, match="above 0"):
        votes_needed(10, 150.0, 0.0)


# --- the recommendation ---------------------------------------------------------------------------------


def row(
    name: str,
    rating: float,
    low: float,
    high: float,
    *,
    votes: int = 100,
    tps: float | None = None,
    memory: float | None = None,
    fit: str = UNKNOWN_FIT,
    preliminary: bool = False,
    more: int = 0,
) -> ReportRow:
    return ReportRow(
        variant=name,
        rating=rating,
        ci_low=low,
        ci_high=high,
        rank=1,
        votes=votes,
        preliminary=preliminary,
        win_rate=0.5,
        runs=3,
        median_ttft_s=0.1,
        median_tokens_per_s=tps,
        memory_bytes=memory,
        fit=fit,
        on_front=True,
        more_votes=more,
    )


def test_overlapping_intervals_are_a_tie_and_the_cheaper_is_named() -> None:
    rows = [
        row("A", 1050, 1000, 1100, tps=10, memory=8 * GIB),
        row("B", 1040, 990, 1090, tps=30, memory=2 * GIB),
        row("C", 900, 860, 940, tps=60, memory=1 * GIB),
    ]
    advice = recommend(rows)
    assert advice.top == "A" and advice.tied == ("A", "B")
    assert advice.headline.startswith("Statistically tied: A, B.")
    assert advice.pick == "B"
    assert "Prefer B, the cheaper" in advice.text and "fastest" in advice.text and "smallest" in advice.text
    assert "C" not in advice.tied


def test_when_one_tied_is_fastest_and_another_smallest_both_are_named_and_none_picked() -> None:
    rows = [row("A", 1050, 1000, 1100, tps=40, memory=8 * GIB), row("B", 1040, 990, 1090, tps=10, memory=2 * GIB)]
    advice = recommend(rows)
    assert advice.pick is None
    assert "A is the fastest" in advice.text and "B the smallest" in advice.text


def test_costs_within_the_margin_do_not_pick_a_tied_variant() -> None:
    rows = [row("A", 1050, 1000, 1100, tps=20.0, memory=2.0 * GIB), row("B", 1040, 990, 1090, tps=21.5)]
    advice = recommend(rows)
    assert advice.tied == ("A", "B") and advice.pick is None
    assert "within 10 %" in advice.text
    assert "No memory figure for B" in advice.text


def test_a_tied_variant_that_does_not_fit_is_not_preferred() -> None:
    rows = [
        row("A", 1050, 1000, 1100, tps=80, memory=1 * GIB, fit="does not fit: 60 GiB > 20 GiB"),
        row("B", 1040, 990, 1090, tps=20, memory=4 * GIB, fit="fits: 4 GiB on GPU 0"),
        row("C", 1030, 980, 1080, tps=10, memory=8 * GIB, fit="fits: 8 GiB on GPU 0"),
    ]
    advice = recommend(rows)
    assert advice.pick == "B"
    assert "Left out of the choice: A" in advice.text


def test_a_clear_winner_is_named_with_its_interval_and_the_next() -> None:
    rows = [row("A", 1150, 1100, 1200, tps=10), row("B", 950, 900, 1000, tps=50)]
    advice = recommend(rows)
    assert advice.tied == ("A",) and advice.pick == "A"
    assert advice.headline.startswith("Use A: it rates highest, 1150 (95 % interval 1100 to 1200)")
    assert "the next: B" in advice.headline
    assert "Cheaper trade-offs on the Pareto front, at a lower rating: B" in advice.text


def test_wide_intervals_say_about_how_many_more_votes_as_an_estimate() -> None:
    rows = [
        row("A", 1050, 950, 1150, votes=25, more=75, preliminary=True),
        row("B", 1000, 900, 1100, votes=25, more=75),
    ]
    advice = recommend(rows)
    assert "A about 75 more (has 25, interval 200 Elo wide, preliminary)" in advice.text
    assert "An estimate" in advice.text and "1/sqrt(votes)" in advice.text
    assert "A has only 25 vote(s) (preliminary)" not in advice.text  # no pick: nothing provisional to flag


def test_no_votes_recommends_nothing() -> None:
    advice = recommend([])
    assert advice.pick is None and advice.top is None and advice.headline.startswith("No votes yet")


# --- the report from a leaderboard ------------------------------------------------------------------------


def board_of(*rows: Row) -> Leaderboard:
    names = tuple(r.variant for r in rows)
    return Leaderboard(
        rows=rows,
        models=names,
        win_rate=np.full((len(rows), len(rows)), np.nan),
        battle_count=np.zeros((len(rows), len(rows))),
        anchor="mean of the listed variants = 1000",
        anchor_variant=None,
        anchor_rating=1000.0,
        rounds=100,
        seed=0,
        battles=sum(r.votes for r in rows) // 2,
        hidden=(),
        groups=(names,),
        min_votes=0,
        preliminary_below=30,
        votes=sum(r.votes for r in rows) // 2,
    )


def rated(name: str, rating: float, low: float, high: float, votes: int, preliminary: bool = False) -> Row:
    return Row(
        name, rating, low, high, 1, votes, wins=6, losses=2, ties=1, both_bad=1, elo=rating, preliminary=preliminary
    )


def test_build_report_rows_carry_win_rate_speed_memory_fit_and_votes_needed() -> None:
    board = board_of(rated("A", 1050, 950, 1150, votes=40), rated("B", 950, 600, 1300, votes=10, preliminary=True))
    speeds = [
        VariantSpeed("A", 4, median_tokens_per_s=12.0, median_ttft_s=0.2, median_peak_memory_bytes=3 * GIB),
        VariantSpeed("C", 1, median_tokens_per_s=9.0, median_ttft_s=0.3, median_peak_memory_bytes=None),
    ]
    report = build_report(board, speeds, {"A": "fits: 3 GiB on GPU 0"}, target_width=100)
    a, b = report.rows
    assert a.win_rate == pytest.approx((6 + 0.5 * 2) / 10)
    assert (a.runs, a.median_tokens_per_s, a.median_ttft_s, a.memory_bytes) == (4, 12.0, 0.2, 3 * GIB)
    assert a.fit == "fits: 3 GiB on GPU 0" and b.fit == UNKNOWN_FIT
    assert a.more_votes == 40 * 4 - 40  # 200 Elo wide -> 100: four times the votes
    assert b.more_votes == 10 * 49 - 10  # 700 Elo wide (preliminary): 49 times the votes
    assert b.median_tokens_per_s is None and b.runs == 0
    assert report.front == ("A", "B")  # B lacks speed and memory: nothing shows A beats it there
    assert report.unrated == ("C",)
    with pytest.raises(ValueError, match="above 0"):
        build_report(board, speeds, None, target_width=0)


def test_a_preliminary_row_needs_at_least_the_votes_to_leave_preliminary() -> None:
    board = board_of(rated("A", 1000, 990, 1010, votes=5, preliminary=True), rated("B", 1000, 990, 1010, votes=40))
    report = build_report(board, [], None)
    assert [r.more_votes for r in report.rows] == [25, 0]


# --- fits from specs ----------------------------------------------------------------------------------------


def test_fit_verdicts_follow_the_spec_and_its_quantization(tmp_path: Path) -> None:
    verdicts = fit_verdicts(
        {
            "e4b-4bit": "hf:google/gemma-4-E4B-it?quantize=4bit",
            "31b": "hf:google/gemma-4-31B-it",
            "tag": "ollama:gemma4:e4b",
            "remote": "ollama:gemma4:e4b?host=http://gpu-box:11434",
            "server": "openai:http://127.0.0.1:8000/v1#gemma",
            "fine-tune": "hf:someone/gemma-4-e4b-finetune",
            "no-spec": None,
            "demo": "demo:e2b",
        },
        LAPTOP,
        tmp_path,
    )
    assert verdicts["e4b-4bit"].startswith("fits: ") and "; E4B int4, 8,192-token context" in verdicts["e4b-4bit"]
    assert verdicts["31b"].startswith("does not fit: ") and "; 31B bf16" in verdicts["31b"]
    assert "; E4B int4" in verdicts["tag"]
    assert verdicts["remote"] == "unknown (served by Ollama on gpu-box, not this machine)"
    assert verdicts["server"].startswith("unknown (served by an OpenAI-compatible server")
    assert verdicts["fine-tune"] == "unknown (not a Gemma 4 checkpoint this app knows)"
    assert verdicts["no-spec"] == "unknown (no spec recorded)"
    assert verdicts["demo"] == f"unknown (demo:e2b is not built in {tmp_path} yet)"
    assert fit_verdict("hf:google/gemma-4-31B-it", GPU_BOX, tmp_path, 8192).startswith("fits: ")


def test_fit_of_a_built_demo_variant_comes_from_its_config(demo_cache: Path) -> None:
    from backends.demo.build import ensure_built

    ensure_built(demo_cache, "e2b")
    verdict = fit_verdict("demo:e2b", LAPTOP, demo_cache, 4096)
    assert verdict.startswith("fits: ") and verdict.endswith("; demo:e2b bf16, 4,096-token context")


def test_variant_specs_give_the_spec_each_label_last_ran_as(settings: Settings) -> None:
    with open_store(settings.db_path) as store:
        store.record_comparison(Request("one"), [("mine", "hf:a/b"), (FAST, FAST)], [answer("mine"), answer(FAST)])
        store.record_comparison(Request("two"), [("mine", "hf:c/d"), (BIG, BIG)], [answer("mine"), answer(BIG)])
        assert store.variant_specs() == {BIG: BIG, FAST: FAST, "mine": "hf:c/d"}


# --- the command, on a real SQLite file ---------------------------------------------------------------------


def fill_report(path: Path) -> None:
    """Blind votes on three variants (one named with markup), each side's run measured:
    BIG wins most, FAST is fast and small, HOSTILE ties with FAST."""
    figures = {
        FAST: dict(tokens_per_s=40.0, ttft_s=0.05, peak_memory_bytes=1 * GIB, memory_kind="rss-peak"),
        BIG: dict(tokens_per_s=8.0, ttft_s=0.4, peak_memory_bytes=6 * GIB, memory_kind="rss-peak"),
        HOSTILE: dict(tokens_per_s=20.0, ttft_s=0.1, peak_memory_bytes=3 * GIB, memory_kind="rss-peak"),
    }
    specs = {FAST: FAST, BIG: BIG, HOSTILE: HOSTILE_SPEC}
    plan = [((BIG, FAST), "a")] * 8 + [((FAST, BIG), "a")] * 3 + [((HOSTILE, FAST), "tie")] * 6
    plan += [((BIG, HOSTILE), "a")] * 6 + [((HOSTILE, BIG), "both_bad")] * 2
    with open_store(path) as store:
        for n, (pair, outcome) in enumerate(plan):
            battle = store.record_comparison(
                Request(f"question {n}"),
                [(label, specs[label]) for label in pair],
                [answer(label, f"answer {n}", **figures[label]) for label in pair],  # type: ignore[arg-type]
                mode="blind",
                voter="ann",
            )
            store.record_vote(battle, outcome)


@pytest.fixture
def reported(settings: Settings) -> Settings:
    fill_report(settings.db_path)
    return settings


def report_cli(settings: Settings, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["report", "--rounds", "40", *argv], settings=settings)
    out, err = capsys.readouterr()
    return code, out, err


def embedded_pngs(text: str) -> list[bytes]:
    return [base64.b64decode(data) for data in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)]


def test_report_to_html_is_one_file_with_embedded_charts_and_no_external_reference(
    reported: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "report.html"
    code, _, err = report_cli(reported, capsys, "--out", str(out))
    assert code == 0, err
    text = out.read_text()
    pngs = embedded_pngs(text)
    assert len(pngs) == 2 and all(png.startswith(PNG_MAGIC) and len(png) > 1000 for png in pngs)
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text, re.IGNORECASE)
    assert "<script" not in text.lower() and "@import" not in text and "url(" not in text
    assert "default-src 'none'" in text
    assert sorted(path.name for path in tmp_path.iterdir() if path.is_file()) == ["report.html"]
    assert text.count('<tr class="') == 3 and 'id="recommendation"' in text
    assert str(out) in err


def test_report_to_markdown_writes_its_charts_beside_it(
    reported: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "decision.md"
    code, _, err = report_cli(reported, capsys, "--out", str(out))
    assert code == 0, err
    text = out.read_text()
    for chart in ("decision-quality-cost.png", "decision-win-rates.png"):
        assert (tmp_path / chart).read_bytes().startswith(PNG_MAGIC)
        assert f"(<{chart}>)" in text
    assert "## Recommendation" in text and "| rank | variant | rating | 95% CI |" in text
    table = [line for line in text.splitlines() if line.startswith("| ") and "demo:" in line]
    assert len(table) == 2
    fast = next(line for line in table if FAST in line)
    assert "| 40.0 |" in fast and "1.0 GiB" in fast and "50 ms" in fast


def test_report_without_out_prints_markdown_and_says_where_the_charts_are(
    reported: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = report_cli(reported, capsys, "--mode", "blind", "--category", "text")
    assert code == 0
    assert out.startswith("# Gemma Arena: decision report")
    assert "From blind votes in category text." in out and "Charts are in the HTML report" in out


def test_report_refuses_an_output_it_cannot_write(
    reported: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = report_cli(reported, capsys, "--out", str(tmp_path / "report.pdf"))
    assert code == 2 and "end the name in .html" in err
    code, _, err = report_cli(reported, capsys, "--out", str(tmp_path / "missing" / "report.html"))
    assert code == 2 and "does not exist" in err
    code, _, err = report_cli(reported, capsys, "--target-width", "0")
    assert code == 2 and "--target-width" in err


def test_a_hostile_variant_name_is_shown_as_text(
    reported: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    html_out, md_out = tmp_path / "r.html", tmp_path / "r.md"
    for out in (html_out, md_out):
        code, _, err = report_cli(reported, capsys, "--out", str(out))
        assert code == 0, err
    html_text, md_text = html_out.read_text(), md_out.read_text()
    assert HOSTILE not in html_text and "&lt;script&gt;alert(1)&lt;/script&gt;" in html_text
    assert HOSTILE not in md_text and r"\<script\>alert(1)\</script\>" in md_text
    assert "; E4B int4, 8,192-token context" in html_text  # its spec, hf: E4B 4-bit, was estimated


def test_report_view_gives_markdown_and_self_contained_html(reported: Settings) -> None:
    from arena.lineup import Lineup
    from ui.report import report_view
    from ui.services import ArenaServices

    with open_store(reported.db_path) as store:
        markdown, html_text = report_view(
            ArenaServices(Lineup([]), store), mode="blind", machine=LAPTOP, cache_dir=reported.cache_dir, rounds=40
        )
    assert markdown.startswith("# Gemma Arena: decision report") and "## Recommendation" in markdown
    assert html_text.startswith("<!DOCTYPE html>") and len(embedded_pngs(html_text)) == 2


def test_report_command_and_its_options_are_documented() -> None:
    commands: Any = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    command = commands["report"]
    assert command.description
    for action in command._actions:
        assert action.help, f"report {action.option_strings} has no help"


def test_unknown_extension_error_names_both_formats() -> None:
    from cli.report import output_format

    assert output_format(Path("x.HTML")) == "html" and output_format(None) == "markdown"
    with pytest.raises(UsageError, match=r"\.html .* \.md"):
        output_format(Path("x.txt"))


def test_a_report_of_a_store_without_votes_says_so(
    settings: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    open_store(settings.db_path).close()
    out = tmp_path / "empty.html"
    code, _, err = report_cli(settings, capsys, "--out", str(out))
    assert code == 0, err
    text = out.read_text()
    assert "No votes yet: nothing to recommend" in text and "No votes in this slice yet." in text
    assert len(embedded_pngs(text)) == 2


def test_the_report_shows_where_each_variant_wins_in_each_judged_prompt_set(
    reported: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from storage.judgments import record_judgment
    from storage.sets import read_answers
    from tests.test_judge_queue import fill

    with open_store(reported.db_path) as store:
        code, before, _ = report_cli(reported, capsys)
        assert code == 0 and "Prompt sets" not in before  # no set judged: no section
        fill(store, "receipts", [("p1", ["totals"]), ("p2", ["vendors"])])
        answers = {(a.prompt_id, a.variant): a.id for a in read_answers(store, "receipts")}
        for judge in ("ann", "ben"):
            for prompt in ("p1", "p2"):
                record_judgment(store, answers[prompt, "v-one"], answers[prompt, "v-two"], "a", judge)
    code, markdown, err = report_cli(reported, capsys)
    assert code == 0, err
    section = markdown.split("## Prompt sets: where each variant wins", 1)[1]
    assert "### receipts: 4 verdicts" in section and "| totals | v\\-one |" in section
    assert "Krippendorff's alpha (nominal)" in section and "over 2 pair(s)" in section
    out = tmp_path / "report.html"
    assert report_cli(reported, capsys, "--out", str(out))[0] == 0
    html_text = out.read_text()
    assert 'id="prompt-sets"' in html_text and "<table>" in html_text.split('id="prompt-sets"', 1)[1]

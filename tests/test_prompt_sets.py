"""Prompt sets: reading JSONL and CSV set files, storing them once, generating every answer on the
demo variants, and resuming after a Ctrl-C or a kill without losing or repeating an answer."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from arena.errors import UsageError
from arena.lineup import create_lineup
from arena.prompt_sets import GenerationOptions, answer_seed, read_prompt_set
from arena.sampling import RECOMMENDED
from arena.settings import Settings
from backends.registry import default_registry
from cli import generate
from storage import open_store
from storage.sets import SetConflict, add_prompts, answered, read_answers, read_requests, refused, set_info
from tests.support.media import write_png, write_wav

ROOT = Path(__file__).resolve().parents[1]
E2B, B31 = "demo:e2b", "demo:31b"


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows), "utf-8")
    return path


def test_jsonl_rows_become_prompts_with_their_media_tags_and_category(tmp_path: Path) -> None:
    write_png(tmp_path / "receipt.png")
    (tmp_path / "clips").mkdir()
    write_wav(tmp_path / "clips" / "memo.wav")
    path = write_jsonl(tmp_path / "team.jsonl", [
        {"text": "What is the total?", "images": ["receipt.png"], "tags": ["receipts", "ocr"], "category": "vision"},
        "",
        {"id": "memo", "text": "Summarise the memo", "audio": ["clips/memo.wav"], "system": "Be brief."},
        {"id": 7, "text": "Review this diff", "tags": "code"},
    ])
    parsed = read_prompt_set(path, GenerationOptions(max_new_tokens=32, thinking=True))
    assert parsed.bad == ()
    first, memo, diff = parsed.prompts
    assert (first.id, first.line, memo.id, memo.line, diff.id, diff.line) == ("1", 1, "memo", 3, "7", 4)
    assert first.request.images[0].data == (tmp_path / "receipt.png").read_bytes()
    assert first.labels == ("receipts", "ocr", "vision") and diff.labels == ("code",)
    assert memo.request.audio[0].kind == "audio" and memo.request.system == "Be brief."
    # every answer samples as Gemma 4 recommends; the seed is drawn per answer
    assert (first.request.temperature, first.request.top_p, first.request.top_k, first.request.seed) == (
        RECOMMENDED.temperature, RECOMMENDED.top_p, RECOMMENDED.top_k, None)
    assert first.request.max_new_tokens == 32 and first.request.thinking


def test_csv_lists_are_semicolon_separated_and_rows_keep_their_starting_line(tmp_path: Path) -> None:
    write_png(tmp_path / "a.png")
    write_png(tmp_path / "b.png", 64, 64)
    path = tmp_path / "set.csv"
    path.write_text('id,text,images,tags,category\nr1,"Two receipts,\nwhich is larger?",a.png; b.png,receipts;hard,'
                    'vision\nr2,Plain question,,,\n', encoding="utf-8")
    parsed = read_prompt_set(path)
    assert parsed.bad == ()
    receipts, plain = parsed.prompts
    assert receipts.text == "Two receipts,\nwhich is larger?" and len(receipts.request.images) == 2
    assert receipts.tags == ("receipts", "hard") and receipts.category == "vision"
    assert (receipts.line, plain.line, plain.labels) == (2, 4, ())


def test_bad_rows_are_reported_by_line_and_refuse_the_file_unless_skipped(tmp_path: Path) -> None:
    (tmp_path / "fake.png").write_text("not an image at all")
    path = write_jsonl(tmp_path / "set.jsonl", [
        {"id": "ok", "text": "fine"},
        {"text": "   "},
        {"text": "see", "images": ["missing.png"]},
        {"text": "see", "images": ["fake.png"]},
        {"id": "ok", "text": "again"},
        "{not json",
        {"text": "x", "colour": "blue"},
        {"text": "last good one"},
    ])
    parsed = read_prompt_set(path)
    assert [p.id for p in parsed.prompts] == ["ok", "8"]
    reasons = {bad.line: bad.reason for bad in parsed.bad}
    assert sorted(reasons) == [2, 3, 4, 5, 6, 7]
    assert "no `text`" in reasons[2] and "does not exist" in reasons[3] and "not an image" in reasons[4]
    assert "duplicate id 'ok' (first on line 1)" in reasons[5] and "not JSON" in reasons[6]
    assert "unknown fields 'colour'" in reasons[7]
    with pytest.raises(UsageError, match=r"6 of 8 rows cannot be used \(line 2: .*--skip-bad"):
        parsed.usable(skip_bad=False)
    assert [p.id for p in parsed.usable(skip_bad=True)] == ["ok", "8"]


@pytest.mark.parametrize(("name", "content", "message"), [
    ("set.txt", "text\nhi\n", r"neither \.jsonl nor \.csv"),
    ("set.csv", "prompt,tags\nhi,x\n", r"unknown columns 'prompt'.*`text` required"),
    ("set.jsonl", "\n\n", "holds no usable prompt"),
])
def test_a_file_that_is_not_a_set_is_refused_with_what_to_write(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(UsageError, match=message):
        read_prompt_set(path).usable(skip_bad=True)


def test_a_set_is_stored_once_grows_with_new_prompts_and_refuses_changed_ones(settings: Settings,
                                                                              tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "s.jsonl", [{"id": "a", "text": "one"}, {"id": "b", "text": "two"}])
    grown = write_jsonl(tmp_path / "s2.jsonl", [{"id": "a", "text": "one"}, {"id": "b", "text": "two"},
                                               {"id": "c", "text": "three"}])
    changed = write_jsonl(tmp_path / "s3.jsonl", [{"id": "a", "text": "ONE"}, {"id": "d", "text": "four"}])
    with open_store(settings.db_path) as store:
        assert add_prompts(store, "s", "s.jsonl", read_prompt_set(path).prompts).added == 2
        again = add_prompts(store, "s", "s.jsonl", read_prompt_set(grown).prompts)
        assert (again.added, again.already_stored) == (1, 2)
        with pytest.raises(SetConflict, match=r"other content for 1 prompt\(s\): 'a' \(its text\).*--set NEW_NAME"):
            add_prompts(store, "s", "s3.jsonl", read_prompt_set(changed).prompts)
        longer = read_prompt_set(path, GenerationOptions(max_new_tokens=64)).prompts
        with pytest.raises(SetConflict, match="max_new_tokens 256 -> 64"):
            add_prompts(store, "s", "s.jsonl", longer)
        assert set_info(store, "s").prompts == 3  # nothing of the refused calls was stored


def parse_generate(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    generate.add_parser(parser.add_subparsers())
    return parser.parse_args(["generate", *argv])


def test_every_variant_answers_every_prompt_and_repeat_once_with_stats_and_seeds(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_wav(tmp_path / "memo.wav")
    path = write_jsonl(tmp_path / "team.jsonl", [
        {"id": "p1", "text": "What is a receipt?", "tags": ["receipts"]},
        {"id": "p2", "text": "Listen", "audio": ["memo.wav"]},
    ])
    args = parse_generate("--prompts", str(path), "--variants", E2B, B31, "--repeats", "2", "--max-new-tokens", "4")
    assert generate.run(args, settings) == 0
    with open_store(settings.db_path) as store:
        answers = read_answers(store, "team")
        keys = [(a.prompt_id, a.variant, a.repeat) for a in answers]
        assert sorted(keys) == sorted([("p1", E2B, 0), ("p1", E2B, 1), ("p2", E2B, 0), ("p2", E2B, 1),
                                       ("p1", B31, 0), ("p1", B31, 1)])
        # 31B takes no audio: it is not asked p2, which is recorded so that it is never asked again
        assert refused(store, "team") == {("p2", B31, 0), ("p2", B31, 1)}
        assert all(a.result.ok and a.result.stats.output_tokens == 4 and a.result.stats.ttft_s is not None
                   and a.result.stats.weights_bytes for a in answers)
        assert all(a.spec == a.variant for a in answers)
        seeds = {(a.prompt_id, a.variant, a.repeat): a.seed for a in answers}
        assert seeds[("p1", E2B, 0)] != seeds[("p1", E2B, 1)]
        info = set_info(store, "team")
        assert (info.prompts, info.answers, info.failed, info.variants) == (2, 6, 0, (B31, E2B))
    # run again: nothing is left to do, and no variant is even loaded
    capsys.readouterr()
    assert generate.run(args, settings) == 0
    out, err = capsys.readouterr()
    assert "demo variants" not in err and f"{E2B}: 0 answered, 4 stored before" in out
    assert f"{B31}: 0 answered, 2 stored before, 2 not asked (it cannot take their media)" in out
    with open_store(settings.db_path) as store:
        assert len(read_answers(store, "team", failed=True)) == 8


def test_a_derived_seed_is_the_same_for_every_variant_and_differs_by_repeat() -> None:
    assert answer_seed(7, "p1", 0) == answer_seed(7, "p1", 0) != answer_seed(7, "p1", 1)
    assert answer_seed(7, "p1", 0) != answer_seed(8, "p1", 0) and 0 <= answer_seed(7, "p2", 3) < 2**31


def test_a_stored_set_is_answered_by_more_variants_without_its_file(settings: Settings, tmp_path: Path) -> None:
    write_png(tmp_path / "p.png")
    path = write_jsonl(tmp_path / "s.jsonl", [{"id": "img", "text": "Describe", "images": ["p.png"]}])
    assert generate.run(parse_generate("--prompts", str(path), "--variants", E2B, "--max-new-tokens", "3"),
                        settings) == 0
    (tmp_path / "p.png").unlink()  # the media is read back from the database
    assert generate.run(parse_generate("--set", "s", "--variants", B31, "--max-new-tokens", "3"), settings) == 0
    with open_store(settings.db_path) as store:
        assert answered(store, "s") == {("img", E2B, 0), ("img", B31, 0)}
        with pytest.raises(UsageError, match=r"no prompt set 'nope'.*stored sets: s"):
            generate.run(parse_generate("--set", "nope"), settings)


def test_a_failed_answer_is_kept_as_a_record_and_asked_again_next_run(settings: Settings, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "s.jsonl", [{"id": "p", "text": "hello"}])
    with open_store(settings.db_path) as store:
        add_prompts(store, "s", str(path), read_prompt_set(path, GenerationOptions(max_new_tokens=3)).prompts)
        registry = default_registry()
        lineup = create_lineup([registry.parse(E2B)], registry, settings)
        work, tallies = generate.plan(store, "s", [E2B], 1)
        # a timeout too short for any answer: the attempt fails and is recorded as failed
        asyncio.run(generate.generate(lineup, store, "s", work, tallies, timeout_s=1e-6))
        assert tallies[E2B].failed == 1 and answered(store, "s") == set()
        work, _ = generate.plan(store, "s", [E2B], 1)
        assert [task.prompt_id for task in work[E2B]] == ["p"]  # asked again
        lineup = create_lineup([registry.parse(E2B)], registry, settings)
        asyncio.run(generate.generate(lineup, store, "s", work, generate.plan(store, "s", [E2B], 1)[1]))
        attempts = read_answers(store, "s", failed=True)
        assert [a.result.ok for a in attempts] == [False, True]
        assert attempts[0].result.error_kind == "VariantTimeout"


def test_a_variant_that_fails_to_load_is_reported_and_the_others_answer(settings: Settings, tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    path = write_jsonl(tmp_path / "s.jsonl", [{"id": "p", "text": "hello"}, {"id": "q", "text": "again"}])
    missing = f"hf:{tmp_path / 'no-such-model'}"
    args = parse_generate("--prompts", str(path), "--variants", E2B, missing, "--max-new-tokens", "3")
    assert generate.run(args, settings) == 3  # done, but a variant failed
    out = capsys.readouterr().out
    assert f"{E2B}: 2 answered" in out and "0 answered, 0 stored before, 2 not asked (not loaded)" in out
    with open_store(settings.db_path) as store:
        assert answered(store, "s") == {("p", E2B, 0), ("q", E2B, 0)}


def app(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "app.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_generate_refuses_bad_rows_by_line_and_stores_nothing_without_skip_bad(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "s.jsonl", [{"text": "fine"}, {"txt": "typo"}])
    db = tmp_path / "a.db"
    done = app("generate", "--prompts", str(path), "--variants", E2B, "--db", str(db))
    assert done.returncode == 2
    assert "line 2: unknown fields 'txt'" in done.stderr and "--skip-bad" in done.stderr
    assert not db.exists()  # the file is checked before the database is touched
    done = app("generate", "--prompts", str(path), "--variants", E2B, "--db", str(db), "--max-new-tokens", "3",
               "--skip-bad")
    assert done.returncode == 0, done.stderr
    assert "skipped 1 bad rows: line 2" in done.stderr and f"{E2B}: 1 answered, 0 stored before" in done.stdout


def stored_answers(db: Path) -> list[tuple[int, str, str, int, str]]:
    if not db.exists():
        return []
    try:
        with closing(sqlite3.connect(db, timeout=5)) as conn:
            return conn.execute("SELECT id, prompt_id, variant, repeat, text FROM set_answers WHERE error IS NULL "
                                "ORDER BY id").fetchall()
    except sqlite3.OperationalError:  # the schema is not there yet
        return []


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGINT])
def test_generation_stopped_midway_resumes_without_losing_or_repeating_an_answer(
    tmp_path: Path, stop: signal.Signals
) -> None:
    prompts = 40
    path = write_jsonl(tmp_path / "big.jsonl", [{"id": f"q{n}", "text": f"Question {n}?"} for n in range(prompts)])
    db = tmp_path / "a.db"
    args = ["generate", "--prompts", str(path), "--variants", E2B, B31, "--max-new-tokens", "24", "--db", str(db)]
    child = subprocess.Popen([sys.executable, "app.py", *args], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while len(stored_answers(db)) < 6:
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "no answers were stored"
            time.sleep(0.05)
        if stop == signal.SIGKILL:
            child.kill()  # the process alone, as the out-of-memory killer would
        else:
            os.killpg(child.pid, signal.SIGINT)  # Ctrl-C in a terminal reaches the whole group
        _, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
    assert child.returncode == (-signal.SIGKILL if stop == signal.SIGKILL else 130), err
    first = stored_answers(db)
    assert 6 <= len(first) < 2 * prompts  # stopped midway
    done = app(*args)
    assert done.returncode == 0, done.stderr
    after = stored_answers(db)
    keys = [(prompt, variant, repeat) for _, prompt, variant, repeat, _ in after]
    assert sorted(keys) == sorted((f"q{n}", v, 0) for n in range(prompts) for v in (E2B, B31))
    assert after[: len(first)] == first  # the first run's answers kept, as they were
    for variant in (E2B, B31):
        before = sum(1 for answer in first if answer[2] == variant)
        assert f"{variant}: {prompts - before} answered, {before} stored before" in done.stdout
    with open_store(db) as store:
        assert len(read_requests(store, "big")) == prompts


def test_a_set_moves_between_machines_through_export_and_import(tmp_path: Path) -> None:
    """`export --format set` on the machine that generated, `import` on the one that judges."""
    path = write_jsonl(tmp_path / "receipts.jsonl", [{"text": "Total?", "tags": ["math"]}, {"text": "Vendor?"}])
    generated, judged = tmp_path / "gpu.db", tmp_path / "team.db"
    done = app("generate", "--prompts", str(path), "--variants", E2B, B31, "--db", str(generated),
               "--max-new-tokens", "3")
    assert done.returncode == 0, done.stderr
    # a progress bar per variant (2 prompts each) and one overall (4 answers)
    bars = [line for line in done.stderr.splitlines() if "/" in line]
    assert any(E2B in line and "2/2" in line for line in bars), done.stderr
    assert any(B31 in line and "2/2" in line for line in bars), done.stderr
    assert any("all variants" in line and "4/4" in line for line in bars), done.stderr
    bundle = tmp_path / "receipts.zip"
    done = app("export", "--format", "set", "--set", "receipts", "--out", str(bundle), "--db", str(generated))
    assert done.returncode == 0, done.stderr
    for _ in range(2):  # importing twice stores nothing twice
        done = app("import", str(bundle), "--db", str(judged))
        assert done.returncode == 0, done.stderr
    with open_store(judged) as store:
        answers = read_answers(store, "receipts")
        assert sorted((a.prompt_id, a.variant) for a in answers) == sorted(
            (p, v) for p in ("1", "2") for v in (E2B, B31))
    done = app("export", "--format", "set", "--out", str(bundle), "--db", str(generated))
    assert done.returncode == 2 and "--format set --set NAME" in done.stderr

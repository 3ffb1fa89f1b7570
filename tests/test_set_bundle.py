"""Moving a prompt set between machines: export to one zip, import elsewhere, judge there."""

from __future__ import annotations

import json
import random
import zipfile
from pathlib import Path

import pytest

from arena.errors import UsageError
from arena.measure import Result, Stats
from arena.prompt_sets import SetPrompt
from arena.requests import build_request
from arena.settings import Settings
from backends.base import Request
from storage import Journal, Replayed, Store, VoteRejected, open_store
from storage.journal import JOURNAL_DIR, read_journals, replay
from storage.judgments import record_judgment, set_votes
from storage.set_bundle import BundleError, export_set, import_set, is_set_bundle
from storage.sets import SetConflict, add_prompts, read_answers, read_media, read_prompts, record_answer, set_info
from tests.support.media import write_png, write_wav
from ui.judge import JudgeFlow


def generated(store: Store, tmp_path: Path, variants: tuple[str, ...] = ("x", "y"), name: str = "team") -> None:
    """A set of three prompts (one with an image, one with audio) answered by `variants`, as
    `generate` stores it, with one failed attempt."""
    prompts = [
        SetPrompt("img", 1, build_request("What is the total?", images=[write_png(tmp_path / "r.png")]),
                  "vision", ("receipts",)),
        SetPrompt("wav", 2, build_request("Summarise", audio=[write_wav(tmp_path / "m.wav")]), None, ("memos",)),
        SetPrompt("txt", 3, Request("Review this contract"), "legal", ()),
    ]
    add_prompts(store, name, "team.jsonl", prompts)
    for prompt in prompts:
        for n, variant in enumerate(variants):
            stats = Stats(ttft_s=0.01 * (n + 1), tokens_per_s=30.0 + n, output_tokens=12, weights_bytes=10_000,
                          memory_kind="rss", token_source="engine", server={"eval_count": 12.0})
            record_answer(store, name, prompt.id, variant, f"demo:{variant}", 0, 100 + n,
                          Result(variant, text=f"{variant} on {prompt.id}", thinking="hmm", stats=stats))
    record_answer(store, name, "txt", variants[0], f"demo:{variants[0]}", 1, 7,
                  Result(variants[0], error="worker died", error_kind="WorkerDied"))


def answers_of(store: Store, name: str = "team") -> list[tuple[object, ...]]:
    return sorted((a.prompt_id, a.variant, a.spec, a.repeat, a.seed, a.recorded_at, a.result.text,
                   a.result.thinking, a.result.stats) for a in read_answers(store, name))


def test_a_set_exported_and_imported_elsewhere_has_the_same_prompts_answers_and_media(
    settings: Settings, tmp_path: Path
) -> None:
    with open_store(settings.db_path) as store:
        generated(store, tmp_path)
        (tmp_path / "out").mkdir()
        bundle = export_set(store, "team", tmp_path / "out")  # a folder: team.zip in it
        prompts, answers = read_prompts(store, "team"), answers_of(store)
        media = read_media(store, [i["sha256"] for p in prompts for k in ("images", "audio") for i in p.request[k]])
    assert bundle == tmp_path / "out" / "team.zip" and is_set_bundle(bundle)
    assert not list((tmp_path / "out").glob(".*"))  # no staging file left
    with zipfile.ZipFile(bundle) as opened:
        names = set(opened.namelist())
    assert {"manifest.json", "prompts.jsonl", "answers.jsonl"} | {f"media/{sha}" for sha in media} == names
    with open_store(tmp_path / "server.db") as server:
        report = import_set(server, bundle)
        assert (report.prompts_added, report.answers_added, report.media_added) == (3, 6, 2)
        assert read_prompts(server, "team") == prompts
        assert answers_of(server) == answers  # the failed attempt stays behind
        assert {sha: m.data for sha, m in read_media(server, media).items()} == {s: m.data for s, m in media.items()}
        info = set_info(server, "team")
        assert (info.prompts, info.answers, info.failed, info.source) == (3, 6, 0, "team.jsonl")
        view = JudgeFlow(server, rng=random.Random(0)).next_pair("ann", "team")  # judged on the server
        assert view["token"] is not None


def test_importing_twice_stores_nothing_twice_and_other_variants_merge(settings: Settings, tmp_path: Path) -> None:
    with open_store(tmp_path / "gpu-1.db") as one:
        generated(one, tmp_path, ("x", "y"))
        first = export_set(one, "team", tmp_path / "one.zip")
    with open_store(tmp_path / "gpu-2.db") as two:
        generated(two, tmp_path, ("z",))
        second = export_set(two, "team", tmp_path / "two.zip")
    with open_store(settings.db_path) as server:
        assert import_set(server, first).answers_added == 6
        again = import_set(server, first)
        assert (again.prompts_added, again.answers_added, again.media_added) == (0, 0, 0)
        assert (again.prompts_known, again.answers_known) == (3, 6)
        assert "were stored already and were not repeated" in again.summary()
        merged = import_set(server, second)
        assert (merged.prompts_added, merged.answers_added) == (0, 3)
        assert set_info(server, "team").variants == ("x", "y", "z")


def test_a_set_of_the_same_name_with_other_content_is_refused_and_nothing_is_stored(
    settings: Settings, tmp_path: Path
) -> None:
    with open_store(tmp_path / "elsewhere.db") as elsewhere:
        generated(elsewhere, tmp_path)
        bundle = export_set(elsewhere, "team", tmp_path / "team.zip")
    with open_store(settings.db_path) as server:
        add_prompts(server, "team", "mine.jsonl", [SetPrompt("txt", 1, Request("Another contract entirely"))])
        with pytest.raises(SetConflict, match=r"'team' is stored with other content for 1 prompt\(s\): 'txt'"):
            import_set(server, bundle)
        assert set_info(server, "team").prompts == 1 and read_answers(server, "team") == []
    with open_store(tmp_path / "regenerated.db") as other:
        generated(other, tmp_path)
        record_answer(other, "team", "txt", "x", "demo:x", 2, 1, Result("x", text="a third sample"))
        export_set(other, "team", tmp_path / "mine.zip")
    with open_store(tmp_path / "third.db") as third:
        import_set(third, tmp_path / "mine.zip")
        # the same set generated again elsewhere: same prompts, other answers under the same keys
        rewritten = tmp_path / "rewritten.zip"
        with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(rewritten, "w") as dst:
            for item in src.infolist():
                data = src.read(item)
                if item.filename == "answers.jsonl":
                    data = data.replace(b'"x on img"', b'"x said something else"')
                dst.writestr(item, data)
        before = answers_of(third)
        with pytest.raises(SetConflict, match=r"1 answer\(s\) of set 'team' are stored here with other text"):
            import_set(third, rewritten)
        assert answers_of(third) == before


def test_a_damaged_or_foreign_bundle_is_refused_with_what_to_do(settings: Settings, tmp_path: Path) -> None:
    with open_store(settings.db_path) as store:
        generated(store, tmp_path)
        bundle = export_set(store, "team", tmp_path / "team.zip")
        with pytest.raises(UsageError, match=r"name it team\.tar\.zip"):
            export_set(store, "team", tmp_path / "team.tar")
        with pytest.raises(UsageError, match="no prompt set 'nope'"):
            export_set(store, "nope", tmp_path / "nope.zip")
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(tampered, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            dst.writestr(item, data[:-1] + b"!" if item.filename.startswith("media/") else data)
    newer = tmp_path / "newer.zip"
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(newer, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "manifest.json":
                data = json.dumps({**json.loads(data), "version": 99}).encode()
            dst.writestr(item, data)
    (tmp_path / "plain.zip").write_bytes(b"not a zip")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as other:
        other.writestr("manifest.json", "{}")
    with open_store(tmp_path / "server.db") as server:
        with pytest.raises(BundleError, match="does not hash to its name: the bundle is damaged"):
            import_set(server, tampered)
        with pytest.raises(BundleError, match=r"version 99.*upgrade gemma-arena"):
            import_set(server, newer)
        with pytest.raises(BundleError, match="not a readable zip"):
            import_set(server, tmp_path / "plain.zip")
        with pytest.raises(BundleError, match=r"not a prompt set bundle.*export --format set"):
            import_set(server, tmp_path / "other.zip")
        with pytest.raises(BundleError, match="no set bundle at"):
            import_set(server, tmp_path / "missing.zip")
        with pytest.raises(UsageError, match="no prompt set 'team'"):
            set_info(server, "team")  # nothing of any of them was stored
    assert not is_set_bundle(tmp_path / "plain.zip") and not is_set_bundle(tmp_path / "other.zip")


def test_verdicts_restored_from_a_journal_are_linked_back_to_their_set_on_import(
    settings: Settings, tmp_path: Path
) -> None:
    """A Space restarts with an empty disk: its votes come back from the journal (battles and
    votes, not the set tables), and importing the set's bundle again links them to the set."""
    with open_store(tmp_path / "space.db", journal=Journal(tmp_path / "journal")) as space:
        generated(space, tmp_path)
        bundle = export_set(space, "team", tmp_path / "team.zip")
        flow = JudgeFlow(space, rng=random.Random(5))
        for judge in ("ann", "bob"):
            for _ in range(2):
                view = flow.next_pair(judge, "team")
                flow.vote(judge, view["token"], "a")
        before = [(v.judge, v.variant_a, v.variant_b, v.outcome, v.labels) for v in set_votes(space, "team")]
    report = Replayed()
    records = read_journals((tmp_path / "journal" / JOURNAL_DIR).glob("*.jsonl"), report)
    with open_store(settings.db_path) as restored:
        restored.write(lambda db: replay(db, records, report))
        assert len(restored.pair_outcomes()) == 4 and report.problems == []
        imported = import_set(restored, bundle)
        assert imported.judgments_linked == 4 and "linked 4 stored verdicts" in imported.summary()
        after = [(v.judge, v.variant_a, v.variant_b, v.outcome, v.labels) for v in set_votes(restored, "team")]
        assert after == before
        # and the judges are not served the pairs they judged before the restart
        assert JudgeFlow(restored).next_pair("ann", "team")["judged"] == 2
        link = set_votes(restored, "team", judge="ann")[0]
        with pytest.raises(VoteRejected, match="judged this pair already"):
            record_judgment(restored, link.answer_b, link.answer_a, "b", "ann")

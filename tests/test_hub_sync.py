"""Votes that survive a Space restart: the store's journal, pushed to a dataset by huggingface_hub's
own CommitScheduler and restored with its snapshot_download, against a loopback server answering
as the Hub does (tests/servers/fake_hub.py; the Hub cannot be reached from here)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from arena.errors import StorageError
from arena.measure import Result, Stats
from arena.rating_tables import Battles
from arena.ratings import compute_leaderboard
from backends.base import Media, Request, ToolCall
from storage import HubSyncError, Journal, Store, Sync, open_store, restore, start_sync
from storage.hub_sync import dataset_id
from storage.journal import JOURNAL_DIR
from tests.servers.fake_hub import FakeHub

REPO = "arena-tester/gemma-arena-votes"
PAIR = [("e2b", "demo:e2b"), ("e4b", "demo:e4b")]
TRIO = [("e2b", "demo:e2b"), ("e4b", "demo:e4b"), ("26b", "demo:26b")]
TABLES = ("battles", "sides", "runs", "votes", "identity_flags", "media")
PNG = Media(kind="image", data=b"\x89PNG fake image bytes", mime="image/png", name="cat.png")


@pytest.fixture(autouse=True)
def _hub_reachable(monkeypatch: pytest.MonkeyPatch) -> None:
    """conftest sets HF_HUB_OFFLINE=1 so no test reaches the real Hub; these talk to the fake."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    with FakeHub() as server:
        yield server
    assert server.unknown == [], "huggingface_hub called an endpoint the fake hub does not implement"


def answer(variant: str, text: str = "an answer", **stats: Any) -> Result:
    return Result(variant=variant, text=text, stats=Stats(**stats))


def play_battles(store: Store, tag: str) -> list[str]:
    """Something of every kind the store records; returns the finished battles left unvoted."""
    for index, outcome in enumerate(("a", "b", "tie", "both_bad")):
        battle = store.open_battle(Request(f"{tag} question {index}"), PAIR, voter=f"voter-{index % 2}")
        store.finish_battle(battle, [answer("e2b", ttft_s=0.05, tokens_per_s=40.0), answer("e4b", total_s=1.5)])
        store.record_vote(battle, outcome)
    pictured = store.open_battle(Request(f"{tag} what is this?", images=(PNG,)), PAIR)
    store.finish_battle(pictured, [answer("e2b", "As Gemma, made by Google, I see a cat"), answer("e4b", "a cat")])
    store.record_vote(pictured, "b")  # flagged: its vote stays out of ratings by default
    tools = Result("e4b", "", tool_calls=(ToolCall("weather", {"city": "Zürich", "days": [1, 2]}),),
                   stats=Stats(server={"eval_count": 12.0}))  # fmt: skip
    best = store.record_comparison(Request(f"{tag} named"), PAIR, [answer("e2b"), tools], voter="ann")
    store.record_vote(best, best="e4b")
    ranked = store.record_comparison(Request(f"{tag} three"), TRIO, [answer("e2b"), answer("e4b"), answer("26b")])
    store.record_vote(ranked, ranking=[["26b"], ["e2b", "e4b"]])
    failed = Result("26b", error="26b ran out of memory", error_kind="LoadError")
    partial = store.record_comparison(Request(f"{tag} partial"), TRIO, [answer("e2b"), answer("e4b"), failed])
    store.record_vote(partial, best="e2b")
    store.open_battle(Request(f"{tag} served, never answered"), PAIR)
    unvoted = store.open_battle(Request(f"{tag} answered, vote pending"), PAIR, voter="bob")
    store.finish_battle(unvoted, [answer("e2b"), answer("e4b")])
    return [unvoted]


def dump(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, ids included, in storage order."""
    with closing(sqlite3.connect(path)) as conn:
        return {table: conn.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall() for table in TABLES}


def leaderboards(store: Store) -> list[Any]:
    """The leaderboard of every slice a reader can ask for: rows, anchor, counts and win rates."""
    boards: list[Any] = []
    for mode in ("blind", "named", "all"):
        for flagged in (False, True):
            pairs = store.pair_outcomes(mode=mode, include_flagged=flagged)
            board = compute_leaderboard(Battles.from_pairs(pairs), rounds=20)
            boards.append((board.rows, board.anchor, board.votes, board.battles, board.battle_count.tolist(),
                           np.nan_to_num(board.win_rate, nan=-1).tolist()))  # fmt: skip
    return boards


def records(folder: Path) -> list[dict[str, Any]]:
    lines = [json.loads(line) for path in sorted((folder / JOURNAL_DIR).glob("*.jsonl")) for line in path.open()]
    return [line for line in lines if "kind" in line]


def begin(hub: FakeHub, folder: Path, db: Path, every_minutes: float = 60) -> tuple[Sync, Store]:
    """What a Space does on start: restore, start pushing, open the store with its journal."""
    restore(db, REPO, token=hub.token, endpoint=hub.url)
    sync = start_sync(folder, REPO, every_minutes, token=hub.token, endpoint=hub.url)
    return sync, open_store(db, journal=Journal(folder))


def wipe(*paths: Path) -> None:
    """A restarted Space: its disk is empty again."""
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


# -- the journal ---------------------------------------------------------------------------------


def test_every_record_kind_is_journaled_in_commit_order(tmp_path: Path) -> None:
    with open_store(tmp_path / "arena.db", journal=Journal(tmp_path / "sync")) as store:
        play_battles(store, "one")
    written = records(tmp_path / "sync")
    seqs = [r["seq"] for r in written]  # one number per write, in commit order
    assert seqs == sorted(seqs) and sorted(set(seqs)) == list(range(1, 25))
    kinds = [r["kind"] for r in written]
    assert kinds.count("battle") == 10 and kinds.count("runs") == 9 and kinds.count("vote") == 8
    pictured = next(r for r in written if r["kind"] == "battle" and r["has_image"])
    assert json.loads(pictured["request"])["images"] == [{"sha256": PNG.sha256, "mime": "image/png", "name": "cat.png"}]
    (media,) = [r for r in written if r["kind"] == "media"]  # the bytes, once, in the battle's own write
    assert (media["seq"], media["sha256"], media["media_kind"], media["mime"]) == (
        pictured["seq"], PNG.sha256, "image", "image/png"
    )  # fmt: skip
    assert base64.b64decode(media["data"]) == PNG.data
    assert kinds[kinds.index("media") + 1] == "battle"  # just before the battle that uses it
    flagged = next(r for r in written if r["kind"] == "runs" and r["flags"])
    assert flagged["flags"] == [[0, ["Gemma", "Google"]]]
    ranked = next(r for r in written if r["kind"] == "vote" and r["ranking"])
    assert ranked["ranking"] == [["26b"], ["e2b", "e4b"]]
    first = next((tmp_path / "sync" / JOURNAL_DIR).glob("*.jsonl")).open().readline()
    assert json.loads(first)["format"] == 2


def test_an_import_is_journaled_from_what_it_stored(tmp_path: Path) -> None:
    battles = tmp_path / "battles.jsonl"
    conversation = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    lines = [
        {"model_a": "x", "model_b": "y", "winner": winner, "tstamp": 1.7e9 + index, "judge": "judge-1",
         "conversation_a": conversation, "conversation_b": conversation}
        for index, winner in enumerate(("model_a", "model_b", "tie"))
    ]  # fmt: skip
    battles.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with open_store(tmp_path / "arena.db", journal=Journal(tmp_path / "sync")) as store:
        assert store.import_fastchat(battles).imported == 3
    written = records(tmp_path / "sync")
    # each battle just before its runs: a follow-up turn replays only once the turn before it finished
    assert [r["kind"] for r in written] == ["battle", "runs"] * 3 + ["vote"] * 3
    assert {r["source"] for r in written if r["kind"] == "battle"} == {"fastchat"}
    replay_folder(tmp_path / "sync", tmp_path / "copy.db")
    assert dump(tmp_path / "copy.db") == dump(tmp_path / "arena.db")


def test_an_imported_conversation_is_journaled_and_replays_turn_by_turn(tmp_path: Path) -> None:
    def said(side: str) -> list[dict[str, str]]:
        return [{"role": role, "content": text} for turn in ("hi", "and then?", "bye")
                for role, text in (("user", turn), ("assistant", f"{side}: {turn}"))]  # fmt: skip

    battles = tmp_path / "battles.jsonl"
    line = {"model_a": "x", "model_b": "y", "winner": "model_b", "tstamp": 1.7e9, "judge": "judge-1", "turn": 3,
            "conversation_a": said("x"), "conversation_b": said("y")}  # fmt: skip
    battles.write_text(json.dumps(line) + "\n")
    with open_store(tmp_path / "arena.db", journal=Journal(tmp_path / "sync")) as store:
        assert store.import_fastchat(battles).imported == 1
    written = records(tmp_path / "sync")
    assert [r["kind"] for r in written] == ["battle", "runs"] * 3 + ["vote"]
    assert [r["turn"] for r in written if r["kind"] == "battle"] == [1, 2, 3]
    replay_folder(tmp_path / "sync", tmp_path / "copy.db")
    assert dump(tmp_path / "copy.db") == dump(tmp_path / "arena.db")


def test_a_conversation_and_its_media_survive_a_replay(tmp_path: Path) -> None:
    wav = Media(kind="audio", data=b"RIFF fake audio bytes", mime="audio/wav", name="hello.wav")
    with open_store(tmp_path / "arena.db", journal=Journal(tmp_path / "sync")) as store:
        first = store.open_battle(Request("look", images=(PNG,)), PAIR, voter="ann")
        store.finish_battle(first, [answer("e2b", "a cat"), answer("e4b", "a dog")])
        second = store.open_battle(Request("and this?", audio=(wav,)), PAIR, voter="ann", parent_id=first)
        store.finish_battle(second, [answer("e2b", "a bell"), answer("e4b", "a horn")])
        regenerated = store.record_comparison(
            Request("and this?", images=(PNG,)), PAIR, [answer("e2b"), answer("e4b")], mode="blind",
            voter="ann", parent_id=first,
        )  # fmt: skip
        store.record_vote(regenerated, "a")
        conversation = store.conversation(second)
    written = records(tmp_path / "sync")
    assert [r["kind"] for r in written if r["kind"] == "media"] == ["media", "media"]  # each stored once
    assert [(r["parent_id"], r["turn"]) for r in written if r["kind"] == "battle"] == [
        (None, 1), (first, 2), (first, 2)
    ]  # fmt: skip
    replay_folder(tmp_path / "sync", tmp_path / "copy.db")
    assert dump(tmp_path / "copy.db") == dump(tmp_path / "arena.db")
    with open_store(tmp_path / "copy.db") as copy:
        assert copy.conversation(second) == conversation
        assert copy.media(wav.sha256) == Media("audio", wav.data, "audio/wav")
        assert [e.battle_id for e in copy.history("ann")] == [regenerated]


def test_a_journal_written_before_conversations_restores_as_first_turns(tmp_path: Path) -> None:
    folder = tmp_path / "sync" / JOURNAL_DIR
    folder.mkdir(parents=True)
    battle = {"kind": "battle", "id": "old-1", "created_at": 1.7e9, "mode": "blind", "voter": "ann",
              "variants": [list(pair) for pair in PAIR], "prompt": "hi",
              "request": json.dumps(Request("hi").describe()), "has_image": False, "has_audio": False,
              "source": "arena", "source_ref": None, "language": None}  # fmt: skip
    runs = {"kind": "runs", "battle_id": "old-1", "recorded_at": 1.7e9 + 1, "flags": [],
            "results": [answer("e2b").to_json(), answer("e4b").to_json()]}  # fmt: skip
    vote = {"kind": "vote", "id": 1, "battle_id": "old-1", "created_at": 1.7e9 + 2, "voter": None, "outcome": "a",
            "best": None, "ranking": None}  # fmt: skip
    lines = [{"journal": "gemma-arena", "format": 1, "run": "old", "part": 0}]
    lines += [{"seq": seq, **record} for seq, record in enumerate((battle, runs, vote), 1)]
    (folder / "20250101T000000000000Z-old-00000.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    replay_folder(tmp_path / "sync", tmp_path / "copy.db")
    with open_store(tmp_path / "copy.db") as store:
        restored = store.battle("old-1")
        assert restored is not None and (restored.parent_id, restored.turn, restored.phase) == (None, 1, "finished")
        assert restored.vote is not None and restored.vote.outcome == "a"


def test_a_damaged_media_record_is_reported_and_not_stored(tmp_path: Path) -> None:
    from storage.journal import Replayed, read_journals, replay

    with open_store(tmp_path / "arena.db", journal=Journal(tmp_path / "sync")) as store:
        store.open_battle(Request("look", images=(PNG,)), PAIR)
    path = next((tmp_path / "sync" / JOURNAL_DIR).glob("*.jsonl"))
    lines = [json.loads(line) for line in path.open()]
    lines[1]["data"] = base64.b64encode(b"other bytes").decode()
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    report = Replayed()
    located = read_journals([path], report)
    with open_store(tmp_path / "copy.db") as copy:
        copy.write(lambda conn: replay(conn, located, report))
        assert copy.media(PNG.sha256) is None
    assert len(report.problems) == 1 and "do not hash to" in report.problems[0]


def replay_folder(folder: Path, db: Path) -> None:
    from storage.journal import Replayed, read_journals, replay

    report = Replayed()
    located = read_journals((folder / JOURNAL_DIR).glob("*.jsonl"), report)
    with open_store(db) as store:
        store.write(lambda conn: replay(conn, located, report))
    assert report.problems == []


def test_concurrent_writers_replay_to_the_same_ids(tmp_path: Path) -> None:
    with open_store(tmp_path / "arena.db", journal=Journal(tmp_path / "sync", max_file_bytes=4096)) as store:
        battles = [store.record_comparison(Request(f"q{i}"), PAIR, [answer("e2b"), answer("e4b")]) for i in range(64)]
        acknowledged: list[int] = []

        def vote(ids: list[str]) -> None:
            for battle in ids:
                acknowledged.append(store.record_vote(battle, "a"))

        threads = [threading.Thread(target=vote, args=(battles[i::8],)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    parts = list((tmp_path / "sync" / JOURNAL_DIR).glob("*.jsonl"))
    assert len(parts) > 1  # rotated: no file grows past what one push should send
    assert sorted(r["id"] for r in records(tmp_path / "sync") if r["kind"] == "vote") == sorted(acknowledged)
    replay_folder(tmp_path / "sync", tmp_path / "copy.db")
    assert dump(tmp_path / "copy.db") == dump(tmp_path / "arena.db")


def test_closing_the_store_waits_for_a_committed_vote_to_be_journaled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = Journal(tmp_path / "sync")
    store = open_store(tmp_path / "arena.db", journal=journal)
    battle = store.record_comparison(Request("hi"), PAIR, [answer("e2b"), answer("e4b")])
    committed, go_on = threading.Event(), threading.Event()
    append = journal.append

    def slow_append(seq: int, written: list[dict[str, Any]]) -> None:
        if written[0]["kind"] == "vote":  # committed; its caller not yet back to write the line
            committed.set()
            go_on.wait(5)
        append(seq, written)

    monkeypatch.setattr(journal, "append", slow_append)
    votes: list[int] = []
    voter = threading.Thread(target=lambda: votes.append(store.record_vote(battle, "a")))
    voter.start()
    assert committed.wait(5)
    closer = threading.Thread(target=store.close)
    closer.start()
    closer.join(0.2)
    assert closer.is_alive()  # the store does not close the journal under that vote
    go_on.set()
    voter.join()
    closer.join()
    assert [r["id"] for r in records(tmp_path / "sync") if r["kind"] == "vote"] == votes


# -- pushing to the dataset and restoring from it ------------------------------------------------


def test_round_trip_through_the_hub_restores_the_same_leaderboard(hub: FakeHub, tmp_path: Path) -> None:
    db, folder = tmp_path / "data" / "arena.db", tmp_path / "data" / "sync"
    sync, store = begin(hub, folder, db)
    assert hub.repos[("dataset", REPO)].private  # created on first start, private: it holds prompts and voters
    pending = play_battles(store, "first run")
    before, boards = dump(db), leaderboards(store)
    store.close()
    sync.stop()  # a clean shutdown pushes what is left
    wipe(db, folder)

    sync, store = begin(hub, folder, db)  # the Space restarted on an empty disk
    assert dump(db) == before
    assert leaderboards(store) == boards
    store.record_vote(pending[0], "tie")  # a battle of the first run, voted on after the restart
    play_battles(store, "second run")
    after = dump(db)
    store.close()
    sync.stop()
    wipe(db, folder)

    report = restore(db, REPO, token=hub.token, endpoint=hub.url)
    assert dump(db) == after
    # the picture of the second run was stored already: its bytes are journaled once
    assert report.added == {"battle": 20, "runs": 18, "vote": 17, "media": 1} and report.problems == []
    again = restore(db, REPO, token=hub.token, endpoint=hub.url)  # idempotent
    assert (again.added, again.already_stored, dump(db)) == ({}, 56, after)
    assert {method for method, _ in hub.requests} <= {"GET", "HEAD", "POST"}


def test_a_crash_loses_only_what_was_not_pushed(hub: FakeHub, tmp_path: Path) -> None:
    db, folder = tmp_path / "arena.db", tmp_path / "sync"
    sync, store = begin(hub, folder, db)
    pushed = store.record_comparison(Request("pushed"), PAIR, [answer("e2b"), answer("e4b")])
    store.record_vote(pushed, "a")
    sync.push()  # what the scheduler does every interval
    lost = store.record_comparison(Request("after the last push"), PAIR, [answer("e2b"), answer("e4b")])
    store.record_vote(lost, "b")  # acknowledged, then the process is killed before the next push
    sync.scheduler.stop()
    wipe(db, folder)

    restore(db, REPO, token=hub.token, endpoint=hub.url)
    with open_store(db) as restored:
        assert restored.battle(pushed) is not None and restored.battle(pushed).vote is not None  # type: ignore[union-attr]
        assert restored.battle(lost) is None


def test_an_append_in_the_same_clock_tick_as_a_push_is_pushed_next_time(hub: FakeHub, tmp_path: Path) -> None:
    sync, store = begin(hub, tmp_path / "sync", tmp_path / "arena.db")
    first = store.record_comparison(Request("one"), PAIR, [answer("e2b"), answer("e4b")])
    sync.push()
    journal = next((tmp_path / "sync" / JOURNAL_DIR).glob("*.jsonl"))
    pushed = journal.stat()
    second = store.record_comparison(Request("two"), PAIR, [answer("e2b"), answer("e4b")])
    # a file system with coarse timestamps gives an append made a few ms later the same mtime
    os.utime(journal, ns=(pushed.st_atime_ns, pushed.st_mtime_ns))
    store.close()
    sync.stop()
    wipe(tmp_path / "arena.db")
    restore(tmp_path / "arena.db", REPO, token=hub.token, endpoint=hub.url)
    with open_store(tmp_path / "arena.db") as restored:
        assert restored.battle(first) is not None and restored.battle(second) is not None


def test_a_half_written_line_is_left_for_the_next_push(hub: FakeHub, tmp_path: Path) -> None:
    sync, store = begin(hub, tmp_path / "sync", tmp_path / "arena.db")
    battle = store.record_comparison(Request("one"), PAIR, [answer("e2b"), answer("e4b")])
    journal = next((tmp_path / "sync" / JOURNAL_DIR).glob("*.jsonl"))
    whole = journal.read_bytes()
    with journal.open("ab") as stream:
        stream.write(b'{"seq": 2, "kind": "vote", "battle_')  # another thread's append, under way
    sync.push()
    assert hub.files(REPO)[f"{JOURNAL_DIR}/{journal.name}"] == whole
    store.close()
    sync.scheduler.stop()
    assert battle


def test_the_scheduler_pushes_every_interval_on_its_own(hub: FakeHub, tmp_path: Path) -> None:
    sync, store = begin(hub, tmp_path / "sync", tmp_path / "arena.db", every_minutes=1 / 60)
    try:
        battle = store.record_comparison(Request("hi"), PAIR, [answer("e2b"), answer("e4b")])
        store.record_vote(battle, "a")
        deadline = time.monotonic() + 20
        while not any(b'"kind": "vote"' in data for data in hub.files(REPO).values()):
            assert time.monotonic() < deadline, "no scheduled push within 20 s of a 1 s interval"
            time.sleep(0.1)
    finally:
        store.close()
        sync.stop()


def test_a_big_journal_goes_through_lfs(tmp_path: Path) -> None:
    with FakeHub(lfs_threshold=2000) as hub:
        db, folder = tmp_path / "arena.db", tmp_path / "sync"
        sync, store = begin(hub, folder, db)
        play_battles(store, "lfs")
        before = dump(db)
        store.close()
        sync.stop()
        assert any(method == "PUT" for method, _ in hub.requests) and hub.lfs_objects
        wipe(db, folder)
        restore(db, REPO, token=hub.token, endpoint=hub.url)
        assert dump(db) == before
        assert hub.unknown == []


def test_a_missing_dataset_starts_empty(hub: FakeHub, tmp_path: Path) -> None:
    report = restore(tmp_path / "arena.db", "arena-tester/never-made", token=hub.token, endpoint=hub.url)
    assert report.added == {} and report.files == 0
    with open_store(tmp_path / "arena.db", create=False) as store:
        assert store.pair_outcomes(mode="all") == []


def test_a_refused_token_says_what_to_do(hub: FakeHub, tmp_path: Path) -> None:
    with pytest.raises(HubSyncError, match=r"refused the token .*\(401 .*HF_TOKEN"):
        restore(tmp_path / "arena.db", REPO, token="hf_wrong", endpoint=hub.url)
    with pytest.raises(HubSyncError, match=r"refused the token .*HF_TOKEN"):
        start_sync(tmp_path / "sync", REPO, token="hf_wrong", endpoint=hub.url)
    assert not (tmp_path / "arena.db").exists()


def test_another_namespace_is_refused_with_what_to_do(hub: FakeHub, tmp_path: Path) -> None:
    with pytest.raises(HubSyncError, match=r"403 .*write access"):
        start_sync(tmp_path / "sync", "someone-else/votes", token=hub.token, endpoint=hub.url)


def test_only_a_dataset_can_hold_the_votes() -> None:
    assert dataset_id("https://huggingface.co/datasets/ann/votes") == "ann/votes"
    assert dataset_id("datasets/ann/votes") == "ann/votes"
    with pytest.raises(HubSyncError, match=r"is a space, not a dataset.*ann/gemma-arena-votes"):
        dataset_id("https://huggingface.co/spaces/ann/arena")
    with pytest.raises(HubSyncError, match="is a model, not a dataset"):
        dataset_id("models/ann/gemma")
    with pytest.raises(HubSyncError, match="owner/name"):
        dataset_id("votes")


def test_a_line_cut_by_a_crash_is_reported_and_the_rest_kept(tmp_path: Path) -> None:
    with open_store(tmp_path / "arena.db", journal=Journal(tmp_path / "sync")) as store:
        battle = store.record_comparison(Request("hi"), PAIR, [answer("e2b"), answer("e4b")])
    journal = next((tmp_path / "sync" / JOURNAL_DIR).glob("*.jsonl"))
    with journal.open("a") as stream:
        stream.write('{"seq": 9, "kind": "vote", "battle_')
    from storage.journal import Replayed, read_journals

    report = Replayed()
    assert len(read_journals([journal], report)) == 2
    assert len(report.problems) == 1 and "line 4: not a journal record" in report.problems[0]
    assert battle


def test_a_journal_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    from storage.journal import Replayed, read_journals

    path = tmp_path / JOURNAL_DIR / "20990101T000000000000Z-abc-00000.jsonl"
    path.parent.mkdir()
    path.write_text('{"journal": "gemma-arena", "format": 3}\n')
    with pytest.raises(StorageError, match=r"format 3.*upgrade gemma-arena"):
        read_journals([path], Replayed())


def test_a_conversation_flagged_at_an_earlier_turn_replays_to_the_same_flags(tmp_path: Path) -> None:
    """A later turn carries the words of a flagged earlier one (`records.inherited_flags`): the
    journal holds them, and replaying adds no second row for them."""
    with open_store(tmp_path / "arena.db", journal=Journal(tmp_path / "sync")) as store:
        first = store.open_battle(Request("who are you?"), PAIR, voter="ann")
        store.finish_battle(first, [answer("e2b", "I am Gemma, made by Google."), answer("e4b", "A model.")])
        second = store.open_battle(Request("go on"), PAIR, voter="ann", parent_id=first)
        store.finish_battle(second, [answer("e2b", "on"), answer("e4b", "and on")])
        store.record_vote(second, "b")
        assert store.battle(second).flagged  # type: ignore[union-attr]
    replay_folder(tmp_path / "sync", tmp_path / "copy.db")
    assert dump(tmp_path / "copy.db") == dump(tmp_path / "arena.db")
    with open_store(tmp_path / "copy.db") as copy:
        assert copy.pair_outcomes() == [] and copy.flagged_votes() == 1

"""Judging a prompt set: the queue's order, blind pairs, the one vote path, ratings per set and
tag, and the judges' agreement. A real SQLite file; answers stored as `generate` stores them."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from arena.agreement import Verdict, agreement, oriented, percent_agreement, set_agreement
from arena.errors import UsageError
from arena.judge_queue import PairIndex
from arena.measure import Result, Stats
from arena.prompt_sets import SetPrompt
from arena.ratings import PairOutcome
from arena.set_ratings import ALL, SetVote, set_leaderboard, wilson, win_rates
from arena.settings import Settings
from backends.base import Request
from cli import main
from storage import Store, VoteRejected, open_store
from storage.judgments import record_judgment, set_votes
from storage.sets import add_prompts, read_answers, record_answer
from ui.judge import JudgeFlow

VARIANTS = ("v-one", "v-two", "v-three")


def fill(store: Store, name: str, prompts: Sequence[tuple[str, Sequence[str]]], variants: Sequence[str] = VARIANTS,
         text: dict[tuple[str, str], Result] | None = None) -> dict[tuple[str, str], int]:
    """Store a set of `prompts` ((id, tags)) answered by every variant; return answer ids by
    (prompt, variant). `text` overrides some answers."""
    add_prompts(store, name, f"{name}.jsonl", [SetPrompt(pid, n, Request(f"prompt {pid}?"), None, tuple(tags))
                                               for n, (pid, tags) in enumerate(prompts, 1)])
    ids = {}
    for pid, _ in prompts:
        for variant in variants:
            result = (text or {}).get((pid, variant)) or Result(
                variant, text=f"answer of {variant} to {pid}",
                stats=Stats(ttft_s=0.05, tokens_per_s=42.0, output_tokens=9, weights_bytes=1000))
            ids[pid, variant] = record_answer(store, name, pid, variant, f"demo:{variant}", 0, 5, result)
    return ids


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    with open_store(settings.db_path) as opened:
        yield opened


def test_the_least_judged_pairs_come_first_and_never_twice_to_one_judge() -> None:
    index = PairIndex(random.Random(3))
    for answer, (prompt, variant) in enumerate([("p", "x"), ("p", "y"), ("p", "z"), ("q", "x"), ("q", "y")], 1):
        index.add_answer(answer, prompt, variant)
    assert index.pairs == 4  # p: 3 pairs, q: 1
    for first, second in [(1, 2), (1, 3), (2, 3)]:
        index.add_judgment(first, second, "ann")
    # bob has judged nothing: the one pair nobody judged comes first
    served = index.next_pair("bob")
    assert served is not None and served.pair == (4, 5)
    index.add_judgment(served.first, served.second, "bob")
    assert index.next_pair("ann") is not None and index.next_pair("ann").pair == (4, 5)  # type: ignore[union-attr]
    index.add_judgment(4, 5, "ann")
    assert index.next_pair("ann") is None and index.remaining("ann") == 0  # ann judged everything
    seen = {index.next_pair("bob").pair for _ in range(50)}  # type: ignore[union-attr]
    assert seen == {(1, 2), (1, 3), (2, 3)}  # random among equals, never (4, 5), which bob judged


def test_sides_are_drawn_at_random_and_skipped_pairs_wait_until_nothing_else_is_left() -> None:
    single = PairIndex(random.Random(0))
    single.add_answer(1, "p", "x")
    single.add_answer(2, "p", "y")
    firsts = Counter(single.next_pair("ann").first for _ in range(400))  # type: ignore[union-attr]
    assert set(firsts) == {1, 2} and 140 < firsts[1] < 260
    index = PairIndex(random.Random(0))
    for answer, variant in enumerate("abcd", 1):
        index.add_answer(answer, "p", variant)
    avoid = {(1, 2), (1, 3), (1, 4), (2, 3), (2, 4)}
    assert {index.next_pair("ann", avoid).pair for _ in range(50)} == {(3, 4)}  # type: ignore[union-attr]
    everything = avoid | {(3, 4)}
    assert index.next_pair("ann", everything) is not None  # when nothing else is left, they come back


def test_one_variants_answers_and_failed_or_self_naming_ones_make_no_pair(store: Store) -> None:
    ids = fill(store, "s", [("p1", []), ("p2", [])], text={
        ("p1", "v-two"): Result("v-two", error="out of memory", error_kind="GenerationError"),
        ("p2", "v-three"): Result("v-three", text="As Gemma, made by Google, I think so."),
    })
    record_answer(store, "s", "p1", "v-one", "demo:v-one", 1, 6, Result("v-one", text="a second sample"))
    flow = JudgeFlow(store, rng=random.Random(0))
    shown = set()
    for _ in range(10):
        view = flow.next_pair("ann", "s")
        if view["token"] is None:
            break
        prompt_pairs = {view["a"]["text"], view["b"]["text"]}
        shown.add(frozenset(prompt_pairs))
        flow.vote("ann", view["token"], "tie")
    texts = {text for pair in shown for text in pair}
    assert "As Gemma, made by Google, I think so." not in texts and "" not in texts
    # p1: v-one (two samples) with v-three; p2: v-one with v-two; never v-one's two samples together
    assert len(shown) == 3 and frozenset({"answer of v-one to p1", "a second sample"}) not in shown
    with pytest.raises(VoteRejected, match="failed or names its model"):
        record_judgment(store, ids["p1", "v-one"], ids["p1", "v-two"], "a", "bob")


def test_a_pair_is_served_blind_and_revealed_after_the_one_vote(store: Store) -> None:
    fill(store, "s", [("p1", ["receipts"])])
    flow = JudgeFlow(store, rng=random.Random(1))
    view = flow.next_pair("ann", "s")
    sent = json.dumps(view)
    for secret in (*VARIANTS, "demo:", "tok/s", "42", "ttft", "memory", "weights"):
        assert secret not in sent.replace(view["a"]["text"], "").replace(view["b"]["text"], ""), secret
    assert set(view) >= {"token", "prompt", "a", "b", "tags", "remaining"} and view["tags"] == ["receipts"]
    assert view["prompt"] == "prompt p1?" and view["remaining"] == 3
    with pytest.raises(UsageError, match="served to another judge"):
        flow.vote("bob", view["token"], "a")
    with pytest.raises(UsageError, match="unknown verdict"):
        flow.vote("ann", view["token"], "left")
    reveal = flow.vote("ann", view["token"], "a")
    shown_first = view["a"]["text"].split()[2]
    assert reveal["a"]["variant"] == shown_first and "tok/s" in reveal["a"]["stats"]
    assert f"**A** was **{shown_first.replace('-', chr(92) + '-')}**" in reveal["markdown"]
    with pytest.raises(UsageError, match="no longer open"):
        flow.vote("ann", view["token"], "b")  # one vote per pair
    # the vote went through the store's vote path: a blind battle served to the judge, with its vote
    battle = store.battle(reveal["battle_id"])
    assert battle is not None and battle.mode == "blind" and battle.voter == "ann" and battle.phase == "finished"
    assert battle.vote is not None and battle.vote.outcome == "a"
    assert store.pair_outcomes() == [PairOutcome(reveal["a"]["variant"], reveal["b"]["variant"], "a",
                                                 store.pair_outcomes()[0].tstamp, store.pair_outcomes()[0].vote)]
    assert [row.voter for row in store.voter_stats()] == ["ann"]
    assert {s.variant for s in store.speed_by_variant()} == {reveal["a"]["variant"], reveal["b"]["variant"]}


def test_a_judge_never_judges_a_pair_twice_even_from_another_process(store: Store, settings: Settings) -> None:
    ids = fill(store, "s", [("p1", [])], variants=("x", "y"))
    flow = JudgeFlow(store, rng=random.Random(2))
    view = flow.next_pair("ann", "s")
    flow.vote("ann", view["token"], "b")
    with open_store(settings.db_path) as other:  # another server on the same file
        assert JudgeFlow(other).next_pair("ann", "s")["token"] is None
        assert JudgeFlow(other).next_pair("bob", "s")["token"] is not None
        with pytest.raises(VoteRejected, match="judged this pair already"):
            record_judgment(other, ids["p1", "y"], ids["p1", "x"], "tie", "ann")
    assert len(store.pair_outcomes()) == 1


def test_skipping_stores_nothing_and_the_skipped_pair_does_not_come_straight_back(store: Store) -> None:
    fill(store, "s", [("p1", []), ("p2", [])], variants=("x", "y"))
    flow = JudgeFlow(store, rng=random.Random(4))
    first = flow.next_pair("ann", "s")
    second = flow.skip("ann", first["token"])
    assert second["prompt"] != first["prompt"]
    third = flow.skip("ann", second["token"])  # every pair skipped: they come back
    assert third["token"] is not None and store.pair_outcomes() == []
    with pytest.raises(UsageError, match="no longer open"):
        flow.skip("ann", first["token"])


def vote(a: str, b: str, outcome: str, labels: tuple[str, ...] = (), judge: str = "j", n: int = 0,
         answers: tuple[int, int] = (0, 1)) -> SetVote:
    return SetVote(str(n), judge, a, b, outcome, labels, float(n), *answers)


def test_win_rates_per_tag_count_ties_half_with_wilson_intervals() -> None:
    votes = [vote("x", "y", "a", ("code",), n=1), vote("y", "x", "b", ("code",), n=2),
             vote("x", "y", "tie", ("code",), n=3), vote("x", "y", "b", ("receipts",), n=4)]
    rows = {(row.tag, row.variant): row for row in win_rates(votes)}
    code_x = rows["code", "x"]
    assert (code_x.judged, code_x.wins, code_x.losses, code_x.ties, code_x.score) == (3, 2, 0, 1, 2.5 / 3)
    assert rows["receipts", "x"].score == 0 and rows["receipts", "y"].score == 1
    assert rows[ALL, "x"].judged == 4 and rows[ALL, "x"].score == 2.5 / 4
    assert list(rows)[:2] == [(ALL, "x"), (ALL, "y")]  # every prompt first, then the tags
    # Wilson 95 % for 3 of 4, by hand: centre (0.75 + z²/8) / (1 + z²/4), half-width z/(1 + z²/4) *
    # sqrt(0.75 * 0.25 / 4 + z²/64) with z = 1.96: 0.3006 .. 0.9544
    low, high = wilson(0.75, 4)
    assert (round(low, 4), round(high, 4)) == (0.3006, 0.9544)
    assert wilson(1.0, 1)[0] > 0.2 and wilson(0.0, 0) == (0.0, 1.0)


def test_ratings_of_a_set_and_of_one_tag(store: Store) -> None:
    ids = fill(store, "s", [("c1", ["code"]), ("c2", ["code"]), ("r1", ["receipts"])], variants=("x", "y"))
    for pid, winner in (("c1", "x"), ("c2", "x"), ("r1", "y")):
        record_judgment(store, ids[pid, "x"], ids[pid, "y"], "a" if winner == "x" else "b", "ann")
    record_judgment(store, ids["r1", "y"], ids["r1", "x"], "a", "bob")
    votes = set_votes(store, "s")
    assert [(v.variant_a, v.variant_b, v.outcome, v.labels) for v in votes] == [
        ("x", "y", "a", ("code",)), ("x", "y", "a", ("code",)), ("x", "y", "b", ("receipts",)),
        ("y", "x", "a", ("receipts",))]
    code = set_leaderboard(votes, tag="code", rounds=20)
    assert [row.variant for row in code.rows] == ["x", "y"] and code.votes == 2
    receipts = set_leaderboard(votes, tag="receipts", rounds=20)
    assert [row.variant for row in receipts.rows] == ["y", "x"] and receipts.votes == 2
    assert set_votes(store, "s", judge="bob")[0].judge == "bob"
    # every set verdict is a blind vote like a battle's: the general leaderboard counts them
    assert len(store.pair_outcomes()) == 4


def test_percent_agreement_and_krippendorffs_alpha_match_a_hand_computed_case() -> None:
    # three pairs, two judges: agree, disagree, agree. Coincidences: first-first 2, second-second 2,
    # first-second 1 each way; n = 6, n_first = n_second = 3. D_o = 2/6; D_e = 2 * 3 * 3 / (6 * 5) = 0.6;
    # alpha = 1 - (1/3) / 0.6 = 4/9.
    verdicts = [Verdict((1, 2), "ann", "first"), Verdict((1, 2), "bob", "first"),
                Verdict((3, 4), "ann", "first"), Verdict((3, 4), "bob", "second"),
                Verdict((5, 6), "ann", "second"), Verdict((5, 6), "bob", "second"),
                Verdict((7, 8), "ann", "tie")]  # judged once: not counted
    agreed = agreement(verdicts)
    assert agreed.alpha == pytest.approx(4 / 9)
    assert (agreed.pairs, agreed.verdicts, agreed.judges) == (3, 6, 2)
    assert [p.agreement for p in agreed.per_pair] == [1.0, 0.0, 1.0]
    assert agreed.mean_agreement == pytest.approx(2 / 3)
    # three judges on one pair, two agree: 1 agreeing pair of judges out of 3
    assert percent_agreement(["tie", "tie", "first"]) == pytest.approx(1 / 3)
    assert agreement([Verdict((1, 2), "a", "tie"), Verdict((1, 2), "b", "tie")]).alpha is None  # nothing differs
    assert agreement([]).pairs == 0


def test_verdicts_are_compared_in_the_pairs_own_order_whatever_side_each_judge_saw() -> None:
    assert oriented(4, 9, "a") == ((4, 9), "first") and oriented(9, 4, "b") == ((4, 9), "first")
    assert oriented(9, 4, "a") == ((4, 9), "second") and oriented(9, 4, "both_bad") == ((4, 9), "both_bad")
    # ann saw 1 then 2 and picked A; bob saw 2 then 1 and picked B: both picked answer 1
    agreed = set_agreement([vote("x", "y", "a", judge="ann", answers=(1, 2)),
                            vote("y", "x", "b", judge="bob", n=1, answers=(2, 1))])
    assert agreed.per_pair[0].agreement == 1.0


def test_leaderboard_set_by_tag_and_agreement_on_the_command_line(
    store: Store, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = fill(store, "team", [("c1", ["code"]), ("r1", ["receipts"])], variants=("x", "y"))
    for judge in ("ann", "bob"):
        for pid in ("c1", "r1"):
            record_judgment(store, ids[pid, "x"], ids[pid, "y"], "a" if pid == "c1" or judge == "ann" else "b",
                            judge)
    store.close()
    assert main(["leaderboard", "--set", "team", "--by-tag", "--agreement", "--rounds", "10"], settings) == 0
    out = capsys.readouterr().out
    assert "Leaderboard from set team" in out and "code" in out and "receipts" in out
    assert "Krippendorff's alpha (nominal)" in out and "over 2 pair(s)" in out and "4 verdicts by 2 judges" in out
    # each pair judged by both, least agreed first: the judges split on r1 and agree on c1
    assert ("  prompt r1: x vs y: 0% agreement among 2 judges\n  prompt c1: x vs y: 100% agreement among 2 judges"
            in out)
    assert main(["leaderboard", "--set", "team", "--tag", "code", "--json", "--rounds", "10", "--by-tag",
                 "--agreement"], settings) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["set"] == "team" and document["votes"] == 2 and document["rows"][0]["variant"] == "x"
    assert document["agreement"]["pairs"] == 1 and document["agreement"]["mean_agreement"] == 1.0
    assert document["agreement"]["per_pair"][0]["pair"] == "prompt c1: x vs y"
    assert {row["tag"] for row in document["by_tag"]} == {ALL, "code"}
    assert main(["leaderboard", "--set", "team", "--tag", "contracts"], settings) == 2
    assert "no judged prompt of set team is tagged 'contracts'" in capsys.readouterr().err
    assert main(["leaderboard", "--set", "nope"], settings) == 2
    assert "no prompt set 'nope'" in capsys.readouterr().err and main(["leaderboard", "--by-tag"], settings) == 2


def test_standings_show_where_each_variant_wins(store: Store) -> None:
    ids = fill(store, "s", [("c1", ["code"]), ("r1", ["receipts"])], variants=("x", "y"))
    record_judgment(store, ids["c1", "x"], ids["c1", "y"], "a", "ann")
    record_judgment(store, ids["r1", "x"], ids["r1", "y"], "b", "ann")
    standings = JudgeFlow(store).standings("s", rounds=10)
    assert standings["tags"] == ["code", "receipts"]
    by_tag = {(row.tag, row.variant): row.score for row in standings["win_rates"]}
    assert by_tag["code", "x"] == 1.0 and by_tag["receipts", "x"] == 0.0
    assert "| code | x | 1 | 100% |" in standings["markdown"]
    assert "no pair has been judged by two judges yet" in standings["markdown"]


def test_media_of_a_pair_is_written_as_files_for_the_page(store: Store, tmp_path: Path) -> None:
    from arena.requests import build_request
    from tests.support.media import write_png

    image = write_png(tmp_path / "r.png")
    request = build_request("What is the total?", images=[image])
    add_prompts(store, "m", "m.jsonl", [SetPrompt("p", 1, request)])
    for variant in ("x", "y"):
        record_answer(store, "m", "p", variant, variant, 0, 1, Result(variant, text=f"{variant} answer"))
    flow = JudgeFlow(store)
    view = flow.next_pair("ann", "m")
    images, audio = flow.media_files(view, tmp_path / "shown")
    assert audio == [] and Path(images[0]).read_bytes() == image.read_bytes()
    assert len(read_answers(store, "m")) == 2

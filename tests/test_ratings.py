"""The rating mathematics (arena.ratings): Bradley-Terry, bootstrap, Rank (UB), online Elo, tables.

The Bradley-Terry fit is checked against an independent reference written here: scipy's L-BFGS
on the per-battle (not aggregated) log-likelihood, ties as half a win and half a loss, which is
the formulation of FastChat's compute_bt / compute_mle_elo.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest

from arena.errors import UsageError
from arena.ratings import (
    OUTCOMES,
    Battles,
    PairOutcome,
    aggregate,
    battle_count_matrix,
    bootstrap,
    compute_leaderboard,
    connected_groups,
    fit_bradley_terry,
    online_elo,
    rank_by_upper_bound,
    score_interval,
    vote_count,
    vote_patterns,
    votes_per_variant,
    win_rate_matrix,
)
from tests.support.bt_reference import scipy_reference_elo

P = PairOutcome


def synthetic(true_elo: Sequence[float] | np.ndarray, n: int, seed: int, tie_rate: float = 0.1) -> Battles:
    """Battles among len(true_elo) variants 'v0'..: BT outcomes, then some replaced by ties."""
    rng = np.random.default_rng(seed)
    m = len(true_elo)
    elo = np.asarray(true_elo, dtype=float)
    a = rng.integers(0, m, n)
    b = (a + rng.integers(1, m, n)) % m
    p_a = 1.0 / (1.0 + 10.0 ** ((elo[b] - elo[a]) / 400.0))
    outcome = np.where(rng.random(n) < p_a, 0, 1)
    outcome = np.where(rng.random(n) < tie_rate, rng.integers(2, 4, n), outcome)
    return Battles.from_arrays([f"v{i}" for i in range(m)], a, b, outcome, np.arange(n, dtype=float))


def ratings_of(board_rows: Sequence[object]) -> dict[str, float]:
    return {row.variant: row.rating for row in board_rows}  # type: ignore[attr-defined]


# --- Bradley-Terry --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("true_elo", "n", "seed"),
    [
        ([0, 50, -30, 120, -90, 10], 3000, 1),
        ([0, 300, -300, 150, -150, 60, -60, 0], 40_000, 2),
        ([0, 40, -40, 80], 60, 3),  # few battles
        ([0, 700, -500, 300, -200, 900, -800, 100, 0, 450], 2000, 4),  # wide spread, lopsided pairs
        ([0, 800, -400], 40, 5),
    ],
)
def test_ratings_match_scipy_reference_within_0_01_elo(true_elo: list[float], n: int, seed: int) -> None:
    battles = synthetic(true_elo, n, seed)
    ours = fit_bradley_terry(aggregate(battles))
    reference = scipy_reference_elo(battles)
    assert np.abs(ours - reference).max() < 0.01
    board = compute_leaderboard(battles, rounds=10, preliminary_below=0)  # the mean of all is the reference
    listed = ratings_of(board.rows)
    assert max(abs(listed[name] - reference[i]) for i, name in enumerate(battles.models)) < 0.01


def test_pinned_anchor_puts_the_variant_there_and_keeps_differences() -> None:
    battles = synthetic([0, 100, -100, 50], 4000, 6)
    reference = scipy_reference_elo(battles)
    board = compute_leaderboard(battles, anchor=("v2", 1200.0), rounds=200)
    rows = {row.variant: row for row in board.rows}
    assert rows["v2"].rating == pytest.approx(1200.0, abs=1e-9)
    assert (rows["v2"].ci_low, rows["v2"].ci_high) == pytest.approx((1200.0, 1200.0), abs=1e-9)
    for i, name in enumerate(battles.models):
        assert rows[name].rating - 1200.0 == pytest.approx(reference[i] - reference[2], abs=0.01)
    assert board.anchor_variant == "v2" and board.anchor_rating == 1200.0
    assert "v2" in board.anchor and "1200" in board.anchor


def test_default_anchor_puts_the_mean_of_listed_variants_at_1000() -> None:
    board = compute_leaderboard(synthetic([0, 200, -100, 30, 80], 3000, 7), rounds=50)
    assert np.mean([row.rating for row in board.rows]) == pytest.approx(1000.0, abs=1e-9)
    assert board.anchor_variant is None and "mean" in board.anchor


def test_recovers_known_ratings_from_many_battles() -> None:
    true_elo = np.array([0.0, 120.0, -80.0, 40.0, -150.0, 70.0])
    fitted = fit_bradley_terry(aggregate(synthetic(true_elo, 300_000, 8, tie_rate=0.0)))
    assert np.abs((fitted - 1000.0) - (true_elo - true_elo.mean())).max() < 5.0
    assert list(np.argsort(fitted)) == list(np.argsort(true_elo))


def test_swapping_sides_gives_same_ratings() -> None:
    battles = synthetic([0, 90, -60, 20], 5000, 9)
    swap_outcome = np.array([1, 0, 2, 3])[battles.outcome]
    swapped = Battles(battles.models, battles.b, battles.a, swap_outcome, battles.tstamp)
    assert not np.array_equal(aggregate(battles), aggregate(swapped))
    np.testing.assert_allclose(fit_bradley_terry(aggregate(swapped)), fit_bradley_terry(aggregate(battles)), atol=1e-9)
    assert ratings_of(compute_leaderboard(swapped, rounds=5).rows) == pytest.approx(
        ratings_of(compute_leaderboard(battles, rounds=5).rows), abs=1e-9
    )


def test_dominant_variant_gets_finite_top_rating() -> None:
    others = [
        P("x", "y", "a"),
        P("x", "y", "b"),
        P("x", "y", "a"),
        P("y", "z", "a"),
        P("x", "z", "a"),
        P("z", "y", "tie"),
        P("z", "x", "a"),
    ] * 5
    sweep = [P("top", rival, "a") for rival in ("x", "y", "z")] * 10 + [P("x", "top", "b")] * 10
    board = compute_leaderboard(Battles.from_pairs(others + sweep), rounds=300)
    rows = {row.variant: row for row in board.rows}
    assert all(math.isfinite(v) for row in board.rows for v in (row.rating, row.ci_low, row.ci_high))
    assert board.rows[0].variant == "top" and board.rows[0].rank == 1
    assert rows["top"].rating > max(rows[v].rating for v in "xyz") + 1000
    assert all(rows[v].rank > 1 for v in "xyz")
    # a clean sweep says nothing about how the others compare: their gaps are as without "top"
    alone = ratings_of(compute_leaderboard(Battles.from_pairs(others), rounds=0).rows)
    for first, second in [("x", "y"), ("y", "z")]:
        assert rows[first].rating - rows[second].rating == pytest.approx(alone[first] - alone[second], abs=0.01)


def test_variant_that_always_loses_gets_finite_bottom_rating() -> None:
    pairs = [P("x", "y", "a"), P("y", "x", "a"), P("x", "y", "tie")] * 4 + [P("x", "floor", "a")] * 6
    pairs += [P("floor", "y", "b")] * 6
    board = compute_leaderboard(Battles.from_pairs(pairs), rounds=200, preliminary_below=0)
    assert board.rows[-1].variant == "floor"
    assert all(math.isfinite(row.ci_low) for row in board.rows)
    assert board.rows[-1].rank > max(row.rank for row in board.rows[:-1])


def test_ties_only_gives_equal_ratings() -> None:
    pairs = [P("x", "y", "tie"), P("y", "z", "both_bad"), P("z", "x", "tie"), P("x", "y", "both_bad")] * 3
    board = compute_leaderboard(Battles.from_pairs(pairs), rounds=100, preliminary_below=0)
    assert [row.rating for row in board.rows] == pytest.approx([1000.0] * 3, abs=1e-9)
    bounds = [bound for row in board.rows for bound in (row.ci_low, row.ci_high)]
    assert bounds == pytest.approx([1000.0] * 6, abs=1e-9)
    assert [row.rank for row in board.rows] == [1, 1, 1]


def test_both_bad_counts_as_tie_in_ratings_but_is_tallied_apart() -> None:
    base = [P("x", "y", "a"), P("y", "z", "a"), P("x", "z", "b")] * 3
    with_ties = compute_leaderboard(Battles.from_pairs(base + [P("x", "y", "tie")] * 4), rounds=0)
    with_both_bad = compute_leaderboard(Battles.from_pairs(base + [P("x", "y", "both_bad")] * 4), rounds=0)
    assert ratings_of(with_ties.rows) == pytest.approx(ratings_of(with_both_bad.rows), abs=1e-12)
    x = next(row for row in with_both_bad.rows if row.variant == "x")
    assert (x.ties, x.both_bad) == (0, 4)
    x = next(row for row in with_ties.rows if row.variant == "x")
    assert (x.ties, x.both_bad) == (4, 0)


def test_disconnected_graph_gives_finite_ratings() -> None:
    left = [P("a1", "a2", "a")] * 10 + [P("a1", "a2", "b")] * 5
    right = [P("b1", "b2", "a")] * 3 + [P("b1", "b2", "b")] * 9 + [P("b2", "b3", "tie")] * 4
    battles = Battles.from_pairs(left + right)
    board = compute_leaderboard(battles, rounds=200)
    rows = {row.variant: row for row in board.rows}
    assert all(math.isfinite(v) for row in board.rows for v in (row.rating, row.ci_low, row.ci_high))
    assert board.groups == (("b1", "b2", "b3"), ("a1", "a2")) == connected_groups(battles)
    # each group is centred on the same mean; within a group the gaps are the group's own fit
    assert (rows["a1"].rating + rows["a2"].rating) / 2 == pytest.approx(1000.0, abs=1e-6)
    assert np.mean([rows[v].rating for v in ("b1", "b2", "b3")]) == pytest.approx(1000.0, abs=1e-6)
    alone = ratings_of(compute_leaderboard(Battles.from_pairs(right), rounds=0).rows)
    assert rows["b1"].rating - rows["b2"].rating == pytest.approx(alone["b1"] - alone["b2"], abs=1e-3)
    assert rows["a1"].rating - rows["a2"].rating == pytest.approx(400 * math.log10(2), abs=1e-3)


def test_variant_without_battles_is_hidden_not_rated() -> None:
    battles = Battles.from_pairs([P("x", "y", "a"), P("y", "x", "tie")], models=["lonely"])
    board = compute_leaderboard(battles, rounds=20)
    assert [row.variant for row in board.rows] == ["x", "y"]
    assert [(h.variant, h.votes, h.reason) for h in board.hidden] == [("lonely", 0, "no battles")]
    assert online_elo(battles)["lonely"] == 1000.0
    assert "lonely" not in {name for group in board.groups for name in group}


def test_empty_battles_give_an_empty_leaderboard() -> None:
    battles = Battles.from_pairs([])
    board = compute_leaderboard(battles)
    assert (board.rows, board.hidden, board.groups, board.battles) == ((), (), (), 0)
    assert board.win_rate.shape == board.battle_count.shape == (0, 0)
    assert fit_bradley_terry(aggregate(battles)).shape == (0,)
    assert bootstrap(aggregate(battles), rounds=7).shape == (7, 0)
    assert online_elo(battles) == {}


def test_anchor_on_a_variant_without_battles_is_a_usage_error() -> None:
    battles = Battles.from_pairs([P("x", "y", "a")], models=["lonely"])
    with pytest.raises(UsageError, match=r"'lonely'.*no battles.*x, y"):
        compute_leaderboard(battles, anchor=("lonely", 1000.0))
    with pytest.raises(UsageError, match="'ghost'"):
        compute_leaderboard(battles, anchor=("ghost", 1000.0))


# --- bootstrap and Rank (UB) ----------------------------------------------------------------------


def test_bootstrap_is_reproducible_with_seed() -> None:
    counts = aggregate(synthetic([0, 50, -50, 20], 2000, 10))
    first = bootstrap(counts, rounds=200, seed=3)
    assert first.shape == (200, 4)
    np.testing.assert_array_equal(first, bootstrap(counts, rounds=200, seed=3))
    assert not np.array_equal(first, bootstrap(counts, rounds=200, seed=4))
    battles = synthetic([0, 50, -50, 20], 2000, 10)
    one = compute_leaderboard(battles, rounds=100, seed=5)
    again = compute_leaderboard(battles, rounds=100, seed=5)
    assert one.rows == again.rows


def test_bootstrap_spread_matches_the_standard_error() -> None:
    # two variants, n battles, win share p: the MLE gap has standard error sqrt(1 / (n p (1 - p)))
    n, wins = 2000, 1300
    counts = np.zeros((2, 2, 3))
    counts[0, 1] = [wins, n - wins, 0]
    spread = np.std(np.diff(bootstrap(counts, rounds=1000, seed=0), axis=1))
    p = wins / n
    expected = 400 / math.log(10) / math.sqrt(n * p * (1 - p))
    assert spread == pytest.approx(expected, rel=0.1)


def test_intervals_contain_the_rating_and_narrow_with_more_battles() -> None:
    few = compute_leaderboard(synthetic([0, 80, -80], 300, 11), rounds=300)
    many = compute_leaderboard(synthetic([0, 80, -80], 30_000, 11), rounds=300)
    for board in (few, many):
        assert all(row.ci_low <= row.rating <= row.ci_high for row in board.rows)
    width = {board: np.mean([row.ci_high - row.ci_low for row in board.rows]) for board in (few, many)}
    assert width[many] < width[few] / 5


def test_rank_ub_shares_rank_for_overlapping_intervals() -> None:
    low = np.array([10.0, 15.0, 30.0, 0.0])
    high = np.array([20.0, 25.0, 40.0, 5.0])
    assert rank_by_upper_bound(low, high).tolist() == [2, 2, 1, 4]
    twins = [P("x", "y", outcome) for outcome in ("a", "b") * 50]
    clear = [P(best, worst, "a") for best, worst in [("x", "z"), ("y", "z")] * 40 + [("z", "x")] * 2]
    board = compute_leaderboard(Battles.from_pairs(twins + clear), rounds=300)
    assert {row.variant: row.rank for row in board.rows} == {"x": 1, "y": 1, "z": 3}


def test_rounds_zero_collapses_intervals_onto_ratings() -> None:
    board = compute_leaderboard(synthetic([0, 100, -100], 1000, 12), rounds=0)
    assert all(row.ci_low == row.rating == row.ci_high for row in board.rows)
    assert [row.rank for row in board.rows] == [1, 2, 3]


# --- online Elo -----------------------------------------------------------------------------------


def test_online_elo_moves_two_points_for_a_first_win_at_k4() -> None:
    assert online_elo(Battles.from_pairs([P("x", "y", "a")])) == {"x": 1002.0, "y": 998.0}
    assert online_elo(Battles.from_pairs([P("x", "y", "both_bad")])) == {"x": 1000.0, "y": 1000.0}
    assert online_elo(Battles.from_pairs([P("x", "y", "b")]), k=32) == {"x": 984.0, "y": 1016.0}


def test_online_elo_follows_time_order_not_input_order() -> None:
    in_time = [P("x", "y", "a", 1.0), P("x", "y", "a", 2.0), P("y", "z", "b", 3.0), P("x", "z", "b", 4.0)]
    shuffled = [in_time[i] for i in (3, 1, 0, 2)]
    expected = online_elo(Battles.from_pairs(in_time))
    assert online_elo(Battles.from_pairs(shuffled)) == pytest.approx(expected, abs=1e-12)
    untimed = [P(p.model_a, p.model_b, p.outcome) for p in shuffled]
    assert online_elo(Battles.from_pairs(untimed)) != pytest.approx(expected, abs=1e-6)


# --- tables ---------------------------------------------------------------------------------------


def test_rows_count_votes_wins_losses_and_both_tie_kinds_from_either_side() -> None:
    pairs = [P("x", "y", "a"), P("y", "x", "a"), P("y", "x", "b"), P("x", "z", "tie"), P("z", "x", "both_bad")]
    board = compute_leaderboard(Battles.from_pairs(pairs), rounds=0, preliminary_below=0)
    x = next(row for row in board.rows if row.variant == "x")
    assert (x.votes, x.wins, x.losses, x.ties, x.both_bad) == (5, 2, 1, 1, 1)
    assert not x.preliminary


def test_win_rate_matrix_leaves_out_ties_and_counts_both_sides() -> None:
    pairs = [P("x", "y", "a"), P("y", "x", "b"), P("y", "x", "a"), P("x", "y", "tie"), P("x", "z", "tie")]
    battles = Battles.from_pairs(pairs)
    rates = win_rate_matrix(battles)
    assert rates[0, 1] == pytest.approx(2 / 3) and rates[1, 0] == pytest.approx(1 / 3)
    assert math.isnan(rates[0, 2]) and math.isnan(rates[0, 0])
    counts = battle_count_matrix(battles)
    assert counts.tolist() == [[0, 4, 1], [4, 0, 0], [1, 0, 0]]


def test_leaderboard_matrices_follow_row_order() -> None:
    pairs = [P("a", "b", "b")] * 3 + [P("b", "c", "a")] * 3 + [P("a", "c", "a")] * 2
    board = compute_leaderboard(Battles.from_pairs(pairs), rounds=0)
    assert board.models == tuple(row.variant for row in board.rows) == ("b", "a", "c")
    assert board.battle_count.tolist() == [[0, 3, 3], [3, 0, 2], [3, 2, 0]]
    assert board.win_rate[0, 1] == 1.0


def test_min_votes_hides_variant_and_says_why() -> None:
    pairs = [P("x", "y", "a")] * 6 + [P("x", "rare", "b")] * 2
    board = compute_leaderboard(Battles.from_pairs(pairs), rounds=0, min_votes=5)
    assert [row.variant for row in board.rows] == ["x", "y"]
    assert [(h.variant, h.votes) for h in board.hidden] == [("rare", 2)]
    assert "minimum of 5" in board.hidden[0].reason
    assert np.mean([row.rating for row in board.rows]) == pytest.approx(1000.0)


def test_preliminary_flag_marks_variants_below_the_threshold() -> None:
    pairs = [P("x", "y", "a")] * 6 + [P("x", "new", "b")] * 2
    board = compute_leaderboard(Battles.from_pairs(pairs), rounds=0, preliminary_below=5)
    assert {row.variant: row.preliminary for row in board.rows} == {"x": False, "y": False, "new": True}


# --- the battles table ----------------------------------------------------------------------------


def test_from_pairs_and_from_arrays_build_the_same_table() -> None:
    pairs = [P("b", "a", "a", 2.0), P("c", "a", "both_bad", 1.0), P("a", "b", "tie", 3.0)]
    from_pairs = Battles.from_pairs(pairs)
    codes = [OUTCOMES.index(p.outcome) for p in pairs]
    from_arrays = Battles.from_arrays(
        ["c", "b", "a"], np.array([1, 0, 2]), np.array([2, 2, 1]), codes, np.array([2.0, 1.0, 3.0])
    )
    assert from_pairs.models == from_arrays.models == ("a", "b", "c")
    assert from_arrays.pairs() == from_pairs.pairs() == pairs
    assert len(from_arrays) == 3


def test_battles_table_refuses_bad_rows_and_is_read_only() -> None:
    with pytest.raises(ValueError, match="itself"):
        Battles(("x", "y"), np.array([0]), np.array([0]), np.array([0]))
    with pytest.raises(ValueError, match="outcome codes"):
        Battles(("x", "y"), np.array([0]), np.array([1]), np.array([4]))
    with pytest.raises(ValueError, match="sorted unique"):
        Battles(("y", "x"), np.array([0]), np.array([1]), np.array([0]))
    with pytest.raises(ValueError, match="unknown outcome"):
        P("x", "y", "draw")
    column = np.array([0])
    table = Battles(("x", "y"), column, np.array([1]), np.array([0]))
    column[0] = 1  # the caller's array stays theirs
    assert table.a[0] == 0
    with pytest.raises(ValueError, match="read-only"):
        table.a[0] = 1


# --- votes as units ------------------------------------------------------------------------------------


def rankings(n_forward: int, n_backward: int) -> Battles:
    """Votes ranking x > y > z, and z > y > x: three pairs each, carrying the vote's id."""
    pairs = []
    for n in range(n_forward + n_backward):
        first, second, third = ("x", "y", "z") if n < n_forward else ("z", "y", "x")
        order = [(first, second), (first, third), (second, third)]
        pairs += [P(winner, loser, "a", vote=str(n)) for winner, loser in order]
    return Battles.from_pairs(pairs)


def test_bootstrap_resamples_a_rankings_pairs_together() -> None:
    battles = rankings(7, 5)
    counts = aggregate(battles)
    x, y, z = (battles.models.index(name) for name in "xyz")
    by_vote = bootstrap(counts, 200, seed=3, patterns=vote_patterns(battles))
    # every round holds whole votes, so each pair has the same record and y sits midway
    np.testing.assert_allclose(by_vote[:, x] - by_vote[:, y], by_vote[:, y] - by_vote[:, z], atol=1e-6)
    by_pair = bootstrap(counts, 200, seed=3)
    assert np.abs((by_pair[:, x] - by_pair[:, y]) - (by_pair[:, y] - by_pair[:, z])).max() > 10
    # and the spread is that of 12 votes, not of 36 independent pairs
    assert np.std(by_vote[:, x] - by_vote[:, z]) > 1.3 * np.std(by_pair[:, x] - by_pair[:, z])


def test_two_sided_votes_with_ids_draw_exactly_as_battles_without() -> None:
    plain = synthetic([0, 80, -40], 500, 12)
    named = Battles(plain.models, plain.a, plain.b, plain.outcome, plain.tstamp, np.arange(len(plain)))
    patterns = vote_patterns(named)
    assert patterns.total == len(plain) and len(patterns.votes) == np.count_nonzero(aggregate(plain))
    np.testing.assert_array_equal(
        bootstrap(aggregate(plain), 50, seed=1), bootstrap(aggregate(named), 50, seed=1, patterns=patterns)
    )
    assert compute_leaderboard(named, rounds=50).rows == compute_leaderboard(plain, rounds=50).rows


def test_votes_count_votes_and_tallies_count_pairs() -> None:
    four = [P(a, b, "a", vote="r") for a, b in [("w", "x"), ("w", "y"), ("w", "z"), ("x", "y"), ("x", "z"), ("y", "z")]]
    battles = Battles.from_pairs([*four, P("w", "x", "b"), P("w", "x", "tie")])
    assert (vote_count(battles), len(battles)) == (3, 8)
    per_variant = dict(zip(battles.models, votes_per_variant(battles).tolist(), strict=True))
    assert per_variant == {"w": 3, "x": 3, "y": 1, "z": 1}
    board = compute_leaderboard(battles, rounds=10)
    rows = {row.variant: row for row in board.rows}
    assert (board.votes, board.battles) == (3, 8)
    assert (rows["w"].votes, rows["w"].wins, rows["w"].losses, rows["w"].ties) == (3, 3, 1, 1)
    assert (rows["z"].votes, rows["z"].losses) == (1, 3)


def test_vote_ids_survive_the_table_round_trip() -> None:
    pairs = [P("x", "y", "a", 1.0, "v1"), P("x", "z", "a", 1.0, "v1"), P("y", "z", "b", 2.0)]
    battles = Battles.from_pairs(pairs)
    assert battles.vote is not None and battles.vote.tolist() == [0, 0, -1]
    assert [p.vote for p in battles.pairs()] == ["0", "0", None]
    assert Battles.from_pairs(battles.pairs()).vote.tolist() == [0, 0, -1]  # type: ignore[union-attr]
    assert Battles.from_pairs([P("x", "y", "a")]).vote is None


# --- preliminary rows -------------------------------------------------------------------------------------


def test_one_vote_gives_a_non_zero_finite_interval_and_a_shared_rank() -> None:
    board = compute_leaderboard(Battles.from_pairs([P("x", "y", "a", vote="1")]), rounds=200)
    for row in board.rows:
        assert row.preliminary and row.rank == 1 and row.votes == 1
        assert math.isfinite(row.ci_low) and math.isfinite(row.ci_high)
        assert row.ci_high - row.ci_low > 200  # one vote says little
        assert row.ci_low <= row.rating <= row.ci_high
    assert board.preliminary == 2


def test_preliminary_rows_share_the_rank_after_the_settled_ones_and_come_last() -> None:
    settled = synthetic([0, 200, -200], 3000, 13)
    newcomer = [P("new", "v1", "a")] * 3  # three wins over the best: rated high, but on three votes
    board = compute_leaderboard(Battles.from_pairs([*settled.pairs(), *newcomer]), rounds=100)
    assert [row.variant for row in board.rows][-1] == "new"
    new = board.rows[-1]
    assert new.preliminary and new.rank == 4 and new.rating > max(row.rating for row in board.rows[:-1])
    assert sorted(row.rank for row in board.rows[:-1]) == [1, 2, 3]
    assert new.ci_low < board.rows[0].rating  # three votes cannot say it is better than v1 for sure
    assert board.anchor == "mean of the 3 listed variants that are not preliminary = 1000"
    assert np.mean([row.rating for row in board.rows[:-1]]) == pytest.approx(1000.0)


def test_score_interval_is_a_wilson_interval_turned_into_a_performance_rating() -> None:
    counts = aggregate(Battles.from_pairs([P("x", "y", "a")] * 6 + [P("x", "y", "b")] * 4))
    rating = np.array([1000.0, 1000.0])
    low, high = score_interval(counts, rating, np.array([10, 10]))
    # score 0.6 over 10 votes: Wilson 95 % is 0.3127 .. 0.8318
    expected = [1000 + 400 * math.log10(p / (1 - p)) for p in (0.31267, 0.83182)]
    assert (low[0], high[0]) == pytest.approx(expected, abs=0.1)
    assert (low[1], high[1]) == pytest.approx([2000 - expected[1], 2000 - expected[0]], abs=0.1)
    low, high = score_interval(aggregate(Battles.from_pairs([P("x", "y", "a")])), rating, np.array([1, 1]))
    clipped = 400 * math.log10(0.99 / 0.01)  # a sweep's Wilson bound is a score of 1: clipped at 99 %
    assert (high[0], low[1]) == pytest.approx((1000 + clipped, 1000 - clipped))
    assert low[0] < 1000 < high[1]


def test_a_pinned_preliminary_anchor_keeps_its_zero_width() -> None:
    board = compute_leaderboard(Battles.from_pairs([P("x", "y", "a")] * 3), anchor=("y", 1000.0), rounds=50)
    rows = {row.variant: row for row in board.rows}
    assert rows["y"].ci_low == rows["y"].ci_high == 1000.0
    assert rows["x"].ci_high - rows["x"].ci_low > 100

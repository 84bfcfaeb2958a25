"""The arena leaderboard's Bradley–Terry fit (``bot.services.ratings``): against cases
computed by hand, the likelihood equations, the intervals, the regularisation, and the
Redis field format."""

from __future__ import annotations

import itertools
import math
import random
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.services.ratings import (
    ELO_PER_NAT,
    Z95,
    Outcome,
    PairCounts,
    Rating,
    fit,
    parse_pairs,
    vote_field,
)
from tests.hypothesis_profiles import examples

P = PairCounts


def by_model(board: list[Rating]) -> dict[str, Rating]:
    return {r.model: r for r in board}


def strengths(board: list[Rating]) -> dict[str, float]:
    """Each model's strength back from its rating (relative to the geometric mean)."""
    return {r.model: 10 ** ((r.rating - 1000) / 400) for r in board}


def half_width(r: Rating) -> float:
    assert math.isclose(r.high - r.rating, r.rating - r.low, rel_tol=1e-12)
    return r.high - r.rating


def assert_likelihood_equations(pairs: dict[tuple[str, str], PairCounts], tol: float) -> None:
    """For each model: its wins (a tie half a win) = Σ_j n_ij · p_i / (p_i + p_j)."""
    p = strengths(fit(pairs, prior=0))
    for m in p:
        observed = expected = 0.0
        for (a, b), c in pairs.items():
            if m in (a, b):
                other = b if m == a else a
                observed += (c.wins if m == a else c.losses) + c.ties / 2
                expected += c.battles * p[m] / (p[m] + p[other])
        assert observed == pytest.approx(expected, abs=tol)


# -- hand-computed cases ---------------------------------------------------------------------


def test_three_models_whose_counts_match_strengths_4_2_1() -> None:
    # A beats B 2-1 (2/3 = 4/(4+2)), B beats C 2-1 (2/3 = 2/(2+1)), A beats C 4-1 (4/5):
    # the counts are what strengths 4:2:1 expect, so those satisfy the likelihood
    # equations, and the MLE is unique (every model beat and lost to another).
    # Geometric mean 2: A = 1000 + 400·log10 2, B = 1000, C = 1000 - 400·log10 2.
    pairs = {("A", "B"): P(2, 1), ("B", "C"): P(2, 1), ("A", "C"): P(4, 1)}
    board = fit(pairs, prior=0)
    assert [r.model for r in board] == ["A", "B", "C"]
    r = by_model(board)
    step = 400 * math.log10(2)
    assert r["A"].rating == pytest.approx(1000 + step, abs=1e-9)
    assert r["B"].rating == pytest.approx(1000, abs=1e-9)
    assert r["C"].rating == pytest.approx(1000 - step, abs=1e-9)
    assert [r["A"].battles, r["B"].battles, r["C"].battles] == [8, 6, 8]

    # The intervals, in another gauge than the module's: θ_C = 0, the information of
    # (θ_A, θ_B) is the 2×2 matrix of the n·p·(1-p) weights, inverted by hand.
    w_ab = Fraction(3) * Fraction(2, 3) * Fraction(1, 3)  # 2/3
    w_bc = Fraction(3) * Fraction(2, 3) * Fraction(1, 3)  # 2/3
    w_ac = Fraction(5) * Fraction(4, 5) * Fraction(1, 5)  # 4/5
    a11, a12, a22 = w_ab + w_ac, -w_ab, w_ab + w_bc
    det = a11 * a22 - a12 * a12
    cov = [[a22 / det, -a12 / det], [-a12 / det, a11 / det]]  # of (θ_A, θ_B) - θ_C
    # θ_i - mean θ as a combination of (θ_A - θ_C, θ_B - θ_C)
    combos = {
        "A": (Fraction(2, 3), Fraction(-1, 3)),
        "B": (Fraction(-1, 3), Fraction(2, 3)),
        "C": (Fraction(-1, 3), Fraction(-1, 3)),
    }
    for m, (x, y) in combos.items():
        variance = x * x * cov[0][0] + 2 * x * y * cov[0][1] + y * y * cov[1][1]
        expected = Z95 * ELO_PER_NAT * math.sqrt(variance)
        assert half_width(r[m]) == pytest.approx(expected, rel=1e-9)


def test_likelihood_equations_hold() -> None:
    # A beats B 2-1, B beats C 2-1, A beats C 2-1 (no closed form), then with ties
    assert_likelihood_equations(
        {("A", "B"): P(2, 1), ("B", "C"): P(2, 1), ("A", "C"): P(2, 1)}, 1e-6
    )
    assert_likelihood_equations(
        {
            ("A", "B"): P(7, 3, 4),
            ("B", "C"): P(1, 5, 2),
            ("A", "C"): P(0, 0, 3),
            ("C", "D"): P(2, 9),
        },
        1e-6,
    )


def test_likelihood_equations_hold_for_many_models_and_large_counts() -> None:
    rng = random.Random(7)
    models = [f"m{i}" for i in range(12)]
    pairs = {
        (a, b): P(rng.randint(1, 50_000), rng.randint(1, 50_000), rng.randint(0, 9_000))
        for i, a in enumerate(models)
        for b in models[i + 1 :]
        if rng.random() < 0.6
    }
    pairs[("m0", "m1")] = P(1, 1)  # keep the graph connected whatever the draw
    for a, b in itertools.pairwise(models):
        pairs.setdefault((a, b), P(3, 2, 1))
    assert_likelihood_equations(pairs, 1e-6 * max(c.battles for c in pairs.values()))


def test_two_models_are_400_log10_of_wins_over_losses_apart() -> None:
    for wins, losses in [(3, 1), (1, 3), (7, 5), (1, 1), (900, 100)]:
        r = by_model(fit({("a", "b"): P(wins, losses)}, prior=0))
        assert r["a"].rating - r["b"].rating == pytest.approx(400 * math.log10(wins / losses))
        # θ_a - θ_b has variance 1 / (n·p·(1-p)); each rating is half the gap from 1000
        n, p = wins + losses, wins / (wins + losses)
        expected = Z95 * ELO_PER_NAT * math.sqrt(1 / (n * p * (1 - p))) / 2
        assert half_width(r["a"]) == pytest.approx(expected)
        assert half_width(r["b"]) == pytest.approx(expected)


def test_the_prior_is_one_virtual_tie_against_the_average() -> None:
    # a beat b once. By symmetry θ_a = x = -θ_b, the average is 0, and a's penalised
    # likelihood equation is 1 + 1/2 = σ(2x) + σ(x) (its real battle and its virtual tie).
    def excess(x: float) -> float:
        return 1 / (1 + math.exp(-2 * x)) + 1 / (1 + math.exp(-x)) - 1.5

    lo, hi = 0.0, 10.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if excess(mid) < 0 else (lo, mid)
    r = by_model(fit({("a", "b"): P(1, 0)}))
    assert r["a"].rating == pytest.approx(1000 + ELO_PER_NAT * lo, abs=1e-6)
    assert r["b"].rating == pytest.approx(1000 - ELO_PER_NAT * lo, abs=1e-6)


def test_equal_records_get_equal_ratings() -> None:
    # A and B each beat C 3-1 and tied each other twice
    pairs = {("A", "C"): P(3, 1), ("B", "C"): P(3, 1), ("A", "B"): P(0, 0, 2)}
    for prior in (0.0, 1.0):
        r = by_model(fit(pairs, prior=prior))
        assert r["A"].rating == pytest.approx(r["B"].rating, abs=1e-9)
        assert r["A"].low == pytest.approx(r["B"].low, abs=1e-9)
        assert r["A"].rating > r["C"].rating


# -- the scale and the order -------------------------------------------------------------------


@pytest.mark.parametrize("prior", [0.0, 1.0, 3.0])
def test_the_ratings_average_1000(prior: float) -> None:
    pairs = {
        ("A", "B"): P(10, 2, 1),
        ("B", "C"): P(4, 4),
        ("C", "D"): P(1, 6, 2),
        ("A", "D"): P(2, 1),
    }
    board = fit(pairs, prior=prior)
    assert sum(r.rating for r in board) / len(board) == pytest.approx(1000, abs=1e-9)


def test_a_scripted_series_puts_the_dominant_model_first() -> None:
    # true strengths: champ 8, good 4, fair 2, weak 1; votes drawn from them
    rng = random.Random(3)
    true = {"champ": 8.0, "good": 4.0, "fair": 2.0, "weak": 1.0}
    counts: dict[tuple[str, str], list[int]] = {}
    names = sorted(true)
    for _ in range(4000):
        a, b = rng.sample(names, 2)
        a, b = min(a, b), max(a, b)
        slot = counts.setdefault((a, b), [0, 0, 0])
        u = rng.random()
        if u < 0.1:
            slot[2] += 1  # a tie now and then
        elif u < 0.1 + 0.9 * true[a] / (true[a] + true[b]):
            slot[0] += 1
        else:
            slot[1] += 1
    board = fit({k: P(*v) for k, v in counts.items()})
    assert [r.model for r in board] == ["champ", "good", "fair", "weak"]
    for r in board:
        assert r.low < r.rating < r.high
        assert not r.provisional
    # strengths doubling each step are 400·log10 2 ≈ 120 points apart; the ties, half a win
    # to each side whoever is stronger, pull the gaps in a little (to about 105)
    for better, worse in itertools.pairwise(board):
        assert 80 < better.rating - worse.rating < 150
    assert [r.rating for r in board] == sorted((r.rating for r in board), reverse=True)


# -- intervals -----------------------------------------------------------------------------------


def test_intervals_shrink_like_one_over_root_votes() -> None:
    base = {("A", "B"): P(6, 4, 2), ("B", "C"): P(5, 3, 1), ("A", "C"): P(7, 2, 1)}

    def scaled(factor: int) -> dict[tuple[str, str], PairCounts]:
        return {k: P(c.wins * factor, c.losses * factor, c.ties * factor) for k, c in base.items()}

    # the plain MLE: same ratings, the information ×10, the widths ÷√10 exactly
    small, big = by_model(fit(scaled(1), prior=0)), by_model(fit(scaled(10), prior=0))
    for m in small:
        assert big[m].rating == pytest.approx(small[m].rating, abs=1e-9)
        assert half_width(small[m]) / half_width(big[m]) == pytest.approx(math.sqrt(10))
    # with the default prior: narrower each time, by about √10 once the prior is negligible
    widths = [by_model(fit(scaled(f))) for f in (1, 10, 100, 1000)]
    for m in small:
        ws = [half_width(w[m]) for w in widths]
        assert ws == sorted(ws, reverse=True)
        assert ws[2] / ws[3] == pytest.approx(math.sqrt(10), rel=0.01)


def test_an_unconnected_model_has_a_wider_interval() -> None:
    # C only met A, a few times: its interval is the widest, by far. (A's and B's are wide
    # too: each rating is relative to the mean, which C's uncertain rating moves.)
    pairs = {("A", "B"): P(40, 35, 5), ("A", "C"): P(2, 1)}
    r = by_model(fit(pairs))
    assert half_width(r["C"]) > 1.5 * max(half_width(r["A"]), half_width(r["B"]))
    alone = by_model(fit({("A", "B"): P(40, 35, 5)}))
    assert half_width(alone["A"]) < half_width(r["A"])
    # anchored on A and B alone, C no longer moves their mean: back to about their own
    anchored = by_model(fit(pairs, anchor=["A", "B", "not rated"]))
    assert (anchored["A"].rating + anchored["B"].rating) / 2 == pytest.approx(1000)
    assert half_width(anchored["A"]) == pytest.approx(half_width(alone["A"]), rel=0.05)
    assert half_width(anchored["C"]) > half_width(r["C"])  # C's whole uncertainty is its own
    assert anchored["C"].rating - anchored["A"].rating == pytest.approx(
        r["C"].rating - r["A"].rating
    )
    assert fit(pairs, anchor=["nobody"]) == fit(pairs)


# -- ties, battles, provisional ------------------------------------------------------------------


def test_a_tie_is_half_a_win_each() -> None:
    # 3 wins, 1 loss, 2 ties = 4 wins and 2 losses of 6 battles
    with_ties = fit({("a", "b"): P(3, 1, 2)}, prior=0)
    without = fit({("a", "b"): P(4, 2)}, prior=0)
    assert with_ties == without
    assert with_ties[0].battles == 6
    # only ties: level
    level = by_model(fit({("a", "b"): P(0, 0, 5)}, prior=0))
    assert level["a"].rating == pytest.approx(1000) == level["b"].rating
    # "both bad" is stored as a tie
    assert vote_field("x", "y", "both_bad") == vote_field("x", "y", "tie") == "x|y|t"


def test_battles_count_each_battle_once_and_under_10_is_provisional() -> None:
    pairs = {("A", "B"): P(3, 2, 4), ("A", "C"): P(0, 0, 1), ("B", "C"): P(4, 5)}
    r = by_model(fit(pairs))
    assert (r["A"].battles, r["B"].battles, r["C"].battles) == (10, 18, 10)
    assert not any(x.provisional for x in r.values())
    r = by_model(fit({("A", "B"): P(3, 2, 4)}))
    assert r["A"].battles == 9 and r["A"].provisional


def test_a_model_that_never_lost_gets_a_finite_rating() -> None:
    pairs = {("A", "B"): P(20, 0), ("B", "C"): P(6, 4)}
    board = fit(pairs)
    assert board[0].model == "A"
    for r in board:
        assert all(math.isfinite(x) for x in (r.rating, r.low, r.high))
    with pytest.raises(ValueError, match="prior"):
        fit(pairs, prior=0)
    # never won: last, finite too
    board = fit({("A", "B"): P(0, 1_000_000)})
    assert board[-1].model == "A" and math.isfinite(board[-1].low)


def test_groups_that_never_met_are_fitted_each_around_the_average() -> None:
    pairs = {("A", "B"): P(8, 2), ("C", "D"): P(8, 2), ("E", "F"): P(1, 1)}
    r = by_model(fit(pairs))
    assert sum(x.rating for x in r.values()) / 6 == pytest.approx(1000)
    assert r["A"].rating == pytest.approx(r["C"].rating)
    assert r["E"].rating == pytest.approx(1000) == r["F"].rating
    assert all(math.isfinite(x.high) for x in r.values())
    with pytest.raises(ValueError, match="prior"):
        fit(pairs, prior=0)


def test_models_listed_without_battles_come_last_unrated() -> None:
    board = fit({("A", "B"): P(3, 1)}, ["A", "B", "new", "newer"])
    assert [r.model for r in board] == ["A", "B", "new", "newer"]
    assert board[2] == Rating("new", 1000.0, -math.inf, math.inf, 0, True)
    assert sum(r.rating for r in board[:2]) / 2 == pytest.approx(1000)


def test_models_restricts_the_fit_to_battles_among_them() -> None:
    pairs = {("A", "B"): P(3, 1), ("A", "old"): P(0, 50), ("B", "old"): P(0, 50)}
    board = by_model(fit(pairs, ["A", "B"]))
    assert set(board) == {"A", "B"}
    assert board["A"].battles == 4
    assert board["A"].rating == by_model(fit({("A", "B"): P(3, 1)}))["A"].rating


def test_either_order_of_a_key_and_both_orders_add_up() -> None:
    one = fit({("a", "b"): P(5, 2, 1)})
    assert fit({("b", "a"): P(2, 5, 1)}) == one
    assert fit({("a", "b"): P(3, 1, 1), ("b", "a"): P(1, 2, 0)}) == one


def test_no_battles_no_board() -> None:
    assert fit({}) == []
    assert fit({("a", "b"): P()}) == []
    assert fit({}, prior=0) == []


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError):
        P(-1, 0, 0)
    with pytest.raises(ValueError):
        fit({("a", "a"): P(1, 1)})
    with pytest.raises(ValueError):
        fit({("a", "b"): P(1, 1)}, prior=-1)


def test_absurd_counts_still_give_finite_ratings() -> None:
    # 10^18 battles a pair: near-singular information in doubles, guarded
    for pairs in (
        {("A", "B"): P(10**18, 0), ("C", "D"): P(10**18, 0)},
        {("A", "B"): P(10**18, 10**18), ("B", "C"): P(10**18, 1), ("C", "D"): P(1, 0)},
    ):
        board = fit(pairs)
        assert all(math.isfinite(r.rating) and math.isfinite(r.high) for r in board)
        assert sum(r.rating for r in board) / len(board) == pytest.approx(1000)


def test_huge_counts_give_the_same_fit() -> None:
    pairs = {("A", "B"): P(2, 1), ("B", "C"): P(2, 1), ("A", "C"): P(4, 1)}
    huge = {k: P(c.wins * 10**9, c.losses * 10**9) for k, c in pairs.items()}
    for small, big in zip(fit(pairs, prior=0), fit(huge, prior=0), strict=True):
        assert big.rating == pytest.approx(small.rating, abs=1e-6)
        assert big.battles == small.battles * 10**9


@settings(max_examples=examples(60), deadline=None)
@given(
    st.dictionaries(
        st.tuples(st.sampled_from("ABCDEFG"), st.sampled_from("ABCDEFG")).filter(
            lambda k: k[0] != k[1]
        ),
        st.builds(
            P,
            st.integers(0, 10**6),
            st.integers(0, 10**6),
            st.integers(0, 10**6),
        ),
        max_size=15,
    )
)
def test_any_counts_give_a_finite_sorted_board_averaging_1000(
    pairs: dict[tuple[str, str], PairCounts],
) -> None:
    board = fit(pairs)
    assert [r.rating for r in board] == sorted((r.rating for r in board), reverse=True)
    if board:
        assert sum(r.rating for r in board) / len(board) == pytest.approx(1000, abs=1e-6)
    for r in board:
        assert math.isfinite(r.rating) and r.low < r.rating < r.high and math.isfinite(r.high)
    assert sum(r.battles for r in board) == 2 * sum(c.battles for c in pairs.values())


# -- the Redis hash --------------------------------------------------------------------------------


def test_vote_field_orders_the_pair_and_flips_the_outcome() -> None:
    assert vote_field("gpt-5", "codestral", "a") == "codestral|gpt-5|l"
    assert vote_field("gpt-5", "codestral", "b") == "codestral|gpt-5|w"
    assert vote_field("codestral", "gpt-5", "a") == "codestral|gpt-5|w"
    assert vote_field("gpt-5", "codestral", "tie") == "codestral|gpt-5|t"
    for a, b in [("x", "x"), ("x|y", "z"), ("", "z")]:
        with pytest.raises(ValueError):
            vote_field(a, b, "a")


def test_parse_pairs_reads_what_vote_field_writes() -> None:
    raw: dict[bytes | str, bytes | str | int] = {}
    votes: list[tuple[str, str, Outcome]] = [
        ("m1", "m2", "a"),
        ("m2", "m1", "b"),  # the same pair shown the other way round: m1 won again
        ("m1", "m2", "a"),
        ("m2", "m1", "a"),
        ("m1", "m2", "both_bad"),
        ("m2", "m3", "tie"),
    ]
    for a, b, outcome in votes:
        field = vote_field(a, b, outcome).encode()
        raw[field] = str(int(raw.get(field, b"0")) + 1).encode()
    assert parse_pairs(raw) == {("m1", "m2"): P(3, 1, 1), ("m2", "m3"): P(0, 0, 1)}


def test_parse_pairs_takes_bytes_str_and_int_and_skips_malformed_fields() -> None:
    raw: dict[bytes | str, bytes | str | int] = {
        b"a|b|w": b"5",
        "a|b|l": "2",
        b"a|b|t": 1,
        "b|c|w": 4,
        "c|b|w": b"1",  # written from the other side: b lost to c once
        # malformed, all skipped:
        "a|b|x": b"9",  # unknown kind
        "a|b": b"9",  # too few parts
        "a|b|c|w": b"9",  # too many (an id with the separator)
        "a|a|w": b"9",  # a model against itself
        "|b|w": b"9",  # empty id
        "a|c|w": b"-3",  # negative
        "a|c|l": b"2.5",  # not an integer
        "a|c|t": b"",  # empty
        b"\xff|c|w": b"9",  # not UTF-8
        "b|d|w": b"\xff",  # value not UTF-8
        "d|e|w": True,  # not a count
    }
    assert parse_pairs(raw) == {("a", "b"): P(5, 2, 1), ("b", "c"): P(4, 1, 0)}
    assert parse_pairs({}) == {}

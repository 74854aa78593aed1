"""The report's statistics against independent references: t tables, combinatorics, published examples."""

import math

import numpy as np
import pytest
from scipy import stats as st

from experiments.report import stats


def test_mean_ci_is_the_t_interval_of_a_t_table():
    x = np.array([0.3, 0.5, 0.45, 0.61, 0.2])
    n, mean, low, high = stats.mean_ci(x)
    half = 2.776445 * x.std(ddof=1) / math.sqrt(5)  # t(0.975, 4 df) from a t table
    assert n == 5 and mean == pytest.approx(x.mean())
    assert (low, high) == pytest.approx((x.mean() - half, x.mean() + half), rel=1e-6)
    assert stats.mean_ci([1.0, np.nan, 3.0])[0] == 2  # NaN dropped
    assert math.isnan(stats.mean_ci([1.0])[2]) and stats.mean_ci([2.0, 2.0])[2:] == (2.0, 2.0)
    assert stats.mean_ci([])[0] == 0 and math.isnan(stats.mean_ci([])[1])


def test_welch_test_and_difference_ci_follow_the_welch_satterthwaite_formulas():
    a, b = np.array([1.0, 1.2, 0.9, 1.4, 1.1, 1.3]), np.array([0.5, 0.8, 0.6, 0.7, 0.9])
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    c = stats.compare(a, b)
    assert c.test == "welch" and c.p == pytest.approx(2 * st.t.sf(abs(t), df))
    half = st.t.ppf(0.975, df) * math.sqrt(va + vb)
    assert (c.diff_ci_low, c.diff_ci_high) == pytest.approx((c.diff - half, c.diff + half))
    assert c.diff == pytest.approx(a.mean() - b.mean()) and (c.n_a, c.n_b) == (6, 5)
    assert stats.compare(a[:3], b[:3], test="welch").test == "welch"
    assert stats.two_sample_p([1.0, 1.0], [1.0, 1.0]) == ("mannwhitney", 1.0)
    assert stats.two_sample_p([1.0, 1.0], [2.0, 2.0], test="welch") == ("welch", 0.0)


def test_mann_whitney_p_is_the_exact_permutation_probability():
    # Fully separated groups: 2 of the C(6, 3) = 20 (3 vs 3) or C(8, 4) = 70 (4 vs 4) orderings
    # are as extreme, two-sided — the smallest p these group sizes can reach.
    assert stats.compare([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]).p == pytest.approx(2 / 20)
    assert stats.compare([1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]).p == pytest.approx(2 / 70)
    assert stats.compare([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]).test == "mannwhitney"
    # Ties: the permutation version, exhaustive here (20 splits): still 2 of 20 as extreme.
    assert stats.compare([1.0, 1.0, 2.0], [3.0, 4.0, 4.0]).p == pytest.approx(2 / 20)


def test_fisher_exact_p_for_divergence_rates():
    # 5/5 vs 0/5: the two most extreme of the C(10, 5) = 252 tables with these margins.
    assert stats.rate_p(5, 5, 0, 5) == pytest.approx(2 / 252)
    assert math.isnan(stats.rate_p(0, 0, 1, 5))


def test_hedges_g_matches_a_published_example():
    # Lakens (2013), Front. Psychol. 4:863, movie ratings: d_s = 1.13, Hedges' g_s = 1.08.
    a = [9, 7, 8, 9, 8, 9, 9, 10, 9, 9]
    b = [9, 6, 7, 8, 7, 9, 8, 8, 8, 7]
    assert stats.hedges_g(a, b) == pytest.approx(1.08, abs=0.005)
    assert stats.hedges_g([1.0, 1.0], [1.0, 1.0]) == 0.0 and math.isnan(stats.hedges_g([1.0], [2.0, 3.0]))


def test_holm_matches_a_published_example():
    # Wikipedia, "Holm–Bonferroni method", example: p = 0.01, 0.04, 0.03, 0.005 at α = 0.05 rejects
    # H1 and H4. Sorted: 0.005×4 = 0.02, 0.01×3 = 0.03, 0.03×2 = 0.06, 0.04×1 → max(0.06, 0.04) = 0.06.
    adjusted = stats.holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert list(adjusted < 0.05) == [True, False, False, True]
    adjusted = stats.holm([0.2, np.nan, 0.01])  # NaN is not counted in m = 2
    assert (
        adjusted[0] == pytest.approx(0.2) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.02)
    )
    assert stats.holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])

"""The report's statistics against independent references: t tables, combinatorics, published examples,
scipy and statsmodels called directly."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st
from statsmodels.stats import weightstats

from experiments.report import comparison, stats

# Lakens (2013), Front. Psychol. 4:863, movie ratings of 10 people for two movies.
LAKENS_A = [9, 7, 8, 9, 8, 9, 9, 10, 9, 9]
LAKENS_B = [9, 6, 7, 8, 7, 9, 8, 8, 8, 7]


def _seeded(values, seeds=None) -> pd.Series:
    seeds = range(len(values)) if seeds is None else seeds
    return pd.Series(values, index=pd.Index(list(seeds), name="seed"), dtype=float)


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
    assert stats.welch_df(a, b) == pytest.approx(df)
    used, p = stats.two_sample_p(a, b)
    assert used == "welch" and p == pytest.approx(2 * st.t.sf(abs(t), df))
    half = st.t.ppf(0.975, df) * math.sqrt(va + vb)
    diff = a.mean() - b.mean()
    assert stats.diff_ci(a, b) == pytest.approx((diff - half, diff + half))
    assert stats.two_sample_p([1.0, 1.0], [1.0, 1.0]) == ("mannwhitney", 1.0)
    # Two constant groups that differ: no spread to test against, so no p (not p = 0).
    used, p = stats.two_sample_p([1.0, 1.0], [2.0, 2.0], test="welch")
    assert used == "welch" and math.isnan(p)


def test_mann_whitney_p_is_the_exact_permutation_probability():
    # Fully separated groups: 2 of the C(6, 3) = 20 (3 vs 3) or C(8, 4) = 70 (4 vs 4) orderings
    # are as extreme, two-sided — the smallest p these group sizes can reach.
    assert stats.two_sample_p([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]) == ("mannwhitney", pytest.approx(2 / 20))
    assert stats.two_sample_p([1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0])[1] == pytest.approx(2 / 70)
    # Ties: the permutation version, exhaustive here (20 splits): still 2 of 20 as extreme.
    assert stats.two_sample_p([1.0, 1.0, 2.0], [3.0, 4.0, 4.0])[1] == pytest.approx(2 / 20)


def test_fisher_exact_p_for_divergence_rates():
    # 5/5 vs 0/5: the two most extreme of the C(10, 5) = 252 tables with these margins.
    assert stats.rate_p(5, 5, 0, 5) == pytest.approx(2 / 252)
    assert math.isnan(stats.rate_p(0, 0, 1, 5))


def test_hedges_g_star_uses_welchs_standardizer_and_matches_a_published_example():
    # Lakens (2013): d_s = 1.13, Hedges' g_s = 1.08. With equal group sizes Welch's standardizer
    # sqrt((s_a² + s_b²)/2) is the pooled SD, so g*_s reproduces them.
    assert stats.hedges_g(LAKENS_A, LAKENS_B) == pytest.approx(1.08, abs=0.005)
    # Unequal sizes and spreads: the standardizer is the mean of the variances, not the pooled SD.
    a, b = np.array([1.0, 1.5, 0.7, 1.2]), np.array([0.1, 0.4, 0.3, 0.2, 0.25, 0.5, 0.35, 0.3])
    g = stats.hedges_g(a, b)
    d_avg = (a.mean() - b.mean()) / math.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)
    pooled = math.sqrt((3 * a.var(ddof=1) + 7 * b.var(ddof=1)) / 10)
    assert 0.6 * d_avg < g < d_avg  # a small-sample correction J < 1 of the Welch-standardized d
    assert abs(g - (a.mean() - b.mean()) / pooled) > 0.3  # far from the pooled-SD version
    assert math.isnan(stats.hedges_g([1.0, 1.0], [1.0, 1.0])) and math.isnan(stats.hedges_g([1.0], [2, 3]))


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


def test_paired_t_and_cohens_dz_match_a_published_within_subjects_example():
    # Lakens (2013), the same ratings as a within-subjects design: t(9) = 4.74, d_z = 1.50.
    d = np.subtract(LAKENS_A, LAKENS_B, dtype=float)
    p, low, high = stats.paired_t(d)
    ref = st.ttest_rel(LAKENS_A, LAKENS_B)
    assert ref.statistic == pytest.approx(4.74, abs=0.005) and p == pytest.approx(ref.pvalue)
    assert (low, high) == pytest.approx(tuple(ref.confidence_interval()))
    assert stats.cohens_dz(d) == pytest.approx(1.50, abs=0.005)
    assert all(math.isnan(x) for x in stats.paired_t([0.5, 0.5, 0.5]))  # zero variance: no p


def test_wilcoxon_signed_rank_is_exact_and_its_smallest_p_is_two_over_two_to_the_n():
    d = np.array([0.3, -0.1, 0.5, 0.2, 0.7, 0.4])
    assert stats.wilcoxon_p(d) == pytest.approx(st.wilcoxon(d, method="exact").pvalue)
    # All signs agree: 2 of the 2^n sign patterns are as extreme (two-sided).
    assert stats.wilcoxon_p([0.1, 0.3, 0.2, 0.5, 0.4]) == pytest.approx(2 / 32)
    assert stats.wilcoxon_p([0.1, 0.3, 0.2, 0.5, 0.4, 0.7]) == pytest.approx(2 / 64)
    assert stats.wilcoxon_p([0.1, 0.0, 0.2, 0.5, 0.4, 0.7]) == pytest.approx(2 / 32)  # a zero is dropped
    assert math.isnan(stats.wilcoxon_p([0.0, 0.0, 0.0]))


def test_minimum_detectable_effect_has_the_stated_power_by_the_noncentral_t():
    n, sd, alpha = 5, 0.2, 0.05
    mde = stats.mde_paired(n, sd, alpha)
    crit = st.t.ppf(1 - alpha / 2, n - 1)
    nc = mde / sd * math.sqrt(n)
    power = st.nct.sf(crit, n - 1, nc) + st.nct.cdf(-crit, n - 1, nc)
    assert power == pytest.approx(0.8, abs=1e-4)
    mde2 = stats.mde_unpaired(6, 6, sd, alpha)
    nc2 = mde2 / sd / math.sqrt(2 / 6)
    crit2 = st.t.ppf(1 - alpha / 2, 10)
    assert st.nct.sf(crit2, 10, nc2) + st.nct.cdf(-crit2, 10, nc2) == pytest.approx(0.8, abs=1e-4)
    assert math.isnan(stats.mde_paired(1, sd)) and math.isnan(stats.mde_paired(5, 0.0))


def test_bootstrap_intervals_are_bca_with_a_fixed_generator():
    d = np.log([1.1, 1.3, 0.95, 1.2, 1.05, 1.25])
    ref = st.bootstrap((d,), np.mean, method="BCa", n_resamples=9999, rng=np.random.default_rng(0))
    assert stats.bootstrap_ci(d, np.mean) == pytest.approx(tuple(ref.confidence_interval))
    assert stats.bootstrap_ci(d, np.mean) == stats.bootstrap_ci(d, np.mean)  # reproducible
    low, high = stats.bootstrap_ci(d, stats.cohens_dz)
    assert low < stats.cohens_dz(d) < high
    assert all(math.isnan(x) for x in stats.bootstrap_ci([0.1, 0.1, 0.1], np.mean))


# ------------------------------------------------------------------------- two configurations


def test_a_loss_ratio_contrast_is_a_paired_t_test_of_log_ratios_with_its_tost():
    a = np.array([0.52, 0.31, 0.77, 0.45, 0.60])
    b = np.array([0.50, 0.30, 0.74, 0.44, 0.58])
    c = comparison.compare(_seeded(a), _seeded(b), "ln", margin=0.25, extra="tost")
    assert c.paired and c.n_pairs == 5 and c.test == "paired t" and c.scale == "ln"
    assert c.p == pytest.approx(st.ttest_rel(np.log(a), np.log(b)).pvalue)
    assert c.diff == pytest.approx(np.mean(np.log(a / b))) and c.ratio == pytest.approx(math.exp(c.diff))
    bound = math.log(1.25)
    ref_p, _, _ = weightstats.ttost_paired(np.log(a), np.log(b), -bound, bound)
    assert c.bound == pytest.approx(bound) and c.p_tost == pytest.approx(ref_p)
    assert c.ratio_ci_low < c.ratio < c.ratio_ci_high and c.d_z_ci_low < c.d_z < c.d_z_ci_high
    ni = comparison.compare(_seeded(a), _seeded(b), "ln", margin=0.25, extra="ni")
    assert ni.p_ni == pytest.approx(st.ttest_rel(np.log(a) - bound, np.log(b), alternative="less").pvalue)
    assert math.isnan(c.hedges_g)  # a paired row has d_z, not an unpaired effect size


def test_pairing_by_seed_finds_a_difference_the_unpaired_test_misses():
    # Seeds differ a lot (the data stream), A is 5 % worse on every seed.
    b = np.array([0.2, 0.5, 0.9, 0.35, 0.7, 0.28])
    a = b * np.array([1.04, 1.06, 1.05, 1.05, 1.04, 1.06])
    paired = comparison.compare(_seeded(a), _seeded(b), "ln")
    unpaired = comparison.compare(_seeded(a), _seeded(b, seeds=range(10, 16)), "ln")
    assert paired.paired and paired.p < 0.001
    assert not unpaired.paired and unpaired.test == "welch" and unpaired.p > 0.5
    assert unpaired.p == pytest.approx(st.ttest_ind(np.log(a), np.log(b), equal_var=False).pvalue)
    assert "unpaired: 0 common seed(s)" in unpaired.note
    assert unpaired.hedges_g == pytest.approx(stats.hedges_g(np.log(a), np.log(b)))


def test_a_diverged_pair_is_a_signed_rank_test_with_its_difference_ranked_largest():
    a = _seeded([math.inf, 0.5, 0.45, 0.6, 0.55, 0.52])
    b = _seeded([0.3, 0.31, 0.55, 0.32, 0.28, 0.5])
    c = comparison.compare(a, b, "ln")
    d = np.log(a.to_numpy()) - np.log(b.to_numpy())
    d[0] = np.abs(d[1:]).max() + 1.0
    assert c.test == "wilcoxon (diverged = worst)" and c.p == pytest.approx(st.wilcoxon(d).pvalue)
    assert math.isnan(c.diff_ci_low) and math.isnan(c.mde) and c.diff > 0
    both = comparison.compare(_seeded([math.inf, math.inf, 0.5]), _seeded([math.inf, math.inf, 0.5]), "ln")
    assert math.isnan(both.p)  # every pair a tie: nothing to rank


def test_no_variance_across_seeds_gives_no_p_value_and_too_few_common_seeds_unpair():
    same = comparison.compare(_seeded([0.5, 0.6, 0.7]), _seeded([0.25, 0.3, 0.35]), "ln")
    assert same.paired and math.isnan(same.p) and same.note == "no variance across seeds"
    one = comparison.compare(_seeded([0.5, 0.6, 0.7]), _seeded([0.3, 0.4, 0.5], seeds=[0, 8, 9]), "ln")
    assert not one.paired and one.test == "mannwhitney" and "1 common seed(s)" in one.note
    assert comparison.compare(_seeded([0.5, 0.0]), _seeded([0.3, 0.2]), "ln").scale == "raw"
    assert comparison.margin_bound(0.25, "log10") == pytest.approx(math.log10(1.25))
    with pytest.raises(ValueError, match="scale='log2'"):
        comparison.compare(_seeded([1.0]), _seeded([1.0]), "log2")

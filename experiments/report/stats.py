"""Statistics for sweep reports: intervals, paired and two-sample tests, TOST, effect sizes, power, Holm.

Pure functions on plain sequences (NaN values are dropped first). scipy does the intervals, the tests
and the bootstrap, statsmodels the power analysis; Hedges' g* and Holm's correction, which neither
has, are written out (tests/test_stats.py checks every function against scipy/statsmodels called
directly or a published example). The test rule, stated once here and quoted by the reports, is
`TEST_RULE`; `experiments.report.comparison` applies it to two configurations' seeds.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats
from scipy.special import gammaln

SMALL_N = 5
TESTS = ("auto", "welch", "mannwhitney")
POWER = 0.8
BOOT_RESAMPLES = 9999
BOOT_SEED = 0  # a fixed generator: the same runs give the same report, bootstrap intervals included
TEST_RULE = (
    "Seeds are paired when the two configurations share ≥ 2 seeds (the same seed = the same training "
    "batches and validation/test sets): the paired t-test (scipy `ttest_rel`) on the per-seed "
    "differences d_s = ln a_s − ln b_s for loss ratios (log10 metrics, e.g. gradient flow, are "
    "differenced as they are), or, when a pair has a diverged side, the Wilcoxon signed-rank test "
    "on d_s with a diverged seed's difference ±∞ ranked largest (two diverged sides: d_s = 0, "
    "dropped); exact without ties or zeros, else a permutation version (exhaustive below 10,000 sign "
    "patterns). Its smallest two-sided p is 2/2^n: 0.0625 for 5 pairs, 0.031 for 6, so a contrast "
    f"with a diverged seed needs ≥ 6 pairs to reach 0.05 before correction. Unpaired (< 2 common "
    f"seeds): Welch's t-test when both sides have ≥ {SMALL_N} seeds, else the exact Mann–Whitney U "
    "test (permutation version with ties); a diverged seed there is ranked below every other. All "
    "tests two-sided; differences with zero variance across seeds have no p-value"
)


def finite(values) -> np.ndarray:
    a = np.asarray(values, dtype=float).reshape(-1)
    return a[np.isfinite(a)]


def no_spread(values) -> bool:
    """No variation beyond rounding (ln 0.6 − ln 0.3 ≠ ln 0.5 − ln 0.25 in the last bit): a t
    statistic of such values is rounding noise, not evidence."""
    a = finite(values)
    return len(a) == 0 or float(np.ptp(a)) <= 1e-12 * max(1.0, float(np.abs(a).max()))


def mean_ci(values, confidence: float = 0.95) -> tuple[int, float, float, float]:
    """(n, mean, low, high): the t-interval for the mean of the finite values.

    One value: the CI is NaN; identical values: the CI is the point.
    """
    a = finite(values)
    n = len(a)
    if n == 0:
        return 0, math.nan, math.nan, math.nan
    mean = float(a.mean())
    if n == 1:
        return 1, mean, math.nan, math.nan
    if np.all(a == a[0]):  # no spread: scipy's interval would be NaN
        return n, mean, mean, mean
    ci = stats.ttest_1samp(a, 0.0).confidence_interval(confidence)
    return n, mean, float(ci.low), float(ci.high)


def welch_df(a, b) -> float:
    """Welch–Satterthwaite degrees of freedom of mean(a) − mean(b)."""
    a, b = finite(a), finite(b)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    return float((va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1)))


def hedges_g(a, b) -> float:
    """Hedges' g*_s: (mean(a) − mean(b)) / sqrt((s_a² + s_b²) / 2) × J(df), the standardizer of
    Welch's test (Delacre et al. 2021, Int. Rev. Soc. Psychol. 34:1): not the pooled SD, which
    assumes the equal variances Welch's test does not. J(df) = Γ(df/2) / (√(df/2) Γ((df − 1)/2))
    with df = (n_a−1)(n_b−1)(s_a²+s_b²)² / ((n_b−1)s_a⁴ + (n_a−1)s_b⁴). With equal group sizes the
    standardizer is the pooled SD, so Cohen's d_s of a published example is reproduced."""
    a, b = finite(a), finite(b)
    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        return math.nan
    diff = float(a.mean() - b.mean())
    sa2, sb2 = a.var(ddof=1), b.var(ddof=1)
    sd = math.sqrt((sa2 + sb2) / 2)
    if no_spread(a) and no_spread(b):
        return math.nan  # no spread: a standardized difference is undefined, not infinite
    df = (na - 1) * (nb - 1) * (sa2 + sb2) ** 2 / ((nb - 1) * sa2**2 + (na - 1) * sb2**2)
    j = math.exp(gammaln(df / 2) - gammaln((df - 1) / 2)) / math.sqrt(df / 2)
    return diff / sd * j


def choose_test(na: int, nb: int, test: str = "auto") -> str:
    """The unpaired test of `TEST_RULE` for group sizes na, nb (or the one `test` forces)."""
    if test not in TESTS:
        raise ValueError(f"Invalid test={test!r}. Valid choices: {', '.join(TESTS)}.")
    if test != "auto":
        return test
    return "welch" if min(na, nb) >= SMALL_N else "mannwhitney"


def diff_ci(a, b, confidence: float = 0.95) -> tuple[float, float]:
    """Welch (unequal-variance) t-interval for mean(a) − mean(b); NaN without spread."""
    a, b = finite(a), finite(b)
    if len(a) < 2 or len(b) < 2 or (no_spread(a) and no_spread(b)):
        return math.nan, math.nan
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(confidence)
    return float(ci.low), float(ci.high)


def _mannwhitney(a: np.ndarray, b: np.ndarray, alternative: str = "two-sided") -> float:
    pooled = np.concatenate([a, b])
    if len(np.unique(pooled)) == 1:
        return 1.0
    if len(np.unique(pooled)) == len(pooled):
        return float(stats.mannwhitneyu(a, b, alternative=alternative, method="exact").pvalue)
    method = stats.PermutationMethod(n_resamples=10_000, rng=0)  # exhaustive when fewer exist
    return float(stats.mannwhitneyu(a, b, alternative=alternative, method=method).pvalue)


def two_sample_p(a, b, test: str = "auto", shift: float = 0.0, alternative: str = "two-sided"):
    """(test used, p) for H0: mean(a) − mean(b) = `shift` (a location shift for Mann–Whitney),
    finite values only. NaN p when a group has < 2 values or, for Welch, neither group varies."""
    a, b = finite(a), finite(b)
    used = choose_test(len(a), len(b), test)
    if len(a) < 2 or len(b) < 2:
        return used, math.nan
    if used == "mannwhitney":
        return used, _mannwhitney(a - shift, b, alternative)
    if no_spread(a) and no_spread(b):
        return used, math.nan  # two constants: no spread to test against
    return used, float(stats.ttest_ind(a - shift, b, equal_var=False, alternative=alternative).pvalue)


def paired_t(d, shift: float = 0.0, alternative: str = "two-sided", confidence: float = 0.95):
    """(p, CI low, CI high) of the one-sample t-test of the paired differences `d` against `shift`
    (≡ scipy's `ttest_rel(a, b)` when d = a − b); all NaN with < 2 values or zero variance."""
    d = finite(d)
    if len(d) < 2 or no_spread(d):
        return math.nan, math.nan, math.nan
    res = stats.ttest_1samp(d, shift, alternative=alternative)
    ci = stats.ttest_1samp(d, 0.0).confidence_interval(confidence)
    return float(res.pvalue), float(ci.low), float(ci.high)


def wilcoxon_p(d, alternative: str = "two-sided") -> float:
    """Wilcoxon signed-rank p of the finite paired differences `d` (zeros dropped): exact without
    ties or zeros, else a permutation version (exhaustive when fewer than 10,000 sign patterns
    exist); NaN when no difference is non-zero."""
    d = finite(d)
    nonzero = d[d != 0]
    if len(nonzero) == 0:
        return math.nan
    _, counts = np.unique(np.abs(nonzero), return_counts=True)
    if len(nonzero) == len(d) and counts.max() == 1:
        method = "exact"
    else:
        method = stats.PermutationMethod(n_resamples=10_000, rng=0)
    return float(stats.wilcoxon(d, alternative=alternative, method=method).pvalue)


def bootstrap_ci(d, statistic, confidence: float = 0.95) -> tuple[float, float]:
    """BCa bootstrap interval of `statistic` over the finite values `d` (scipy `bootstrap`,
    BOOT_RESAMPLES resamples from a generator seeded BOOT_SEED); NaN when it cannot be formed."""
    d = finite(d)
    if len(d) < 3 or no_spread(d):
        return math.nan, math.nan
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # resamples without spread: d_z is ±inf there, as it is
        res = stats.bootstrap(
            (d,),
            statistic,
            method="BCa",
            confidence_level=confidence,
            n_resamples=BOOT_RESAMPLES,
            rng=np.random.default_rng(BOOT_SEED),
        )
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return (low, high) if np.isfinite(low) and np.isfinite(high) else (math.nan, math.nan)


def cohens_dz(d, axis: int = -1):
    """Cohen's d_z = mean(d) / SD(d) of paired differences (vectorized for `bootstrap`). A resample
    without spread has d_z = ±inf (0 when its values are all 0), so that it sorts at an end of the
    bootstrap distribution instead of making every quantile NaN."""
    d = np.asarray(d, dtype=float)
    mean, sd = np.mean(d, axis=axis), np.std(d, ddof=1, axis=axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(mean == 0, 0.0, mean / sd)


def mde_paired(n: int, sd: float, alpha: float = 0.05, power: float = POWER) -> float:
    """Minimum detectable mean difference of a two-sided paired t-test with n pairs: statsmodels'
    `TTestPower().solve_power` standardized effect × the SD of the differences; NaN if n < 2."""
    from statsmodels.stats.power import TTestPower

    if n < 2 or not np.isfinite(sd) or sd <= 0:
        return math.nan
    return float(TTestPower().solve_power(nobs=n, alpha=alpha, power=power)) * sd


def mde_unpaired(na: int, nb: int, sd: float, alpha: float = 0.05, power: float = POWER) -> float:
    """The same for a two-sample t-test (statsmodels `TTestIndPower`) × the standardizer `sd`."""
    from statsmodels.stats.power import TTestIndPower

    if min(na, nb) < 2 or not np.isfinite(sd) or sd <= 0:
        return math.nan
    effect = TTestIndPower().solve_power(nobs1=na, ratio=nb / na, alpha=alpha, power=power)
    return float(effect) * sd


def rate_p(events_a: int, n_a: int, events_b: int, n_b: int) -> float:
    """Two-sided Fisher exact p for event rates (e.g. divergence) events_a/n_a vs events_b/n_b."""
    if min(n_a, n_b) == 0:
        return math.nan
    table = [[events_a, n_a - events_a], [events_b, n_b - events_b]]
    return float(stats.fisher_exact(table).pvalue)


def holm(pvalues) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values, in the input order; NaN stays NaN and is not counted.

    Not in scipy (`false_discovery_control` has Benjamini–Hochberg/–Yekutieli only).

    Sorted ascending, p_(k) becomes max over j ≤ k of min(1, (m − j + 1) p_(j)).
    """
    p = np.asarray(pvalues, dtype=float).reshape(-1)
    adjusted = np.full_like(p, np.nan)
    idx = np.flatnonzero(~np.isnan(p))
    m = len(idx)
    running = 0.0
    for rank, i in enumerate(idx[np.argsort(p[idx], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted

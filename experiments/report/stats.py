"""Statistics for sweep reports: t-intervals, effect sizes, two-sample tests, Holm's correction.

Pure functions on plain sequences (NaN values are dropped first). scipy does the intervals and the
tests; Hedges' g and Holm's correction, which scipy lacks, are written out (tests/test_stats.py checks
them against published values). The test rule (`choose_test`) is stated once here and quoted by the reports:

* Welch's t-test (unequal variances) when both groups have at least `SMALL_N` = 5 values;
* otherwise the Mann–Whitney U test (exact when there are no ties, else an exhaustive /
  10,000-draw permutation version): with so few seeds normality cannot be checked and one
  outlier dominates a t statistic. Its smallest attainable two-sided p is 0.10 for 3 vs 3 and
  0.029 for 4 vs 4, so such comparisons can only come out inconclusive unless the groups are
  bigger — by design, not by accident.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

SMALL_N = 5
TESTS = ("auto", "welch", "mannwhitney")
TEST_RULE = (
    f"Welch's t-test when both groups have ≥ {SMALL_N} seeds, otherwise the exact Mann–Whitney U "
    "test (permutation version when values tie); two-sided"
)


def finite(values) -> np.ndarray:
    a = np.asarray(values, dtype=float).reshape(-1)
    return a[np.isfinite(a)]


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


def hedges_g(a, b) -> float:
    """Bias-corrected standardized mean difference (mean(a) − mean(b)) / pooled sd × J.

    scipy has no effect size; J = 1 − 3 / (4 (n_a + n_b) − 9) as in Hedges & Olkin (1985).
    """
    a, b = finite(a), finite(b)
    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        return math.nan
    diff = float(a.mean() - b.mean())
    pooled = math.sqrt(((na - 1) * a.var(ddof=1) + (nb - 1) * b.var(ddof=1)) / (na + nb - 2))
    if pooled == 0:
        return 0.0 if diff == 0 else math.copysign(math.inf, diff)
    correction = 1 - 3 / (4 * (na + nb) - 9)
    return diff / pooled * correction


def choose_test(na: int, nb: int, test: str = "auto") -> str:
    if test not in TESTS:
        raise ValueError(f"Invalid test={test!r}. Valid choices: {', '.join(TESTS)}.")
    if test != "auto":
        return test
    return "welch" if min(na, nb) >= SMALL_N else "mannwhitney"


@dataclass
class Comparison:
    """A against B: sizes, means, the difference with its Welch CI, effect size, test and p."""

    n_a: int
    n_b: int
    mean_a: float
    mean_b: float
    diff: float  # mean_a − mean_b
    diff_ci_low: float
    diff_ci_high: float
    hedges_g: float
    test: str
    p: float

    def as_dict(self) -> dict:
        return asdict(self)


def diff_ci(a, b, confidence: float = 0.95) -> tuple[float, float]:
    """Welch (unequal-variance) t-interval for mean(a) − mean(b)."""
    a, b = finite(a), finite(b)
    if len(a) < 2 or len(b) < 2:
        return math.nan, math.nan
    se2 = a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)
    diff = float(a.mean() - b.mean())
    if se2 == 0:
        return diff, diff
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(confidence)
    return float(ci.low), float(ci.high)


def _mannwhitney(a: np.ndarray, b: np.ndarray) -> float:
    pooled = np.concatenate([a, b])
    if len(np.unique(pooled)) == 1:
        return 1.0
    if len(np.unique(pooled)) == len(pooled):
        return float(stats.mannwhitneyu(a, b, method="exact").pvalue)
    method = stats.PermutationMethod(n_resamples=10_000, rng=0)  # exhaustive when fewer exist
    return float(stats.mannwhitneyu(a, b, method=method).pvalue)


def two_sample_p(a, b, test: str = "auto") -> tuple[str, float]:
    """(test used, two-sided p) for finite values of a vs b; NaN p when a group has < 2 values."""
    a, b = finite(a), finite(b)
    used = choose_test(len(a), len(b), test)
    if len(a) < 2 or len(b) < 2:
        return used, math.nan
    if used == "mannwhitney":
        return used, _mannwhitney(a, b)
    if a.var(ddof=1) == 0 and b.var(ddof=1) == 0:
        return used, 1.0 if a[0] == b[0] else 0.0  # two constants: no spread to test against
    return used, float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def compare(a, b, test: str = "auto", confidence: float = 0.95) -> Comparison:
    fa, fb = finite(a), finite(b)
    used, p = two_sample_p(fa, fb, test)
    low, high = diff_ci(fa, fb, confidence)
    mean_a = float(fa.mean()) if len(fa) else math.nan
    mean_b = float(fb.mean()) if len(fb) else math.nan
    return Comparison(
        n_a=len(fa),
        n_b=len(fb),
        mean_a=mean_a,
        mean_b=mean_b,
        diff=mean_a - mean_b,
        diff_ci_low=low,
        diff_ci_high=high,
        hedges_g=hedges_g(fa, fb),
        test=used,
        p=p,
    )


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

"""The statistics of the "but" probe: gate drops at contrastive connectives vs at "and", and rates.

scipy and statsmodels do the tests and intervals (through experiments.report.stats where it has
them); nothing is hand-rolled. The verdict rule is `VERDICT_RULE`, quoted by the report.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats as sps

from experiments.report import stats

BOOT_RESAMPLES = 9999
BOOT_SEED = 0
SUPPORTED, CONTRADICTED, INCONCLUSIVE = "supported", "contradicted", "inconclusive"
VERDICT_RULE = (
    "supported if the LSTM's gate drop at contrastive connectives exceeds its drop at 'and' with "
    "the 95 % t-interval over training seeds (of the per-seed mean differences) above 0; "
    "contradicted if that interval lies entirely below 0; otherwise (or with fewer than 2 seeds) "
    "inconclusive"
)


def compare_groups(contrastive, control) -> dict[str, float]:
    """One seed: contrastive vs "and" drops; the difference of means, Hedges' g*, Welch's CI and
    p, and the Mann–Whitney p (both two-sided)."""
    a, b = stats.finite(contrastive), stats.finite(control)
    low, high = stats.diff_ci(a, b)
    return {
        "n_contrastive": float(len(a)),
        "n_and": float(len(b)),
        "mean_contrastive": float(a.mean()) if len(a) else math.nan,
        "mean_and": float(b.mean()) if len(b) else math.nan,
        "diff": float(a.mean() - b.mean()) if len(a) and len(b) else math.nan,
        "hedges_g": stats.hedges_g(a, b),
        "welch_ci_low": low,
        "welch_ci_high": high,
        "welch_p": stats.two_sample_p(a, b, test="welch")[1],
        "mannwhitney_p": stats.two_sample_p(a, b, test="mannwhitney")[1],
    }


def _mean_difference(a, b, axis=-1):
    return np.mean(a, axis=axis) - np.mean(b, axis=axis)


def bootstrap_diff_ci(contrastive, control, confidence: float = 0.95) -> tuple[float, float]:
    """BCa bootstrap interval of mean(contrastive) − mean(control), resampling sentences within
    each group (scipy `bootstrap`, seeded); NaN when a group has < 3 values."""
    a, b = stats.finite(contrastive), stats.finite(control)
    if min(len(a), len(b)) < 3 or (stats.no_spread(a) and stats.no_spread(b)):
        return math.nan, math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a degenerate resample makes BCa warn; it yields NaN then
        res = sps.bootstrap(
            (a, b),
            _mean_difference,
            method="BCa",
            confidence_level=confidence,
            n_resamples=BOOT_RESAMPLES,
            rng=np.random.default_rng(BOOT_SEED),
        )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def over_seeds(per_seed: list[float]) -> dict[str, float]:
    """The per-seed differences' mean, its t-interval over seeds and the one-sample t p against 0."""
    n, mean, low, high = stats.mean_ci(per_seed)
    p = stats.paired_t(per_seed)[0]
    return {"n_seeds": float(n), "diff": mean, "seeds_ci_low": low, "seeds_ci_high": high, "seeds_p": p}


def verdict(low: float, high: float) -> str:
    """`VERDICT_RULE` applied to an interval of (contrastive − and) drops."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return INCONCLUSIVE
    if low > 0:
        return SUPPORTED
    if high < 0:
        return CONTRADICTED
    return INCONCLUSIVE


def rate_ci(events: int, n: int, confidence: float = 0.95) -> tuple[float, float, float]:
    """(rate, low, high): the Wilson interval of events / n (statsmodels); NaN for n = 0."""
    from statsmodels.stats.proportion import proportion_confint

    if n == 0:
        return math.nan, math.nan, math.nan
    low, high = proportion_confint(events, n, alpha=1 - confidence, method="wilson")
    return events / n, float(low), float(high)


def mean_curve(curves: np.ndarray, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, low, high) per column of (sentences, offsets), NaN skipped: a t-interval per offset."""
    means, lows, highs = [], [], []
    for column in np.asarray(curves, dtype=float).T:
        _, mean, low, high = stats.mean_ci(column, confidence)
        means.append(mean)
        lows.append(low)
        highs.append(high)
    return np.array(means), np.array(lows), np.array(highs)

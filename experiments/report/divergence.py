"""A diverged run counts as worst: in learning-rate selection, in comparisons, in the summaries.

A run's own summary keeps the best score it reached before diverging (its curves are what they
were), so the report must never rank it by that score. Here a diverged run's outcome metrics
(losses and task metrics, not gradient flow at initialisation) become the worst possible value,
±inf; a summary's mean then leaves it out (its divergence rate says how many), and a comparison
with any diverged seed is a worst-rank analysis (Lachin 1999, Controlled Clinical Trials 20:408):
every diverged run ranks below every run that did not diverge, diverged runs tie with each
other, and the test is rank-based, which an infinite value leaves well defined where a mean, a
t-test or an effect size would not be: paired by seed, the Wilcoxon signed-rank test on the
per-seed differences (a diverged side's difference is ±inf, ranked largest); unpaired, the
Mann–Whitney U test (`stats.TEST_RULE`; `experiments.report.comparison` applies it).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from experiments.report import stats
from experiments.report.metrics import JUDGED, PRIMARY, TASK_METRICS

WORST_RANK_TEST = "mannwhitney (diverged = worst)"
WORST_RANK_PAIRED = "wilcoxon (diverged = worst)"
# Loss-like summary metrics (lower is better); the tasks' own metrics follow TASK_METRICS.
LOSSES = (
    JUDGED,
    PRIMARY,
    "val_loss_over_baseline",
    "best_val_loss",
    "final_val_loss",
    "final_loss",
    "test_loss",
)


def worst(metric: str) -> float | None:
    """The worst value of an outcome metric (+inf for a loss, -inf for a higher-is-better metric),
    or None for a metric a diverged run still measures (gradient flow at initialisation, size)."""
    if metric in LOSSES:
        return math.inf
    for name, higher in TASK_METRICS.values():
        if metric in (f"best_val_{name}", f"final_val_{name}", f"test_{name}"):
            return -math.inf if higher else math.inf
    return None


def diverged(df: pd.DataFrame) -> np.ndarray:
    """Per row: did the run diverge (non-finite or exploded; the run's `diverged` metric)."""
    if "diverged" not in df:
        return np.zeros(len(df), dtype=bool)
    return (df["diverged"].to_numpy(dtype=float) == 1).copy()


def counted(df: pd.DataFrame, metric: str) -> np.ndarray:
    """`metric` of each run of `df`, a diverged run's at the metric's worst value (see `worst`)."""
    if metric not in df:
        return np.array([])
    values = df[metric].to_numpy(dtype=float).copy()
    bad = worst(metric)
    if bad is not None:
        values[diverged(df)] = bad
    return values


def _ranked(values: np.ndarray, top: float, bottom: float) -> np.ndarray:
    """±inf replaced by values beyond every finite one: the same ranks, finite for `stats`."""
    return np.where(values == math.inf, top, np.where(values == -math.inf, bottom, values))


def hodges_lehmann(a: np.ndarray, b: np.ndarray) -> float:
    """The median of all differences a_i − b_j (the shift that goes with Mann–Whitney's U); two
    worst values (inf − inf) differ by 0."""
    with np.errstate(invalid="ignore"):  # inf − inf: a tie, set to 0 below
        pairs = np.subtract.outer(a, b).ravel()
    pairs[np.isnan(pairs)] = 0.0
    return float(np.median(pairs)) if len(pairs) else math.nan


def hodges_lehmann_paired(d: np.ndarray) -> float:
    """The median of the Walsh averages (d_i + d_j)/2, i ≤ j (the estimate that goes with the signed-
    rank test); a +∞ and a −∞ (A diverged on one seed, B on another) average to 0, a tie."""
    d = np.asarray(d, dtype=float)
    i, j = np.triu_indices(len(d))
    with np.errstate(invalid="ignore"):
        walsh = (d[i] + d[j]) / 2
    walsh[np.isnan(walsh)] = 0.0
    return float(np.median(walsh)) if len(walsh) else math.nan


def paired_differences(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a − b per pair; two worst values (both sides diverged: inf − inf) differ by 0, a tie."""
    with np.errstate(invalid="ignore"):
        d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    both = ~np.isfinite(a) & ~np.isfinite(b) & (np.sign(a) == np.sign(b))
    d[both] = 0.0
    return d


def ranked_finite(values: np.ndarray) -> np.ndarray:
    """`values` with ±inf replaced by ±(1 + the largest finite |value|): the same signed ranks and
    ranks, finite for scipy."""
    fin = stats.finite(values)
    big = float(np.abs(fin).max()) + 1.0 if len(fin) else 1.0
    return _ranked(np.asarray(values, dtype=float), big, -big)


def rate_ci(events: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a rate events/n (e.g. divergence); NaN when n = 0."""
    if n == 0:
        return math.nan, math.nan
    ci = scipy_stats.binomtest(int(events), int(n)).proportion_ci(confidence, method="wilson")
    return float(ci.low), float(ci.high)


def rate_text(events: int, n: int, confidence: float = 0.95) -> str:
    """`k/n [low, high]`: the rate's Wilson interval, as the report prints a divergence rate."""
    low, high = rate_ci(events, n, confidence)
    return f"{events}/{n}" if n == 0 else f"{events}/{n} [{low:.2f}, {high:.2f}]"

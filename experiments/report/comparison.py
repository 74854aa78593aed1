"""Two configurations' seeds compared by `stats.TEST_RULE`: paired by seed where both sides share
seeds (the same seed is the same data stream), unpaired otherwise, a diverged seed ranked worst.

Loss ratios are compared on the log scale (d_s = ln a_s − ln b_s: a ratio of losses is what
"x % worse" means, and its spread grows with its size), log10 metrics as they are; a difference on
either scale is also reported as a ratio (e^Δ, 10^Δ). An equivalence or non-inferiority margin m
is a ratio band [1/(1+m), 1+m], i.e. ±log(1+m) on the scale.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from experiments.report import divergence, stats

SCALES = {"ln": math.e, "log10": 10.0, "raw": None}  # scale → the base a difference is a ratio in
EXTRAS = ("", "tost", "ni")  # the one-sided tests a contrast also needs: equivalence, non-inferiority
NAN = math.nan


def scale_of(metric: str) -> str:
    """ln for a (positive) ratio or count of steps, log10 for a metric already on log10, raw otherwise."""
    if metric.startswith("log10_"):
        return "log10"
    return "ln" if metric.endswith("_over_baseline") or metric == "steps_to_solve" else "raw"


def margin_bound(margin: float | None, scale: str) -> float:
    """A relative margin m on the comparison scale: log(1 + m) (a ratio band), or m on a raw scale."""
    if margin is None:
        return NAN
    if scale == "raw":
        return float(margin)
    return math.log1p(margin) / math.log(SCALES[scale])


def seeded(df: pd.DataFrame, metric: str) -> pd.Series:
    """`metric` per run of `df` indexed by seed (a diverged run at the metric's worst value)."""
    values = divergence.counted(df, metric)
    index = pd.Index(df["seed"].to_numpy(), name="seed") if "seed" in df and len(values) else None
    return pd.Series(values, index=index, dtype=float)


@dataclass
class Comparison:
    """A against B on one scale: sizes, pairing, means (raw), the difference d = A − B on the scale
    with its t-interval, effect sizes with BCa bootstrap intervals, the test, the one-sided tests
    against ±`bound`, the minimum detectable effect and a note on what was (not) computed."""

    n_a: int
    n_b: int
    n_pairs: int
    paired: bool
    scale: str
    mean_a: float
    mean_b: float
    diff: float = NAN  # mean paired difference / difference of means / Hodges–Lehmann (rank tests)
    diff_ci_low: float = NAN  # t-interval: paired t or Welch
    diff_ci_high: float = NAN
    diff_boot_low: float = NAN  # BCa bootstrap of the mean paired difference
    diff_boot_high: float = NAN
    ratio: float = NAN  # base ** diff
    ratio_ci_low: float = NAN  # base ** the bootstrap (paired) or Welch (unpaired) interval
    ratio_ci_high: float = NAN
    d_z: float = NAN  # Cohen's d_z (paired rows)
    d_z_ci_low: float = NAN
    d_z_ci_high: float = NAN
    hedges_g: float = NAN  # Hedges' g*_s (unpaired rows)
    sd_diff: float = NAN  # SD of the paired differences, or sqrt((s_a² + s_b²)/2) unpaired
    test: str = ""
    p: float = NAN
    bound: float = NAN  # the margin on the scale
    p_tost: float = NAN  # equivalence: max of the two one-sided p
    p_ni: float = NAN  # non-inferiority: one-sided p of H0 d ≥ bound
    mde: float = NAN  # minimum detectable |d| at power stats.POWER, on the scale
    mde_ratio: float = NAN  # base ** mde
    note: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def _common_seeds(a: pd.Series, b: pd.Series) -> tuple[pd.Index | None, str]:
    if a.index.name != "seed" or b.index.name != "seed":
        return None, "no seeds logged"
    if a.index.has_duplicates or b.index.has_duplicates:
        return None, "a seed repeats within a configuration"
    common = a.index.intersection(b.index).sort_values()
    if len(common) < 2:
        return None, f"{len(common)} common seed(s)"
    return common, ""


def _paired(ta: np.ndarray, tb: np.ndarray, bound: float, extra: str, alpha: float, conf: float) -> dict:
    d = divergence.paired_differences(ta, tb)
    if not np.isfinite(d).all():
        return {
            "test": divergence.WORST_RANK_PAIRED,
            "p": stats.wilcoxon_p(divergence.ranked_finite(d)),
            "diff": divergence.hodges_lehmann_paired(d),
            "note": "a diverged seed: signed-rank test; no mean, CI, effect size or MDE",
        }
    sd = float(d.std(ddof=1))
    out = {"test": "paired t", "diff": float(d.mean()), "sd_diff": sd}
    if stats.no_spread(d):
        return {**out, "note": "no variance across seeds"}
    p, low, high = stats.paired_t(d, confidence=conf)
    out.update(p=p, diff_ci_low=low, diff_ci_high=high, d_z=float(stats.cohens_dz(d)))
    out["diff_boot_low"], out["diff_boot_high"] = stats.bootstrap_ci(d, np.mean, conf)
    out["d_z_ci_low"], out["d_z_ci_high"] = stats.bootstrap_ci(d, stats.cohens_dz, conf)
    if extra == "tost":
        out["p_tost"] = max(stats.paired_t(d, -bound, "greater")[0], stats.paired_t(d, bound, "less")[0])
    elif extra == "ni":
        out["p_ni"] = stats.paired_t(d, bound, "less")[0]
    out["mde"] = stats.mde_paired(len(d), sd, alpha)
    return out


def _unpaired(ta: np.ndarray, tb: np.ndarray, bound: float, extra: str, alpha: float, test: str, conf):
    if not (np.isfinite(ta).all() and np.isfinite(tb).all()):
        ranked = divergence.ranked_finite(np.concatenate([ta, tb]))
        _, p = stats.two_sample_p(ranked[: len(ta)], ranked[len(ta) :], "mannwhitney")
        note = "a diverged seed: rank test; no mean, CI, effect size or MDE"
        return {
            "test": divergence.WORST_RANK_TEST,
            "p": p,
            "diff": divergence.hodges_lehmann(ta, tb),
            "note": note,
        }
    used, p = stats.two_sample_p(ta, tb, test)
    low, high = stats.diff_ci(ta, tb, conf)
    diff = float(ta.mean() - tb.mean()) if len(ta) and len(tb) else NAN
    sd = math.sqrt((ta.var(ddof=1) + tb.var(ddof=1)) / 2) if min(len(ta), len(tb)) >= 2 else NAN
    out = {"test": used, "p": p, "diff": diff, "diff_ci_low": low, "diff_ci_high": high, "sd_diff": sd}
    out["hedges_g"] = stats.hedges_g(ta, tb)
    if stats.no_spread(ta) and stats.no_spread(tb):
        return {**out, "p": NAN, "note": "no variance across seeds"}  # as paired: no p at all
    if extra == "tost":
        lower = stats.two_sample_p(ta, tb, used, -bound, "greater")[1]
        out["p_tost"] = max(lower, stats.two_sample_p(ta, tb, used, bound, "less")[1])
    elif extra == "ni":
        out["p_ni"] = stats.two_sample_p(ta, tb, used, bound, "less")[1]
    out["mde"] = stats.mde_unpaired(len(ta), len(tb), sd, alpha)
    return out


def _on_scale(values: np.ndarray, scale: str) -> np.ndarray:
    if scale == "ln":
        return np.log(values)  # a diverged loss (+inf) stays +inf
    return values


def _ratios(body: dict, base: float | None) -> dict:
    if base is None:
        return {}
    low, high = body.get("diff_boot_low", NAN), body.get("diff_boot_high", NAN)
    if body.get("test") != "paired t":  # unpaired: the Welch interval
        low, high = body.get("diff_ci_low", NAN), body.get("diff_ci_high", NAN)
    out = {"ratio": base ** body.get("diff", NAN), "ratio_ci_low": base**low, "ratio_ci_high": base**high}
    out["mde_ratio"] = base ** body.get("mde", NAN)
    return out


def compare(
    a: pd.Series,
    b: pd.Series,
    scale: str = "raw",
    margin: float | None = None,
    extra: str = "",
    alpha: float = 0.05,
    test: str = "auto",
    confidence: float = 0.95,
) -> Comparison:
    """A vs B (`seeded` Series): paired by seed when ≥ 2 seeds are common and `test` is auto, else
    unpaired (`test` forces Welch or Mann–Whitney); `extra`: also the TOST ("tost") or the
    non-inferiority test ("ni") against `margin` (relative; see `margin_bound`)."""
    if scale not in SCALES or extra not in EXTRAS:
        raise ValueError(f"Invalid scale={scale!r} or extra={extra!r}. Valid: {', '.join(SCALES)}; {EXTRAS}.")
    a, b = a.dropna(), b.dropna()  # NaN = not measured (a diverged run is ±inf, not NaN)
    notes = []
    if scale == "ln" and (stats.finite(np.concatenate([a, b])) <= 0).any():
        scale, notes = "raw", ["raw scale: a value ≤ 0 has no log"]
    bound = margin_bound(margin, scale)
    common, why = _common_seeds(a, b) if test == "auto" else (None, f"--test {test}")
    if common is not None:
        left = len(a) + len(b) - 2 * len(common)
        notes += [f"{left} seed(s) without a partner left out"] if left else []
        a, b = a.loc[common], b.loc[common]
    ta, tb = _on_scale(a.to_numpy(), scale), _on_scale(b.to_numpy(), scale)
    if common is not None:
        body = _paired(ta, tb, bound, extra, alpha, confidence)
    else:
        notes.append(f"unpaired: {why}")
        body = _unpaired(ta, tb, bound, extra, alpha, test, confidence)
    body.update(_ratios(body, SCALES[scale]))
    note = "; ".join([*notes, body.pop("note", "")]).strip("; ")
    fa, fb = stats.finite(a), stats.finite(b)
    return Comparison(
        n_a=len(a),
        n_b=len(b),
        n_pairs=len(common) if common is not None else 0,
        paired=common is not None,
        scale=scale,
        mean_a=float(fa.mean()) if len(fa) else NAN,
        mean_b=float(fb.mean()) if len(fb) else NAN,
        bound=bound,
        note=note,
        **body,
    )

"""The "but" probe over seeds: per-seed tests, intervals over seeds and sentences, verdicts, rates."""

from __future__ import annotations

import warnings

import numpy as np

from experiments.probes import but_stats
from experiments.probes.connectives import WINDOWS
from experiments.report import stats


def gate_tables(per_seed: list[dict]) -> tuple[list[dict], list[dict], dict]:
    """(one row per seed and window, one summary row per window, seed-averaged curves) of one cell;
    `per_seed` items: {"seed", "gate": probe_model.gate_results(...)}. Empty without a keep gate."""
    runs = [r for r in per_seed if r["gate"] is not None]
    if not runs:
        return [], [], {}
    tests, summary = [], []
    for j, window in enumerate(WINDOWS):
        diffs = []
        for r in runs:
            row = but_stats.compare_groups(r["gate"]["drops_contrastive"][:, j], r["gate"]["drops_and"][:, j])
            tests.append({"seed": r["seed"], "window": window, **row})
            diffs.append(row["diff"])
        # Each sentence's drop averaged over seeds: the same sentences in every seed.
        a = np.mean([r["gate"]["drops_contrastive"][:, j] for r in runs], axis=0)
        b = np.mean([r["gate"]["drops_and"][:, j] for r in runs], axis=0)
        boot_low, boot_high = but_stats.bootstrap_diff_ci(a, b)
        over = but_stats.over_seeds(diffs)
        summary.append(
            {
                "window": window,
                **over,
                "mean_drop_contrastive": float(np.mean(a)),
                "mean_drop_and": float(np.mean(b)),
                "hedges_g_sentences": stats.hedges_g(a, b),
                "boot_ci_low": boot_low,
                "boot_ci_high": boot_high,
                "n_contrastive": float(len(a)),
                "n_and": float(len(b)),
                "verdict": but_stats.verdict(over["seeds_ci_low"], over["seeds_ci_high"]),
            }
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an offset no sentence reaches: NaN, as meant
        curves = {
            group: but_stats.mean_curve(np.nanmean([r["gate"][f"curves_{group}"] for r in runs], axis=0))
            for group in ("contrastive", "and")
        }
    return tests, summary, curves


def follow_tables(per_seed: list[dict]) -> tuple[list[dict], list[dict]]:
    """(one row per seed and connective, one pooled row per connective plus 'but − and') of one cell."""
    rows = []
    for r in per_seed:
        f = r["follow"]
        for word in ("but", "and"):
            follows = f[word]["follows"]
            rows.append(
                {
                    "seed": r["seed"],
                    "connective": word,
                    "n_pairs": f["n_pairs"],
                    "rate": float(follows.mean()) if len(follows) else float("nan"),
                    "both_orders": float(f[word]["both_orders"].mean()) if f["n_pairs"] else float("nan"),
                    "n_positive_clauses": f["n_positive_clauses"],
                    "n_negative_clauses": f["n_negative_clauses"],
                }
            )
    pooled = []
    for word in ("but", "and"):
        events = sum(int(r["follow"][word]["follows"].sum()) for r in per_seed)
        n = sum(len(r["follow"][word]["follows"]) for r in per_seed)
        rate, low, high = but_stats.rate_ci(events, n)
        both = [float(r["follow"][word]["both_orders"].mean()) for r in per_seed if r["follow"]["n_pairs"]]
        pooled.append(
            {"connective": word, "rate": rate, "low": low, "high": high, "n": n, "both_orders": _mean(both)}
        )
    by_seed = {(r["seed"], r["connective"]): r["rate"] for r in rows}
    diffs = [by_seed[(r["seed"], "but")] - by_seed[(r["seed"], "and")] for r in per_seed]
    n, mean, low, high = stats.mean_ci(diffs)
    pooled.append(
        {
            "connective": "but − and",
            "rate": mean,
            "low": low,
            "high": high,
            "n": n,
            "both_orders": float("nan"),
        }
    )
    return rows, pooled


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")

"""The agreement probe's tables: accuracy by attractor count (Wilson CIs), balanced accuracy, and
the two verdicts (paired over seeds: seed k of every cell is tested on the same fold).

Verdicts use the balanced accuracy (mean of the singular and plural recalls) over a seed's whole
test fold: the attractor-rich sentences are mostly plural, so plain accuracy rewards a bias.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import balanced_accuracy_score

from experiments.probes import but_stats
from experiments.probes.agreement_data import ATTRACTOR_BUCKETS

CONTRASTS = (
    ("gated cells beat SimpleRNN (LSTM − SimpleRNN)", "lstm", "rnn"),
    ("gated cells beat SimpleRNN (GRU − SimpleRNN)", "gru", "rnn"),
    ("the forget gate matters (LSTM − NFG)", "lstm", "lstm/NFG"),
)
VERDICT_RULE = (
    "per seed, the difference of the two cells' balanced accuracies on the same test fold; "
    "supported if its 95 % t-interval over seeds lies above 0, contradicted if below, else inconclusive"
)


def by_bucket(rows: list[dict]) -> list[dict]:
    """Pooled over seeds: per attractor bucket (and 'all') accuracy [Wilson CI] and balanced accuracy."""
    truth = np.concatenate([r["truth"] for r in rows])
    pred = np.concatenate([r["predicted"] for r in rows])
    bucket = np.concatenate([r["bucket"] for r in rows])
    out = []
    for name in (*ATTRACTOR_BUCKETS, "all"):
        pick = np.ones(len(truth), bool) if name == "all" else bucket == name
        n, hits = int(pick.sum()), int((truth[pick] == pred[pick]).sum())
        rate, low, high = but_stats.rate_ci(hits, n)
        two = n and len(set(truth[pick].tolist())) == 2
        balanced = balanced_accuracy_score(truth[pick], pred[pick]) if two else float("nan")
        share = float(truth[pick].mean()) if n else float("nan")
        out.append(
            {
                "attractors": name,
                "n": n,
                "accuracy": rate,
                "low": low,
                "high": high,
                "balanced": balanced,
                "plural_share": share,
            }
        )
    return out


def seed_balanced(rows: list[dict]) -> dict[int, float]:
    return {r["seed"]: float(balanced_accuracy_score(r["truth"], r["predicted"])) for r in rows}


def verdicts(per_cell: dict[str, list[dict]]) -> list[dict]:
    out = []
    for claim, a, b in CONTRASTS:
        if a not in per_cell or b not in per_cell:
            continue
        sa, sb = seed_balanced(per_cell[a]), seed_balanced(per_cell[b])
        diffs = [sa[s] - sb[s] for s in sorted(set(sa) & set(sb))]
        over = but_stats.over_seeds(diffs)
        verdict = but_stats.verdict(over["seeds_ci_low"], over["seeds_ci_high"])
        out.append({"claim": claim, "a": a, "b": b, **over, "verdict": verdict})
    return out


def lm_by_bucket(choices: np.ndarray, buckets: np.ndarray) -> list[dict]:
    """LM scoring: share of pairs where the correct form wins, by bucket; NaN choices excluded."""
    out = []
    for name in (*ATTRACTOR_BUCKETS, "all"):
        pick = (np.ones(len(choices), bool) if name == "all" else buckets == name) & ~np.isnan(choices)
        rate, low, high = but_stats.rate_ci(int(choices[pick].sum()), int(pick.sum()))
        out.append({"attractors": name, "n": int(pick.sum()), "accuracy": rate, "low": low, "high": high})
    return out

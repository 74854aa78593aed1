"""Which learning rate a configuration keeps: one rule, read by the sweep (to confirm the chosen
rate on fresh seeds) and by the report (to show the choice), so both apply the same one.

The rule: the smallest share of bad seeds (diverged or non-finite: a diverged run never ranks by
the best score it reached before diverging), then the best mean of the selection metric over the
other seeds, then the smaller learning rate. Under a spec's protocol it reads the tuning runs only
(tuning seeds, validation split); the confirmatory runs are never looked at to choose.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from experiments.report import divergence
from experiments.report.metrics import GROUP, PRIMARY


def group_columns(df: pd.DataFrame, by) -> list[str]:
    return list(by) if by is not None else [c for c in GROUP if c in df.columns]


def lr_table(
    df: pd.DataFrame, metric: str = PRIMARY, higher_is_better: bool = False, by=None
) -> pd.DataFrame:
    """Per configuration and learning rate: seeds, diverged seeds, other non-finite seeds, and the mean
    of `metric` over the rest; `chosen` marks the best LR: the smallest share of bad seeds (diverged
    or non-finite: a diverged run never ranks by the best score it reached before diverging), then
    the best mean, then the smaller LR."""
    by = group_columns(df, by)
    rows = []
    for key, g in df.groupby([*by, "learning_rate"], sort=True):
        v = g[metric].to_numpy(dtype=float)
        gone = divergence.diverged(g)
        ok = v[np.isfinite(v) & ~gone]
        rows.append(
            {
                **dict(zip([*by, "learning_rate"], key)),
                "n": len(v),
                "n_diverged": int(gone.sum()),
                "n_nonfinite": int((~np.isfinite(v) & ~gone).sum()),
                "mean": float(ok.mean()) if len(ok) else math.nan,
            }
        )
    table = pd.DataFrame(rows, columns=[*by, "learning_rate", "n", "n_diverged", "n_nonfinite", "mean"])
    score = table["mean"] * (-1 if higher_is_better else 1)
    bad = (table["n_diverged"] + table["n_nonfinite"]) / table["n"].clip(lower=1)
    ranked = table.assign(_bad=bad, _score=score.fillna(math.inf))
    ranked = ranked.sort_values([*by, "_bad", "_score", "learning_rate"])
    table["chosen"] = False
    table.loc[ranked.index[~ranked.duplicated(by, keep="first")], "chosen"] = True
    return table


def best_over_lr(
    df: pd.DataFrame, metric: str = PRIMARY, higher_is_better: bool = False, by=None
) -> pd.DataFrame:
    """The runs at each configuration's best learning rate (see `lr_table`)."""
    by = group_columns(df, by)
    table = lr_table(df, metric, higher_is_better, by)
    keep = table.loc[table["chosen"], [*by, "learning_rate"]]
    return df.merge(keep, on=[*by, "learning_rate"], how="inner")


def protocol_runs(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the runs the learning rates are chosen from, the runs that are judged).

    Under the protocol (`phase` tags, experiments/sweep/protocol.py) the choice reads the tuning
    runs and the judged runs are the confirmatory ones, which ran at the chosen rate on fresh
    seeds; a configuration with a single rate was never tuned and shows its confirmatory runs in
    the choice. Runs from before the protocol (no phase) are chosen among and judged on the same
    seeds, as they were: the report says so (`write.protocol_note`)."""
    phase = runs["phase"] if "phase" in runs else pd.Series([None] * len(runs), index=runs.index)
    legacy, tune, confirm = runs[phase.isna()], runs[phase == "tune"], runs[phase == "confirm"]
    tuned = set(map(tuple, tune[GROUP].to_numpy())) if len(tune) else set()
    untuned = confirm[[tuple(k) not in tuned for k in confirm[GROUP].to_numpy()]]
    choice = pd.concat([tune, untuned, legacy])
    judged = pd.concat([confirm, best_over_lr(legacy, PRIMARY, False)]) if len(legacy) else confirm
    return choice.reset_index(drop=True), judged.reset_index(drop=True)

"""A study's analysis: best-over-LR selection, reference configurations, per-configuration summaries
and the comparisons against the reference (the numbers from `experiments.report.stats`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from experiments.report import comparison, divergence, stats
from experiments.report.descriptors import norm
from experiments.report.load import SweepResults
from experiments.report.metrics import GROUP, JUDGED, PRIMARY, summary_metrics
from experiments.report.selection import group_columns, lr_table, protocol_runs


def config_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration: GROUP, desc, params, n_params, tagged is_reference (None if untagged)."""
    rows = []
    for key, g in runs.groupby(GROUP, sort=True):
        flags = [f for f in g["is_reference"] if isinstance(f, str)]
        rows.append(
            {
                **dict(zip(GROUP, key)),
                "desc": g["desc"].iloc[0],
                "params": g["params"].iloc[0],
                "n_params": float(g["n_params"].mean()) if "n_params" in g else math.nan,
                "tagged_reference": (flags[0] == "true") if flags else None,
            }
        )
    return pd.DataFrame(rows, columns=[*GROUP, "desc", "params", "n_params", "tagged_reference"])


def matches_reference(desc: dict, params: dict, reference: dict) -> bool:
    """Every reference parameter equals the raw param (default if unlogged) or its resolved value."""
    from experiments.training.config import RunConfig

    defaults = RunConfig().as_params()
    for k, v in reference.items():
        want = norm(v)
        raw = norm(params.get(k, defaults.get(k, "")))
        if want not in (raw, desc.get(k)):
            return False
    return True


def assign_references(configs: pd.DataFrame, reference: dict) -> dict[tuple, tuple]:
    """(sweep, task, label) → that of its reference configuration (the reference maps to itself).

    Reference configurations: tagged `is_reference=true` by the sweep, else matching `reference`.
    With several in one study and task, each configuration gets the one differing in fewest params.
    """
    out = {}
    for (sweep, task), g in configs.groupby(["sweep", "task"]):
        rows = g.to_dict("records")
        tagged = [r for r in rows if r["tagged_reference"] is not None]
        if tagged:
            refs = [r for r in rows if r["tagged_reference"]]
        else:
            refs = [r for r in rows if reference and matches_reference(r["desc"], r["params"], reference)]
        for r in rows:
            if not refs:
                continue
            best = min(
                refs,
                key=lambda x: (sum(x["desc"].get(k) != v for k, v in r["desc"].items()), x["config_label"]),
            )
            out[(sweep, task, r["config_label"])] = (sweep, task, best["config_label"])
    return out


def _values(df: pd.DataFrame, key: tuple, metric: str) -> pd.Series:
    """The configuration's `metric` per run, indexed by seed, a diverged run's at the worst value
    (`comparison.seeded`)."""
    mask = np.ones(len(df), dtype=bool)
    for col, v in zip(GROUP, key):
        mask &= (df[col] == v).to_numpy()
    return comparison.seeded(df.loc[mask], metric)


def summarize(
    chosen: pd.DataFrame, metrics: list[str] | None = None, confidence: float = 0.95
) -> pd.DataFrame:
    """Per configuration (rows of `chosen` = best-over-LR seeds): LR, seeds, rates, mean/CI per metric.

    A diverged seed is not solved. `steps_to_solve` is averaged over solved seeds only; outcome
    metrics (losses, the task metric) over the seeds that did not diverge (`divergence.counted`);
    other metrics over seeds with finite values. The divergence rate has its Wilson interval
    (`divergence_ci_low/high`).
    """
    by = group_columns(chosen, None)
    task = chosen["task"].iloc[0] if "task" in chosen and len(chosen) else "copy"
    metrics = metrics or summary_metrics(task)
    rows = []
    for key, g in chosen.groupby(by, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        solved = g["solved"].to_numpy(dtype=float) if "solved" in g else np.zeros(len(g))
        diverged = g["diverged"].to_numpy(dtype=float) if "diverged" in g else np.zeros(len(g))
        n_div = int(np.nansum(diverged == 1))
        solved = np.where(diverged == 1, 0.0, solved)  # what a diverged run ended with is no solution
        row = {
            **dict(zip(by, key)),
            "learning_rate": float(g["learning_rate"].iloc[0]),
            "n_seeds": len(g),
            "n_solved": int(np.nansum(solved == 1)),
            "solve_rate": float(np.nanmean(solved == 1)),
            "n_diverged": n_div,
            "divergence_rate": float(np.nanmean(diverged == 1)),
            **dict(zip(("divergence_ci_low", "divergence_ci_high"), divergence.rate_ci(n_div, len(g)))),
            "n_params": float(g["n_params"].mean()) if "n_params" in g else math.nan,
        }
        for m in metrics:
            values = divergence.counted(g, m)
            if m == "steps_to_solve" and len(values):
                values = values[solved == 1]
            n, mean, low, high = stats.mean_ci(values, confidence)
            row.update({f"{m}_n": n, f"{m}_mean": mean, f"{m}_ci_low": low, f"{m}_ci_high": high})
        rows.append(row)
    return pd.DataFrame(rows)


def compare_to_reference(
    chosen: pd.DataFrame, references: dict[tuple, tuple], metric: str = PRIMARY, test: str = "auto"
) -> pd.DataFrame:
    """Each non-reference configuration vs its reference on `metric` by `stats.TEST_RULE`
    (`comparison.compare`: paired by seed where seeds match, loss ratios on the log scale, a
    diverged seed ranked worst); `p_holm` corrects over the configurations of one study and task."""
    rows = []
    for key, ref in sorted(references.items()):
        if key == ref:
            continue
        a, b = _values(chosen, key, metric), _values(chosen, ref, metric)
        c = comparison.compare(a, b, comparison.scale_of(metric), test=test)
        rows.append({**dict(zip(GROUP, key)), "reference": ref[2], "metric": metric, **c.as_dict()})
    cols = [*GROUP, "reference", "metric", *comparison.Comparison.__dataclass_fields__]
    out = pd.DataFrame(rows, columns=cols)
    out["p_holm"] = np.nan
    for _, idx in out.groupby(["sweep", "task"]).groups.items():
        out.loc[idx, "p_holm"] = stats.holm(out.loc[idx, "p"].to_numpy(dtype=float))
    return out


def spec_reference(sweep: SweepResults) -> dict:
    """The reference configuration a sweep names: its spec's `reference`, else the parent's tag."""
    tagged = sweep.tags.get("reference", "").split()
    return sweep.spec.get("reference") or dict(kv.split("=", 1) for kv in tagged if "=" in kv)


@dataclass
class Analysis:
    """What every table, plot and claim of a report is computed from."""

    runs: pd.DataFrame  # every FINISHED trial of every sweep
    lr_selection: pd.DataFrame  # `lr_table` of PRIMARY over the tuning runs (`selection.protocol_runs`)
    chosen: pd.DataFrame  # the judged runs: confirmatory, at each configuration's chosen rate
    configs: pd.DataFrame  # `config_table`
    references: dict[tuple, tuple]  # `assign_references`, over all sweeps
    comparisons: pd.DataFrame  # `compare_to_reference` on JUDGED (the test split)


def analyse(sweeps: list[SweepResults], runs: pd.DataFrame, test: str = "auto") -> Analysis:
    """Best-over-LR selection, references and comparisons of the runs of `sweeps` (`runs`, concatenated)."""
    configs = config_table(runs)
    references: dict = {}
    for s in sweeps:
        references.update(assign_references(configs[configs["sweep"] == s.label], spec_reference(s)))
    choice, chosen = protocol_runs(runs)
    return Analysis(
        runs=runs,
        lr_selection=lr_table(choice, PRIMARY, False),
        chosen=chosen,
        configs=configs,
        references=references,
        comparisons=compare_to_reference(chosen, references, JUDGED, test),
    )


def task_summary(analysis: Analysis, sweep: str, task: str) -> tuple[pd.DataFrame, pd.DataFrame, set[str]]:
    """(its best-over-LR runs, its summary table with the comparisons, its reference labels) for one
    study and task."""
    chosen = analysis.chosen
    sub = chosen[(chosen["sweep"] == sweep) & (chosen["task"] == task)]
    table = summarize(sub, summary_metrics(task)).merge(analysis.comparisons, on=GROUP, how="left")
    refs = {k[2] for k in analysis.references.values() if k[:2] == (sweep, task)}
    table["is_reference"] = table["config_label"].isin(refs)
    return sub, table, refs

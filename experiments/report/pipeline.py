"""MLproject `report`: tables, plots and the claims checklist for one or more finished sweeps.

    python -m experiments.report --sweep forget_bias                  # a study name: its latest sweep
    python -m experiments.report --sweep <parent run id> --sweep gate_ablation --out reports/
    mlflow run . -e report -P sweep=forget_bias,gradient_flow

A sweep is a parent run (tag `sweep_role=parent`) and its FINISHED child runs. Per configuration the
learning rate with the best mean `best_val_loss_over_baseline` over seeds is chosen (best-over-LR),
and its seeds are summarised: mean and 95 % t-interval of the summary metrics, solve and divergence
rates, Hedges' g and a two-sided test against the sweep's reference configuration (Holm-corrected
within each study and task). Plots: learning curves with seed bands, final metrics with CIs, the
forget-bias curve, gradient-flow ratios, gate saturation. `claims.md`/`claims.json` judge claims
a–i (rules in `experiments/report/claims.py`). `report.md` links it all; `report.html` is the same report
in one self-contained file (plots embedded, CSVs as tables, no external resources). Everything goes
to `<out>/<study or combined>/` and is logged as artifacts (`report/`) on each parent run; no run is
started or ended.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import math
import os
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from experiments.report import claims as cl
from experiments.report import stats
from experiments.report.claims import FLOW, FLOW_FINAL, GROUP, PRIMARY

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

# Task → (metric, higher is better), as the tasks define them (not imported: that loads TensorFlow).
TASK_METRICS = {
    "copy": ("recall_accuracy", True),
    "adding": ("mse", False),
    "char_lm": ("bpc", False),
    "sentiment": ("accuracy", True),
}
PROJECT_ROOT = Path(__file__).resolve().parents[2]
RUN_ID = re.compile(r"^[0-9a-f]{32}$")


class ReportError(RuntimeError):
    """A sweep that cannot be found or read; the message says which and what exists."""


def task_metric(task: str) -> tuple[str, bool]:
    return TASK_METRICS.get(task, ("metric", False))


def summary_metrics(task: str) -> list[str]:
    m, _ = task_metric(task)
    return [PRIMARY, f"best_val_{m}", f"final_val_{m}", "steps_to_solve", FLOW, FLOW_FINAL]


# ----------------------------------------------------------------------------- loading


@dataclass
class Sweep:
    parent_id: str
    study: str
    label: str  # the study, or study@<id prefix> when one study is given twice
    experiment_id: str
    tags: dict
    metrics: dict
    spec: dict
    spec_source: str
    runs: pd.DataFrame  # tidy FINISHED children, one per trial
    statuses: dict = field(default_factory=dict)
    retried: list[str] = field(default_factory=list)  # FINISHED trials whose first attempt died


def resolve_parent(client, ref: str):
    """A parent run from its id, or the most recent parent tagged `study=<ref>` in any experiment."""
    import mlflow
    from mlflow.exceptions import MlflowException

    if RUN_ID.match(ref):
        try:
            run = client.get_run(ref)
        except MlflowException as error:
            raise ReportError(f"no run {ref} in {mlflow.get_tracking_uri()}: {error.message}") from None
        if run.data.tags.get("sweep_role") != "parent":
            raise ReportError(
                f"run {ref} is not a sweep parent (tag sweep_role={run.data.tags.get('sweep_role')!r})"
            )
        return run
    if "'" in ref or not ref:
        raise ReportError(f"invalid sweep {ref!r}: a parent run id or a study name (no quotes)")
    found = mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"tags.sweep_role = 'parent' and tags.study = '{ref}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
        output_format="list",
    )
    if not found:
        parents = mlflow.search_runs(
            search_all_experiments=True, filter_string="tags.sweep_role = 'parent'", output_format="list"
        )
        studies = sorted({r.data.tags.get("study", "?") for r in parents})
        raise ReportError(
            f"no sweep parent run with study={ref!r} in {mlflow.get_tracking_uri()}. "
            f"Valid choices: a parent run id or one of: {', '.join(studies) or '(no sweeps)'}."
        )
    return found[0]


def load_spec(client, parent) -> tuple[dict, str]:
    """(spec, where it came from): the copy the sweep logged on its parent (exactly what ran), else
    the tagged path, else experiments/sweeps/<study>.yaml; ({}, "not found") if none reads.

    Only `reference` (when children lack the `is_reference` tag) and `claims` are used from it.
    """
    import yaml

    tag = parent.data.tags.get("sweep_spec", "")
    study = parent.data.tags.get("study", "")
    try:
        names = [
            a.path for a in client.list_artifacts(parent.info.run_id) if a.path.endswith((".yaml", ".yml"))
        ]
    except Exception:  # an unreachable artifact store: fall back to the project's files
        names = []
    sources = []
    if names:
        name = next((n for n in names if Path(n).name == Path(tag).name), names[0])
        sources.append(
            (lambda: client.download_artifacts(parent.info.run_id, name), f"artifact {name} of the parent")
        )
    for path in ([Path(tag), PROJECT_ROOT / tag] if tag else []) + [
        PROJECT_ROOT / "experiments" / "sweeps" / f"{study}.yaml"
    ]:
        sources.append((lambda path=path: path, str(path)))
    for locate, where in sources:
        try:
            spec = yaml.safe_load(Path(locate()).read_text())
        except Exception:  # missing, unreadable (artifact store) or not YAML: try the next
            continue
        if isinstance(spec, dict):
            return spec, where
    return {}, "not found"


def _clean(mapping: dict) -> dict:
    return {k: v for k, v in mapping.items() if isinstance(v, str)}


def tidy(raw: pd.DataFrame, sweep: str, study: str) -> pd.DataFrame:
    """FINISHED children (latest per trial_key), metrics unprefixed, params/tags kept as mlflow names."""
    if raw.empty or "status" not in raw:
        return pd.DataFrame(columns=["run_id", *GROUP, "learning_rate", "seed"])
    df = raw[raw["status"] == "FINISHED"].sort_values("start_time")
    if "tags.trial_key" in df:
        keyed = df["tags.trial_key"].notna()
        df = pd.concat([df[keyed].drop_duplicates("tags.trial_key", keep="last"), df[~keyed]])
    df = df.reset_index(drop=True)
    out = pd.DataFrame({"run_id": df["run_id"], "sweep": sweep, "study": study})
    params = [{k[7:]: v for k, v in r.items() if k.startswith("params.")} for r in df.to_dict("records")]
    tags = [_clean({k[5:]: v for k, v in r.items() if k.startswith("tags.")}) for r in df.to_dict("records")]
    out["task"] = [t.get("task") or p.get("task", "copy") for p, t in zip(params, tags)]
    out["learning_rate"] = [float(p.get("learning_rate", "nan")) for p in params]
    out["seed"] = [int(float(p.get("seed", "0"))) for p in params]
    out["start_time"] = df["start_time"].to_numpy()
    descs = [cl.descriptor(_clean(p), t) for p, t in zip(params, tags)]
    out["config_label"] = [t.get("config_label") for t in tags]
    if out["config_label"].isna().any():  # not made by experiments.sweep: label what varies
        varying = sorted({k for d in descs for k in d if len({x.get(k) for x in descs}) > 1})
        fallback = [" ".join(f"{k}={d[k]}" for k in varying) or "all" for d in descs]
        out["config_label"] = out["config_label"].fillna(pd.Series(fallback))
    out["desc"] = descs
    out["params"] = [_clean(p) for p in params]
    out["is_reference"] = [t.get("is_reference") for t in tags]
    for col in df.columns:
        if col.startswith("metrics."):
            out[col[8:]] = df[col].astype(float).to_numpy()
    for name, src in ((FLOW, "grad_flow_ratio_init"), (FLOW_FINAL, "grad_flow_ratio_final")):
        values = out[src].to_numpy(dtype=float) if src in out else np.full(len(out), np.nan)
        # A ratio of exactly 0 is a gradient that underflowed float32: it vanished, so it counts
        # at the float32 floor (an upper bound on its true size) instead of being dropped.
        floored = np.where(values == 0, np.finfo(np.float32).smallest_subnormal, values)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[name] = np.where(floored > 0, np.log10(floored), np.nan)
    return out


def with_constants(client, raw: pd.DataFrame) -> pd.DataFrame:
    """`raw` with each FINISHED child's unlogged parameters (its sweep's constants) filled in from
    its config.json artifact, so a configuration is described by every parameter it ran with."""
    from concurrent.futures import ThreadPoolExecutor

    from experiments.tracking.records import config_params

    if raw.empty or "status" not in raw:
        return raw
    rows = raw.index[raw["status"] == "FINISHED"]
    with ThreadPoolExecutor(8) as pool:  # one small download per run; I/O-bound
        full = list(pool.map(lambda i: config_params(client, raw.at[i, "run_id"]), rows))
    filled = pd.DataFrame(
        [{f"params.{k}": v for k, v in p.items()} for p in full], index=rows, dtype=object
    ).reindex(raw.index)
    return raw.combine_first(filled) if len(filled.columns) else raw


def load_sweep(client, ref: str) -> Sweep:
    import mlflow

    parent = resolve_parent(client, ref)
    raw = mlflow.search_runs(
        experiment_ids=[parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    )
    raw = with_constants(client, raw)
    spec, source = load_spec(client, parent)
    study = parent.data.tags.get("study") or spec.get("study") or parent.info.run_id[:8]
    statuses = raw["status"].value_counts().to_dict() if len(raw) else {}
    retried = [
        f"`{r.get('tags.config_label')} lr={r.get('params.learning_rate')} s{r.get('params.seed')}` "
        f"on {node if isinstance(node := r.get('tags.ray_node_ip'), str) else 'this machine'} "
        f"(replaced run {r['tags.retried_from']})"
        for r in (raw.to_dict("records") if "tags.retried_from" in raw else [])
        if r["status"] == "FINISHED" and isinstance(r["tags.retried_from"], str) and r["tags.retried_from"]
    ]
    return Sweep(
        parent_id=parent.info.run_id,
        study=study,
        label=study,
        experiment_id=parent.info.experiment_id,
        tags=dict(parent.data.tags),
        metrics=dict(parent.data.metrics),
        spec=spec,
        spec_source=source,
        runs=tidy(raw, study, study),
        statuses={str(k): int(v) for k, v in statuses.items()},
        retried=retried,
    )


# ----------------------------------------------------------------------------- analysis


def _by(df: pd.DataFrame, by) -> list[str]:
    return list(by) if by is not None else [c for c in GROUP if c in df.columns]


def lr_table(
    df: pd.DataFrame, metric: str = PRIMARY, higher_is_better: bool = False, by=None
) -> pd.DataFrame:
    """Per configuration and learning rate: seeds, non-finite seeds, mean of `metric`; `chosen` marks
    the best LR (fewest non-finite seeds first, then the best mean, then the smaller LR)."""
    by = _by(df, by)
    rows = []
    for key, g in df.groupby([*by, "learning_rate"], sort=True):
        v = g[metric].to_numpy(dtype=float)
        ok = v[np.isfinite(v)]
        rows.append(
            {
                **dict(zip([*by, "learning_rate"], key)),
                "n": len(v),
                "n_nonfinite": len(v) - len(ok),
                "mean": float(ok.mean()) if len(ok) else math.nan,
            }
        )
    table = pd.DataFrame(rows, columns=[*by, "learning_rate", "n", "n_nonfinite", "mean"])
    score = table["mean"] * (-1 if higher_is_better else 1)
    ranked = table.assign(_bad=table["n_nonfinite"] / table["n"].clip(lower=1), _score=score.fillna(math.inf))
    ranked = ranked.sort_values([*by, "_bad", "_score", "learning_rate"])
    table["chosen"] = False
    table.loc[ranked.index[~ranked.duplicated(by, keep="first")], "chosen"] = True
    return table


def best_over_lr(
    df: pd.DataFrame, metric: str = PRIMARY, higher_is_better: bool = False, by=None
) -> pd.DataFrame:
    """The runs at each configuration's best learning rate (see `lr_table`)."""
    by = _by(df, by)
    table = lr_table(df, metric, higher_is_better, by)
    keep = table.loc[table["chosen"], [*by, "learning_rate"]]
    return df.merge(keep, on=[*by, "learning_rate"], how="inner")


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
        want = cl.norm(v)
        raw = cl.norm(params.get(k, defaults.get(k, "")))
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


def _values(df: pd.DataFrame, key: tuple, metric: str) -> np.ndarray:
    mask = np.ones(len(df), dtype=bool)
    for col, v in zip(GROUP, key):
        mask &= (df[col] == v).to_numpy()
    return df.loc[mask, metric].to_numpy(dtype=float) if metric in df else np.array([])


def summarize(
    chosen: pd.DataFrame, metrics: list[str] | None = None, confidence: float = 0.95
) -> pd.DataFrame:
    """Per configuration (rows of `chosen` = best-over-LR seeds): LR, seeds, rates, mean/CI per metric.

    `steps_to_solve` is averaged over solved seeds only; other metrics over seeds with finite values.
    """
    by = _by(chosen, None)
    task = chosen["task"].iloc[0] if "task" in chosen and len(chosen) else "copy"
    metrics = metrics or summary_metrics(task)
    rows = []
    for key, g in chosen.groupby(by, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        solved = g["solved"].to_numpy(dtype=float) if "solved" in g else np.zeros(len(g))
        diverged = g["diverged"].to_numpy(dtype=float) if "diverged" in g else np.zeros(len(g))
        row = {
            **dict(zip(by, key)),
            "learning_rate": float(g["learning_rate"].iloc[0]),
            "n_seeds": len(g),
            "n_solved": int(np.nansum(solved == 1)),
            "solve_rate": float(np.nanmean(solved == 1)),
            "n_diverged": int(np.nansum(diverged == 1)),
            "divergence_rate": float(np.nanmean(diverged == 1)),
            "n_params": float(g["n_params"].mean()) if "n_params" in g else math.nan,
        }
        for m in metrics:
            values = g[m].to_numpy(dtype=float) if m in g else np.array([])
            if m == "steps_to_solve" and len(values):
                values = values[solved == 1]
            n, mean, low, high = stats.mean_ci(values, confidence)
            row.update({f"{m}_n": n, f"{m}_mean": mean, f"{m}_ci_low": low, f"{m}_ci_high": high})
        rows.append(row)
    return pd.DataFrame(rows)


def compare_to_reference(
    chosen: pd.DataFrame, references: dict[tuple, tuple], metric: str = PRIMARY, test: str = "auto"
) -> pd.DataFrame:
    """Each non-reference configuration vs its reference on `metric`: difference (Welch CI), Hedges'
    g, test and p; `p_holm` corrects over the configurations of one study and task."""
    rows = []
    for key, ref in sorted(references.items()):
        if key == ref:
            continue
        c = stats.compare(_values(chosen, key, metric), _values(chosen, ref, metric), test)
        rows.append({**dict(zip(GROUP, key)), "reference": ref[2], **c.as_dict()})
    cols = [*GROUP, "reference", *stats.Comparison.__dataclass_fields__, "p_holm"]
    out = pd.DataFrame(rows, columns=cols[:-1])
    out["p_holm"] = np.nan
    for _, idx in out.groupby(["sweep", "task"]).groups.items():
        out.loc[idx, "p_holm"] = stats.holm(out.loc[idx, "p"].to_numpy(dtype=float))
    return out


# ----------------------------------------------------------------------------- plots


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return path.name


def histories(client, run_ids, key: str = "val_loss") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for run_id in run_ids:
        points = {
            m.step: m.value for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.timestamp)
        }
        steps = np.array(sorted(points), dtype=float)
        out[run_id] = (steps, np.array([points[s] for s in sorted(points)], dtype=float))
    return out


def seed_band(curves: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps, mean, sd) over seeds; a run that stopped early (solved/diverged) keeps its last value."""
    curves = [(s[np.isfinite(v)], v[np.isfinite(v)]) for s, v in curves]
    curves = [c for c in curves if len(c[0])]
    if not curves:
        return np.array([]), np.array([]), np.array([])
    steps = np.unique(np.concatenate([s for s, _ in curves]))
    grid = np.full((len(curves), len(steps)), np.nan)
    for i, (s, v) in enumerate(curves):
        idx = np.searchsorted(s, steps, side="right") - 1
        grid[i] = np.where(idx >= 0, v[np.clip(idx, 0, None)], np.nan)
    with np.errstate(invalid="ignore"):
        sd = np.nanstd(grid, axis=0, ddof=1) if len(curves) > 1 else np.zeros(len(steps))
    return steps, np.nanmean(grid, axis=0), np.nan_to_num(sd)


def plot_learning_curves(chosen: pd.DataFrame, hist: dict, task: str, title: str, path: Path) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    names = cl.short_labels(chosen["config_label"])
    for label, g in chosen.groupby("config_label", sort=True):
        steps, mean, sd = seed_band([hist[r] for r in g["run_id"] if r in hist])
        if len(steps):
            (line,) = ax.plot(steps, mean, label=f"{names[label]} (n={len(g)})")
            ax.fill_between(steps, mean - sd, mean + sd, color=line.get_color(), alpha=0.2)
    if "baseline" in chosen and chosen["baseline"].notna().any():
        ax.axhline(chosen["baseline"].mean(), color="grey", linestyle="--", label="memoryless baseline")
    ax.set(xlabel="step", ylabel="val_loss", title=f"{title}: val_loss, mean ± sd over seeds (best LR)")
    ax.legend(fontsize=7)
    return _save(fig, path)


def _bars(ax, table: pd.DataFrame, metric: str, task: str, refs: set, log: bool = False) -> None:
    x = np.arange(len(table))
    mean = table[f"{metric}_mean"].to_numpy(dtype=float)
    low, high = (
        table[f"{metric}_ci_low"].to_numpy(dtype=float),
        table[f"{metric}_ci_high"].to_numpy(dtype=float),
    )
    err = np.nan_to_num(np.vstack([mean - low, high - mean]))
    colors = ["tab:orange" if lbl in refs else "tab:blue" for lbl in table["config_label"]]
    names = cl.short_labels(table["config_label"])
    ax.bar(x, mean, yerr=err, capsize=3, color=colors)
    ax.set_xticks(x, [names[lbl] for lbl in table["config_label"]], rotation=45, ha="right", fontsize=7)
    ax.set_title(f"{metric} (95 % CI)", fontsize=9)
    if log:
        ax.set_yscale("log")


def plot_final(table: pd.DataFrame, task: str, refs: set, title: str, path: Path) -> str:
    plt = _plt()
    m, _ = task_metric(task)
    fig, axes = plt.subplots(1, 2, figsize=(max(8, 0.7 * len(table) + 4), 4.5))
    _bars(axes[0], table, PRIMARY, task, refs)
    axes[0].axhline(1.0, color="grey", linestyle="--")
    _bars(axes[1], table, f"best_val_{m}", task, refs)
    fig.suptitle(f"{title} (orange: reference)")
    return _save(fig, path)


def forget_bias_groups(configs: pd.DataFrame) -> list[list[dict]]:
    """Configurations equal except for a numeric forget bias, ≥ 2 distinct values: one list per line."""
    groups: dict[tuple, list[dict]] = {}
    for r in configs.to_dict("records"):
        try:
            float(r["desc"]["forget_bias"])
        except ValueError:
            continue
        rest = tuple(sorted((k, v) for k, v in r["desc"].items() if k != "forget_bias"))
        groups.setdefault(rest, []).append(r)
    return [g for g in groups.values() if len({r["desc"]["forget_bias"] for r in g}) > 1]


def plot_forget_bias(table: pd.DataFrame, groups: list[list[dict]], task: str, title: str, path: Path) -> str:
    plt = _plt()
    m, _ = task_metric(task)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    by_label = table.set_index("config_label")
    for group in groups:
        group = sorted(group, key=lambda r: float(r["desc"]["forget_bias"]))
        rows = by_label.loc[[r["config_label"] for r in group]]
        fb = [float(r["desc"]["forget_bias"]) for r in group]
        name = ", ".join(f"{k}={group[0]['desc'][k]}" for k in ("cell", "variant", "seq_len", "units"))
        for ax, metric in zip(axes, (f"best_val_{m}", PRIMARY)):
            mean = rows[f"{metric}_mean"].to_numpy(dtype=float)
            low, high = (
                rows[f"{metric}_ci_low"].to_numpy(dtype=float),
                rows[f"{metric}_ci_high"].to_numpy(dtype=float),
            )
            ax.errorbar(
                fb,
                mean,
                yerr=np.nan_to_num(np.vstack([mean - low, high - mean])),
                marker="o",
                capsize=3,
                label=name,
            )
            ax.set(xlabel="forget bias", ylabel=metric, title=f"{metric} (95 % CI)")
    axes[0].legend(fontsize=7)
    fig.suptitle(
        f"{title}: metric vs forget bias (non-numeric biases, e.g. chrono: see the table)", fontsize=9
    )
    return _save(fig, path)


def plot_gradient_flow(table: pd.DataFrame, task: str, refs: set, title: str, path: Path) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(7, 0.7 * len(table) + 3), 4.5))
    x = np.arange(len(table))
    names = cl.short_labels(table["config_label"])
    for offset, metric, name in ((-0.15, FLOW, "init"), (0.15, FLOW_FINAL, "final")):
        mean = table[f"{metric}_mean"].to_numpy(dtype=float)
        low, high = (
            table[f"{metric}_ci_low"].to_numpy(dtype=float),
            table[f"{metric}_ci_high"].to_numpy(dtype=float),
        )
        err = np.nan_to_num(np.vstack([10**mean - 10**low, 10**high - 10**mean]))
        ax.errorbar(x + offset, 10**mean, yerr=err, fmt="o", capsize=3, label=name)
    ax.set_yscale("log")
    ax.set_xticks(
        x,
        [names[lbl] + (" (ref)" if lbl in refs else "") for lbl in table["config_label"]],
        rotation=45,
        ha="right",
        fontsize=7,
    )
    ax.set(ylabel="‖∂L/∂h_1‖ / ‖∂L/∂h_T‖", title=f"{title}: gradient-flow ratio, geometric mean (95 % CI)")
    ax.legend()
    return _save(fig, path)


def gate_columns(df: pd.DataFrame) -> list[str]:
    return sorted(
        c for c in df.columns if re.fullmatch(r"gate_\w+_sat_(low|high)", c) and df[c].notna().any()
    )


def plot_gates(chosen: pd.DataFrame, task: str, title: str, path: Path) -> str:
    """Heatmap: per configuration (rows) each gate's saturated fractions at the last evaluation (the
    run's latest value), averaged over seeds."""
    plt = _plt()
    cols = gate_columns(chosen)
    means = chosen.groupby("config_label", sort=True)[cols].mean()
    names = cl.short_labels(means.index)
    fig, ax = plt.subplots(figsize=(1.1 * len(cols) + 4, 0.45 * len(means) + 2))
    image = ax.imshow(means.to_numpy(dtype=float), vmin=0, vmax=1, cmap="viridis", aspect="auto")
    for (i, j), v in np.ndenumerate(means.to_numpy(dtype=float)):
        if np.isfinite(v):
            ax.text(
                j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if v < 0.6 else "black"
            )
    ax.set_xticks(
        range(len(cols)), [c.removeprefix("gate_") for c in cols], rotation=45, ha="right", fontsize=8
    )
    ax.set_yticks(range(len(means)), [names[lbl] for lbl in means.index], fontsize=7)
    fig.colorbar(image, ax=ax, label="fraction of gate values")
    ax.set_title(
        f"{title}: gate saturation at the last step\n(sat_low: < 0.05, sat_high: > 0.95; blank: no gate)",
        fontsize=9,
    )
    return _save(fig, path)


# ----------------------------------------------------------------------------- writing


def _ci(row, metric: str) -> str:
    mean = row.get(f"{metric}_mean", math.nan)
    if not np.isfinite(mean):
        return "–"
    low, high = row.get(f"{metric}_ci_low"), row.get(f"{metric}_ci_high")
    return f"{cl.fmt(mean)} [{cl.fmt(low)}, {cl.fmt(high)}]" if np.isfinite(low) else cl.fmt(mean)


def table_markdown(table: pd.DataFrame, task: str, refs: set) -> str:
    m, higher = task_metric(task)
    header = [
        "configuration",
        "LR",
        "n",
        f"{PRIMARY}",
        f"best_val_{m} ({'↑' if higher else '↓'})",
        f"final_val_{m}",
        "steps_to_solve (solved)",
        "solved",
        "diverged",
        "log10 flow init / final",
        "n_params",
        "Δ vs ref [95 % CI]",
        "g",
        "test",
        "p (Holm)",
    ]
    rows = []
    for r in table.to_dict("records"):
        is_ref = r["config_label"] in refs
        rows.append(
            [
                ("**ref** " if is_ref else "") + r["config_label"].replace(f"task={task}", "").strip(),
                cl.fmt(r["learning_rate"]),
                r["n_seeds"],
                _ci(r, PRIMARY),
                _ci(r, f"best_val_{m}"),
                _ci(r, f"final_val_{m}"),
                _ci(r, "steps_to_solve"),
                f"{r['n_solved']}/{r['n_seeds']}",
                f"{r['n_diverged']}/{r['n_seeds']}",
                f"{cl.fmt(r.get(f'{FLOW}_mean'))} / {cl.fmt(r.get(f'{FLOW_FINAL}_mean'))}",
                cl.fmt(r["n_params"], 6),
                "–"
                if is_ref or not np.isfinite(r.get("diff", math.nan))
                else f"{cl.fmt(r['diff'])} [{cl.fmt(r['diff_ci_low'])}, {cl.fmt(r['diff_ci_high'])}]",
                "–" if is_ref else cl.fmt(r.get("hedges_g"), 2),
                "–" if is_ref else r.get("test") or "–",
                "–" if is_ref else f"{cl.fmt(r.get('p'), 2)} ({cl.fmt(r.get('p_holm'), 2)})",
            ]
        )
    return cl.markdown_table(header, rows)


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


def listed_claims(sweep: Sweep) -> set[str]:
    """Claim ids the sweep says it informs: the parent's `claims` tag, else the spec's `claims:`."""
    text = sweep.tags.get("claims") or ",".join(str(c) for c in sweep.spec.get("claims") or [])
    return {c.strip() for c in text.split(",") if c.strip()}


@dataclass
class Report:
    folder: Path
    files: list[str]
    claims: list[dict]
    summary: pd.DataFrame
    comparisons: pd.DataFrame
    lr_selection: pd.DataFrame


def build(
    sweeps: list[Sweep], out: Path, client=None, opts: cl.Options | None = None, plots: bool = True
) -> Report:
    """Analyse `sweeps` and write every table, plot and the claims checklist into `out` (created)."""
    opts = opts or cl.Options()
    out.mkdir(parents=True, exist_ok=True)
    for old in out.iterdir():  # a previous report's files (e.g. a plot not made this time) would be logged
        if old.is_file() and (old.suffix in (".png", ".csv", ".md", ".html") or old.name == "claims.json"):
            old.unlink()
    runs = pd.concat([s.runs for s in sweeps], ignore_index=True)
    if runs.empty:
        raise ReportError(f"no FINISHED child runs in sweep(s) {', '.join(s.parent_id for s in sweeps)}")
    lrs = lr_table(runs, PRIMARY, False)
    chosen = best_over_lr(runs, PRIMARY, False)
    configs = config_table(runs)
    references: dict = {}
    for s in sweeps:
        reference = s.spec.get("reference") or dict(
            kv.split("=", 1) for kv in s.tags.get("reference", "").split() if "=" in kv
        )
        references.update(assign_references(configs[configs["sweep"] == s.label], reference))
    comparisons = compare_to_reference(chosen, references, PRIMARY, opts.test)
    files, sections, tables = [], [], []
    for s in sweeps:
        sections += _sweep_header(s, runs)
        for task in sorted(runs.loc[runs["sweep"] == s.label, "task"].unique()):
            sub = chosen[(chosen["sweep"] == s.label) & (chosen["task"] == task)]
            table = summarize(sub, summary_metrics(task))
            table = table.merge(comparisons, on=GROUP, how="left")
            refs = {k[2] for k in references.values() if k[:2] == (s.label, task)}
            table["is_reference"] = table["config_label"].isin(refs)
            tables.append(table)
            name = f"{slug(s.label)}_{slug(task)}"
            table.to_csv(out / f"summary_{name}.csv", index=False)
            files.append(f"summary_{name}.csv")
            ref_text = ", ".join(sorted(refs)) or "none found (no vs-reference columns)"
            sections += [
                f"### {s.label} — {task}",
                "",
                f"Reference: {ref_text}. Metric direction: "
                f"`{task_metric(task)[0]}` {'higher' if task_metric(task)[1] else 'lower'} is better; "
                f"`{PRIMARY}` lower is better.",
                "",
                table_markdown(table, task, refs),
                "",
            ]
            if plots:
                sections += _task_plots(s, task, sub, table, configs, refs, out, client, files)
    summary = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    lrs.to_csv(out / "lr_selection.csv", index=False)
    comparisons.to_csv(out / "comparisons.csv", index=False)
    listed = {s.label: listed_claims(s) for s in sweeps}
    results = cl.evaluate(configs, chosen, runs, opts, listed)
    claim_plots = {c.id: c.plots for c in cl.CLAIMS}
    for r in results:
        r["plots"] = []
        if plots and r["verdict"] != cl.NOT_TESTED:
            name = cl.plot_claim(r, out / f"claim_{r['id']}.png")
            r["plots"] += [name] if name else []
        used = {(c["sweep"], c["task"]) for p in r["parts"] for c in p["contrasts"]}
        r["plots"] += sorted(
            f
            for f in files
            if any(f.startswith(f"{k}_{slug(sw)}_{slug(t)}") for k in claim_plots[r["id"]] for sw, t in used)
        )
    files += [f"claim_{r['id']}.png" for r in results if f"claim_{r['id']}.png" in r["plots"]]
    (out / "claims.json").write_text(
        json.dumps(
            _jsonable({"options": asdict(opts), "rules": opts.rules(), "claims": results}),
            indent=2,
            ensure_ascii=False,
        )
    )
    md = cl.claims_markdown(results, opts, {s.label: s.parent_id for s in sweeps}, listed)
    (out / "claims.md").write_text(md)
    summary_rows = [[f"({r['id']})", r["verdict"], r["statement"]] for r in results]
    header = [
        f"# Sweep report: {out.name}",
        "",
        _method(opts),
        "",
        "## Claims (details: claims.md)",
        "",
        cl.markdown_table(["claim", "verdict", "statement"], summary_rows),
        "",
        "## Studies",
        "",
    ]
    report_md = "\n".join(header + sections) + "\n"
    (out / "report.md").write_text(report_md)
    files += ["lr_selection.csv", "comparisons.csv", "claims.json", "claims.md", "report.md"]
    (out / "report.html").write_text(report_html(out, report_md, md, files))
    files.append("report.html")
    return Report(out, files, results, summary, comparisons, lrs)


# ----------------------------------------------------------------------------- report.html

HTML_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1500px; margin: 1em auto; padding: 0 1em;
       line-height: 1.4; }
table { border-collapse: collapse; font-size: 12px; margin: 0.5em 0; }
th, td { border: 1px solid #bbb; padding: 2px 6px; vertical-align: top; }
th { background: #eee; }
code { background: #f3f3f3; padding: 0 2px; }
img { max-width: 100%; display: block; margin: 0.5em 0; }
.scroll { overflow-x: auto; }
"""


def _inline(text: str) -> str:
    """Markdown inline marks of this report (`code`, **bold**, *italic*) as HTML, the text escaped."""
    text = html.escape(text, quote=False)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"(?<![\w*])\*(?=\S)(.+?)(?<=\S)\*(?![\w*])", r"<em>\1</em>", text)


def _img(folder: Path, name: str, embedded: set) -> str:
    """A PNG of `folder` as a data-URI <img>, once: a repeat or a missing file is named only."""
    path = folder / Path(name).name
    if name in embedded or not path.is_file() or path.suffix != ".png":
        return f"<p><em>({html.escape(name)}{' — shown above' if name in embedded else ''})</em></p>"
    embedded.add(name)
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(name)}" title="{html.escape(name)}">'


def _md_table(lines: list[str]) -> str:
    rows = [
        [_inline(c.strip().replace("\\|", "|")) for c in re.split(r"(?<!\\)\|", ln[1:-1])]
        for ln in lines
        if not re.fullmatch(r"\|(-+\|)+", ln)
    ]
    head = "".join(f"<th>{c}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows[1:])
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def markdown_html(text: str, folder: Path, embedded: set, shift: int = 0) -> str:
    """The markdown this module and `claims` write (headings, paragraphs, bullet lists, pipe tables,
    `![x](file.png)` lines) as HTML; images are embedded from `folder` (see `_img`)."""
    out, para, items, table = [], [], [], []

    def flush():
        if para:
            out.append(f"<p>{_inline(' '.join(para))}</p>")
        if items:
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>")
        if table:
            out.append(_md_table(table))
        para.clear(), items.clear(), table.clear()

    for line in text.splitlines():
        s = line.strip()
        head = re.fullmatch(r"(#{1,6}) (.*)", s)
        image = re.fullmatch(r"!\[[^\]]*\]\(([^)]+)\)", s)
        if not s:
            flush()
        elif s.startswith("|") and s.endswith("|"):
            if not table:
                flush()
            table.append(s)
        elif head:
            flush()
            level = min(6, len(head[1]) + shift)
            claim = re.match(r"\((\w+)\) ", head[2])
            anchor = f"claim-{claim[1]}" if claim else slug(head[2]).lower()
            out.append(f'<h{level} id="{html.escape(anchor)}">{_inline(head[2])}</h{level}>')
        elif image:
            flush()
            out.append(_img(folder, image[1], embedded))
        elif s.startswith(("* ", "- ")):
            if para or table:
                flush()
            items.append(s[2:])
        elif items and line.startswith(" "):
            items[-1] += " " + s
        else:
            if items or table:
                flush()
            para.append(s)
    flush()
    return "\n".join(out)


def report_html(folder: Path, report_md: str, claims_md: str, files: list[str]) -> str:
    """report.html: report.md, the claims checklist (claims.md, with its verdict rules) and every CSV as
    a table, with every PNG of `folder` embedded once as a base64 data URI; no external resources."""
    embedded: set[str] = set()
    body = [markdown_html(report_md, folder, embedded)]
    body += ['<section id="claims">', markdown_html(claims_md, folder, embedded, shift=1), "</section>"]
    rest = sorted(p.name for p in folder.glob("*.png") if p.name not in embedded)
    if rest:
        body += ["<h2>Other plots</h2>", *(_img(folder, name, embedded) for name in rest)]
    body.append('<section id="tables"><h2>Tables (the CSV files)</h2>')
    for name in (f for f in files if f.endswith(".csv")):
        table = pd.read_csv(folder / name)
        rendered = table.to_html(index=False, na_rep="–", border=0, float_format=lambda x: f"{x:.4g}")
        opened = " open" if name.startswith("summary_") else ""
        body.append(
            f"<details{opened}><summary><code>{html.escape(name)}</code> ({len(table)} rows)</summary>"
            f'<div class="scroll">{rendered}</div></details>'
        )
    body.append("</section>")
    title = html.escape(report_md.splitlines()[0].lstrip("# ")) if report_md else "Sweep report"
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{title}</title>\n'
        f"<style>{HTML_STYLE}</style>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )


def _method(opts: cl.Options) -> str:
    return (
        "Per configuration the learning rate with the lowest mean `best_val_loss_over_baseline` over seeds "
        "is chosen (best-over-LR; `lr_selection.csv`); its FINISHED seeds are summarised as mean [95 % "
        "t-interval]. `steps_to_solve` is over solved seeds only; gradient-flow ratios are summarised on "
        "log10. Versus the reference configuration: Δ = mean − mean(ref) of `best_val_loss_over_baseline` "
        f"with its Welch 95 % CI, Hedges' g (bias-corrected, pooled sd) and the p-value of the test "
        f"(`--test {opts.test}`: {stats.TEST_RULE}), Holm-corrected over the configurations of one study "
        "and task."
    )


def _sweep_header(s: Sweep, runs: pd.DataFrame) -> list[str]:
    n_fin = int((runs["sweep"] == s.label).sum())
    counts = ", ".join(f"{k} {v}" for k, v in sorted(s.statuses.items())) or "none"
    parent_m = ", ".join(
        f"{k} {s.metrics[k]:.0f}"
        for k in ("trials_total", "trials_finished", "trials_diverged", "trials_failed", "trials_retried")
        if k in s.metrics
    )
    # A worker or node that died mid-trial: Ray re-ran the trial, its dead attempt's run was deleted.
    retried = f" Retried after a lost worker or node: {'; '.join(s.retried)}." if s.retried else ""
    return [
        f"## Study `{s.study}`",
        "",
        f"Parent run `{s.parent_id}` (experiment {s.experiment_id}), profile "
        f"`{s.tags.get('sweep_profile', '?')}`, spec {s.spec_source}. Children by status: {counts}; "
        f"{n_fin} FINISHED trials used. Parent metrics: {parent_m or 'none (sweep still running?)'}."
        f"{retried}",
        "",
    ]


def _task_plots(s, task, sub, table, configs, refs, out, client, files) -> list[str]:
    name = f"{slug(s.label)}_{slug(task)}"
    title = f"{s.label} / {task}"
    made = []
    if client is not None:
        made.append(
            plot_learning_curves(
                sub, histories(client, sub["run_id"]), task, title, out / f"curves_{name}.png"
            )
        )
    made.append(plot_final(table, task, refs, title, out / f"final_{name}.png"))
    groups = forget_bias_groups(configs[(configs["sweep"] == s.label) & (configs["task"] == task)])
    if groups:
        made.append(plot_forget_bias(table, groups, task, title, out / f"forget_bias_{name}.png"))
    if table[f"{FLOW}_n"].sum() or table[f"{FLOW_FINAL}_n"].sum():
        made.append(plot_gradient_flow(table, task, refs, title, out / f"gradient_flow_{name}.png"))
    if gate_columns(sub):
        made.append(plot_gates(sub, task, title, out / f"gates_{name}.png"))
    files += made
    return [f"![{f}]({f})" for f in made] + [""]


def log_report(client, report: Report, sweeps: list[Sweep]) -> list[str]:
    """Log the folder as artifacts `report` (one sweep) or `report/combined` on every parent run.

    Runs are not started or ended: a FINISHED parent stays FINISHED. Under `mlflow run -e report`
    the launcher's own run gets the folder too and is tagged `sweep_role=report`.
    """
    path = "report" if len(sweeps) == 1 else "report/combined"
    targets = [s.parent_id for s in sweeps]
    for run_id in targets:
        client.log_artifacts(run_id, str(report.folder), path)
    launcher = os.environ.get("MLFLOW_RUN_ID")
    if launcher and launcher not in targets:
        client.log_artifacts(launcher, str(report.folder), "report")
        client.set_tag(launcher, "sweep_role", "report")
        client.set_tag(launcher, "report_of", ",".join(targets))
        targets.append(launcher)
    return targets


def generate(
    refs: list[str],
    out: str | Path = "reports",
    opts: cl.Options | None = None,
    log: bool = True,
    plots: bool = True,
) -> Report:
    """Resolve `refs` (run ids or study names), write the report to <out>/<study|combined>, log it."""
    import mlflow

    client = mlflow.MlflowClient()
    sweeps = [load_sweep(client, ref) for ref in refs]
    seen: dict[str, int] = {}
    for s in sweeps:
        seen[s.study] = seen.get(s.study, 0) + 1
    for s in sweeps:
        if seen[s.study] > 1:
            s.label = f"{s.study}@{s.parent_id[:8]}"
            s.runs["sweep"] = s.label
    folder = Path(out) / (sweeps[0].study if len(sweeps) == 1 else "combined")
    report = build(sweeps, folder, client, opts, plots)
    if log:
        log_report(client, report, sweeps)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sweep",
        action="append",
        required=True,
        help="parent run id or study name (latest sweep); repeat or comma-separate to combine",
    )
    parser.add_argument(
        "--out", default="reports", help="local folder; the report goes to <out>/<study|combined>"
    )
    parser.add_argument("--test", default="auto", choices=stats.TESTS, help=stats.TEST_RULE)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--margin", type=float, default=0.10, help="equivalence margin, relative to B's mean")
    parser.add_argument("--no_log", action="store_true", help="write the folder only, log no artifacts")
    args = parser.parse_args(argv)
    refs = [r.strip() for arg in args.sweep for r in arg.split(",") if r.strip()]
    try:
        report = generate(
            refs,
            args.out,
            cl.Options(test=args.test, alpha=args.alpha, margin=args.margin),
            log=not args.no_log,
        )
    except ReportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"report: {report.folder}/report.md ({len(report.files)} files)")
    for r in report.claims:
        print(f"  ({r['id']}) {r['verdict']:<13} {r['statement']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

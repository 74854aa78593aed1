"""The report's plots (matplotlib, Agg): learning curves with seed bands, final metrics with CIs,
the forget-bias curve, gradient-flow ratios, gate saturation."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from experiments.report import stats
from experiments.report.metrics import FLOW, FLOW_FINAL, PRIMARY, task_metric
from experiments.report.write import fmt, short_labels


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
    names = short_labels(chosen["config_label"])
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
    names = short_labels(table["config_label"])
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
    names = short_labels(table["config_label"])
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
    names = short_labels(means.index)
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


def task_plots(
    name: str,
    title: str,
    task: str,
    sub: pd.DataFrame,
    table: pd.DataFrame,
    configs: pd.DataFrame,
    refs: set,
    out: Path,
    client=None,
) -> list[str]:
    """Every plot of one study and task that its data allows, as `<kind>_<name>.png` in `out`.

    `sub`: its best-over-LR runs; `table`: its summary; `configs`: its configurations. Curves need
    `client` (they are read from MLflow's metric history)."""
    made = []
    if client is not None:
        made.append(
            plot_learning_curves(
                sub, histories(client, sub["run_id"]), task, title, out / f"curves_{name}.png"
            )
        )
    made.append(plot_final(table, task, refs, title, out / f"final_{name}.png"))
    groups = forget_bias_groups(configs)
    if groups:
        made.append(plot_forget_bias(table, groups, task, title, out / f"forget_bias_{name}.png"))
    if table[f"{FLOW}_n"].sum() or table[f"{FLOW_FINAL}_n"].sum():
        made.append(plot_gradient_flow(table, task, refs, title, out / f"gradient_flow_{name}.png"))
    if gate_columns(sub):
        made.append(plot_gates(sub, task, title, out / f"gates_{name}.png"))
    return made


def plot_claim(result: dict, path) -> str | None:
    """claim_<id>.png: per contrast (≤ 12) the seeds of A and B with mean and 95 % CI; None if none."""
    rows = [r for p in result["parts"] for r in p["contrasts"] if "values_a" in r][:12]
    if not rows:
        return None
    plt = _plt()
    cols = min(3, len(rows))
    fig, axes = plt.subplots(
        math.ceil(len(rows) / cols),
        cols,
        figsize=(4.2 * cols, 3.6 * math.ceil(len(rows) / cols)),
        squeeze=False,
    )
    for ax, r in zip(axes.flat, rows):
        for x, key in ((0, "a"), (1, "b")):
            v = np.asarray(r[f"values_{key}"], dtype=float)
            ax.plot(np.full(len(v), x) + np.linspace(-0.08, 0.08, len(v)), v, "o", alpha=0.6)
            n, mean, low, high = stats.mean_ci(v)
            err = [[mean - low], [high - mean]] if n > 1 else None
            ax.errorbar(x + 0.2, mean, yerr=err, fmt="s", color="black", capsize=4)
        names = short_labels([r["a"], r["b"]])
        ax.set_xticks([0, 1], [names[r["a"]][:40], names[r["b"]][:40]], fontsize=7)
        ax.set_ylabel(r["metric"], fontsize=8)
        ax.set_title(f"{r['sweep']}/{r['task']}: p_holm {fmt(r['p_holm'], 2)} → {r['outcome']}", fontsize=8)
    for ax in list(axes.flat)[len(rows) :]:
        ax.axis("off")
    fig.suptitle(f"claim ({result['id']}): {result['verdict']}", fontsize=10)
    return _save(fig, Path(path))

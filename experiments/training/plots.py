"""The run's figures: learning curves, gradient flow through time, gate histograms.

Every trial of a sweep draws these three, so they are drawn once each: the layout is constrained
(computed during savefig's draw; `tight_layout` draws the figure one extra time) and a histogram
is one step artist, not 50 bar patches (the three: 1.15 -> 0.78 s in a loop; within a trial,
where they are smaller, 0.64 -> 0.58 s; docs/benchmarks.md#trial-fixed-cost).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only; runs have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from experiments.training.tasks.base import Task  # noqa: E402


def learning_curves(evaluations: list[dict], task: Task, title: str) -> Figure:
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    steps = [e["step"] for e in evaluations]
    trained = [e for e in evaluations if "loss" in e]
    ax_loss.plot([e["step"] for e in trained], [e["loss"] for e in trained], label="train loss")
    ax_loss.plot(steps, [e["val_loss"] for e in evaluations], label="val loss")
    ax_loss.axhline(task.baseline_loss, color="grey", linestyle="--", label="memoryless baseline")
    ax_loss.set(xlabel="step", ylabel="loss", title="loss")
    ax_loss.legend()
    name = f"val_{task.metric_name}"
    ax_metric.plot(steps, [e[name] for e in evaluations], label=name)
    ax_metric.axhline(task.baseline_metric, color="grey", linestyle="--", label="baseline")
    ax_metric.axhline(task.target, color="green", linestyle=":", label="solved")
    ax_metric.set(xlabel="step", ylabel=task.metric_name, title=task.metric_name)
    ax_metric.legend()
    fig.suptitle(title)
    return fig


def gradient_flow(start: dict, end: dict | None, title: str) -> Figure:
    """‖∂L/∂h_t‖ (and ‖∂L/∂c_t‖) against t, at initialisation and after training."""
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    for label, flow, style in (("init", start, "--"), ("trained", end, "-")):
        if flow is None:
            continue
        t = np.arange(1, len(flow["h"]) + 1)
        ax.plot(t, flow["h"], style, label=f"‖∂L/∂h_t‖ {label}")
        if "c" in flow:
            ax.plot(t, flow["c"], style, label=f"‖∂L/∂c_t‖ {label}", alpha=0.7)
    ax.set_yscale("log")
    ax.set(xlabel="time step t", ylabel="gradient norm", title=title)
    ax.legend()
    return fig


def gate_histograms(values: dict[str, np.ndarray], title: str) -> Figure:
    n = max(len(values), 1)
    fig, axes = plt.subplots(1, n, figsize=(3.5 * n, 3), squeeze=False, layout="constrained")
    for ax, (gate, v) in zip(axes[0], values.items()):
        counts, edges = np.histogram(v, bins=50, range=(0.0, 1.0))
        ax.stairs(counts, edges, fill=True)
        ax.set(title=f"gate {gate}", xlabel="activation")
    if not values:
        axes[0][0].text(0.5, 0.5, "no gates", ha="center", va="center")
    fig.suptitle(title)
    return fig

"""The "but" probe's figures (matplotlib, Agg): gate heat maps, aligned gate curves, follow-B rates."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def gate_heatmaps(examples: Sequence[dict], title: str):
    """One panel per sentence: the keep gate of every unit (rows) at every token (columns), the
    connective's column outlined. Each example: {"words", "gate" (tokens, units), "index", "group"}."""
    fig, axes = plt.subplots(
        len(examples), 1, figsize=(11, 2.6 * len(examples)), squeeze=False, layout="constrained"
    )
    image = None
    for ax, ex in zip(axes[:, 0], examples):
        gate = np.asarray(ex["gate"]).T
        image = ax.imshow(gate, aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_xticks(range(len(ex["words"])), ex["words"], rotation=60, fontsize=8)
        ax.set_ylabel("unit")
        k = ex["index"]
        ax.add_patch(plt.Rectangle((k - 0.5, -0.5), 1, gate.shape[0], fill=False, edgecolor="red", lw=1.5))
        ax.set_title(
            f"{ex['group']}: '{ex['words'][k]}' at token {k} (unit mean {gate[:, k].mean():.2f}, "
            f"sentence mean {gate.mean():.2f})",
            fontsize=9,
        )
    fig.suptitle(title, fontsize=10)
    if image is not None:
        fig.colorbar(image, ax=axes[:, 0].tolist(), fraction=0.02, pad=0.01, label="keep gate")
    return fig


def aligned_curves(curves: dict[str, dict[str, tuple]], offsets: Sequence[int], title: str):
    """One panel per cell: the mean keep gate relative to the sentence's own mean, aligned at the
    connective (offset 0), with 95 % t-bands over sentences; `curves[cell][group] = (mean, lo, hi)`."""
    cells = list(curves)
    fig, axes = plt.subplots(1, max(len(cells), 1), figsize=(4.2 * max(len(cells), 1), 3.4), squeeze=False)
    for ax, cell in zip(axes[0], cells):
        for group, color in (("contrastive", "tab:red"), ("and", "tab:blue")):
            if group not in curves[cell]:
                continue
            mean, low, high = curves[cell][group]
            ax.plot(
                offsets,
                mean,
                marker="o",
                color=color,
                label="but/however/yet/although" if group == "contrastive" else "and",
            )
            ax.fill_between(offsets, low, high, color=color, alpha=0.2)
        ax.axvline(0, color="grey", lw=0.8, ls=":")
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_title(cell, fontsize=10)
        ax.set_xlabel("tokens from the connective")
    axes[0, 0].set_ylabel("keep gate − sentence mean")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def follow_rates(rows: Sequence[dict], title: str):
    """Bars per cell: how often the label follows the clause after the connective, 'but' vs 'and',
    with the Wilson 95 % interval of the pooled counts. Each row: cell, connective, rate, low, high."""
    cells = list(dict.fromkeys(r["cell"] for r in rows))
    fig, ax = plt.subplots(figsize=(1.8 * max(len(cells), 2) + 1, 3.4))
    width = 0.38
    for j, (connective, color) in enumerate((("but", "tab:red"), ("and", "tab:blue"))):
        picked = [next(r for r in rows if r["cell"] == c and r["connective"] == connective) for c in cells]
        x = np.arange(len(cells)) + (j - 0.5) * width
        rate = np.array([r["rate"] for r in picked])
        err = np.array([[r["rate"] - r["low"] for r in picked], [r["high"] - r["rate"] for r in picked]])
        ax.bar(x, rate, width, yerr=err, color=color, label=f"A {connective} B", capsize=3)
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.set_xticks(range(len(cells)), cells)
    ax.set_ylim(0, 1)
    ax.set_ylabel("label = polarity of B")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig

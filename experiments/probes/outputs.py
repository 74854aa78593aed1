"""What the "but" probe writes: its tables (CSV, JSON), figures and summary metrics."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from experiments.probes import analysis, plots
from experiments.probes.connectives import WINDOWS

OWN_FILES = (
    "but_probe.md",
    "probe.json",
    "models.csv",
    "gate_tests.csv",
    "gate_summary.csv",
    "gate_drops.csv",
    "follow_b_per_seed.csv",
    "follow_b_summary.csv",
    "aligned_gate_curve.png",
    "follow_b.png",
)


def clear(out: Path) -> None:
    """Remove what an earlier probe wrote in `out` (its own file names only), so that the folder,
    logged whole as the run's artifacts, holds this run's files and nothing stale."""
    for path in [*(out / name for name in OWN_FILES), *out.glob("gate_heatmap_*.png")]:
        path.unlink(missing_ok=True)


def _write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        path.write_text("")
        return
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


def tables(per_cell: dict[str, list[dict]]) -> dict:
    """Every table of the probe from the per-cell, per-seed results."""
    models, tests, gate_summary, follow_rows, follow_summary, curves = [], [], {}, [], {}, {}
    for cell, runs in per_cell.items():
        dev = [r["results"]["final_val_accuracy"] for r in runs]
        test = [r["results"].get("test_accuracy", float("nan")) for r in runs]
        models.append(
            {
                "cell": cell,
                "n": len(runs),
                "dev_mean": float(np.mean(dev)),
                "dev_min": float(np.min(dev)),
                "dev_max": float(np.max(dev)),
                "test_mean": float(np.mean(test)),
                "per_seed": [
                    {"seed": r["seed"], "run_id": r["run_id"], "dev_accuracy": d} for r, d in zip(runs, dev)
                ],
            }
        )
        cell_tests, summary, cell_curves = analysis.gate_tables(runs)
        tests += [{"cell": cell, **row} for row in cell_tests]
        gate_summary[cell] = summary
        curves[cell] = cell_curves
        rows, pooled = analysis.follow_tables(runs)
        follow_rows += [{"cell": cell, **row} for row in rows]
        follow_summary[cell] = pooled
    return {
        "models": models,
        "gate_tests": tests,
        "gate_summary": gate_summary,
        "follow_rows": follow_rows,
        "follow_summary": follow_summary,
        "curves": curves,
        "per_cell": per_cell,
    }


def figures(per_cell: dict, tables: dict, out: Path) -> list[tuple[str, str]]:
    """The figures, saved in `out`: [(file name, caption)]."""
    import matplotlib.pyplot as plt

    from experiments.probes.connectives import AFTER, BEFORE

    figures = []
    offsets = list(range(-BEFORE, AFTER + 1))
    curves = {cell: c for cell, c in tables["curves"].items() if c}
    if curves:
        fig = plots.aligned_curves(
            curves, offsets, "Keep gate aligned at the connective (seed-averaged, 95 % t-bands)"
        )
        fig.savefig(out / "aligned_gate_curve.png", dpi=110)
        plt.close(fig)
        figures.append(
            (
                "aligned_gate_curve.png",
                "Mean keep gate relative to the sentence's mean, aligned at the connective: "
                "contrastive vs 'and'.",
            )
        )
    for cell, runs in per_cell.items():
        first = runs[0]
        if first["gate"] is None or not first["gate"]["examples"]:
            continue
        name = f"gate_heatmap_{cell.replace('/', '_')}.png"
        fig = plots.gate_heatmaps(
            first["gate"]["examples"], f"{cell}, seed {first['seed']}: keep gate per unit and token"
        )
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        figures.append(
            (
                name,
                f"{cell} (seed {first['seed']}): the keep gate of every unit over the tokens of real dev "
                "sentences; the connective outlined.",
            )
        )
    rows = [
        {"cell": cell, **r}
        for cell, pooled in tables["follow_summary"].items()
        for r in pooled
        if r["connective"] != "but − and"
    ]
    fig = plots.follow_rates(rows, "How often the label follows the clause after the connective")
    fig.savefig(out / "follow_b.png", dpi=110)
    plt.close(fig)
    figures.append(
        (
            "follow_b.png",
            "Share of composites whose predicted label is the polarity of the clause after 'but' "
            "(red) or 'and' (blue).",
        )
    )
    return figures


def write_tables(out: Path, tables: dict, facts: dict, conventions: dict, params: dict) -> None:
    _write_csv(
        out / "models.csv", [{k: v for k, v in m.items() if k != "per_seed"} for m in tables["models"]]
    )
    _write_csv(out / "gate_tests.csv", tables["gate_tests"])
    _write_csv(
        out / "gate_summary.csv",
        [{"cell": c, **r} for c, rows in tables["gate_summary"].items() for r in rows],
    )
    _write_csv(out / "follow_b_per_seed.csv", tables["follow_rows"])
    _write_csv(
        out / "follow_b_summary.csv",
        [{"cell": c, **r} for c, rows in tables["follow_summary"].items() for r in rows],
    )
    drops = []
    for cell, runs in tables["per_cell"].items():
        for r in runs:
            if r["gate"] is None:
                continue
            for group in ("contrastive", "and"):
                named = zip(r["gate"][f"sentences_{group}"], r["gate"][f"drops_{group}"])
                for (sentence, word, index), row in named:
                    drops.append(
                        {
                            "cell": cell,
                            "seed": r["seed"],
                            "group": group,
                            "dev_row": sentence,
                            "word": word,
                            "index": index,
                            **{f"drop_{w}": v for w, v in zip(WINDOWS, row)},
                        }
                    )
    _write_csv(out / "gate_drops.csv", drops)
    models = [{"cell": m["cell"], "per_seed": m["per_seed"]} for m in tables["models"]]
    (out / "probe.json").write_text(
        json.dumps(
            {"params": params, "selection": facts, "conventions": conventions, "models": models}, indent=2
        )
    )


def summary_metrics(tables: dict) -> tuple[dict[str, float], dict[str, str]]:
    metrics, verdicts = {}, {}
    for m in tables["models"]:
        metrics[f"{m['cell']}.dev_accuracy_mean"] = m["dev_mean"]
    for cell, rows in tables["gate_summary"].items():
        for r in rows:
            for key in (
                "diff",
                "seeds_ci_low",
                "seeds_ci_high",
                "boot_ci_low",
                "boot_ci_high",
                "hedges_g_sentences",
            ):
                metrics[f"{cell}.gate_{r['window']}.{key}"] = r[key]
        if rows:
            verdicts[cell] = next(r for r in rows if r["window"] == "at")["verdict"]
    for cell, rows in tables["follow_summary"].items():
        for r in rows:
            key = "but_minus_and" if r["connective"] == "but − and" else r["connective"]
            metrics[f"{cell}.follow_b.{key}"] = r["rate"]
    clean = {k.replace("/", "_"): float(v) for k, v in metrics.items()}
    return {k: v for k, v in clean.items() if v == v}, verdicts  # NaN is not logged

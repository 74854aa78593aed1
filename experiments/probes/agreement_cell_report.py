"""The cell probe's part of the agreement report: its table, figure, metrics and verdict row."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from experiments.probes.agreement_cell import POSITIONS
from experiments.probes.report import fixed as _f
from experiments.report.write import markdown_table

FIGURE = "cell_probe.png"


def figure(cell: dict, out: Path) -> str:
    """Readout accuracy from c and h (left) and the mean forget gate (right) at each position."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
    x = np.arange(len(POSITIONS))
    for state in ("c", "h"):
        rows = [r for r in cell["readout"] if r["state"] == state]
        acc = np.array([r["accuracy"] for r in rows])
        err = np.array([acc - [r["low"] for r in rows], [r["high"] for r in rows] - acc])
        left.errorbar(x, acc, yerr=err, marker="o", capsize=3, label=f"{state}_t")
    left.axhline(max(cell["plural_share"], 1 - cell["plural_share"]), color="grey", ls=":", lw=0.8)
    left.set_xticks(x, POSITIONS, fontsize=8)
    left.set_ylabel("readout accuracy (95 % CI, constructions)")
    left.set_title("number read out of the LM's state", fontsize=9)
    left.legend(fontsize=8)
    f = cell["forget"]
    mean = np.array([r["f_mean"] for r in f])
    err = np.array([mean - [r["low"] for r in f], [r["high"] for r in f] - mean])
    right.errorbar(x, mean, yerr=err, marker="o", capsize=3, color="C2", label="forget gate")
    right.axhline(cell["sentence_f"][0], color="C2", ls=":", lw=0.8, label="sentence mean")
    right.set_xticks(x, POSITIONS, fontsize=8)
    right.set_ylabel("mean f over units (95 % CI)")
    right.set_title("forget gate over the span", fontsize=9)
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / FIGURE, dpi=110)
    plt.close(fig)
    return FIGURE


def rows_for_csv(cell: dict) -> list[dict]:
    forget = {r["position"]: r for r in cell["forget"]}
    return [r | {"f_mean": forget[r["position"]]["f_mean"]} for r in cell["readout"]]


def metrics(cell: dict) -> dict[str, float]:
    names = dict(zip(POSITIONS, ("before", "word", "word_1", "word_2", "word_3", "verb_1")))
    out = {f"cell_probe.{r['state']}_{names[r['position']]}": r["accuracy"] for r in cell["readout"]}
    out |= {f"cell_probe.f_{names[r['position']]}": r["f_mean"] for r in cell["forget"]}
    out["cell_probe.diff"] = cell["verdict"]["diff"]
    return {k: float(v) for k, v in out.items() if v == v}


def markdown(cell: dict) -> list[str]:
    v = cell["verdict"]
    header = ["state", *POSITIONS]
    body = []
    for state in ("c", "h"):
        rows = [r for r in cell["readout"] if r["state"] == state]
        body.append([f"{state}_t", *[f"{_f(r['accuracy'])} [{_f(r['low'])}, {_f(r['high'])}]" for r in rows]])
    body.append(["mean f", *[_f(r["f_mean"]) for r in cell["forget"]]])
    n = cell["readout"][0]["n"]
    share = cell["plural_share"]
    return [
        "### What the cell carries (linear probe on the word LM, nonce sentences)",
        "",
        f"Verdict: **{v['verdict']}** — {v['claim']}: {_f(v['diff'])} [{_f(v['ci_low'])}, "
        f"{_f(v['ci_high'])}] (95 % t-interval over {v['n_groups']} constructions).",
        "",
        markdown_table(header, body),
        "",
        f"{n} nonce sentences that name the word the verb agrees with (plural share "
        f"{_f(share, 2)}; majority rate {_f(max(share, 1 - share), 2)}). "
        "Accuracy of a logistic-regression readout of the number, out of fold (5 folds grouped by "
        "construction), mean over constructions with its t-interval; 'before' is the state before the "
        "agreeing word (the control). Mean forget gate over the sentence's prefix: "
        f"{_f(cell['sentence_f'][0])}. Balanced accuracies per position are in cell_probe.csv.",
        "",
        f"![Readout and forget gate between the agreeing word and the verb]({FIGURE})",
        "",
    ]

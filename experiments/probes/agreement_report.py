"""The agreement probe's report section (markdown), its CSV tables and its figure."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from experiments.probes import agreement_cell_report as cell_report
from experiments.probes import agreement_results as results
from experiments.probes.agreement_data import ATTRACTOR_BUCKETS
from experiments.probes.report import fixed as _f
from experiments.report.write import markdown_table

OWN_FILES = (
    "agreement_probe.md",
    "probe.json",
    "accuracy_by_attractors.png",
    "cell_probe.png",
    "cell_probe.csv",
    "number_by_attractors.csv",
    "number_per_seed.csv",
    "verdicts.csv",
    "lm_by_attractors.csv",
    "lm_nonce.csv",
)
LITERATURE = [
    [
        "Linzen et al. 2016",
        "LSTM trained on number prediction (~1.4 M Wikipedia dependencies)",
        "< 1 % errors overall; ≈ 17–18 % errors with 4 attractors",
    ],
    ["Gulordava et al. 2018", "LSTM LM (~90 M Wikipedia tokens), nonce English sentences", "≈ 0.75 accuracy"],
]


def clear(out: Path) -> None:
    """Remove what an earlier agreement probe wrote in `out` (its own file names only): the folder
    is logged whole as the run's artifacts and must hold this run's files and nothing stale."""
    for name in OWN_FILES:
        (out / name).unlink(missing_ok=True)


def _ci(r: dict) -> str:
    return f"{_f(r['accuracy'])} [{_f(r['low'])}, {_f(r['high'])}]"


def _write_csv(path: Path, rows: list[dict]) -> None:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


def nonce_rows(nonce: dict) -> list[dict]:
    rows = []
    for kind in ("all", "generated", "original"):
        pick = np.ones(len(nonce["kinds"]), bool) if kind == "all" else nonce["kinds"] == kind
        r = results.lm_by_bucket(nonce["choices"][pick], nonce["buckets"][pick])[-1]
        rows.append({"sentences": kind, **r})
    return rows


def figure(tables: dict[str, list[dict]], lm_rows: list[dict], out: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    x = np.arange(len(ATTRACTOR_BUCKETS))
    for cell, rows in [*tables.items(), ("PTB word LM (scoring)", lm_rows)]:
        r = rows[: len(ATTRACTOR_BUCKETS)]
        acc = np.array([v["accuracy"] for v in r])
        err = np.array([[v["accuracy"] - v["low"] for v in r], [v["high"] - v["accuracy"] for v in r]])
        ax.errorbar(x, acc, yerr=err, marker="o", capsize=3, label=cell, ls="--" if "LM" in cell else "-")
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.set_xticks(x, ATTRACTOR_BUCKETS)
    ax.set_xlabel("attractors")
    ax.set_ylabel("accuracy (Wilson 95 %)")
    ax.set_title("Verb number on the Linzen sentences, by attractor count", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "accuracy_by_attractors.png", dpi=110)
    plt.close(fig)
    return "accuracy_by_attractors.png"


def write_all(out: Path, params: dict, per_cell: dict, lm_out: dict, counts: dict, wall: float) -> dict:
    tables = {cell: results.by_bucket(rows) for cell, rows in per_cell.items()}
    verdicts = results.verdicts(per_cell)
    lm_rows = results.lm_by_bucket(lm_out["linzen"]["choices"], lm_out["linzen"]["buckets"])
    nonce = nonce_rows(lm_out["nonce"])
    _write_csv(
        out / "number_by_attractors.csv", [{"cell": c, **r} for c, rows in tables.items() for r in rows]
    )
    _write_csv(out / "verdicts.csv", verdicts)
    _write_csv(out / "lm_by_attractors.csv", lm_rows)
    _write_csv(out / "lm_nonce.csv", nonce)
    seeds = [
        {"cell": c, "seed": s, "balanced_accuracy": v}
        for c, rows in per_cell.items()
        for s, v in results.seed_balanced(rows).items()
    ]
    _write_csv(out / "number_per_seed.csv", seeds)
    name = figure(tables, lm_rows, out)
    cell_report.figure(lm_out["cell"], out)
    _write_csv(out / "cell_probe.csv", cell_report.rows_for_csv(lm_out["cell"]))
    text = markdown(params, tables, verdicts, lm_out, lm_rows, nonce, counts, wall, name)
    (out / "agreement_probe.md").write_text(text)
    (out / "probe.json").write_text(json.dumps({"params": params, "counts": counts}, indent=2))
    metrics = {
        f"{c.replace('/', '_')}.accuracy_{r['attractors'].replace('+', 'plus')}": r["accuracy"]
        for c, rows in tables.items()
        for r in rows
    }
    metrics |= {f"{c.replace('/', '_')}.balanced_all": rows[-1]["balanced"] for c, rows in tables.items()}
    metrics |= {f"lm.accuracy_{r['attractors'].replace('+', 'plus')}": r["accuracy"] for r in lm_rows}
    metrics |= {f"lm.nonce_{r['sentences']}": r["accuracy"] for r in nonce}
    metrics = {k: float(v) for k, v in metrics.items() if v == v} | cell_report.metrics(lm_out["cell"])
    named = {f"{v['a']}_vs_{v['b']}".replace("/", "_"): v["verdict"] for v in verdicts}
    named["cell_carries_number"] = lm_out["cell"]["verdict"]["verdict"]
    return {"metrics": metrics, "verdicts": named, "tables": tables, "verdict_rows": verdicts}


def markdown(params, tables, verdicts, lm_out, lm_rows, nonce, counts, wall, figure_name) -> str:
    lines = ["## Probe 2: does the network track the subject's number? (Linzen, nonce sentences)", ""]
    if params.get("quick") == "true":
        lines += ["**Quick size** (a test of the pipeline, not evidence).", ""]
    lines += ["### Verdicts (number prediction)", "", f"Rule: {results.VERDICT_RULE}.", ""]
    rows = [
        [
            v["claim"],
            f"{_f(v['diff'])} [{_f(v['seeds_ci_low'])}, {_f(v['seeds_ci_high'])}]",
            int(v["n_seeds"]),
            f"**{v['verdict']}**",
        ]
        for v in verdicts
    ]
    lines += [
        markdown_table(
            ["claim", "balanced-accuracy difference (95 % CI over seeds)", "seeds", "verdict"], rows
        ),
        "",
    ]
    lines += _method(params, counts, lm_out, wall)
    lines += _attractor_tables(tables, lm_rows)
    lines += [
        "### Language model on the nonce sentences",
        "",
        markdown_table(
            ["sentences", "n scored", "accuracy [Wilson 95 %]"],
            [[r["sentences"], r["n"], _ci(r)] for r in nonce],
        ),
        "",
    ]
    lines += cell_report.markdown(lm_out["cell"])
    lines += [
        "### Beside the literature",
        "",
        markdown_table(["study", "model and data", "result"], LITERATURE),
        "",
        "Our training data are tiny (about 5,400 Linzen prefixes for number prediction, "
        f"{params['lm_words']} PTB words for the LM), so the comparison is about the ordering of "
        "the cells and the attractor trend, not absolute accuracy.",
        "",
    ]
    lines += ["### Figure", "", f"![Accuracy by attractor count]({figure_name})", ""]
    return "\n".join(lines) + "\n"


def _attractor_tables(tables: dict, lm_rows: list[dict]) -> list[str]:
    header = ["cell", *[f"{b} attr." for b in ATTRACTOR_BUCKETS], "all", "balanced (all)"]
    body = [[c, *[_ci(r) for r in rows], _f(rows[-1]["balanced"])] for c, rows in tables.items()]
    body.append(["PTB word LM (scoring)", *[_ci(r) for r in lm_rows], "–"])
    n_row = ["sentences", *[str(r["n"]) for r in next(iter(tables.values()))], ""]
    plural = ["plural share", *[_f(r["plural_share"], 2) for r in next(iter(tables.values()))], ""]
    return [
        "### Accuracy by attractor count (Linzen sentences)",
        "",
        markdown_table(header, [*body, n_row, plural]),
        "",
        "Number prediction pools the test folds of all seeds (each sentence once per cell at 5 seeds); "
        "Wilson 95 % intervals over sentences. The plural share rises with the attractor count, so a "
        "bias toward the plural alone makes plain accuracy rise with it; the balanced accuracy (mean of "
        "the singular and plural recalls) does not reward that:",
        "",
        markdown_table(
            ["cell (balanced accuracy)", *[f"{b} attr." for b in ATTRACTOR_BUCKETS], "all"],
            [[c, *[_f(r["balanced"]) for r in rows]] for c, rows in tables.items()],
        ),
        "",
    ]


def _method(params, counts, lm_out, wall) -> list[str]:
    return [
        "### What was measured",
        "",
        f"- Linzen sentences: {counts['read']} read, {counts['dropped_same_form']} dropped (correct "
        f"and wrong form the same word), {counts['kept']} kept. Label: the verb's number, from the "
        "correct form (plural = are/were/have, or the base form against its -s/-es/-ies form; "
        "agreement_data.py).",
        f"- Number prediction: embedding 32 → one recurrent layer of {params['units']} units → dense; "
        f"{params['steps']} steps of batch {params['batch_size']}, Adam lr {params['learning_rate']}; seed k "
        "trains on 4 of 5 stratified (attractors × number), prefix-grouped folds and is tested on fold k; "
        "vocabulary from the training part only (words seen twice, else [UNK]).",
        f"- Language model: PTB word LSTM of {params['lm_units']} units trained for {params['lm_steps']} "
        f"steps of {params['lm_batch_size']}×{params['lm_seq_len']} words drawn from the first "
        f"{params['lm_words']} words of ptb.train; test perplexity "
        f"{_f(lm_out['test_perplexity'], 1)} (whole PTB test split). "
        f"Pairs with a form outside PTB's vocabulary excluded: {lm_out['linzen']['excluded_unknown_form']} "
        f"Linzen, {lm_out['nonce']['excluded_unknown_form']} nonce.",
        f"- Time: {wall:.0f} s in all.",
        "",
    ]

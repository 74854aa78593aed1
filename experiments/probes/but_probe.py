"""MLproject `but_probe`: does the forget gate close at "but"? (issue 17, probe 1, on SST-2)

    mlflow run . --env-manager local -e but_probe
    python -m experiments.probes.but_probe --quick true --data_dir ../shared/corpora

Trains each cell (default LSTM, GRU, NFG, CIFG) for each seed on SST-2 train, one nested MLflow
run each; reads the keep gate (LSTM f, GRU z) at the first contrastive connective of dev
sentences and at "and" in matched controls; tests whether it drops more at "but"; then asks
whether the label follows the clause after "but" in "A but B" built from clauses the model is
sure of. The parent run logs the summary metrics, tables (CSV), figures and the report section
(`but_probe.md`), which are also written to `--out`. Parameters and the corpus are checked before
TensorFlow loads (exit 2 with one line).
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from pathlib import Path

from experiments.probes import options
from experiments.training import corpora
from experiments.training.config import ConfigError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

VERDICT_CELL = "lstm"
EXPERIMENT = "but_probe"


def parse(argv: list[str] | None) -> options.ProbeConfig:
    args = options.build_parser(__doc__.splitlines()[0]).parse_args(argv)
    try:
        return options.from_args(args)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def check_data(config: options.ProbeConfig) -> Path:
    """The data directory, with SST-2 present and verified (else exit 2 naming what is missing)."""
    try:
        folder = options.data_folder(config)
        corpora.ensure("sst2", folder)
    except corpora.CorpusError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    return folder


def vocabulary_of(task, data_dir: Path, vocab_size: int, seq_len: int) -> list[str]:
    """The task's id → word list, adapted again as the task adapts it (same texts, same ties) and
    checked against the task's vocabulary hash, so that an id read here is the word the model saw."""
    import hashlib

    from experiments.training.tasks import sentiment

    paths = corpora.ensure("sst2", data_dir)
    train, valid, test = sentiment._read_sst2(paths)
    train = sentiment.without_overlap(train, valid[0] + test[0])
    vocabulary = sentiment._adapted_vectorizer(train[0], vocab_size, seq_len).get_vocabulary()
    digest = hashlib.sha256("\n".join(vocabulary).encode()).hexdigest()
    if digest != task.info["vocab_sha256"]:
        raise RuntimeError(f"vocabulary hash {digest} differs from the task's {task.info['vocab_sha256']}")
    return list(vocabulary)


def _write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        path.write_text("")
        return
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


def _selection_facts(selection, vocabulary) -> dict:
    from collections import Counter

    import numpy as np

    c, a = selection.contrastive, selection.control
    words = Counter(o.word for o in c)
    return {
        "n_contrastive": len(c),
        "n_and": len(a),
        "words": ", ".join(f"{w} {n}" for w, n in words.most_common()),
        "rel_contrastive": float(np.mean([o.relative for o in c])) if c else float("nan"),
        "rel_and": float(np.mean([o.relative for o in a])) if a else float("nan"),
        "len_contrastive": float(np.mean([o.n_tokens for o in c])) if c else float("nan"),
        "len_and": float(np.mean([o.n_tokens for o in a])) if a else float("nan"),
    }


def train_one(run_config, task, tags: dict[str, str]):
    """Train one model inside a nested MLflow run logged as `main` logs a run: (trainer, summary)."""
    import mlflow

    from experiments.tracking import records as tracking
    from experiments.training.trainer import Trainer, summary

    name = tracking.run_name(run_config)
    with mlflow.start_run(run_name=name, nested=True):
        mlflow.log_params(run_config.as_params())
        mlflow.set_tags({**tracking.run_tags(run_config, task.data_checksum, task.info), **tags})
        trainer = Trainer(run_config, task)

        def on_eval(record: dict) -> None:
            mlflow.log_metrics({k: v for k, v in record.items() if k != "step"}, step=record["step"])

        outcome = trainer.run(on_eval)
        results = summary(outcome, run_config, task)
        mlflow.log_metrics(results)
        mlflow.set_tags(tracking.engine_tags(trainer.layer))
        print(
            f"  {name}: dev accuracy {results['final_val_accuracy']:.4f}, "
            f"{results['steps_per_s']:.1f} steps/s",
            flush=True,
        )
        return trainer, results, mlflow.active_run().info.run_id


def run(config: options.ProbeConfig, data_dir: Path) -> dict:
    """The whole probe inside the active (or a new) MLflow run; returns the summary it logged."""
    import mlflow
    import numpy as np

    from experiments.probes import analysis, gates, plots, probe_model, report
    from experiments.tracking import records as tracking
    from experiments.training.tasks import sentiment

    start = time.perf_counter()
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    task = sentiment.make(seq_len=config.seq_len, seed=0, data_dir=data_dir, vocab_size=config.vocab_size)
    vocabulary = vocabulary_of(task, data_dir, config.vocab_size, config.seq_len)
    x_valid, y_valid = task.valid
    x_pool = np.concatenate([task.valid[0], task.test[0]])
    y_pool = np.concatenate([task.valid[1], task.test[1]])
    selection = probe_model.select(x_valid, vocabulary)
    facts = _selection_facts(selection, vocabulary)
    print(
        f"but_probe: {facts['n_contrastive']} contrastive dev sentences ({facts['words']}), "
        f"{facts['n_and']} 'and' controls",
        flush=True,
    )
    if mlflow.active_run() is None:
        mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run(run_name="but_probe" + (" quick" if config.quick else "")) as parent:
        commit, dirty = tracking.git_commit()
        logged = mlflow.get_run(parent.info.run_id).data.params  # under `mlflow run`: the launcher's
        mlflow.log_params({k: v for k, v in config.as_params().items() if k not in logged})
        mlflow.set_tags(
            {
                "probe": "but",
                "git_commit": commit,
                "git_dirty": str(dirty).lower(),
                "data_checksum": task.data_checksum,
            }
        )
        per_cell: dict[str, list[dict]] = {}
        conventions, rates = {}, []
        for cell, variant in config.cells:
            label = options.cell_name(cell, variant)
            for seed in range(config.seeds):
                rc = options.run_config(config, cell, variant, seed, data_dir)
                trainer, results, run_id = train_one(
                    rc, task, {"probe": "but", "probe_parent": parent.info.run_id}
                )
                conventions[label] = gates.convention(trainer.layer)
                gate = probe_model.gate_results(trainer.model, trainer.layer, x_valid, selection, vocabulary)
                follow = probe_model.follow_results(
                    trainer.predict,
                    x_pool,
                    y_pool,
                    vocabulary,
                    confidence=config.confidence,
                    n_pairs=config.n_pairs,
                    seed=seed,
                )
                rates.append(results["steps_per_s"])
                per_cell.setdefault(label, []).append(
                    {"seed": seed, "run_id": run_id, "results": results, "gate": gate, "follow": follow}
                )
        tables = _tables(per_cell, analysis)
        figures = _figures(per_cell, tables, out, plots)
        timing = {"wall_s": time.perf_counter() - start, "steps_per_s": float(np.mean(rates))}
        text = report.write(
            params=config.as_params(),
            models=tables["models"],
            gate_summary=tables["gate_summary"],
            follow_summary=tables["follow_summary"],
            conventions=conventions,
            selection=facts,
            figures=figures,
            verdict_cell=VERDICT_CELL,
            timing=timing,
        )
        (out / "but_probe.md").write_text(text)
        _write_outputs(out, tables, facts, conventions)
        metrics, verdicts = _summary_metrics(tables)
        metrics["wall_time_s"] = timing["wall_s"]
        mlflow.log_metrics(metrics)
        mlflow.set_tags({f"verdict.{cell}": v for cell, v in verdicts.items()})
        mlflow.set_tag("verdict", verdicts.get(VERDICT_CELL, "inconclusive"))
        mlflow.log_artifacts(str(out))
    print(text.splitlines()[2], flush=True)
    print(f"done: report {out / 'but_probe.md'}, {timing['wall_s']:.0f}s", flush=True)
    return {"metrics": metrics, "verdicts": verdicts, "report": str(out / "but_probe.md")}


def _tables(per_cell: dict[str, list[dict]], analysis) -> dict:
    import numpy as np

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


def _figures(per_cell, tables, out: Path, plots) -> list[tuple[str, str]]:
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


def _write_outputs(out: Path, tables: dict, facts: dict, conventions: dict) -> None:
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
                for k, row in enumerate(r["gate"][f"drops_{group}"]):
                    drops.append(
                        {
                            "cell": cell,
                            "seed": r["seed"],
                            "group": group,
                            "k": k,
                            "drop_at": row[0],
                            "drop_at+1": row[1],
                            "drop_at+2": row[2],
                        }
                    )
    _write_csv(out / "gate_drops.csv", drops)
    models = [{"cell": m["cell"], "per_seed": m["per_seed"]} for m in tables["models"]]
    (out / "probe.json").write_text(
        json.dumps({"selection": facts, "conventions": conventions, "models": models}, indent=2)
    )


def _summary_metrics(tables: dict) -> tuple[dict[str, float], dict[str, str]]:
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
    clean = {k.replace("/", "_").replace("+", "p"): float(v) for k, v in metrics.items()}
    return {k: v for k, v in clean.items() if v == v}, verdicts  # NaN is not logged


def main(argv: list[str] | None = None) -> int:
    config = parse(argv)
    folder = check_data(config)
    from experiments.run import check_tracking

    check_tracking()
    run(config, folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())

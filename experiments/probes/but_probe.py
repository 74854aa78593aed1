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

import os
import sys
import time
from pathlib import Path

from experiments.probes import options, runs
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
        runs.refuse(error)


def check_data(config: options.ProbeConfig) -> Path:
    """The data directory, with SST-2 present and verified (else exit 2 naming what is missing)."""
    try:
        folder = options.data_folder(config)
        corpora.ensure("sst2", folder)
    except corpora.CorpusError as error:
        runs.refuse(error)
    return folder


def _selection_facts(selection) -> dict:
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
    """Train one model inside a nested MLflow run logged as `main` logs a run: (trainer, summary, id)."""
    from experiments.tracking import records as tracking

    name = tracking.run_name(run_config)
    trainer, results, run_id = runs.train_nested(run_config, task, name, tags)
    print(
        f"  {name}: dev accuracy {results['final_val_accuracy']:.4f}, {results['steps_per_s']:.1f} steps/s",
        flush=True,
    )
    return trainer, results, run_id


def prepare(config: options.ProbeConfig, data_dir: Path) -> dict:
    """The task (built once for every model), its vocabulary and the sentences the probe reads."""
    import numpy as np

    from experiments.probes import probe_model
    from experiments.training.tasks import sentiment

    task = sentiment.make(seq_len=config.seq_len, seed=0, data_dir=data_dir, vocab_size=config.vocab_size)
    vocabulary = list(task.vocabulary)
    selection = probe_model.select(task.valid[0], vocabulary)
    facts = _selection_facts(selection)
    print(
        f"but_probe: {facts['n_contrastive']} contrastive dev sentences ({facts['words']}), "
        f"{facts['n_and']} 'and' controls",
        flush=True,
    )
    return {
        "task": task,
        "vocabulary": vocabulary,
        "selection": selection,
        "facts": facts,
        # clause sources for the composites: every held-out labelled sentence
        "x_pool": np.concatenate([task.valid[0], task.test[0]]),
        "y_pool": np.concatenate([task.valid[1], task.test[1]]),
    }


def train_and_probe(config: options.ProbeConfig, data: dict, data_dir: Path, parent_id: str):
    """Every (cell, seed): trained in its own nested run, then probed; (per cell, conventions)."""
    from experiments.probes import gates, probe_model

    task, vocabulary = data["task"], data["vocabulary"]
    per_cell: dict[str, list[dict]] = {}
    conventions = {}
    for cell, variant in config.cells:
        label = options.cell_name(cell, variant)
        for seed in range(config.seeds):
            rc = options.run_config(config, cell, variant, seed, data_dir)
            trainer, results, run_id = train_one(rc, task, {"probe": "but", "probe_parent": parent_id})
            conventions[label] = gates.convention(trainer.layer)
            gate = probe_model.gate_results(
                trainer.model, trainer.layer, task.valid[0], data["selection"], vocabulary
            )
            follow = probe_model.follow_results(
                trainer.predict,
                data["x_pool"],
                data["y_pool"],
                vocabulary,
                confidence=config.confidence,
                n_pairs=config.n_pairs,
                seed=seed,
            )
            per_cell.setdefault(label, []).append(
                {"seed": seed, "run_id": run_id, "results": results, "gate": gate, "follow": follow}
            )
    return per_cell, conventions


def run(config: options.ProbeConfig, data_dir: Path) -> dict:
    """The whole probe inside the active (or a new) MLflow run; returns the summary it logged."""
    import mlflow
    import numpy as np

    from experiments.probes import outputs, report
    from experiments.tracking import records as tracking

    start = time.perf_counter()
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    outputs.clear(out)
    data = prepare(config, data_dir)
    experiment_id = runs.experiment_id(EXPERIMENT)
    run_name = "but_probe" + (" quick" if config.quick else "")
    with mlflow.start_run(run_name=run_name, experiment_id=experiment_id) as parent:
        commit, dirty = tracking.git_commit()
        logged = mlflow.get_run(parent.info.run_id).data.params  # under `mlflow run`: the launcher's
        mlflow.log_params({k: v for k, v in config.as_params().items() if k not in logged})
        tags = {
            "git_commit": commit,
            "git_dirty": str(dirty).lower(),
            "data_checksum": data["task"].data_checksum,
        }
        mlflow.set_tags({"probe": "but", **tags})
        per_cell, conventions = train_and_probe(config, data, data_dir, parent.info.run_id)
        tables = outputs.tables(per_cell)
        figures = outputs.figures(per_cell, tables, out)
        rates = [r["results"]["steps_per_s"] for runs in per_cell.values() for r in runs]
        timing = {"wall_s": time.perf_counter() - start, "steps_per_s": float(np.mean(rates))}
        text = report.write(
            params=config.as_params(),
            models=tables["models"],
            gate_summary=tables["gate_summary"],
            follow_summary=tables["follow_summary"],
            conventions=conventions,
            selection=data["facts"],
            figures=figures,
            verdict_cell=VERDICT_CELL,
            timing=timing,
        )
        (out / "but_probe.md").write_text(text)
        outputs.write_tables(out, tables, data["facts"], conventions, config.as_params())
        metrics, verdicts = outputs.summary_metrics(tables)
        metrics["wall_time_s"] = timing["wall_s"]
        mlflow.log_metrics(metrics)
        mlflow.set_tags({f"verdict.{cell}": v for cell, v in verdicts.items()})
        mlflow.set_tag("verdict", verdicts.get(VERDICT_CELL, "inconclusive"))
        mlflow.log_artifacts(str(out))
    print(text.splitlines()[2], flush=True)
    print(f"done: report {out / 'but_probe.md'}, {timing['wall_s']:.0f}s", flush=True)
    return {"metrics": metrics, "verdicts": verdicts, "report": str(out / "but_probe.md"), "tables": tables}


def main(argv: list[str] | None = None) -> int:
    config = parse(argv)
    folder = check_data(config)
    from experiments.run import check_tracking

    check_tracking()
    run(config, folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())

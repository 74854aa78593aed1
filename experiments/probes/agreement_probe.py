"""MLproject `agreement_probe`: does a recurrent network track the subject's number? (issue 17, probe 2)

    mlflow run . --env-manager local -e agreement_probe
    python -m experiments.probes.agreement_probe --quick true --data_dir ../shared/corpora

Number prediction: each cell (default LSTM, GRU, SimpleRNN, NFG, NOG, CIFG) for each seed is
trained on the prefixes of the Linzen sentences (seed k tested on fold k of a stratified, grouped
5-fold split; agreement_split.py), one nested MLflow run each. Language-model scoring: a PTB
word-level LSTM LM (its own nested run) scores the correct against the wrong verb form on every
Linzen and nonce sentence, and a linear probe reads the agreeing word's number out of its cell
state between that word and the verb (agreement_cell.py). The parent run logs summary metrics,
tables, the figures and the report section (`agreement_probe.md`), also written to `--out`.
Parameters and both corpora are checked before TensorFlow loads (exit 2 with one line).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from experiments.probes import agreement_options as options
from experiments.probes import runs
from experiments.training import corpora
from experiments.training.config import ConfigError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

EXPERIMENT = "agreement_probe"


def parse(argv: list[str] | None) -> options.AgreementConfig:
    args = options.build_parser(__doc__.splitlines()[0]).parse_args(argv)
    try:
        return options.from_args(args)
    except ConfigError as error:
        runs.refuse(error)


def check_data(config: options.AgreementConfig) -> dict:
    """Both corpora present and verified ({name: paths}), else exit 2 naming what is missing."""
    try:
        folder = options.data_folder(config)
        return {name: corpora.ensure(name, folder) for name in ("linzen_agreement", "ptb")}
    except corpora.CorpusError as error:
        runs.refuse(error)


def train_one(run_config, task, name: str, tags: dict[str, str]):
    """One nested run, its params and tags naming our task (not the carrier's): (trainer, summary)."""
    relabel = {"task": task.name, "corpus": task.info.get("corpus", "")}
    trainer, results, _ = runs.train_nested(run_config, task, name, tags, relabel)
    return trainer, results


def number_prediction(config, items, checksum: str, parent_id: str) -> dict[str, list[dict]]:
    from experiments.probes import agreement_number as number
    from experiments.probes.options import cell_name

    per_cell: dict[str, list[dict]] = {}
    for cell, variant in config.cells:
        label = cell_name(cell, variant)
        for seed in range(config.seeds):
            task, parts = number.make_task(items, seed, config.seq_len, checksum)
            rc = options.run_config(config, cell, variant, seed)
            tags = {"probe": "agreement", "probe_parent": parent_id}
            trainer, results = train_one(rc, task, f"agreement {label} s{seed}", tags)
            row = number.predictions(trainer.predict, task, items, parts["test"])
            per_cell.setdefault(label, []).append({"seed": seed, **row, "results": results})
            print(f"  {label} s{seed}: test accuracy {results['test_accuracy']:.4f}", flush=True)
    return per_cell


def language_model(config, paths: dict, linzen, nonce, parent_id: str) -> dict:
    import mlflow
    import numpy as np

    from experiments.probes import agreement_cell as cell
    from experiments.probes import agreement_lm as lm
    from experiments.probes import agreement_states as states

    ptb = paths["ptb"]
    task = lm.make_task(ptb, config.lm_seq_len, config.lm_words, corpora.checksum(ptb))
    rc = options.run_config(config, "lstm", "keras", 0, lm=True)
    trainer, results = train_one(
        rc, task, "agreement word LM", {"probe": "agreement", "probe_parent": parent_id}
    )
    ppl = lm.perplexity(trainer.predict, ptb, task.vocabulary, config.lm_seq_len)
    out = {"test_perplexity": ppl, "results": results}
    for name, items in (("linzen", linzen), ("nonce", nonce)):
        log_probs = states.next_word_log_probs(trainer.model, [it.prefix for it in items], task.vocabulary)
        forms = lm.form_ids([(it.correct, it.wrong) for it in items], task.vocabulary)
        out[name] = {
            "choices": lm.choose(log_probs, forms),
            "buckets": np.array([it.bucket for it in items]),
            "kinds": np.array([it.kind for it in items]),
            "excluded_unknown_form": int((forms < 0).any(axis=1).sum()),
        }
    out["cell"] = cell.probe(trainer.model, nonce, task.vocabulary)
    mlflow.log_metric("lm.test_perplexity", ppl)
    verdict = out["cell"]["verdict"]
    print(f"  word LM: test perplexity {ppl:.1f}; cell probe {verdict['diff']:+.3f} ({verdict['verdict']})")
    return out


def run(config: options.AgreementConfig, paths: dict) -> dict:
    import mlflow

    from experiments.probes import agreement_data as data
    from experiments.probes import agreement_report as report
    from experiments.tracking import records as tracking

    start = time.perf_counter()
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    report.clear(out)
    folder = Path(paths["linzen_agreement"]["subj_agr_filtered.text"]).parent
    linzen, counts = data.read_linzen(folder)
    nonce = data.read_nonce(folder)
    experiment_id = runs.experiment_id(EXPERIMENT)
    name = "agreement_probe" + (" quick" if config.quick else "")
    with mlflow.start_run(run_name=name, experiment_id=experiment_id) as parent:
        commit, dirty = tracking.git_commit()
        logged = mlflow.get_run(parent.info.run_id).data.params
        mlflow.log_params({k: v for k, v in config.as_params().items() if k not in logged})
        checksum = corpora.checksum(paths["linzen_agreement"])
        mlflow.set_tags(
            {
                "probe": "agreement",
                "git_commit": commit,
                "git_dirty": str(dirty).lower(),
                "data_checksum": checksum,
            }
        )
        per_cell = number_prediction(config, linzen, checksum, parent.info.run_id)
        lm_out = language_model(config, paths, linzen, nonce, parent.info.run_id)
        wall = time.perf_counter() - start
        summary = report.write_all(out, config.as_params(), per_cell, lm_out, counts, wall)
        mlflow.log_metrics({**summary["metrics"], "wall_time_s": wall})
        mlflow.set_tags({f"verdict.{k}": v for k, v in summary["verdicts"].items()})
        mlflow.log_artifacts(str(out))
    print(f"done: report {out / 'agreement_probe.md'}, {wall:.0f}s", flush=True)
    return summary


def main(argv: list[str] | None = None) -> int:
    config = parse(argv)
    paths = check_data(config)
    from experiments.run import check_tracking

    check_tracking()
    run(config, paths)
    return 0


if __name__ == "__main__":
    sys.exit(main())

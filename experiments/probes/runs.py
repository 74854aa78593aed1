"""What the probes share around MLflow: their own experiment, one nested run per trained model,
and the one-line refusal of bad input before TensorFlow loads."""

from __future__ import annotations

import os
import sys
from typing import NoReturn


def refuse(error: Exception) -> NoReturn:
    """Print `error: …` on stderr and exit 2 (bad parameters or data, nothing trained)."""
    print(f"error: {error}", file=sys.stderr)
    raise SystemExit(2) from None


def experiment_id(name: str) -> str | None:
    """The probe's own experiment (created once), unless `mlflow run` made the run (MLFLOW_RUN_ID)
    or the caller chose one; set_experiment would also change the caller's experiment."""
    import mlflow

    chosen = ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID")
    if mlflow.active_run() is not None or any(os.environ.get(k) for k in chosen):
        return None
    found = mlflow.get_experiment_by_name(name)
    return found.experiment_id if found else mlflow.create_experiment(name)


def train_nested(run_config, task, name: str, tags: dict[str, str], relabel: dict[str, str] | None = None):
    """Train one model in a nested run of the active run's experiment, logged as `main` logs a run
    (`relabel`: params and tags that name the probe's own task): (trainer, summary, run id)."""
    import mlflow

    from experiments.tracking import records as tracking
    from experiments.training.trainer import Trainer, summary

    relabel = relabel or {}
    parent = mlflow.active_run()
    with mlflow.start_run(run_name=name, nested=True, experiment_id=parent.info.experiment_id) as run:
        mlflow.log_params({**run_config.as_params(), **relabel})
        mlflow.set_tags({**tracking.run_tags(run_config, task.data_checksum, task.info), **relabel, **tags})
        trainer = Trainer(run_config, task)
        outcome = trainer.run(
            lambda r: mlflow.log_metrics({k: v for k, v in r.items() if k != "step"}, step=r["step"])
        )
        results = summary(outcome, run_config, task)
        mlflow.log_metrics(results)
        mlflow.set_tags(tracking.engine_tags(trainer.layer))
        return trainer, results, run.info.run_id

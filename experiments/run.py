"""MLproject `main`: train one recurrent network on one task; every run fully tracked.

    mlflow run . -P task=adding -P variant=NFG -P forget_bias=0
    python -m experiments.run --task copy --seq_len 50

Parameters are checked (and corpora verified, and a tracking server asked for /health) before
TensorFlow is imported, so a bad value or a server that is down costs a second (exit 2) and
leaves no run behind. A diverging run (non-finite, or a loss above explode_factor × max(baseline,
initial validation loss)) ends FINISHED with diverged=1 and the tag divergence_cause. A tracking
server lost mid-run does not stop training: the rest of the run is kept locally
(experiments/tracking/offline.py).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time

from experiments.tracking import offline
from experiments.training import corpora
from experiments.training.config import AUTO, ConfigError, RunConfig, build_parser, from_strings

# Set before TensorFlow and MLflow load (lazily, in train_and_log).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

TIMING_METRICS = ("train_time_s", "steps_per_s", "wall_time_s")


def parse(argv: list[str] | None) -> tuple[RunConfig, dict[str, str]]:
    """(config, the parameters exactly as given); one line and exit 2 on a bad value."""
    raw = {
        k: v for k, v in vars(build_parser(__doc__.splitlines()[0]).parse_args(argv)).items() if v is not None
    }
    try:
        return from_strings(raw), raw
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def check_data(config: RunConfig) -> None:
    """Fetch/verify a known corpus now, before a run or TensorFlow exists."""
    if config.task not in corpora.TASK_CORPORA:
        return
    # auto: the task's default corpus, listed first.
    corpus = corpora.TASK_CORPORA[config.task][0] if config.corpus == AUTO else config.corpus
    if corpus in corpora.CORPORA:
        try:
            corpora.ensure(corpus, corpora.data_dir(None if config.data_dir == AUTO else config.data_dir))
        except corpora.CorpusError as error:
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(2) from None


def _progress(config: RunConfig, metric: str, baseline: float, start: float):
    def show(record: dict) -> None:
        """One line per evaluation; what is not known yet (at step 0: the training loss, the
        gradient norm, the time left) is left out rather than printed as nan."""
        step = record["step"]
        elapsed = time.perf_counter() - start
        loss = f"loss {record['loss']:.4f}  " if "loss" in record else ""
        grad = f"  |g| {record['grad_norm']:.3g}" if "grad_norm" in record else ""
        eta = f"  eta {elapsed / step * (config.steps - step):5.0f}s" if step else ""
        print(
            f"step {step:6d}/{config.steps}  {loss}val_loss {record['val_loss']:.4f} "
            f"({record['val_loss'] / baseline:.2f}× baseline)  {metric} {record['val_' + metric]:.4f}"
            f"{grad}  {elapsed:5.0f}s{eta}",
            flush=True,
        )

    return show


@contextlib.contextmanager
def _interrupt_flag():
    """Ctrl-C sets a flag the loop checks between steps (an interrupt inside TensorFlow or a
    tracking call can be swallowed there); a second Ctrl-C interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    flag = {"set": False}

    def handler(signum, frame):
        if flag["set"]:
            raise KeyboardInterrupt
        flag["set"] = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: flag["set"]
    finally:
        signal.signal(signal.SIGINT, previous)


def train_and_log(
    config: RunConfig,
    raw: dict[str, str],
    extra_tags: dict[str, str] | None = None,
    *,
    experiment_id: str | None = None,
    parent_run_id: str | None = None,
    run_id: str | None = None,
    name: str | None = None,
    logged_params: tuple[str, ...] | None = None,
) -> dict:
    """Train `config` inside the active (or a new) MLflow run; return the summary and run id.

    Every parameter is in the run's config.json artifact; `logged_params` limits those logged as
    MLflow params (a sweep logs what varies between its children; None: all of them).

    A sweep passes `experiment_id` and `parent_run_id` to make the run a child of its parent,
    or `run_id`: a run it made (and claimed) already. If the tracking server is lost mid-run,
    training goes on, the rest is kept locally and offline.TrackingLostError is raised at the end.
    """
    import mlflow

    from experiments.tracking import records as tracking

    wall_start = time.perf_counter()
    name = name or tracking.run_name(config)  # a sweep's trial names what differs from its siblings
    with mlflow.start_run(
        run_id=run_id,
        run_name=name,
        experiment_id=experiment_id,
        parent_run_id=parent_run_id,
        tags=extra_tags,
    ) as run:
        recorder = offline.Recorder(run.info.run_id, mlflow.get_tracking_uri(), run.info.experiment_id)
        try:
            recorder.set_tags({"mlflow.runName": name})
            _log_params(recorder, config, raw, logged_params)
            outcome, results = _train(recorder, config, name, extra_tags, wall_start)
            recorder.end("FINISHED")
        except KeyboardInterrupt:
            recorder.end("KILLED")  # interrupted on purpose: not FAILED, never left RUNNING
            raise
        except Exception as error:  # the run ends FAILED and says why, here and on the run
            print(
                f"error: run {run.info.run_id} ended FAILED: {type(error).__name__}: {error}", file=sys.stderr
            )
            recorder.set_tags({"error": f"{type(error).__name__}: {error}"[:5000]})
            recorder.end("FAILED")
            raise
    _print_verdict(outcome, results)
    lost = recorder.lost()
    if lost is not None:
        raise lost
    return {"run_id": run.info.run_id, **results}


def _log_params(
    recorder: offline.Recorder, config: RunConfig, raw: dict[str, str], logged_params: tuple[str, ...] | None
) -> None:
    import mlflow

    # Under `mlflow run` the launcher has logged the MLproject's params (shell-quoted);
    # log only what is missing so a value is never "changed".
    logged = mlflow.get_run(recorder.run_id).data.params
    params = {**config.as_params(), **raw}
    if logged_params is not None:
        params = {k: v for k, v in params.items() if k in logged_params}
    recorder.log_params({k: v for k, v in params.items() if k not in logged})


def _train(
    recorder: offline.Recorder,
    config: RunConfig,
    name: str,
    extra_tags: dict[str, str] | None,
    wall_start: float,
):
    """Build the task and model, train, log the summary metrics and artifacts: (outcome, results)."""
    from experiments.tracking import records as tracking
    from experiments.training.tasks import make_task
    from experiments.training.trainer import Trainer, summary

    task = make_task(config)
    recorder.set_tags({**tracking.run_tags(config, task.data_checksum, task.info), **(extra_tags or {})})
    print(f"run {recorder.run_id}  {name}  (baseline {task.baseline_loss:.4f})", flush=True)
    trainer = Trainer(config, task)
    show = _progress(config, task.metric_name, task.baseline_loss, time.perf_counter())

    def on_eval(record: dict) -> None:
        recorder.log_metrics({k: v for k, v in record.items() if k != "step"}, step=record["step"])
        if record["step"] == 0:  # the first evaluation traced the layer: its engine is known
            line = tracking.engine_fallback_line(trainer.layer)
            if line:
                print(line, flush=True)
        show(record)

    with _interrupt_flag() as interrupted:
        outcome = trainer.run(on_eval, interrupted)
    results = summary(outcome, config, task)
    recorder.set_tags(tracking.engine_tags(trainer.layer))
    if outcome.diverged:
        recorder.set_tags(
            {"divergence_cause": outcome.divergence_cause, "divergence_detail": outcome.divergence_detail}
        )
    results["wall_time_s"] = time.perf_counter() - wall_start
    recorder.log_metrics(results)
    _log_artifacts(recorder, config, task, trainer, outcome, name)
    recorder.set_tags({"model_logged": str(_log_model(recorder, config, task, trainer, outcome)).lower()})
    return outcome, results


def _log_artifacts(recorder: offline.Recorder, config: RunConfig, task, trainer, outcome, name: str) -> None:
    """config.json (every parameter, what `auto` resolved to, the model), the evaluations, the plots."""
    from experiments.tracking import records as tracking
    from experiments.training import plots

    resolved = {
        "forget_bias": tracking.resolved_forget_bias(config),
        "candidate_activation": tracking.resolved_candidate_activation(config),
        "target": task.target,
        "input_length": task.seq_len,
        "data_checksum": task.data_checksum,
        **task.info,
    }
    tracking.log_json(
        recorder,
        {"params": config.as_params(), "resolved": resolved, "model": trainer.model.to_json()},
        "config.json",
    )
    tracking.log_json(recorder, {"evaluations": outcome.evaluations}, "evaluations.json")
    tracking.log_figure(
        recorder, plots.learning_curves(outcome.evaluations, task, name), "learning_curves.png"
    )
    tracking.log_figure(
        recorder, plots.gradient_flow(outcome.flow_start, outcome.flow_end, name), "gradient_flow.png"
    )
    if outcome.gate_values:
        tracking.log_figure(recorder, plots.gate_histograms(outcome.gate_values, name), "gate_histograms.png")


def _log_model(recorder: offline.Recorder, config: RunConfig, task, trainer, outcome) -> bool:
    """The trained model as an MLflow model (with its signature and pins); whether it was logged."""
    if not config.log_model or outcome.diverged:
        return False
    import mlflow.keras
    from mlflow.models import infer_signature

    from experiments.tracking import records as tracking

    example = task.valid[0][:2]
    # Offline, the Keras file is kept instead (replayed as a plain artifact).
    return recorder.call(
        lambda: mlflow.keras.log_model(
            trainer.model,
            name="model",
            signature=infer_signature(example, trainer.predict(example)),
            pip_requirements=[
                f"{k}=={v}" for k, v in tracking.package_versions().items() if k != "lstm-keras"
            ],
        ),
        ("model.keras", trainer.model.save),
    )


def _print_verdict(outcome, results: dict) -> None:
    verdict = f"solved at step {results['steps_to_solve']:.0f}" if results["solved"] else "not solved"
    if outcome.diverged:
        verdict = (
            f"DIVERGED ({outcome.divergence_cause} at step {outcome.diverged_at_step}: "
            f"{outcome.divergence_detail})"
        )
    print(
        f"done: {verdict}; best val_loss {results['best_val_loss']:.4f} "
        f"({results['best_val_loss_over_baseline']:.2f}× baseline), "
        f"{results['steps_per_s']:.1f} steps/s, {results['wall_time_s']:.0f}s",
        flush=True,
    )


def check_tracking() -> None:
    """The tracking store must be ready now (a server answering): before TensorFlow or a run."""
    import mlflow

    refusal = offline.check_store(mlflow.get_tracking_uri())
    if refusal:
        print(refusal, file=sys.stderr)
        raise SystemExit(2)


def main(argv: list[str] | None = None) -> int:
    config, raw = parse(argv)
    check_data(config)
    check_tracking()
    try:
        train_and_log(config, raw)
    except corpora.CorpusError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except offline.TrackingLostError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError:  # disk full, read-only artifact store: the one-line error is printed already
        return 1
    except KeyboardInterrupt:
        print("interrupted: run ended KILLED", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""MLproject `sweep`: every trial of a sweep spec as a nested MLflow run, executed on Ray.

    mlflow run . -e sweep -P spec=experiments/sweeps/forget_bias.yaml -P profile=quick

One parent run per sweep (tagged with the spec and its hash; experiments/sweep/parent_run.py);
each configuration × learning rate × seed is a child run made by the training entry point's own
code. Trials run as Ray tasks — locally (`ray.init()` on this machine's cores) or on a cluster
(`ray_address`) — one CPU and `threads_per_trial` TensorFlow threads each, all logging to one
tracking URI.

Resumable: rerunning the same spec and profile (or `resume=<parent run id>`) runs only the
trials without a FINISHED child; runs left behind by a killed attempt are deleted and the new
run records them in `retried_from`. A trial that raises ends FAILED with its error; the others
go on, and the parent counts finished / diverged / failed. The same sweep started twice at once
shares one parent and the work: each trial's lease is taken atomically on the parent before it
is trained (experiments/sweep/leases.py), so no configuration runs twice.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from experiments.sweep import leases, parent_run
from experiments.sweep.protocol import choose_learning_rates
from experiments.sweep.spec import SpecError, Sweep, Trial, load
from experiments.tracking import offline

ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "RAY_USAGE_STATS_ENABLED": "0",
    "TF_CPP_MIN_LOG_LEVEL": "2",
}
CHILD = "child"
SKIPPED = "SKIPPED_DUPLICATE"  # the trial is done, or under way in a concurrent sweep


def absolute_tracking_uri(uri: str) -> str:
    """Workers may start elsewhere: a relative sqlite/file store must be made absolute."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(uri.removeprefix("sqlite:///")).resolve())
    if "://" not in uri:
        return Path(uri).resolve().as_uri()
    return uri


# ------------------------------------------------------------------------------ worker side


def run_trial(
    trial: Trial,
    study: str,
    tracking_uri: str,
    experiment_id: str,
    parent_id: str,
    threads: int,
    driver: str = "",
):
    """Train one trial as a child run unless another run holds its lease; never raises (a
    failure is returned and logged). `driver`: the sweep process, leases.process_id()."""
    os.environ.pop("MLFLOW_RUN_ID", None)  # inherited from `mlflow run`: that is the parent
    os.environ.update(ENV)
    import mlflow

    _limit_threads(threads)
    mlflow.set_tracking_uri(tracking_uri)
    client = mlflow.MlflowClient()
    tags = _child_tags(trial, study)
    from experiments.tracking.records import run_name
    from experiments.training.config import from_strings

    config = from_strings(trial.params)
    name = run_name(config, trial.varying)
    run_id = client.create_run(
        experiment_id,
        run_name=name,
        tags={**tags, "mlflow.parentRunId": parent_id, **leases.holder_tags(driver)},
    ).info.run_id
    # Earlier attempts that died (killed sweep, lost node) are deleted; a concurrent sweep's is not.
    taken, stale = leases.acquire(client, experiment_id, parent_id, trial.trial_key, run_id, driver)
    if taken:
        client.delete_run(run_id)
        return {"status": SKIPPED, "reason": taken, "retried": 0}
    if stale:
        tags["retried_from"] = ",".join(stale)
    return {**_train_trial(client, trial, config, run_id, name, tags), "retried": len(stale)}


def _limit_threads(threads: int) -> None:
    import tensorflow as tf

    try:  # only possible before TensorFlow's first op in this worker process
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass


def _child_tags(trial: Trial, study: str) -> dict[str, str]:
    import ray

    tags = {
        "sweep_role": CHILD,
        "study": study,
        "config_label": trial.config_label,
        "config_key": trial.config_key,
        "trial_key": trial.trial_key,
        "is_reference": str(trial.is_reference).lower(),
        "phase": trial.phase,
    }
    if ray.is_initialized():  # the host that ran it: on a cluster, a lost node's trials show up elsewhere
        tags["ray_node_ip"] = ray.util.get_node_ip_address()
    return tags


def _train_trial(client, trial: Trial, config, run_id: str, name: str, tags: dict[str, str]) -> dict:
    """Train the leased trial in its run, renewing the lease: its outcome, FINISHED or FAILED."""
    import mlflow

    from experiments.run import train_and_log

    try:
        with leases.heartbeat(client, run_id):
            result = train_and_log(
                config,
                trial.params,
                tags,
                run_id=run_id,
                name=name,
                logged_params=trial.logged,
            )
        return {
            "status": "FINISHED",
            "diverged": bool(result["diverged"]),
            "solved": bool(result["solved"]),
            "best_val_loss_over_baseline": result["best_val_loss_over_baseline"],
        }
    except Exception as error:  # isolation: the child ended FAILED with its error; the sweep goes on
        while mlflow.active_run() is not None:
            mlflow.end_run("FAILED")
        return {"status": "FAILED", "error": f"{type(error).__name__}: {error}"}


# ------------------------------------------------------------------------------ driver side


def _progress(done: int, total: int, start: float, trial: Trial, outcome: dict) -> None:
    elapsed = time.perf_counter() - start
    eta = elapsed / done * (total - done) if done else float("nan")
    what = (
        outcome["status"]
        if outcome["status"] != "FINISHED"
        else ("diverged" if outcome["diverged"] else ("solved" if outcome["solved"] else "finished"))
    )
    if outcome["status"] == SKIPPED:
        what = f"skipped, {outcome['reason']} in another run of this sweep"
    lr, seed = trial.params["learning_rate"], trial.params["seed"]
    print(
        f"[{done}/{total}] {trial.config_label} lr={lr} s{seed}: {what}"
        f"  elapsed {elapsed:.0f}s  eta {eta:.0f}s",
        flush=True,
    )


def run_sweep(
    sweep: Sweep,
    *,
    ray_address: str | None,
    resume: str | None,
    threads: int,
    max_retries: int,
    max_concurrent: int | None = None,
) -> dict:
    """Run the trials of `sweep` that have no FINISHED child under its parent; the parent's counts."""
    import mlflow

    tracking_uri = absolute_tracking_uri(mlflow.get_tracking_uri())
    mlflow.set_tracking_uri(tracking_uri)
    client = mlflow.MlflowClient()
    launched = os.environ.get("MLFLOW_RUN_ID")  # `mlflow run` made the parent for us
    experiment_id = parent_run.find_experiment(client, launched)
    parent_tags = parent_run.sweep_tags(sweep)
    parent_id = parent_run.find_or_make(client, experiment_id, sweep, resume, launched, parent_tags)
    with mlflow.start_run(
        run_id=parent_id, experiment_id=experiment_id, run_name=parent_run.sweep_run_name(sweep)
    ) as parent:
        parent_id = parent.info.run_id
        mlflow.set_tags(parent_tags)
        mlflow.log_artifact(sweep.path)
        done_keys = parent_run.finished_trials(client, experiment_id, parent_id)
        todo = [t for t in sweep.trials if t.trial_key not in done_keys]
        total = sweep.n_trials
        print(
            f"sweep {sweep.study}/{sweep.profile}: {total} trials, {len(done_keys)} already finished, "
            f"{len(todo)} to run now (parent run {parent_id}); protocol: {sweep.protocol.describe()}",
            flush=True,
        )
        run = _phase_runner(sweep, total, tracking_uri, experiment_id, parent_id, threads, max_retries)
        retried, elsewhere = run(todo, len(done_keys), ray_address, max_concurrent)
        if sweep.protocol.tunes:
            confirm = _confirmatory(client, sweep, experiment_id, parent_id)
            done_keys = parent_run.finished_trials(client, experiment_id, parent_id)
            more, still = run(
                [t for t in confirm if t.trial_key not in done_keys],
                len(done_keys),
                ray_address,
                max_concurrent,
            )
            retried, elsewhere = retried + more, elsewhere | still
        summary = _summary(client, experiment_id, parent_id, total, retried, elsewhere)
        mlflow.log_metrics(summary)
    print(" ".join(f"{k}={v}" for k, v in summary.items()), flush=True)
    return {"parent_run_id": parent_id, **summary}


def _phase_runner(sweep: Sweep, total, tracking_uri, experiment_id, parent_id, threads, max_retries):
    """run(todo, done so far, ray_address, max_concurrent) → (retries, trial keys running elsewhere):
    one phase's trials on Ray, started on first use."""

    def run(todo: list[Trial], done: int, ray_address, max_concurrent) -> tuple[int, set[str]]:
        if not todo:
            return 0, set()
        _start_ray(ray_address, threads, max_concurrent)
        return _run_on_ray(
            todo, total, done, sweep.study, tracking_uri, experiment_id, parent_id, threads, max_retries
        )

    return run


def _confirmatory(client, sweep: Sweep, experiment_id: str, parent_id: str) -> tuple[Trial, ...]:
    """The confirmatory trials of every configuration whose tuning trials have all finished, at the
    learning rate they choose (protocol.choose_learning_rates); logged on the parent as
    chosen_learning_rates.json. A configuration still tuning (failed, or running in a concurrent
    sweep) waits for the next run of this sweep."""
    import mlflow

    finished = parent_run.finished_trials(client, experiment_id, parent_id)
    complete = {
        p.config_key
        for p in sweep.points
        if all(t.trial_key in finished for t in sweep.trials if t.config_key == p.config_key)
    }
    runs = [r for r in finished.values() if r.data.tags.get("config_key") in complete]
    chosen = choose_learning_rates(runs)
    waiting = len(sweep.points) - len(chosen)
    if waiting:
        print(f"{waiting} configuration(s) still tuning: rerun the sweep to confirm them", flush=True)
    labels = {p.config_key: p.config_label for p in sweep.points}
    mlflow.log_dict({labels[k]: float(v) for k, v in sorted(chosen.items())}, "chosen_learning_rates.json")
    print(
        f"tuning done for {len(chosen)} configuration(s); confirming on seeds "
        f"{','.join(sweep.protocol.confirm_seeds)}",
        flush=True,
    )
    return sweep.confirm_trials(chosen)


def _start_ray(ray_address: str | None, threads: int, max_concurrent: int | None) -> None:
    import ray

    ray.init(
        address=ray_address,
        # Locally, the CPUs offered to Ray = trials at once × threads each (default: all cores).
        num_cpus=max_concurrent * threads if max_concurrent and ray_address is None else None,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": ENV},
        ignore_reinit_error=True,
    )


def _run_on_ray(
    todo: list[Trial],
    total: int,
    done: int,
    study: str,
    tracking_uri: str,
    experiment_id: str,
    parent_id: str,
    threads: int,
    max_retries: int,
) -> tuple[int, set[str]]:
    """Run `todo` as Ray tasks, printing each outcome as it lands: (worker retries, trial keys
    skipped because a concurrent sweep is running them)."""
    import ray

    remote = ray.remote(num_cpus=threads, max_retries=max_retries)(run_trial)
    driver = leases.process_id()
    pending = {
        remote.remote(t, study, tracking_uri, experiment_id, parent_id, threads, driver): t for t in todo
    }
    retried, elsewhere = 0, set()
    start = time.perf_counter()
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        trial = pending.pop(ready[0])
        try:
            outcome = ray.get(ready[0])
        except ray.exceptions.RayError as error:  # the worker died past its retries
            outcome = {"status": "FAILED", "error": str(error), "retried": max_retries}
        done += 1
        _progress(done, total, start, trial, outcome)
        retried += outcome.get("retried", 0)
        if outcome["status"] == SKIPPED and outcome["reason"] == leases.RUNNING:
            elsewhere.add(trial.trial_key)
        if outcome["status"] == "FAILED":
            print(f"    error: {outcome['error'][:300]}", flush=True)
    return retried, elsewhere


def _summary(
    client, experiment_id: str, parent_id: str, total: int, retried: int, elsewhere: set[str]
) -> dict[str, int]:
    finished = parent_run.finished_trials(client, experiment_id, parent_id)
    diverged = sum(run.data.metrics.get("diverged", 0) == 1 for run in finished.values())
    elsewhere = elsewhere - set(finished)
    if elsewhere:  # not failed: the concurrent sweep running them logs the final counts
        print(f"{len(elsewhere)} trials still running in another run of this sweep", flush=True)
    return {
        "trials_total": total,
        "trials_finished": len(finished),
        "trials_diverged": diverged,
        "trials_failed": total - len(finished) - len(elsewhere),
        "trials_retried": retried,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, help="a YAML file in experiments/sweeps/")
    parser.add_argument("--profile", default="quick")
    parser.add_argument(
        "--ray_address",
        default="auto_local",
        help="auto_local: start Ray on this machine; else a cluster address (e.g. ray://host:10001)",
    )
    parser.add_argument(
        "--resume", default="none", help="a parent run id to continue (none: same spec + profile)"
    )
    parser.add_argument("--threads_per_trial", type=int, default=1)
    parser.add_argument("--max_retries", type=int, default=2, help="Ray retries of a trial whose worker died")
    parser.add_argument(
        "--max_concurrent", type=int, default=0, help="trials at once on a local Ray (0: one per core)"
    )
    args = parser.parse_args(argv)
    try:
        sweep = load(args.spec, args.profile)
    except SpecError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.threads_per_trial < 1:
        print(
            f"error: Invalid threads_per_trial={args.threads_per_trial}. Valid choices: an integer >= 1.",
            file=sys.stderr,
        )
        return 2
    os.environ.update(ENV)
    import mlflow

    refusal = offline.check_store(mlflow.get_tracking_uri())
    if refusal:  # before Ray starts or a parent run exists
        print(refusal, file=sys.stderr)
        return 2
    run_sweep(
        sweep,
        ray_address=None if args.ray_address == "auto_local" else args.ray_address,
        resume=None if args.resume in ("", "none") else args.resume,
        threads=args.threads_per_trial,
        max_retries=args.max_retries,
        max_concurrent=args.max_concurrent or None,
    )
    return 0  # failed trials are an outcome (counted on the parent), not a failed sweep


if __name__ == "__main__":
    sys.exit(main())

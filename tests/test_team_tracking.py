"""Team scale: a sweep with 4 concurrent writers loses and duplicates nothing in the tracking store,
both on a real MLflow server backed by PostgreSQL (started here on loopback, stopped by PID) and
on the default sqlite store written directly by every worker."""

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mlflow
import pytest
import yaml

from experiments.sweep.spec import load
from experiments.tracking import postgres
from experiments.tracking import server as tracking_server
from experiments.training.config import RunConfig

pytestmark = pytest.mark.slow  # starts PostgreSQL and an MLflow server

ROOT = Path(__file__).resolve().parents[1]
CELLS, SEEDS = ("lstm", "gru"), (0, 1, 2, 3)  # 8 trials
STEPS, EVAL_EVERY = 4, 2
BASE = {
    "units": 8,
    "batch_size": 8,
    "steps": STEPS,
    "eval_every": EVAL_EVERY,
    "probe_batch": 4,
    "log_model": False,
    "early_stop": False,  # every run takes every step: the expected metric steps are exact
}
SPEC = {
    "study": "team",
    "base": BASE,
    "tasks": {"adding": {"seq_len": 6}},
    "configs": [{"cell": c} for c in CELLS],
    "learning_rates": [0.01],
    "seeds": list(SEEDS),
    "reference": {"cell": "lstm"},
    "profiles": {"quick": {}},
}
EVAL_STEPS = list(range(0, STEPS + 1, EVAL_EVERY))  # [0, 2, 4]: step 0 is the untrained model
TRAIN_STEPS = EVAL_STEPS[1:]  # loss and grad_norm average the steps since the last evaluation
SUMMARY = {
    "baseline",
    "baseline_mse",
    "best_val_loss",
    "best_val_loss_over_baseline",
    "best_val_mse",
    "budget_unspent_steps",
    "diverged",
    "final_loss",
    "final_val_loss",
    "final_val_mse",
    "grad_flow_ratio_final",
    "grad_flow_ratio_init",
    "n_params",
    "solved",
    "steps_done",
    "steps_per_s",
    "test_loss",
    "test_loss_over_baseline",
    "test_mse",
    "train_time_s",
    "val_loss_over_baseline",
    "wall_time_s",
}
ARTIFACTS = {
    "config.json",
    "evaluations.json",
    "learning_curves.png",
    "gradient_flow.png",
    "gate_histograms.png",
}


def _text(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _expected_params(cell: str, seed: int) -> dict[str, str]:
    """Every RunConfig parameter as the spec implies it (the rest at their defaults)."""
    params = {name: _text(f.default) for name, f in RunConfig.__dataclass_fields__.items()}
    params.update({k: _text(v) for k, v in BASE.items()})
    params.update(task="adding", seq_len="6", cell=cell, learning_rate="0.01", seed=str(seed))
    return params


def _run_sweep(cmd: list[str], cwd: Path, env: dict, timeout: float) -> tuple[int, str]:
    """Run the sweep in its own process group; past the timeout, end that group (by its PID) only."""
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"the sweep took over {timeout}s:\n{output[-3000:]}")
    return proc.returncode, output


@pytest.fixture(params=["postgres", "sqlite"])
def store(request, tmp_path):
    """(tracking URI, label): a PostgreSQL-backed MLflow server, or a sqlite file used directly."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'mlflow.db'}", "sqlite"
        return
    if postgres.bindir() is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) absent: apt-get install postgresql")
    # As root, PostgreSQL runs as the postgres user: its directory must be reachable by it,
    # which pytest's per-user (0700) tmp_path is not.
    directory = Path(tempfile.mkdtemp(prefix="lstm-keras-pg-"))
    directory.chmod(0o711)
    started = time.perf_counter()
    try:
        with tracking_server.running_server(directory / "tracking") as uri:
            print(f"\n[postgres] server up in {time.perf_counter() - started:.1f}s at {uri}")
            yield uri, "postgres"
        assert not tracking_server.status(directory / "tracking")["postgres_pid"]
        assert not tracking_server.status(directory / "tracking")["mlflow_pid"]
    finally:  # running_server stopped both by PID, also when the test failed
        shutil.rmtree(directory, ignore_errors=True)


def _max_overlap(runs) -> int:
    """The most child runs that were open at one moment (the writers at once)."""
    events = sorted([(r.info.start_time, 1) for r in runs] + [(r.info.end_time, -1) for r in runs])
    most = now = 0
    for _, change in events:
        now += change
        most = max(most, now)
    return most


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def _expected_curves(cell: str, solved: bool) -> tuple[dict[str, list[int]], set[str]]:
    """The metric step curves (name -> steps) and summary metrics (logged once) of one child run."""
    gates = {"lstm": "fio", "gru": "rz"}[cell]
    at_evals = ["val_loss", "val_mse", "grad_flow_ratio"]
    at_evals += [f"gate_{g}_{s}" for g in gates for s in ("mean", "sat_high", "sat_low")]
    curves = {name: EVAL_STEPS for name in at_evals} | {name: TRAIN_STEPS for name in ("loss", "grad_norm")}
    return curves, SUMMARY | ({"steps_to_solve"} if solved else set())


def _check_child(client, run, parent_id: str, by_key: dict, tmp_path: Path) -> dict[str, int]:
    info, data = run.info, run.data
    assert info.status == "FINISHED" and info.lifecycle_stage == "active"
    assert data.tags["mlflow.parentRunId"] == parent_id and "retried_from" not in data.tags
    trial = by_key[data.tags["trial_key"]]
    cell, seed = trial.params["cell"], int(trial.params["seed"])
    assert data.tags["config_label"] == f"task=adding cell={cell}" and data.tags["study"] == "team"

    expected = _expected_params(cell, seed)
    # As params: what varies between the children (cell, seed) and the identity axes (task,
    # learning_rate) — nothing else; every other parameter is a constant, kept in config.json.
    assert data.params == {k: expected[k] for k in ("task", "learning_rate", "seed", "cell")}

    # Artifacts: exactly the expected files, none empty; JSON and a PNG read back.
    listed = {a.path: a for a in client.list_artifacts(info.run_id)}
    assert set(listed) == ARTIFACTS
    assert all(not a.is_dir and a.file_size and a.file_size > 0 for a in listed.values())
    where = str(tmp_path / "downloads" / info.run_id)
    evaluations = json.loads(
        Path(client.download_artifacts(info.run_id, "evaluations.json", where)).read_text()
    )
    png = Path(client.download_artifacts(info.run_id, "learning_curves.png", where)).read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) == listed["learning_curves.png"].file_size
    config = json.loads(Path(client.download_artifacts(info.run_id, "config.json", where)).read_text())
    assert config["params"] == expected  # every RunConfig parameter, with the spec's value

    # Metrics: exactly the expected names; each curve at exactly its steps, once each, with the values
    # the run evaluated (its evaluations.json artifact); each summary metric once, at step 0.
    curves, summary = _expected_curves(cell, data.metrics.get("solved") == 1)
    assert set(data.metrics) == set(curves) | summary
    evaluated: dict[str, dict[int, float]] = {}
    for record in evaluations["evaluations"]:
        for key, value in record.items():
            if key != "step":
                evaluated.setdefault(key, {})[record["step"]] = value
    assert {k: sorted(v) for k, v in evaluated.items()} == curves
    points = 0
    for key in data.metrics:
        history = client.get_metric_history(info.run_id, key)
        steps = [m.step for m in history]
        if key in curves:
            assert steps == curves[key], (info.run_id, key, steps)  # also: no step twice
            assert all(_same(m.value, evaluated[key][m.step]) for m in history), key
        else:
            assert steps == [0] and _same(history[0].value, data.metrics[key]), (info.run_id, key, steps)
        points += len(history)
    assert data.metrics["steps_done"] == STEPS and data.metrics["diverged"] == 0
    return {
        "params": len(data.params),
        "artifacts": len(listed),
        "points": points,
        "expected_points": sum(len(v) for v in curves.values()) + len(summary),
    }


def _sweep_env(uri: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if k not in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID")},
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(ROOT),
        "MLFLOW_TRACKING_URI": uri,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "RAY_USAGE_STATS_ENABLED": "0",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }


def _check_parent(client, parent) -> int:
    """The parent: finished, its spec as its one artifact, each count logged once; its metric points."""
    assert parent.info.status == "FINISHED" and parent.info.lifecycle_stage == "active"
    assert parent.data.tags["study"] == "team"
    assert {k: parent.data.metrics[k] for k in ("trials_total", "trials_finished", "trials_failed")} == {
        "trials_total": 8,
        "trials_finished": 8,
        "trials_failed": 0,
    }
    assert [a.path for a in client.list_artifacts(parent.info.run_id)] == ["team.yaml"]

    assert set(parent.data.metrics) == {
        f"trials_{k}" for k in ("total", "finished", "diverged", "failed", "retried")
    }
    parent_points = 0
    for key, value in parent.data.metrics.items():  # trials_total, _finished, _diverged, _failed, _retried
        assert [(m.step, m.value) for m in client.get_metric_history(parent.info.run_id, key)] == [(0, value)]
        parent_points += 1
    return parent_points


@pytest.mark.tf_only
def test_a_sweep_with_4_concurrent_writers_lands_every_run_param_metric_step_and_artifact(store, tmp_path):
    uri, label = store
    spec_path = tmp_path / "team.yaml"
    spec_path.write_text(yaml.safe_dump(SPEC))
    trials = load(spec_path, "quick").trials
    assert len(trials) == len(CELLS) * len(SEEDS) >= 8
    cmd = [sys.executable, "-m", "experiments.sweep", "--spec", str(spec_path), "--profile", "quick"]
    started = time.perf_counter()
    returncode, output = _run_sweep([*cmd, "--max_concurrent", "4"], tmp_path, _sweep_env(uri), timeout=900)
    sweep_s = time.perf_counter() - started
    assert returncode == 0, output[-5000:]
    assert "trials_finished=8" in output and "trials_failed=0" in output, output[-3000:]
    assert "database is locked" not in output

    client = mlflow.MlflowClient(uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    every = client.search_runs(experiments, "", run_view_type=mlflow.entities.ViewType.ALL, max_results=1000)
    parents = [r for r in every if r.data.tags.get("sweep_role") == "parent"]
    children = [r for r in every if r.data.tags.get("sweep_role") == "child"]
    assert len(parents) == 1 and len(every) == 1 + len(trials), [r.info.run_name for r in every]
    parent = parents[0]
    parent_points = _check_parent(client, parent)

    # One child per trial: none lost, none twice, none retried, all finished under the one parent.
    assert sorted(r.data.tags["trial_key"] for r in children) == sorted(t.trial_key for t in trials)
    by_key = {t.trial_key: t for t in trials}
    checking = time.perf_counter()
    with ThreadPoolExecutor(max_workers=8) as pool:  # the checks' REST calls, 8 runs at once
        counts = list(
            pool.map(lambda run: _check_child(client, run, parent.info.run_id, by_key, tmp_path), children)
        )
    check_s = time.perf_counter() - checking
    total = {k: sum(c[k] for c in counts) for k in counts[0]}
    assert total["points"] == total["expected_points"]
    writers = _max_overlap(children)
    assert writers >= 2, "the trials did not overlap: no concurrent writers were tested"
    print(
        f"\n[{label}] sweep {sweep_s:.1f}s, checks {check_s:.1f}s, up to {writers} writers at once; checked "
        f"{len(children) + 1} runs (1 parent + {len(children)} children), {total['params']} params, "
        f"{total['points'] + parent_points} metric points checked ({total['points']} child points, "
        f"expected {total['expected_points']}; {parent_points} parent), "
        f"{total['artifacts'] + 1} artifacts ({total['artifacts']} child + 1 parent)"
    )

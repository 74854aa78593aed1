"""Sweep specs are checked before anything runs; a sweep runs its trials on Ray as nested runs,
isolates a failing trial, and resumes without running a finished configuration twice."""

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import mlflow
import pytest
import yaml

from experiments import reproduce
from experiments.report import pipeline as report
from experiments.sweep.spec import SpecError, load
from experiments.tracking.records import run_params

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted((ROOT / "experiments" / "sweeps").glob("*.yaml"))
TINY = {"units": 8, "batch_size": 8, "steps": 4, "eval_every": 2, "probe_batch": 4, "log_model": False}


def _write(tmp_path, spec: dict, name="spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec))
    return path


def _spec(**changes) -> dict:
    spec = {
        "study": "tiny",
        "base": dict(TINY),
        "tasks": {"adding": {"seq_len": 6}},
        "grid": {"forget_bias": ["0", "1"]},
        "seeds": [0, 1],
        "reference": {"forget_bias": "1"},
        "profiles": {"quick": {}, "full": {"base": {"steps": 8}}},
    }
    spec.update(changes)
    return spec


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
@pytest.mark.parametrize("profile", ["quick", "full"])
def test_every_shipped_spec_expands_to_valid_trials_with_a_reference(path, profile):
    sweep = load(path, profile)
    assert sweep.study == path.stem and sweep.trials
    assert any(t.is_reference for t in sweep.trials)
    assert len({t.trial_key for t in sweep.trials}) == len(sweep.trials)
    labels = {t.config_label for t in sweep.trials}
    seeds = {t.params["seed"] for t in sweep.trials}
    lrs = {t.params["learning_rate"] for t in sweep.trials}
    assert len(sweep.trials) == len(labels) * len(seeds) * len(lrs)


def test_expansion_crosses_tasks_configs_grid_learning_rates_and_seeds(tmp_path):
    spec = _spec(
        configs=[{"cell": "lstm"}, {"cell": "gru"}], learning_rates=[0.01, 0.001], tuning_seeds=[7, 8]
    )
    sweep = load(_write(tmp_path, spec), "quick")
    assert len(sweep.trials) == 1 * 2 * 2 * 2 * 2  # the tuning phase: on the tuning seeds
    assert {t.phase for t in sweep.trials} == {"tune"} and {t.params["seed"] for t in sweep.trials} == {
        "7",
        "8",
    }
    assert sweep.n_trials == 16 + 4 * 2
    reference = [t for t in sweep.trials if t.is_reference]
    assert {t.params["cell"] for t in reference} == {"lstm", "gru"} and len(reference) == 8
    first = sweep.trials[0]
    assert first.config_label == "task=adding cell=lstm forget_bias=0"
    assert first.params["steps"] == "4" and first.params["log_model"] == "false"
    assert load(_write(tmp_path, spec), "full").trials[0].params["steps"] == "8"
    assert load(_write(tmp_path, spec), "full").spec_hash != sweep.spec_hash


def test_confirmatory_trials_run_each_configuration_at_its_chosen_rate_on_fresh_seeds(tmp_path):
    spec = _spec(learning_rates=[0.01, 0.001], tuning_seeds=[7, 8])
    sweep = load(_write(tmp_path, spec), "quick")
    keys = sorted({t.config_key for t in sweep.trials})
    confirm = sweep.confirm_trials({keys[0]: "0.01"})  # the other configuration had no finished tuning run
    assert len(confirm) == 2 and {t.phase for t in confirm} == {"confirm"}
    assert {t.params["seed"] for t in confirm} == {"0", "1"} and {
        t.params["learning_rate"] for t in confirm
    } == {"0.01"}
    assert all(t.params["early_stop"] == "false" and t.config_key == keys[0] for t in confirm)
    assert confirm[0].varying == sweep.trials[0].varying and confirm[0].logged == sweep.trials[0].logged
    assert not {t.trial_key for t in confirm} & {t.trial_key for t in sweep.trials}


def test_one_learning_rate_needs_no_tuning_and_runs_the_confirmation_at_once(tmp_path):
    sweep = load(_write(tmp_path, _spec()), "quick")
    assert {t.phase for t in sweep.trials} == {"confirm"} and sweep.n_trials == len(sweep.trials) == 4
    assert all(t.params["early_stop"] == "false" for t in sweep.trials)


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(learning_rates=[0.01, 0.1]), "2 learning rates need `tuning_seeds`"),
        (dict(learning_rates=[0.01, 0.1], tuning_seeds=[1, 5]), "seeds and tuning_seeds share seed(s) 1"),
        (dict(pilot_seeds=[0]), "seeds and pilot_seeds share seed(s) 0"),
        (dict(tuning_seeds=[3], pilot_seeds=[3]), "tuning_seeds and pilot_seeds share seed(s) 3"),
        ({"seeds": []}, "seeds: expected a non-empty list"),
        ({"grid": {"forgetbias": ["0"]}}, "unknown parameter 'forgetbias'"),
        ({"base": {"variant": "bogus", **TINY}}, "Invalid variant='bogus'"),
        ({"base": ["steps", 4]}, "base: expected a mapping"),
        ({"learning_rates": "fast"}, "learning_rates: expected a non-empty list"),
        ({"claims": ["z"]}, "unknown claim 'z'"),
        ({"profiles": {"full": {}}}, "no profile 'quick'"),
        ({"profiles": {"quick": {"step": 3}}}, "profiles.quick: unknown key(s) step"),
        ({"configs": [{"cell": "gru"}, {"cell": "gru"}]}, "same trial twice"),
    ],
)
def test_a_bad_spec_is_refused_naming_the_key_before_anything_runs(tmp_path, changes, message):
    with pytest.raises(SpecError) as error:
        load(_write(tmp_path, _spec(**changes)), "quick")
    assert message in str(error.value) and "spec.yaml" in str(error.value)


def _children(uri, parent_id):
    client = mlflow.MlflowClient(uri)
    experiment = client.get_run(parent_id).info.experiment_id
    return client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent_id}'")


def _sweep_cmd(spec: Path) -> list[str]:
    return [sys.executable, "-m", "experiments.sweep", "--spec", str(spec), "--profile", "quick"]


def _env(tmp_path) -> dict:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "RAY_USAGE_STATS_ENABLED": "0",
    }


@pytest.mark.tf_only
@pytest.mark.slow  # sweeps on Ray
def test_a_sweep_runs_nested_trials_on_ray_isolates_a_failure_and_resumes(tmp_path):
    bad_text = tmp_path / "short.txt"
    bad_text.write_text("to be or not to be, " * 2)  # valid UTF-8, too short to split: fails at load
    spec = _spec(
        configs=[{"task": "adding"}, {"task": "char_lm", "corpus": str(bad_text), "seq_len": 5}],
        grid={"forget_bias": ["1"]},
    )
    path = _write(tmp_path, spec)
    env = _env(tmp_path)
    first = subprocess.run(
        _sweep_cmd(path), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert first.returncode == 0, first.stderr[-3000:]
    assert "[4/4]" in first.stdout  # progress: trials done / total
    uri = env["MLFLOW_TRACKING_URI"]
    mlflow.set_tracking_uri(uri)
    try:
        parents = mlflow.search_runs(search_all_experiments=True, filter_string="tags.sweep_role = 'parent'")
        assert len(parents) == 1
        parent = parents.iloc[0]
        assert parent["status"] == "FINISHED" and parent["tags.study"] == "tiny"
        assert (parent["metrics.trials_total"], parent["metrics.trials_finished"]) == (4, 2)
        assert parent["metrics.trials_failed"] == 2
        children = _children(uri, parent.run_id)
        by_status = {}
        for child in children:
            by_status.setdefault(child.info.status, []).append(child)
        assert len(by_status["FINISHED"]) == 2 and len(by_status["FAILED"]) == 2
        assert all("characters" in c.data.tags["error"] for c in by_status["FAILED"])
        assert {c.data.params["task"] for c in by_status["FINISHED"]} == {"adding"}
        assert all(c.data.tags["study"] == "tiny" and c.data.tags["config_label"] for c in children)

        # Params: what varies across the sweep plus the identity axes; constants (units=8, steps=4,
        # not the defaults) only in config.json — where the report and `reproduce` read them.
        done = by_status["FINISHED"][0]
        assert set(done.data.params) == {"task", "learning_rate", "seed"}
        client = mlflow.MlflowClient(uri)
        assert run_params(client, done)["units"] == "8" and run_params(client, done)["steps"] == "4"
        runs = report.load_sweep(client, parent.run_id).runs
        assert {d["units"] for d in runs["desc"]} == {"8"} and len(runs) == 2
        assert reproduce.main(["--run_id", done.info.run_id]) == 0
        rerun = mlflow.search_runs(
            search_all_experiments=True, filter_string=f"tags.reproduces = '{done.info.run_id}'"
        ).iloc[0]
        assert rerun["metrics.reproduced"] == 1 and rerun["params.steps"] == "4"

        # Rerun: the finished trials are not run again; the failed ones are retried (and fail).
        second = subprocess.run(_sweep_cmd(path), cwd=tmp_path, env=env, capture_output=True, text=True)
        assert second.returncode == 0, second.stderr[-3000:]
        assert "2 already finished, 2 to run" in second.stdout
        children = _children(uri, parent.run_id)
        finished = [c for c in children if c.info.status == "FINISHED"]
        assert len(finished) == 2 and len(children) == 4  # the old failed attempts were replaced
        assert all(c.data.tags.get("retried_from") for c in children if c.info.status == "FAILED")
    finally:
        mlflow.set_tracking_uri(None)


def _kill_marked(marker: str) -> None:
    """SIGKILL every process whose environment carries `marker` (Ray's processes inherit it)."""
    needle = f"SWEEP_TEST_MARKER={marker}".encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if needle in (proc / "environ").read_bytes().split(b"\0"):
                os.kill(int(proc.name), signal.SIGKILL)
        except OSError:
            continue


@pytest.mark.tf_only
@pytest.mark.slow  # sweeps on Ray
def test_a_sweep_killed_with_sigkill_and_rerun_ends_with_every_trial_exactly_once(tmp_path):
    spec = _spec(grid={"forget_bias": ["0", "1", "2"]}, base={**TINY, "steps": 30, "eval_every": 10})
    path = _write(tmp_path, spec)
    env = {**_env(tmp_path), "SWEEP_TEST_MARKER": f"sweep-test-{os.getpid()}-{time.time_ns()}"}
    uri = env["MLFLOW_TRACKING_URI"]
    sweep = subprocess.Popen(
        _sweep_cmd(path),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    # Wait for the first finished trial on the sweep's own progress lines: polling the store
    # while the sweep creates it would race its table creation.
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in sweep.stdout], daemon=True).start()
    deadline, output, finished_before_kill = time.time() + 420, [], 0
    while time.time() < deadline and not finished_before_kill and sweep.poll() is None:
        try:
            output.append(lines.get(timeout=1).decode(errors="replace"))
        except queue.Empty:
            continue
        finished_before_kill = output[-1].startswith("[1/")
    client = mlflow.MlflowClient(uri)
    assert finished_before_kill, "no trial finished before the deadline:\n" + "".join(output)[-3000:]
    os.killpg(sweep.pid, signal.SIGKILL)  # the driver, no clean-up
    sweep.wait()
    _kill_marked(env["SWEEP_TEST_MARKER"])  # and its Ray processes (not other sweeps on this machine)
    parent = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], "tags.sweep_role = 'parent'"
    )
    assert len(parent) == 1
    # What the store holds as finished at the kill (a trial may finish after the line we read):
    # exactly those, and no others, are adopted by the rerun.
    done = [c for c in _children(uri, parent[0].info.run_id) if c.info.status == "FINISHED"]
    assert 1 <= len(done) < len(load(path, "quick").trials)
    rerun = subprocess.run(
        _sweep_cmd(path), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"trials, {len(done)} already finished, " in rerun.stdout, rerun.stdout[-2000:]
    rerun_parents = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], "tags.sweep_role = 'parent'"
    )
    assert [r.info.run_id for r in rerun_parents] == [parent[0].info.run_id]
    children = _children(uri, parent[0].info.run_id)
    assert sorted(c.data.tags["trial_key"] for c in children) == sorted(
        t.trial_key for t in load(path, "quick").trials
    )
    assert all(c.info.status == "FINISHED" for c in children)  # stale RUNNING attempts were replaced


@pytest.mark.tf_only
@pytest.mark.slow  # sweeps on Ray
def test_mlflow_run_sweep_entry_point_makes_the_launcher_run_the_parent_and_resumes_into_it(tmp_path):
    """`mlflow run . -e sweep`: the run MLflow opens for the entry point is the sweep's parent;
    a second launch adopts the first one's finished trials instead of running them again."""
    spec = _write(tmp_path, _spec())
    env = {k: v for k, v in _env(tmp_path).items() if k not in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID")}
    env["PATH"] = (
        f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # MLproject calls `python`
    )
    cmd = [sys.executable, "-m", "mlflow", "run", str(ROOT), "-e", "sweep", "--env-manager", "local"]
    cmd += ["-P", f"spec={spec}", "-P", "max_concurrent=2"]
    first = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    uri = env["MLFLOW_TRACKING_URI"]
    client = mlflow.MlflowClient(uri)
    (parent,) = client.search_runs(["0"], "tags.sweep_role = 'parent'")
    assert parent.data.params["spec"] == str(spec)  # logged by `mlflow run` itself
    assert parent.data.tags["mlflow.project.entryPoint"] == "sweep"
    children = _children(uri, parent.info.run_id)
    assert len(children) == 4 and all(c.info.status == "FINISHED" for c in children)
    assert parent.data.metrics["trials_finished"] == 4

    second = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
    assert "4 finished trials adopted" in second.stdout
    (new_parent,) = client.search_runs(["0"], "tags.sweep_role = 'parent'")  # the old one is deleted
    assert new_parent.info.run_id != parent.info.run_id
    adopted = _children(uri, new_parent.info.run_id)
    assert sorted(c.info.run_id for c in adopted) == sorted(c.info.run_id for c in children)


@pytest.mark.tf_only
@pytest.mark.slow  # sweeps on Ray
def test_a_tuned_sweep_confirms_each_configuration_at_its_chosen_rate_and_the_report_judges_those(tmp_path):
    spec = _spec(grid={"forget_bias": ["1"]}, learning_rates=[0.0001, 0.05], tuning_seeds=[7], seeds=[0, 1])
    spec["base"].update(steps=40, eval_every=20)
    path = _write(tmp_path, spec)
    env = _env(tmp_path)
    out = subprocess.run(_sweep_cmd(path), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "[4/4]" in out.stdout and "confirming on seeds 0,1" in out.stdout
    uri = env["MLFLOW_TRACKING_URI"]
    mlflow.set_tracking_uri(uri)
    try:
        parent = mlflow.search_runs(search_all_experiments=True, filter_string="tags.sweep_role = 'parent'")
        children = _children(uri, parent.run_id.iloc[0])
        tune = [c for c in children if c.data.tags["phase"] == "tune"]
        confirm = [c for c in children if c.data.tags["phase"] == "confirm"]
        assert sorted(c.data.params["seed"] for c in tune) == ["7", "7"]
        assert sorted(c.data.params["seed"] for c in confirm) == ["0", "1"]
        best = min(tune, key=lambda c: c.data.metrics["best_val_loss_over_baseline"])
        assert {c.data.params["learning_rate"] for c in confirm} == {best.data.params["learning_rate"]}
        assert all("test_loss_over_baseline" in c.data.metrics for c in confirm)
        again = subprocess.run(
            _sweep_cmd(path), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
        )
        assert again.returncode == 0 and "0 to run now" in again.stdout, again.stdout[-2000:]
        assert len(_children(uri, parent.run_id.iloc[0])) == 4  # resumed: nothing ran twice

        built = report.generate([parent.run_id.iloc[0]], tmp_path / "report", log=False, plots=False)
        assert set(built.lr_selection["n"]) == {1}  # chosen on the one tuning seed, not the judged ones
        assert set(built.summary["n_seeds"]) == {2}
    finally:
        mlflow.set_tracking_uri(None)


def test_a_task_may_run_its_own_subset_of_the_configurations(tmp_path):
    spec = _spec(
        tasks={"adding": {"seq_len": 6}, "copy": {"seq_len": 3, "grid": {"forget_bias": ["1"]}}},
        grid={"forget_bias": ["0", "1", "2"]},
    )
    sweep = load(_write(tmp_path, spec), "quick")
    labels = sorted({t.config_label for t in sweep.trials})
    assert labels == [
        "task=adding forget_bias=0",
        "task=adding forget_bias=1",
        "task=adding forget_bias=2",
        "task=copy forget_bias=1",
    ]
    with pytest.raises(SpecError, match="tasks.copy: unknown parameter 'colour'"):
        load(_write(tmp_path, _spec(tasks={"copy": {"colour": "red"}})), "quick")

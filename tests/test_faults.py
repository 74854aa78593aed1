"""Faults and bad input, as a matrix: each fault is made for real (a dead port, a killed tracking
server, a full or read-only disk, a truncated corpus, a bad sweep spec, Ctrl-C, two sweeps at
once) and the test asserts what a careful user wants to see happen.

    fault                               wanted outcome
    tracking server down at start       exit 2 in seconds, one line naming the URI, no TensorFlow/Ray
    tracking server lost mid-run        training finishes, the rest kept locally (path printed),
                                        exit 1; `experiments.tracking.offline replay` completes the same run
    artifact store full / read-only     exit 1, one line; run FAILED with the error as a tag; metrics kept
    corpus file truncated               exit 2 naming the file and sha256, before a run or TensorFlow
    sweep spec: unknown key, wrong      exit 2, one line naming the key/value and the valid choices,
      type, empty grid                  no tracking store touched
    Ctrl-C during a run                 exit 130, run KILLED (never left RUNNING), metrics kept
    the same sweep started twice        every trial trained once: one FINISHED child per trial, one parent
"""

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import mlflow
import pytest
from test_run import TINY, _env, _history, _runs
from test_sweep import TINY as SWEEP_TINY
from test_sweep import _env as _sweep_env
from test_sweep import _kill_marked, _spec, _sweep_cmd, _write

from experiments import run
from experiments.sweep.spec import load
from experiments.tracking import offline
from experiments.tracking import server as tracking_server

ROOT = Path(__file__).resolve().parents[1]
# MLflow retries a refused HTTP request for ~4 minutes by default; a user who wants a lost
# server noticed sooner sets the same two variables.
FAIL_FAST = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
# Runs a module as `python -m <module> ARGS`, then says whether a heavy module was ever loaded.
PROBE = (
    "import sys, runpy\n"
    "module, heavy = sys.argv[1], sys.argv[2]\n"
    "sys.argv = [module, *sys.argv[3:]]\n"
    "try:\n    runpy.run_module(module, run_name='__main__')\n"
    "finally:\n    print(f'{heavy} loaded' if heavy in sys.modules else f'no {heavy}')\n"
)


def _probe(
    module: str, heavy: str, args: list[str], cwd: Path, env: dict
) -> tuple[subprocess.CompletedProcess, float]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", PROBE, module, heavy, *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    return done, time.perf_counter() - started


@contextmanager
def _mlflow_server(directory: Path, port: int):
    """A real `mlflow server` on a sqlite file, artifacts proxied; yields (uri, process)."""
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--backend-store-uri", f"sqlite:///{directory / 'server.db'}", "--workers", "1"]
    cmd += ["--artifacts-destination", str(directory / "artifacts")]
    env = {**_env(), **tracking_server.ENV}
    env.pop("MLFLOW_TRACKING_URI", None)
    log = open(directory / f"server-{port}.log", "ab")  # noqa: SIM115 (the server keeps it)
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while not tracking_server.healthy(uri):
            assert proc.poll() is None and time.monotonic() < deadline, "the mlflow server did not start"
            time.sleep(0.3)
        yield uri, proc
    finally:
        _kill_group(proc)


def _kill_group(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)  # its own session: the CLI and its uvicorn workers
    proc.wait()


def _one_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, stderr[-3000:]
    return lines[0]


# ------------------------------------------------------------------------------ tracking server


@pytest.mark.parametrize(
    "module, heavy, args",
    [
        ("experiments.run", "tensorflow", TINY),
        ("experiments.sweep", "ray", ["--spec", str(ROOT / "experiments" / "sweeps" / "forget_bias.yaml")]),
    ],
    ids=["run", "sweep"],
)
def test_tracking_server_down_at_start_fails_in_seconds_naming_the_uri_before_any_training(
    tmp_path, module, heavy, args
):
    uri = f"http://127.0.0.1:{tracking_server.free_port()}"  # nothing listens there
    done, seconds = _probe(module, heavy, args, tmp_path, _env(MLFLOW_TRACKING_URI=uri))
    assert done.returncode == 2, done.stderr[-3000:]
    line = _one_line(done.stderr)
    assert line.startswith("error: ") and uri in line and "unreachable" in line and "nothing was run" in line
    assert f"no {heavy}" in done.stdout  # refused before TensorFlow (a run) or Ray (a sweep) loaded
    assert seconds < 30, f"took {seconds:.0f}s: MLflow's HTTP retries were not avoided"


@pytest.mark.tf_only
@pytest.mark.slow  # servers, Ray or a trained run in a subprocess
def test_tracking_server_lost_mid_run_finishes_training_keeps_the_rest_locally_and_replays_it(tmp_path):
    port = tracking_server.free_port()
    kept = tmp_path / "offline"
    returncode, out, err, seconds, uri = _train_losing_the_server(tmp_path, port, kept)
    assert returncode == 1, err[-3000:]
    assert "step     40/40" in out and "done:" in out  # training went on to the end
    assert seconds < 120, f"{seconds:.0f}s after the loss: retries were not cut short"
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: lost the MLflow tracking server") and uri in last
    (folder,) = kept.iterdir()
    assert str(folder) in last and "python -m experiments.tracking.offline replay" in last
    journal = _check_kept_run(folder)
    _check_replay(tmp_path, port, folder, journal)


def _train_losing_the_server(tmp_path: Path, port: int, kept: Path):
    """A tiny run whose tracking server is killed after its step-0 evaluation: (returncode,
    stdout, stderr, seconds from the loss to the end, the server's URI)."""
    args = [*TINY, "--steps", "40", "--eval_every", "20"]
    with _mlflow_server(tmp_path, port) as (uri, server):
        env = _env(MLFLOW_TRACKING_URI=uri, LSTM_KERAS_OFFLINE_DIR=str(kept), **FAIL_FAST)
        proc = subprocess.Popen(
            [sys.executable, "-m", "experiments.run", *args],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for line in proc.stdout:  # params, tags and the step-0 evaluation are logged by now
            if line.startswith("step      0/"):
                break
        _kill_group(server)
        lost_at = time.perf_counter()
        out, err = proc.communicate(timeout=300)
        seconds = time.perf_counter() - lost_at
    return proc.returncode, out, err, seconds, uri


def _check_kept_run(folder: Path) -> list[dict]:
    """What the run kept locally after the loss: each later evaluation once, the summary, the
    artifacts, the end. Returns its journal."""
    journal = [json.loads(line) for line in (folder / "journal.jsonl").read_text().splitlines()]
    steps = [op["step"] for op in journal if op["op"] == "metrics" and "val_loss" in op["metrics"]]
    assert steps == [20, 40]  # the evaluations after the loss, each once
    summary = [op for op in journal if op["op"] == "metrics" and "best_val_loss" in op["metrics"]]
    assert len(summary) == 1 and summary[0]["metrics"]["steps_done"] == 40
    artifacts = {op["name"] for op in journal if op["op"] == "artifact"}
    assert {"config.json", "evaluations.json", "learning_curves.png"} <= artifacts
    assert all((folder / "artifacts" / name).stat().st_size > 0 for name in artifacts)
    evaluations = json.loads((folder / "artifacts" / "evaluations.json").read_text())["evaluations"]
    assert [e["step"] for e in evaluations] == [0, 20, 40]
    assert journal[-1]["op"] == "end" and journal[-1]["status"] == "FINISHED"
    return journal


def _check_replay(tmp_path: Path, port: int, folder: Path, journal: list[dict]) -> None:
    """The server comes back (same store, same address): the replay completes the same run."""
    run_id = folder.name
    with _mlflow_server(tmp_path, port) as (uri, _):
        client = mlflow.MlflowClient(uri)
        assert client.get_run(run_id).info.status == "RUNNING"  # what the server knew at the loss
        replay = subprocess.run(
            [sys.executable, "-m", "experiments.tracking.offline", "replay", str(folder)],
            cwd=tmp_path,
            env=_env(MLFLOW_TRACKING_URI=uri),
            capture_output=True,
            text=True,
        )
        assert replay.returncode == 0, replay.stderr[-3000:]
        assert f"replayed {len(journal)} operations into run {run_id}" in replay.stdout
        assert offline.replay(folder) == (run_id, 0)  # again: nothing is logged twice
        r = client.get_run(run_id)
        assert r.info.status == "FINISHED"
        assert [s for s, _ in _history(client, run_id, "val_loss")] == [0, 20, 40]
        assert r.data.metrics["steps_done"] == 40 and r.data.params["steps"] == "40"
        assert {"config.json", "evaluations.json", "learning_curves.png"} <= {
            a.path for a in client.list_artifacts(run_id)
        }


# ------------------------------------------------------------------------------ artifact store


@contextmanager
def _small_mount(path: Path, *options: str):
    """A 64 KiB tmpfs at `path` (root only); unmounted afterwards."""
    path.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", ",".join(["size=64k", *options]), "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


@pytest.mark.tf_only
@pytest.mark.parametrize(
    "fault, errno_text", [("full", "No space left on device"), ("ro", "Read-only file system")]
)
def test_a_full_or_read_only_artifact_store_fails_the_run_with_its_error_and_keeps_its_metrics(
    tracking, tmp_path, capsys, monkeypatch, fault, errno_text
):
    with _small_mount(tmp_path / "artifacts", *(["ro"] if fault == "ro" else [])) as store:
        if fault == "full":
            with pytest.raises(OSError), (store / "filler").open("wb") as filler:
                filler.write(b"\0" * (1 << 20))
        experiment = mlflow.create_experiment("faults", artifact_location=store.as_uri())
        monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", experiment)
        capsys.readouterr()  # MLflow's notes on making the store
        assert run.main(TINY) == 1
    err = capsys.readouterr().err
    line = _one_line(err)
    r = _runs().iloc[0]
    assert line == f"error: run {r.run_id} ended FAILED: {r['tags.error']}"
    assert errno_text in line and f"cannot store config.json in {store.as_uri()}/{r.run_id}" in line
    assert r.status == "FAILED" and errno_text in r["tags.error"]
    # Everything logged before the artifacts is kept: the curves at every evaluation and the summary.
    assert [s for s, _ in _history(mlflow.MlflowClient(), r.run_id, "val_loss")] == [0, 3, 6]
    assert r["metrics.steps_done"] == 6 and r["params.steps"] == "6"


# ------------------------------------------------------------------------------ bad input


def test_a_truncated_corpus_is_refused_with_exit_2_naming_the_file_before_a_run_or_tensorflow(
    tmp_path, shared_corpora
):
    data = tmp_path / "data" / "tinyshakespeare"
    data.mkdir(parents=True)
    text = (shared_corpora / "tinyshakespeare" / "input.txt").read_bytes()
    (data / "input.txt").write_bytes(text[: len(text) // 2])
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [*TINY, "--task", "char_lm", "--data_dir", str(tmp_path / "data")]
    done, _ = _probe("experiments.run", "tensorflow", args, tmp_path, _env(MLFLOW_TRACKING_URI=uri))
    assert done.returncode == 2, done.stderr[-3000:]
    line = _one_line(done.stderr)
    assert str(data / "input.txt") in line and "sha256" in line
    assert "no tensorflow" in done.stdout
    assert not (tmp_path / "mlflow.db").exists()  # no store touched, so no run at all


@pytest.mark.parametrize(
    "changes, named",
    [
        ({"colour": "red"}, ["unknown key(s) colour", "Valid keys: base, claims"]),
        ({"seeds": ["zero"]}, ["seeds: expected a list of int, got 'zero' (str)", "Valid choices"]),
        ({"base": {**SWEEP_TINY, "steps": "many"}}, ["Invalid steps='many'", "Valid choices"]),
        (
            {"grid": {"forget_bias": []}},
            ["grid.forget_bias: expected a non-empty list, got []", "Valid choices"],
        ),
    ],
    ids=["unknown-key", "wrong-type-seeds", "wrong-type-param", "empty-grid"],
)
def test_a_bad_sweep_spec_exits_2_in_one_line_naming_key_and_choices_and_creates_no_run(
    tmp_path, changes, named
):
    path = _write(tmp_path, _spec(**changes))
    done, _ = _probe("experiments.sweep", "ray", _sweep_cmd(path)[3:], tmp_path, _sweep_env(tmp_path))
    assert done.returncode == 2, done.stderr[-3000:]
    line = _one_line(done.stderr)
    assert line.startswith(f"error: {path}: ")
    for text in named:
        assert text in line
    assert "no ray" in done.stdout
    assert not (tmp_path / "mlflow.db").exists()  # no store touched, so no run at all


# ------------------------------------------------------------------------------ interruption


@pytest.mark.tf_only
@pytest.mark.slow  # servers, Ray or a trained run in a subprocess
def test_ctrl_c_during_training_ends_the_run_killed_not_running_and_keeps_its_metrics(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cmd = [sys.executable, "-m", "experiments.run", *TINY, "--steps", "100000", "--eval_every", "2"]
    proc = subprocess.Popen(
        cmd,
        cwd=tmp_path,
        env=_env(MLFLOW_TRACKING_URI=uri),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    for line in proc.stdout:  # wait until training is under way
        if line.startswith("step      4/"):
            break
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 130, out[-2000:]
    assert "interrupted: run ended KILLED" in out
    mlflow.set_tracking_uri(uri)
    try:
        r = _runs().iloc[0]
        assert r.status == "KILLED"
        assert [s for s, _ in _history(mlflow.MlflowClient(), r.run_id, "val_loss")][:3] == [0, 2, 4]
    finally:
        mlflow.set_tracking_uri(None)


# ------------------------------------------------------------------------------ concurrency


@pytest.mark.tf_only
@pytest.mark.slow  # servers, Ray or a trained run in a subprocess
def test_the_same_sweep_started_twice_at_once_trains_every_trial_exactly_once_under_one_parent(tmp_path):
    # 2 forget biases × 2 seeds, on a fresh sqlite store: both sweeps also race to make its tables.
    spec = _spec(base={**SWEEP_TINY, "steps": 20, "eval_every": 10})
    path = _write(tmp_path, spec)
    trials = load(path, "quick").trials
    env = {**_sweep_env(tmp_path), "SWEEP_TEST_MARKER": f"faults-{os.getpid()}-{time.time_ns()}"}
    cmd = [*_sweep_cmd(path), "--max_concurrent", "1"]
    sweeps = [
        subprocess.Popen(
            cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for _ in range(2)
    ]
    try:
        outputs = [proc.communicate(timeout=480)[0] for proc in sweeps]
    finally:
        for proc in sweeps:
            if proc.poll() is None:
                proc.kill()
        _kill_marked(env["SWEEP_TEST_MARKER"])  # any Ray process they left behind
    for proc, output in zip(sweeps, outputs):
        assert proc.returncode == 0, output[-3000:]
    both = "\n".join(outputs)
    assert "skipped" in both, both[-3000:]  # they did overlap: some trial was claimed by the other

    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    every = client.search_runs(["0"], "", run_view_type=mlflow.entities.ViewType.ACTIVE_ONLY)
    parents = [r for r in every if r.data.tags.get("sweep_role") == "parent"]
    children = [r for r in every if r.data.tags.get("sweep_role") == "child"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(c.data.tags["trial_key"] for c in children) == sorted(t.trial_key for t in trials)
    assert all(c.info.status == "FINISHED" for c in children)
    assert all(c.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for c in children)
    # The parent records which run holds each trial's claim: the finished child.
    claims = parents[0].data.params
    for child in children:
        assert claims[f"claim.{child.data.tags['trial_key']}.1"] == child.info.run_id
    assert parents[0].data.metrics["trials_finished"] == len(trials)

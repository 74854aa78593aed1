"""The training entry point end to end: real Keras training into a real (temporary) MLflow store."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest

from experiments import reproduce, run

pytestmark = pytest.mark.tf_only
ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "--task",
    "copy",
    "--steps",
    "6",
    "--eval_every",
    "3",
    "--seq_len",
    "5",
    "--units",
    "8",
    "--batch_size",
    "8",
]
TINY += ["--probe_batch", "4", "--log_model", "false"]


# Tags every run carries so it can be rerun and placed (git commit, versions, data, machine).
RERUN_TAGS = ("task", "cell", "variant", "git_commit", "data_checksum", "version.keras", "version.mlflow")
RERUN_TAGS += ("machine.cpu", "machine.cpu_count")


def _env(**extra) -> dict:
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "TF_CPP_MIN_LOG_LEVEL": "2", **extra}
    env["PYTHONPATH"] = str(ROOT)
    # MLproject commands call `python`: the one running the tests, as an activated venv would.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _runs():
    return mlflow.search_runs(search_all_experiments=True)


def _history(client, run_id, key):
    return [(m.step, m.value) for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]


@pytest.fixture(scope="module")
def mlflow_run_store(tmp_path_factory):
    """One `mlflow run . --env-manager local` with tiny settings, model logged; (uri, run id)."""
    tmp = tmp_path_factory.mktemp("mlflow_run")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    params = {
        "task": "copy",
        "seq_len": 5,
        "units": 8,
        "batch_size": 8,
        "steps": 6,
        "eval_every": 3,
        "probe_batch": 4,
    }
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "run",
        str(ROOT),
        "--env-manager",
        "local",
        "--experiment-name",
        "e2e",
    ]
    for key, value in params.items():
        cmd += ["-P", f"{key}={value}"]
    done = subprocess.run(cmd, cwd=tmp, env=_env(MLFLOW_TRACKING_URI=uri), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["e2e"])
    assert len(runs) == 1
    yield uri, runs.run_id[0], done.stdout
    mlflow.set_tracking_uri(None)


@pytest.mark.slow  # mlflow run in a subprocess
def test_mlflow_run_logs_every_param_curve_summary_and_artifact(mlflow_run_store):
    uri, run_id, stdout = mlflow_run_store
    client = mlflow.MlflowClient(uri)
    r = client.get_run(run_id)
    assert r.info.status == "FINISHED"
    from experiments.training.config import RunConfig

    assert set(RunConfig.__dataclass_fields__) <= set(r.data.params)
    assert r.data.params["seq_len"] == "5" and r.data.params["task"] == "copy"
    tags = r.data.tags
    assert tags["mlflow.runName"] == "copy-T5 lstm/keras fb=1 tanh s0"
    assert tags["engine_used"] == "fused"  # the default LSTM trains on the fused kernel
    from lstm_keras import kernel_build

    built = kernel_build.cached()  # the build the run loaded, with the rung of the flag ladder
    assert tags["fused_kernel_rung"] == built.rung.name
    assert tags["fused_kernel_flags"] == " ".join(built.rung.flags)
    assert "engine_fallback_reason" not in tags and "fell back" not in stdout
    for key in RERUN_TAGS:
        assert tags[key], key
    assert tags["version.tensorflow-cpu"] or tags["version.tensorflow"]
    for key in ("loss", "grad_norm"):
        assert [s for s, _ in _history(client, run_id, key)] == [3, 6]
    for key in ("val_loss", "val_recall_accuracy", "grad_flow_ratio"):
        assert [s for s, _ in _history(client, run_id, key)] == [0, 3, 6]
    for gate in "ifo":
        for stat in ("mean", "sat_low", "sat_high"):
            values = [v for _, v in _history(client, run_id, f"gate_{gate}_{stat}")]
            assert len(values) == 3 and all(0.0 <= v <= 1.0 for v in values)
    m = r.data.metrics
    summary = [
        "best_val_loss",
        "final_val_loss",
        "final_val_recall_accuracy",
        "baseline",
        "solved",
        "diverged",
    ]
    summary += ["val_loss_over_baseline", "n_params", "wall_time_s", "steps_per_s", "test_loss"]
    summary += ["grad_flow_ratio_init", "grad_flow_ratio_final", "budget_unspent_steps"]
    for key in summary:
        assert key in m, key
    assert m["baseline"] == pytest.approx(10 * np.log(8) / 25)
    assert m["diverged"] == 0 and m["solved"] == 0 and m["n_params"] > 0
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    expected = {
        "learning_curves.png",
        "gradient_flow.png",
        "gate_histograms.png",
        "config.json",
        "evaluations.json",
    }
    assert expected <= artifacts
    config = json.loads(Path(client.download_artifacts(run_id, "config.json")).read_text())
    assert config["resolved"]["forget_bias"] == "1" and config["resolved"]["input_length"] == 25
    assert "step      6/6" in stdout  # the terminal user sees progress
    assert (
        r.outputs.model_outputs or mlflow.search_logged_models(experiment_ids=[r.info.experiment_id]).shape[0]
    )


@pytest.mark.slow  # mlflow run in a subprocess
def test_logged_model_reloads_with_pyfunc_in_a_fresh_process(mlflow_run_store, tmp_path):
    uri, run_id, _ = mlflow_run_store
    model = mlflow.search_logged_models(
        experiment_ids=[mlflow.MlflowClient(uri).get_run(run_id).info.experiment_id], output_format="list"
    )[0]
    script = (
        "import sys, numpy as np, mlflow, lstm_keras.layers  # registers the layers for loading\n"
        "from experiments.training.tasks.copy_memory import copy_batch\n"
        f"m = mlflow.pyfunc.load_model({model.model_uri!r})\n"
        "x, _ = copy_batch(np.random.default_rng(0), 3, 5)\n"
        "p = m.predict(x)\n"
        "assert p.shape == (3, 25, 10) and np.isfinite(p).all(), p.shape\n"
        "print('predicted', p.shape)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=_env(MLFLOW_TRACKING_URI=uri),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "predicted (3, 25, 10)" in done.stdout


@pytest.mark.slow  # a training, a compiler or a fresh TensorFlow in a subprocess
def test_a_diverging_run_ends_finished_with_diverged_1(tracking):
    args = ["--variant", "vanilla", "--candidate_activation", "relu", "--output_activation", "relu"]
    args += ["--learning_rate", "1e4", "--clipnorm", "0", "--optimizer", "sgd", "--steps", "30"]
    assert run.main([*TINY, *args]) == 0
    r = _runs().iloc[0]
    assert r.status == "FINISHED"
    assert r["metrics.diverged"] == 1 and r["metrics.solved"] == 0
    assert 1 <= r["metrics.diverged_at_step"] <= 30
    assert r["tags.divergence_cause"] == "nonfinite"  # the gradient norm overflows at step 2
    assert r["params.learning_rate"] == "1e4"  # logged verbatim, as given


@pytest.mark.slow  # a training, a compiler or a fresh TensorFlow in a subprocess
def test_same_seed_gives_identical_metrics_and_reproduce_confirms_it(tracking):
    client = mlflow.MlflowClient()
    first = run.main([*TINY, "--task", "adding", "--seed", "3"])
    second = run.main([*TINY, "--task", "adding", "--seed", "3"])
    assert first == second == 0
    a, b = _runs().run_id
    original = reproduce.metric_histories(client, a)
    assert reproduce.compare(original, reproduce.metric_histories(client, b)) == []
    assert len(original) > 15
    assert reproduce.main(["--run_id", a]) == 0
    rerun = _runs().iloc[0]
    assert rerun["tags.reproduces"] == a and rerun["metrics.reproduced"] == 1
    different = run.main([*TINY, "--task", "adding", "--seed", "4"])
    assert different == 0
    c = _runs().run_id[0]
    assert "val_loss" in reproduce.compare(original, reproduce.metric_histories(client, c))


@pytest.mark.parametrize(
    "args, named",
    [
        (["--task", "copyy"], "task='copyy'"),
        (["--variant", "NFG", "--forget_bias", "2"], "forget_bias='2'"),
        (["--variant", "NIAF", "--candidate_activation", "relu"], "candidate_activation='relu'"),
        (["--cell", "gru", "--variant", "vanilla"], "variant='vanilla'"),
        (["--learning_rate", "fast"], "learning_rate='fast'"),
        (["--units", "0"], "units=0"),
        (["--task", "char_lm", "--corpus", "/no/such/file.txt"], "/no/such/file.txt"),
        (["--optimizer", "adagrad"], "optimizer='adagrad'"),
        (["--task", "adding", "--seq_len", "2", "--forget_bias", "chrono"], "forget_bias='chrono' needs"),
        (["--explode_factor", "0.5"], "explode_factor=0.5. Valid choices: a finite number > 1"),
        (["--explode_factor", "abc"], "explode_factor='abc'. Valid choices: a finite number > 1"),
        (["--nonsense", "1"], "unrecognized arguments"),
    ],
)
def test_a_bad_parameter_fails_in_one_line_before_tensorflow_and_leaves_no_run(tmp_path, args, named):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    probe = "import sys, runpy; sys.argv = ['run', *sys.argv[1:]]\n"
    probe += "try:\n    runpy.run_module('experiments.run', run_name='__main__')\n"
    probe += "finally:\n    print('tensorflow loaded' if 'tensorflow' in sys.modules else 'no tensorflow')\n"
    done = subprocess.run(
        [sys.executable, "-c", probe, *args],
        cwd=tmp_path,
        env=_env(MLFLOW_TRACKING_URI=uri),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert named in done.stderr
    if "unrecognized" not in named:
        assert len(done.stderr.strip().splitlines()) == 1 and "Valid choices" in done.stderr
    assert "no tensorflow" in done.stdout
    assert not (tmp_path / "mlflow.db").exists()  # no store touched, so no run at all


@pytest.mark.slow  # a training, a compiler or a fresh TensorFlow in a subprocess
def test_mlflow_run_with_a_bad_parameter_leaves_no_running_run(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cmd = [sys.executable, "-m", "mlflow", "run", str(ROOT), "--env-manager", "local", "-P", "variant=bogus"]
    done = subprocess.run(
        cmd, cwd=tmp_path, env=_env(MLFLOW_TRACKING_URI=uri), capture_output=True, text=True
    )
    assert done.returncode != 0
    assert "Invalid variant='bogus'. Valid choices: keras, vanilla" in done.stderr
    mlflow.set_tracking_uri(uri)
    try:
        statuses = set(_runs().status)
    finally:
        mlflow.set_tracking_uri(None)
    assert "RUNNING" not in statuses


@pytest.mark.slow  # a training, a compiler or a fresh TensorFlow in a subprocess
def test_char_lm_and_sentiment_train_on_the_real_corpora(tracking, shared_corpora):
    data = ["--data_dir", str(shared_corpora)]
    assert run.main([*TINY, "--task", "char_lm", "--seq_len", "20", *data]) == 0
    assert run.main([*TINY, "--task", "char_lm", "--corpus", "ptb", "--seq_len", "20", *data]) == 0
    assert run.main([*TINY, "--task", "sentiment", "--seq_len", "12", "--cell", "gru", *data]) == 0
    runs = _runs().sort_values("start_time")
    shakespeare, ptb, sst2 = (r for _, r in runs.iterrows())
    assert shakespeare["metrics.baseline_bpc"] == pytest.approx(shakespeare["metrics.baseline"] / np.log(2))
    assert 3.5 < shakespeare["metrics.baseline_bpc"] < 5.0 and 3.5 < ptb["metrics.baseline_bpc"] < 5.0
    assert shakespeare["tags.data_checksum"] != ptb["tags.data_checksum"]
    assert shakespeare["metrics.final_val_bpc"] < 7.0
    # The yardsticks: held-out unigram ≈ the training entropy; a 5-gram well below it.
    assert abs(shakespeare["metrics.unigram_test_bpc"] - shakespeare["metrics.baseline_bpc"]) < 0.2
    assert 2.0 < shakespeare["metrics.ngram5_test_bpc"] < shakespeare["metrics.unigram_test_bpc"] - 1.0
    assert shakespeare["metrics.test_loss_over_baseline"] == pytest.approx(
        shakespeare["metrics.test_loss"] / shakespeare["metrics.baseline"]
    )
    assert 0.5 < sst2["metrics.baseline_accuracy"] < 0.6
    assert 0.0 <= sst2["metrics.final_val_accuracy"] <= 1.0 and "metrics.test_accuracy" in sst2
    assert sst2["tags.mlflow.runName"] == "sentiment-T12 gru/keras fb=none tanh s0"
    # Padded sentences are masked: only keras.layers.RNN applies a mask.
    assert (shakespeare["tags.engine_used"], sst2["tags.engine_used"]) == ("fused", "keras")
    assert np.isfinite(sst2["metrics.gate_z_mean"]) and np.isnan(sst2.get("metrics.gate_i_mean", np.nan))


@pytest.mark.slow  # a training, a compiler or a fresh TensorFlow in a subprocess
def test_simple_rnn_an_input_width_gru_variant_and_fgr_run_with_gradient_flow(tracking, capsys):
    assert run.main([*TINY, "--task", "adding", "--cell", "rnn"]) == 0
    assert "fell back" not in capsys.readouterr().out  # SimpleRNN has no engine choice
    assert run.main([*TINY, "--task", "adding", "--cell", "gru", "--variant", "MUT2"]) == 0
    assert "fell back" not in capsys.readouterr().out  # every GRU variant is on the fused kernel
    assert run.main([*TINY, "--task", "adding", "--cell", "lstm", "--variant", "FGR"]) == 0
    assert "fell back" not in capsys.readouterr().out  # FGR's gate recurrence too
    # The GRU kernel's candidate is tanh: a ReLU candidate leaves it, and the run says so once, with why.
    args = ["--task", "adding", "--cell", "gru", "--variant", "NRG", "--candidate_activation", "relu"]
    assert run.main([*TINY, *args]) == 0
    reason = "candidate_activation='relu' (the kernel has tanh)"
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "fell back" in ln]
    assert lines == [f"engine: tf_while (engine=auto fell back: {reason})"]  # once, with the reason
    runs = {r["tags.variant"] if r["params.cell"] != "rnn" else "rnn": r for _, r in _runs().iterrows()}
    rnn, gru, fgr, relu = runs["rnn"], runs["MUT2"], runs["FGR"], runs["NRG"]
    assert np.isfinite(rnn["metrics.grad_flow_ratio_init"]) and rnn["metrics.grad_flow_ratio_init"] > 0
    assert not any(c.startswith("metrics.gate_") and not np.isnan(rnn[c]) for c in rnn.index)
    assert "metrics.gate_r_mean" in gru and gru["tags.variant"] == "MUT2"
    engines = [r["tags.engine_used"] for r in (rnn, gru, fgr, relu)]
    assert engines == ["keras", "fused", "fused", "tf_while"]
    assert np.isfinite(fgr["metrics.grad_flow_ratio_init"])
    assert relu["tags.engine_fallback_reason"] == reason


@pytest.mark.slow  # a training, a compiler or a fresh TensorFlow in a subprocess
def test_early_stop_when_solved_logs_steps_to_solve_and_unspent_budget(tracking):
    # A lenient target (MSE 0.5) stands in for "solved" so that a tiny run reaches it.
    assert run.main([*TINY, "--task", "adding", "--target", "0.5", "--steps", "60"]) == 0
    r = _runs().iloc[0]
    history = _history(mlflow.MlflowClient(), r.run_id, "val_mse")
    first = next(step for step, value in history if value <= 0.5)
    assert r["metrics.solved"] == 1 and r["metrics.steps_to_solve"] == first < 60
    assert history[-1][0] == first  # training stopped at the evaluation that solved it
    assert r["metrics.budget_unspent_steps"] == 60 - first


def test_run_names_say_what_differs_and_skip_the_bias_of_a_missing_forget_gate():
    from experiments.tracking.records import resolved_forget_bias, run_name
    from experiments.training.config import from_strings

    assert (
        run_name(from_strings({"task": "copy", "seq_len": "100", "variant": "NFG"}))
        == "copy-T100 lstm/NFG tanh s0"
    )
    assert resolved_forget_bias(from_strings({"variant": "lstm1997"})) == "n/a"
    named = run_name(
        from_strings({"task": "adding", "forget_bias": "2.0", "candidate_activation": "relu", "seed": "3"})
    )
    assert named == "adding-T100 lstm/keras fb=2 relu s3"
    assert run_name(from_strings({"cell": "gru", "variant": "NUG"})) == "adding-T100 gru/NUG tanh s0"


def test_the_progress_line_prints_what_is_known_and_no_nan(capsys):
    from experiments.training.config import RunConfig

    show = run._progress(RunConfig(steps=100), "mse", 2.0, time.perf_counter())
    show({"step": 0, "val_loss": 1.0, "val_mse": 1.0})
    show({"step": 50, "val_loss": 0.5, "val_mse": 0.5, "loss": 0.6, "grad_norm": 0.25})
    first, later = capsys.readouterr().out.splitlines()
    assert "nan" not in first and "|g|" not in first and "eta" not in first
    assert first.startswith("step      0/100  val_loss 1.0000 (0.50× baseline)  mse 1.0000")
    assert "loss 0.6000" in later and "|g| 0.25" in later and "eta" in later and "nan" not in later

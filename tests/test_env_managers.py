"""`mlflow run . --env-manager uv|virtualenv`: MLflow turns conda.yaml into an isolated env and runs in it.

Opt-in (LSTM_KERAS_ENV_TESTS=1): a cold env installs TensorFlow and the rest (1-4 minutes each);
later runs reuse it. uv needs the `uv` of the test extra; virtualenv needs `pyenv` on PATH with
conda.yaml's exact Python installed (MLflow runs `pyenv install --skip-existing <version>`).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

ROOT = Path(__file__).resolve().parents[1]
PARAMS = {"steps": 4, "eval_every": 2, "seq_len": 5, "units": 8, "batch_size": 8, "probe_batch": 4}
PARAMS |= {"log_model": "false"}

pytestmark = [
    pytest.mark.tf_only,
    pytest.mark.skipif(
        os.environ.get("LSTM_KERAS_ENV_TESTS") != "1",
        reason="builds isolated envs (minutes, network): set LSTM_KERAS_ENV_TESTS=1 to run",
    ),
]


@pytest.mark.parametrize("manager", ["uv", "virtualenv"])
def test_mlflow_run_in_isolated_env(manager, tmp_path):
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "TF_CPP_MIN_LOG_LEVEL": "2"}
    # `uv` is installed beside the Python running the tests (the test extra), as in an activated venv.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    tool = "uv" if manager == "uv" else "pyenv"
    if shutil.which(tool, path=env["PATH"]) is None:
        pytest.fail(f"--env-manager {manager} needs `{tool}` on PATH")
    # MLflow names an env by its Python and requirements only: one root per manager, or the second
    # manager would just reuse the first one's env.
    envs = Path(env.get("MLFLOW_ENV_ROOT") or Path.home() / ".mlflow" / "envs")
    env["MLFLOW_ENV_ROOT"] = str(envs / f"lstm-keras-{manager}")
    # uv writes no bytecode; under PYTHONDONTWRITEBYTECODE every run would recompile TensorFlow.
    env.setdefault("UV_COMPILE_BYTECODE", "1")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env["MLFLOW_TRACKING_URI"] = uri
    cmd = [sys.executable, "-m", "mlflow", "run", str(ROOT), "--env-manager", manager]
    for key, value in PARAMS.items():
        cmd += ["-P", f"{key}={value}"]

    # cwd: the store's default artifact root (./mlruns) lands in tmp_path, not in the project.
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]

    runs = mlflow.MlflowClient(uri).search_runs(experiment_ids=["0"])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.project.env"] == manager
    assert run.data.metrics["diverged"] == 0

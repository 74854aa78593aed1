"""Divergence that counts: a loss that explodes without becoming NaN stops the run as diverged.

Real training at tiny sizes: an LSTM with a ReLU candidate, no clipping and a huge learning rate
on the adding problem blows its loss up to ~10⁴× its start while every value stays finite; the
same configuration at the default learning rate trains normally, so the rule can fail.
"""

import math

import mlflow
import pytest
from test_run import TINY, _history, _runs

from experiments import run
from experiments.training.config import from_strings
from experiments.training.tasks import make_task
from experiments.training.trainer import Trainer, explode_threshold

pytestmark = pytest.mark.tf_only
RELU_UNCLIPPED = ["--task", "adding", "--candidate_activation", "relu", "--clipnorm", "0"]
RELU_UNCLIPPED += ["--steps", "30", "--eval_every", "10"]


def _run(tracking_uri: str, learning_rate: str) -> tuple[dict, dict, list[tuple[int, float]]]:
    """(metrics, tags, the val_loss curve) of one tracked run at `learning_rate`."""
    assert run.main([*TINY, *RELU_UNCLIPPED, "--learning_rate", learning_rate]) == 0
    r = mlflow.MlflowClient(tracking_uri).get_run(_runs().run_id[0])
    assert r.info.status == "FINISHED"
    return r.data.metrics, r.data.tags, _history(mlflow.MlflowClient(tracking_uri), r.info.run_id, "val_loss")


def test_a_finite_explosion_is_diverged_at_its_step_with_cause_exploded(tracking, capsys):
    m, tags, curve = _run(tracking, "100")
    assert m["diverged"] == 1 and m["solved"] == 0
    assert tags["divergence_cause"] == "exploded"
    assert m["diverged_at_step"] == 10 and m["steps_done"] == 10  # stopped at the first evaluation
    assert all(math.isfinite(v) for _, v in curve)  # never NaN: the old rule missed it
    loss = _history(mlflow.MlflowClient(tracking), _runs().run_id[0], "loss")[-1][1]
    threshold = 100 * max(m["baseline"], curve[0][1])  # explode_factor's default
    assert math.isfinite(loss) and max(loss, curve[-1][1]) > threshold
    assert f"> {threshold:.4g}" in tags["divergence_detail"]
    assert "DIVERGED (exploded at step 10" in capsys.readouterr().out


def test_the_same_configuration_at_a_normal_learning_rate_does_not_diverge(tracking):
    m, tags, curve = _run(tracking, "0.005")
    assert m["diverged"] == 0 and "diverged_at_step" not in m and "divergence_cause" not in tags
    assert m["steps_done"] == 30 and [s for s, _ in curve] == [0, 10, 20, 30]
    assert max(v for _, v in curve) < 100 * max(m["baseline"], curve[0][1])


def test_the_threshold_is_the_stated_factor_and_a_looser_one_lets_the_explosion_through():
    """The same exploding run under explode_factor 1e9 trains to the end: the factor decides."""
    values = {"task": "adding", "candidate_activation": "relu", "clipnorm": "0", "learning_rate": "100"}
    values |= {"steps": "20", "eval_every": "10", "seq_len": "5", "units": "8", "batch_size": "8"}
    values |= {"probe_batch": "4", "explode_factor": "1e9"}
    config = from_strings(values)
    task = make_task(config)
    out = Trainer(config, task).run()
    start = out.evaluations[0]["val_loss"]
    assert (
        out.explode_threshold
        == explode_threshold(config, task, start)
        == 1e9 * max(task.baseline_loss, start)
    )
    assert not out.diverged and out.steps_done == 20
    peak = max(e["val_loss"] for e in out.evaluations)
    assert peak > 100 * max(task.baseline_loss, start)  # what the default factor calls exploded

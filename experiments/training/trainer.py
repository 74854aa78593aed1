"""The training loop: one model, one task, evaluations every `eval_every` steps.

It knows nothing of MLflow: each evaluation is handed to `on_eval`, and the `Outcome` carries
what a tracker records at the end. Divergence stops training and is an outcome, not an
exception: a non-finite loss, gradient or weight ("nonfinite"), or a loss that explodes while
staying finite ("exploded": the training-window or validation loss of an evaluation above
`explode_factor` × max(memoryless baseline loss, validation loss at step 0)).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf

from experiments.training import probes
from experiments.training.config import RunConfig
from experiments.training.model import RECURRENT, build_model, make_optimizer
from experiments.training.tasks.base import Task, cross_entropy_nats

EVAL_BATCH = 500
NONFINITE, EXPLODED = "nonfinite", "exploded"


@dataclass
class Outcome:
    """What a run ended with. Metric values are from the validation set unless named test_."""

    model: keras.Model
    evaluations: list[dict] = field(default_factory=list)  # one dict per evaluation, with "step"
    steps_done: int = 0
    diverged: bool = False
    diverged_at_step: int | None = None
    divergence_cause: str | None = None  # NONFINITE | EXPLODED
    divergence_detail: str = ""  # the value and the threshold it crossed, for people
    explode_threshold: float = math.inf  # in loss units; set by the step-0 evaluation
    steps_to_solve: int | None = None
    flow_start: dict | None = None
    flow_end: dict | None = None
    gate_values: dict | None = None
    test: dict = field(default_factory=dict)
    train_time_s: float = 0.0


def seed_everything(seed: int) -> None:
    """Same seed → bitwise the same run on the same machine."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def task_loss(task: Task, targets: np.ndarray, outputs: np.ndarray) -> float:
    """The training loss recomputed in float64: mean cross-entropy (nats) or MSE."""
    outputs = np.asarray(outputs, dtype=np.float64)
    if task.loss == "mse":
        return float(np.mean((outputs.reshape(-1) - targets.reshape(-1)) ** 2))
    return float(np.mean(cross_entropy_nats(targets, outputs)))


def _finite_weights(model: keras.Model) -> bool:
    return all(np.isfinite(w).all() for w in model.get_weights())


def explode_threshold(config: RunConfig, task: Task, initial_val_loss: float) -> float:
    """The loss above which a run has exploded: explode_factor × max(baseline, initial val loss).

    Relative to the larger of the two so that neither an initialisation worse than the baseline
    (adding starts ~10× above it, copy ~4×) nor a near-zero baseline makes ordinary training count.
    """
    start = initial_val_loss if math.isfinite(initial_val_loss) else 0.0
    return config.explode_factor * max(task.baseline_loss, start)


def divergence(record: dict, threshold: float) -> tuple[str, str] | None:
    """(cause, detail) if the evaluation `record` shows a diverged run, else None."""
    if not math.isfinite(record["val_loss"]):
        return NONFINITE, f"val_loss {record['val_loss']}"
    for key in ("loss", "val_loss"):
        if record.get(key, -math.inf) > threshold:
            return EXPLODED, f"{key} {record[key]:.4g} > {threshold:.4g}"
    return None


class Trainer:
    """Builds the model for `config` on `task` and trains it step by step."""

    def __init__(self, config: RunConfig, task: Task):
        self.config, self.task = config, task
        seed_everything(config.seed)
        self.model = build_model(config, task)
        self.layer = self.model.get_layer(RECURRENT)
        self.optimizer = make_optimizer(config)
        self.optimizer.build(self.model.trainable_variables)
        self.loss_fn = probes.loss_function(task)
        # No AutoGraph: both have no Python control flow on tensors (Keras's layers are never
        # converted anyway), so converting them only re-parses the source.
        self._train_step = tf.function(self._step, jit_compile=False, reduce_retracing=True, autograph=False)
        self._forward = tf.function(
            lambda x: self.model(x, training=False), reduce_retracing=True, autograph=False
        )
        n = min(config.probe_batch, len(task.valid[0]))
        self.probe = (task.valid[0][:n], task.valid[1][:n])
        self._flow_probe = probes.gradient_flow_probe(self.model, self.layer, task)

    def _step(self, x, y):
        with tf.GradientTape() as tape:
            loss = self.loss_fn(y, self.model(x, training=True))
        grads = tape.gradient(loss, self.model.trainable_variables)
        norm = tf.linalg.global_norm(grads)  # before clipping: what the optimiser was handed
        self.optimizer.apply(grads, self.model.trainable_variables)
        return loss, norm

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.concatenate(
            [self._forward(x[i : i + EVAL_BATCH]).numpy() for i in range(0, len(x), EVAL_BATCH)]
        )

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        outputs = self.predict(x)
        return task_loss(self.task, y, outputs), float(self.task.metric(y, outputs))

    def flow(self) -> dict:
        return probes.gradient_flow(self.model, self.layer, self.task, *self.probe, probe=self._flow_probe)

    def _evaluation(self, step: int, window: list[tuple[float, float]]) -> tuple[dict, dict]:
        task = self.task
        val_loss, val_metric = self.evaluate(*task.valid)
        record = {"step": step, "val_loss": val_loss, f"val_{task.metric_name}": val_metric}
        if window:
            record["loss"] = float(np.mean([w[0] for w in window]))
            record["grad_norm"] = float(np.mean([w[1] for w in window]))
        gate_metrics, gate_values = probes.gate_statistics(self.model, self.layer, task, self.probe[0])
        record.update(gate_metrics)
        flow = self.flow()
        record["grad_flow_ratio"] = probes.flow_ratio(flow)
        return record, {"flow": flow, "gates": gate_values}

    def run(
        self,
        on_eval: Callable[[dict], None] = lambda record: None,
        interrupted: Callable[[], bool] = lambda: False,
    ) -> Outcome:
        """Train; `interrupted()` is polled each step and raises KeyboardInterrupt between steps."""
        c, task = self.config, self.task
        out = Outcome(model=self.model)
        rng = np.random.default_rng([c.seed, 0])
        record, extras = self._evaluation(0, [])
        out.explode_threshold = explode_threshold(c, task, record["val_loss"])
        out.evaluations.append(record)
        out.flow_start = extras["flow"]
        on_eval(record)
        window: list[tuple[float, float]] = []
        start = time.perf_counter()
        for step in range(1, c.steps + 1):
            if interrupted():
                raise KeyboardInterrupt
            x, y = task.train_batch(rng, c.batch_size)
            loss, norm = (float(v) for v in self._train_step(x, y))
            out.steps_done = step
            if not (math.isfinite(loss) and math.isfinite(norm)):
                _diverge(out, step, NONFINITE, f"loss {loss}, gradient norm {norm}")
                break
            window.append((loss, norm))
            if step % c.eval_every and step != c.steps:
                continue
            if not _finite_weights(self.model):
                _diverge(out, step, NONFINITE, "a non-finite weight")
                break
            record, extras = self._evaluation(step, window)
            window = []
            out.evaluations.append(record)
            out.flow_end, out.gate_values = extras["flow"], extras["gates"]
            on_eval(record)
            diverged = divergence(record, out.explode_threshold)
            if diverged:
                _diverge(out, step, *diverged)
                break
            if out.steps_to_solve is None and task.solved(record[f"val_{task.metric_name}"]):
                out.steps_to_solve = step
                if c.early_stop:
                    break
        out.train_time_s = time.perf_counter() - start
        if not out.diverged and task.test is not None:
            test_loss, test_metric = self.evaluate(*task.test)
            out.test = {"test_loss": test_loss, f"test_{task.metric_name}": test_metric}
        return out


def _diverge(out: Outcome, step: int, cause: str, detail: str) -> None:
    out.diverged, out.diverged_at_step = True, step
    out.divergence_cause, out.divergence_detail = cause, detail


def summary(outcome: Outcome, config: RunConfig, task: Task) -> dict[str, float]:
    """The run's summary metrics: best, final, baseline, solved, divergence, size and speed.

    A diverged run keeps its best and final values as the curves show them (the report ranks it
    worst by `diverged`, never by them) and is not `solved`, even if it reached the target first:
    what it ended with is a blown-up network. `steps_to_solve` still says when it got there.
    """
    name = f"val_{task.metric_name}"
    evals = [e for e in outcome.evaluations if e["step"] > 0] or outcome.evaluations
    finite = [e for e in evals if math.isfinite(e["val_loss"])]
    last = finite[-1] if finite else evals[-1]
    pick = max if task.higher_is_better else min
    s = {
        "best_val_loss": min((e["val_loss"] for e in finite), default=float("nan")),
        f"best_{name}": pick((e[name] for e in finite), default=float("nan")),
        "final_val_loss": last["val_loss"],
        f"final_{name}": last[name],
        "final_loss": last.get("loss", float("nan")),
        "baseline": task.baseline_loss,
        f"baseline_{task.metric_name}": task.baseline_metric,
        "val_loss_over_baseline": last["val_loss"] / task.baseline_loss,
        "solved": float(outcome.steps_to_solve is not None and not outcome.diverged),
        "diverged": float(outcome.diverged),
        "n_params": float(outcome.model.count_params()),
        "steps_done": float(outcome.steps_done),
        "budget_unspent_steps": float(config.steps - outcome.steps_done),
        "train_time_s": outcome.train_time_s,
        "steps_per_s": outcome.steps_done / outcome.train_time_s if outcome.train_time_s > 0 else 0.0,
    }
    s["best_val_loss_over_baseline"] = s["best_val_loss"] / task.baseline_loss
    if outcome.steps_to_solve is not None:
        s["steps_to_solve"] = float(outcome.steps_to_solve)
    if outcome.diverged_at_step is not None:
        s["diverged_at_step"] = float(outcome.diverged_at_step)
    if outcome.flow_start is not None:
        s["grad_flow_ratio_init"] = probes.flow_ratio(outcome.flow_start)
    if outcome.flow_end is not None:
        s["grad_flow_ratio_final"] = probes.flow_ratio(outcome.flow_end)
    s.update(outcome.test)
    s.update(task.references)
    if "test_loss" in s:  # what a confirmatory run is judged on (experiments/sweep/protocol.py)
        s["test_loss_over_baseline"] = s["test_loss"] / task.baseline_loss
    if "test_accuracy" in s and task.baseline_metric < 1:  # a classifier: its error rate, too
        s["test_error_over_baseline"] = (1 - s["test_accuracy"]) / (1 - task.baseline_metric)
    return s

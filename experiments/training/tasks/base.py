"""What every task gives the trainer: data, the head the model needs, a metric and a baseline.

A task is data, not a class hierarchy: the trainer reads these fields and never asks which
task it runs. Losses are always per-step means in nats (cross-entropy) or squared units (MSE),
so `val_loss / baseline_loss` compares across tasks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Batch = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Task:
    """One task instance, ready to train on.

    Attributes:
        name: "copy", "adding", "char_lm" or "sentiment".
        seq_len: Timesteps of every input sequence.
        input_vocab: Token vocabulary size (inputs are int ids → Embedding), or None when
            inputs are real-valued features of width `n_features`.
        n_features: Real features per step (ignored when `input_vocab` is set).
        output: "sequence" (a prediction at every step) or "last" (one at the last step).
        n_outputs: Logits per prediction (classes), or 1 for regression.
        loss: "sparse_ce" (from logits) or "mse".
        mask_zero: Token 0 is padding and is masked (variable-length sentences).
        metric_name: The task metric's name as logged (e.g. "recall_accuracy", "bpc").
        higher_is_better: Direction of the task metric.
        target: The task is solved when the validation metric reaches this value.
        baseline_loss: The loss of the best memoryless predictor (same units as the loss).
        baseline_metric: The task metric of that predictor.
        train_batch: `train_batch(rng, batch_size) -> (x, y)`, fresh or sampled training data.
        valid: Held-out `(x, y)` for evaluation during training.
        test: Held-out `(x, y)` evaluated once at the end, or None.
        metric: `metric(y_true, model_output) -> float`, model_output as the model returns it.
        data_checksum: sha256 of the corpus files, or a string naming the generator and seed.
        info: Extra facts worth a tag (corpus name, split sizes, vocabulary size).
        references: Yardsticks computed from the data alone, logged beside the run's own
            metrics (char_lm: held-out bpc of a unigram and a 5-gram model).
        vocabulary: Token id → word, for word-level tasks (sentiment), so that a probe reads
            the words the model saw; empty otherwise.
    """

    name: str
    seq_len: int
    input_vocab: int | None
    n_features: int
    output: Literal["sequence", "last"]
    n_outputs: int
    loss: Literal["sparse_ce", "mse"]
    mask_zero: bool
    metric_name: str
    higher_is_better: bool
    target: float
    baseline_loss: float
    baseline_metric: float
    train_batch: Callable[[np.random.Generator, int], Batch]
    valid: Batch
    test: Batch | None
    metric: Callable[[np.ndarray, np.ndarray], float]
    data_checksum: str
    info: dict[str, str] = field(default_factory=dict)
    references: dict[str, float] = field(default_factory=dict)
    vocabulary: tuple[str, ...] = ()

    def solved(self, metric_value: float) -> bool:
        if not np.isfinite(metric_value):
            return False
        return metric_value >= self.target if self.higher_is_better else metric_value <= self.target


def sampled_batches(x: np.ndarray, y: np.ndarray) -> Callable[[np.random.Generator, int], Batch]:
    """Minibatches drawn with replacement from a fixed training set (order set by the rng)."""

    def train_batch(rng: np.random.Generator, batch_size: int) -> Batch:
        index = rng.integers(0, len(x), batch_size)
        return x[index], y[index]

    return train_batch


def entropy_nats(counts: np.ndarray) -> float:
    """Entropy of the empirical distribution given by `counts`, in nats."""
    p = np.asarray(counts, dtype=np.float64)
    p = p[p > 0] / p.sum()
    return float(-(p * np.log(p)).sum())


def cross_entropy_nats(targets: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """The cross-entropy (nats) of each integer target under its `logits`, in float64."""
    from keras import ops  # here, not at the top: making a task's data must not load TensorFlow

    log_probs = ops.convert_to_numpy(ops.log_softmax(np.asarray(logits, dtype=np.float64), axis=-1))
    return -np.take_along_axis(log_probs, np.asarray(targets)[..., None].astype(np.intp), axis=-1)[..., 0]

"""The adding problem (Hochreiter & Schmidhuber 1997; the layout of Le et al. 2015).

Input: two channels over T steps, values ~ U[0, 1] and markers with exactly one 1 in each
half. Target: the sum of the two marked values, predicted at the last step. Predicting the
mean (1) scores Var(u1 + u2) = 2/12 = 1/6: the baseline MSE.
"""

from __future__ import annotations

import numpy as np

from experiments.training.tasks.base import Task

BASELINE_MSE = 1.0 / 6.0
DEFAULT_TARGET = 0.01  # MSE at which the problem counts as solved (Le et al. 2015)
N_VALID = 1000


def adding_batch(rng: np.random.Generator, batch: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs (batch, T, 2) float32, targets (batch, 1) float32)."""
    if length < 2:
        raise ValueError(f"Invalid seq_len={length!r}. Valid choices: an integer >= 2.")
    half = length // 2
    values = rng.uniform(0.0, 1.0, (batch, length))
    first = rng.integers(0, half, batch)
    second = rng.integers(half, length, batch)
    markers = np.zeros((batch, length))
    rows = np.arange(batch)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = np.stack([values, markers], axis=-1).astype(np.float32)
    y = (values[rows, first] + values[rows, second]).astype(np.float32)[:, None]
    return x, y


def mse(targets: np.ndarray, predictions: np.ndarray) -> float:
    return float(np.mean((np.asarray(predictions, np.float64).reshape(-1) - targets.reshape(-1)) ** 2))


def make(*, seq_len: int, seed: int, target: float | None = None) -> Task:
    valid = adding_batch(np.random.default_rng([seed, 1]), N_VALID, seq_len)
    test = adding_batch(np.random.default_rng([seed, 2]), N_VALID, seq_len)
    return Task(
        name="adding",
        seq_len=seq_len,
        input_vocab=None,
        n_features=2,
        output="last",
        n_outputs=1,
        loss="mse",
        mask_zero=False,
        metric_name="mse",
        higher_is_better=False,
        target=DEFAULT_TARGET if target is None else target,
        baseline_loss=BASELINE_MSE,
        baseline_metric=BASELINE_MSE,
        train_batch=lambda rng, batch: adding_batch(rng, batch, seq_len),
        valid=valid,
        test=test,
        metric=mse,
        data_checksum=f"synthetic:adding-v1:T{seq_len}:seed{seed}",
        info={"n_valid": str(N_VALID)},
    )

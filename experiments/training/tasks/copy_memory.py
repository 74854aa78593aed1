"""The copy-memory task in the layout of Arjovsky et al. 2016.

Input (length T + 2K, K = 10 in Arjovsky's layout): K symbols from {1..8}, T − 1 blanks (0), the
delimiter 9, K blanks. Target: T + K blanks, then the K symbols. A memoryless model that predicts
blanks where they must be and a uniform guess over 8 symbols at the K recall steps scores
K·ln 8 / (T + 2K) nats per step: the baseline. A smaller K (`copy_symbols`) asks less capacity of
the state and so isolates what the forget-gate claims are about: holding a memory over the delay.

With `variable_delay` (Henaff et al. 2016) each sequence draws its delay uniformly from
[1, T]: the delimiter moves and the recall starts right after it; the sequence is padded with
blanks to the fixed length T + 20, so a model cannot count steps to know when to recall.
"""

from __future__ import annotations

import math

import numpy as np

from experiments.training.tasks.base import Task

N_SYMBOLS = 8  # symbols 1..8
BLANK, DELIMITER = 0, 9
VOCAB = 10
N_COPY = 10
N_VALID = 1000
DEFAULT_TARGET = 0.99  # recall accuracy on held-out sequences at which the task is solved


def copy_batch(
    rng: np.random.Generator, batch: int, delay: int, *, variable_delay: bool = False, n_copy: int = N_COPY
) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets), both int32 arrays of shape (batch, delay + 2 n_copy)."""
    if delay < 1:
        raise ValueError(f"Invalid delay={delay!r}. Valid choices: an integer >= 1.")
    if n_copy < 1:
        raise ValueError(f"Invalid n_copy={n_copy!r}. Valid choices: an integer >= 1.")
    length = delay + 2 * n_copy
    symbols = rng.integers(1, N_SYMBOLS + 1, (batch, n_copy))
    delays = rng.integers(1, delay + 1, batch) if variable_delay else np.full(batch, delay)
    x = np.full((batch, length), BLANK, dtype=np.int32)
    y = np.full((batch, length), BLANK, dtype=np.int32)
    x[:, :n_copy] = symbols
    rows = np.arange(batch)
    x[rows, n_copy + delays - 1] = DELIMITER
    recall = n_copy + delays[:, None] + np.arange(n_copy)  # the n_copy steps after the delimiter
    y[rows[:, None], recall] = symbols
    return x, y


def baseline(delay: int, n_copy: int = N_COPY) -> float:
    """Memoryless cross-entropy, nats per step (fixed delay)."""
    return n_copy * math.log(N_SYMBOLS) / (delay + 2 * n_copy)


def recall_accuracy(targets: np.ndarray, predicted: np.ndarray) -> float:
    """Fraction of the 10 recalled symbols predicted right (predicted: class ids).

    The recall steps are exactly where the target is a symbol (never blank), wherever the
    delimiter fell.
    """
    recall = targets != BLANK
    return float(np.mean(predicted[recall] == targets[recall]))


def make(
    *,
    seq_len: int,
    seed: int,
    variable_delay: bool = False,
    target: float | None = None,
    n_copy: int = N_COPY,
) -> Task:
    def batch(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
        return copy_batch(rng, size, seq_len, variable_delay=variable_delay, n_copy=n_copy)

    valid, test = (
        batch(np.random.default_rng([seed, 1]), N_VALID),
        batch(np.random.default_rng([seed, 2]), N_VALID),
    )
    # Arjovsky's K = 10 keeps the checksum it always had, so earlier runs still match their data.
    k = "" if n_copy == N_COPY else f":K{n_copy}"

    return Task(
        name="copy",
        seq_len=seq_len + 2 * n_copy,
        input_vocab=VOCAB,
        n_features=VOCAB,
        output="sequence",
        n_outputs=VOCAB,
        loss="sparse_ce",
        mask_zero=False,
        metric_name="recall_accuracy",
        higher_is_better=True,
        target=DEFAULT_TARGET if target is None else target,
        # With a variable delay the recall still covers K of T + 2K steps: same baseline.
        baseline_loss=baseline(seq_len, n_copy),
        baseline_metric=1.0 / N_SYMBOLS,
        train_batch=batch,
        valid=valid,
        test=test,
        metric=lambda targets, logits: recall_accuracy(targets, np.argmax(logits, -1)),
        data_checksum=f"synthetic:copy-v1:T{seq_len}:vd{int(variable_delay)}{k}:seed{seed}",
        info={
            "n_valid": str(N_VALID),
            "variable_delay": str(variable_delay).lower(),
            "copy_symbols": str(n_copy),
        },
    )

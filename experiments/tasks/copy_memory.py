"""The copy-memory task in the layout of Arjovsky et al. 2016.

Input (length T + 20): 10 symbols from {1..8}, T − 1 blanks (0), the delimiter 9, 10 blanks.
Target: T + 10 blanks, then the 10 symbols. A memoryless model that predicts blanks where they
must be and a uniform guess over 8 symbols at the 10 recall steps scores 10·ln 8 / (T + 20)
nats per step: the baseline.
"""

from __future__ import annotations

import math

import numpy as np

N_SYMBOLS = 8  # symbols 1..8
BLANK, DELIMITER = 0, 9
VOCAB = 10
N_COPY = 10


def copy_batch(rng: np.random.Generator, batch: int, delay: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets), both int arrays of shape (batch, delay + 20)."""
    if delay < 1:
        raise ValueError(f"Invalid delay={delay!r}. Valid choices: an integer >= 1.")
    length = delay + 2 * N_COPY
    symbols = rng.integers(1, N_SYMBOLS + 1, (batch, N_COPY))
    x = np.full((batch, length), BLANK, dtype=np.int32)
    y = np.full((batch, length), BLANK, dtype=np.int32)
    x[:, :N_COPY] = symbols
    x[:, N_COPY + delay - 1] = DELIMITER
    y[:, -N_COPY:] = symbols
    return x, y


def baseline(delay: int) -> float:
    """Memoryless cross-entropy, nats per step."""
    return N_COPY * math.log(N_SYMBOLS) / (delay + 2 * N_COPY)


def recall_accuracy(targets: np.ndarray, predicted: np.ndarray) -> float:
    """Fraction of the 10 recalled symbols predicted right."""
    return float(np.mean(targets[:, -N_COPY:] == predicted[:, -N_COPY:]))

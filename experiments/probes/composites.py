"""'A but B' sentences built from real corpus sentences whose polarity a model already predicts.

Pure numpy, on id rows. A clause is a whole short held-out sentence with no connective (neither
contrastive nor "and"), labelled positive or negative in the corpus, which the model classifies
correctly with probability ≥ `confidence`. A composite is the clause's ids, the connective's id,
the other clause's ids, padded at the end as the sentiment task pads (the comma of "A, but B"
is punctuation, which the task's tokeniser strips anyway).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from experiments.probes.connectives import CONTRASTIVE, CONTROL


def clause_pool(
    x: np.ndarray,
    y: np.ndarray,
    probs: np.ndarray,
    vocabulary: Sequence[str],
    *,
    confidence: float,
    min_tokens: int = 3,
    max_tokens: int = 12,
) -> tuple[np.ndarray, np.ndarray]:
    """(positive rows, negative rows) of `x` usable as clauses: `min_tokens`–`max_tokens` real
    tokens, no connective, predicted as their label with probability ≥ `confidence`.
    `probs` is (n, 2), the model's class probabilities."""
    banned = {vocabulary.index(w) for w in (*CONTRASTIVE, CONTROL) if w in vocabulary}
    lengths = (x != 0).sum(axis=1)
    clean = np.array([not banned.intersection(row.tolist()) for row in x], dtype=bool)
    predicted = np.argmax(probs, axis=1)
    sure = probs[np.arange(len(y)), y] >= confidence
    usable = clean & (lengths >= min_tokens) & (lengths <= max_tokens) & (predicted == y) & sure
    return np.flatnonzero(usable & (y == 1)), np.flatnonzero(usable & (y == 0))


def sample_pairs(positive: np.ndarray, negative: np.ndarray, n_pairs: int, rng: np.random.Generator):
    """(n, 2) distinct (positive, negative) row pairs, n = min(n_pairs, all pairs), drawn by `rng`."""
    total = len(positive) * len(negative)
    if total == 0:
        return np.empty((0, 2), dtype=np.int64)
    flat = rng.choice(total, size=min(n_pairs, total), replace=False)
    return np.stack([positive[flat // len(negative)], negative[flat % len(negative)]], axis=1)


def compose(x: np.ndarray, first: np.ndarray, second: np.ndarray, connective_id: int, seq_len: int):
    """Rows `first[k]` + connective + `second[k]`, end-padded to `seq_len`; and each connective's
    token index (the length of the first clause)."""
    out = np.zeros((len(first), seq_len), dtype=x.dtype)
    index = np.empty(len(first), dtype=np.int64)
    for k, (a, b) in enumerate(zip(first, second)):
        ids = [*x[a][x[a] != 0], connective_id, *x[b][x[b] != 0]]
        if len(ids) > seq_len:
            raise ValueError(f"composite of rows {a} and {b} has {len(ids)} tokens > seq_len={seq_len}")
        out[k, : len(ids)] = ids
        index[k] = int((x[a] != 0).sum())
    return out, index


def follows_second(predicted: np.ndarray, second_labels: np.ndarray) -> np.ndarray:
    """Whether each composite's predicted label is that of its clause after the connective."""
    return np.asarray(predicted) == np.asarray(second_labels)

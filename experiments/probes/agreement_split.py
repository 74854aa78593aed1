"""The number-prediction split: stratified, grouped folds of the Linzen items, and a vocabulary
built from a fold's training part alone.

Folds: scikit-learn's StratifiedGroupKFold (5 folds, shuffled with the fixed seed `SPLIT_SEED`),
stratified by attractor bucket × number, grouped by the prefix's text, so that two sentences
that share their words up to the verb (155 pairs in the pinned files) are never on both sides.
Training seed k is tested on fold k mod 5 and trained on the others: over 5 seeds each
sentence is tested once per cell (5-fold cross-validation), and cells are compared on the same
fold seed by seed. A fold's training part gives up a fixed tenth (grouped the same way) to
validation, which only monitors training (no early stopping, no selection).

Words: the training part's words seen at least `MIN_COUNT` times, most frequent first (ties by
the word); id 0 is padding, id 1 `[UNK]` (every other word, and every word of the test fold not
in that list). A prefix longer than `seq_len` keeps its last `seq_len` words (nearest the verb);
rows are padded at the end, so the model reads the number off its last real step.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from experiments.probes.agreement_data import Item

N_FOLDS = 5
SPLIT_SEED = 0
VALID_FRACTION = 0.1
MIN_COUNT = 2
PAD, UNK = "", "[UNK]"


def strata(items: Sequence[Item]) -> np.ndarray:
    return np.array([f"{it.bucket}/{'pl' if it.plural else 'sg'}" for it in items])


def groups(items: Sequence[Item]) -> np.ndarray:
    return np.array([" ".join(it.prefix) for it in items])


def folds(items: Sequence[Item], n_folds: int = N_FOLDS) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(train indices, test indices)] per fold, fixed by `SPLIT_SEED`."""
    from sklearn.model_selection import StratifiedGroupKFold

    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=SPLIT_SEED)
    index = np.arange(len(items))
    return [(np.sort(a), np.sort(b)) for a, b in splitter.split(index, strata(items), groups(items))]


def split_for_seed(items: Sequence[Item], seed: int, n_folds: int = N_FOLDS) -> dict[str, np.ndarray]:
    """{"train", "valid", "test"} indices of the items for training seed `seed`."""
    from sklearn.model_selection import GroupShuffleSplit

    train, test = folds(items, n_folds)[seed % n_folds]
    g = groups(items)[train]
    inner = GroupShuffleSplit(n_splits=1, test_size=VALID_FRACTION, random_state=SPLIT_SEED)
    keep, valid = next(inner.split(train, groups=g))
    return {"train": np.sort(train[keep]), "valid": np.sort(train[valid]), "test": test}


def vocabulary(prefixes: Sequence[Sequence[str]], min_count: int = MIN_COUNT) -> tuple[str, ...]:
    """Padding, `[UNK]`, then the words seen >= `min_count` times, most frequent first."""
    counts = Counter(w for p in prefixes for w in p)
    words = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
    return (PAD, UNK, *words)


def encode(prefixes: Sequence[Sequence[str]], vocab: Sequence[str], seq_len: int) -> np.ndarray:
    """(n, seq_len) int32 ids, end-padded with 0; unknown words → 1; long prefixes keep their end."""
    ids = {w: k for k, w in enumerate(vocab)}
    out = np.zeros((len(prefixes), seq_len), dtype=np.int32)
    for row, words in enumerate(prefixes):
        kept = list(words)[-seq_len:] if seq_len else []
        out[row, : len(kept)] = [ids.get(w, 1) for w in kept]
    return out

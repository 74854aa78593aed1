"""Held-out bits per character of n-gram models: the yardsticks beside a char-LM's bpc.

Interpolated Witten–Bell smoothing (Witten & Bell 1991; Chen & Goodman 1999, §2.4):

    P_n(c | h) = (C(h c) + N1+(h •) · P_{n-1}(c | h')) / (C(h) + N1+(h •))

with h' the context h without its oldest character and P_0 uniform over the vocabulary, so
every held-out character has a probability above zero. Counts come from the training split
only. Written out because the libraries that have it (nltk.lm) score one character at a time in
Python, minutes per corpus; here each order is a few vectorised `np.unique` / `searchsorted`
passes (tests/test_ngram.py checks it against a direct count-by-count implementation).
"""

from __future__ import annotations

import math

import numpy as np


def _codes(ids: np.ndarray, width: int, base: int) -> np.ndarray:
    """Each position's previous `width` ids (oldest first) as one integer; 0 for width 0."""
    n = len(ids)
    code = np.zeros(n, dtype=np.int64)
    for k in range(width, 0, -1):  # ids[t - k], oldest first
        shifted = np.zeros(n, dtype=np.int64)
        shifted[k:] = ids[:-k]
        code = code * base + shifted
    return code


def _lookup(keys: np.ndarray, values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """values[keys == query] per query, 0 where the query is absent (keys sorted, unique)."""
    at = np.searchsorted(keys, queries)
    at = np.minimum(at, len(keys) - 1)
    return np.where(keys[at] == queries, values[at], 0)


def bits_per_char(train: np.ndarray, test: np.ndarray, order: int, vocab_size: int) -> float:
    """Held-out bpc of an order-`order` interpolated Witten–Bell model (order 1: the unigram).

    `train`, `test`: int ids in [0, vocab_size). The first order − 1 positions of each split
    see a context padded with id 0, as a model reading from the split's start would."""
    if order < 1:
        raise ValueError(f"Invalid order={order!r}. Valid choices: an integer >= 1.")
    train, test = np.asarray(train, dtype=np.int64), np.asarray(test, dtype=np.int64)
    base = vocab_size + 1
    p = np.full(len(test), 1.0 / vocab_size)  # P_0: uniform
    for width in range(order):  # contexts of 0, 1, …, order − 1 characters
        h_train, h_test = _codes(train, width, base), _codes(test, width, base)
        pair_keys, pair_counts = np.unique(h_train * base + train, return_counts=True)
        h_keys, h_counts = np.unique(h_train, return_counts=True)
        types_keys, types = np.unique(pair_keys // base, return_counts=True)  # N1+(h •)
        c_hc = _lookup(pair_keys, pair_counts, h_test * base + test)
        c_h = _lookup(h_keys, h_counts, h_test)
        n1 = _lookup(types_keys, types, h_test)
        seen = c_h > 0  # an unseen context keeps the lower order's estimate
        p = np.where(seen, (c_hc + n1 * p) / np.maximum(c_h + n1, 1), p)
    return float(-np.mean(np.log(p)) / math.log(2))

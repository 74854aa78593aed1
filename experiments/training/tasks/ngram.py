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


class WittenBell:
    """An interpolated Witten–Bell model of order ≤ `order` counted once on `train`, which scores
    any held-out ids at any order up to it (order 1: the unigram).

    `train` and held-out ids are ints in [0, vocab_size). The first order − 1 positions of a split
    see a context padded with id 0, as a model reading from the split's start would."""

    def __init__(self, train: np.ndarray, order: int, vocab_size: int):
        if order < 1:
            raise ValueError(f"Invalid order={order!r}. Valid choices: an integer >= 1.")
        train = np.asarray(train, dtype=np.int64)
        self.order, self.vocab_size, self.base = order, vocab_size, vocab_size + 1
        self.tables = []  # per context width: (h c) counts, h counts, N1+(h •)
        for width in range(order):
            h = _codes(train, width, self.base)
            pairs = np.unique(h * self.base + train, return_counts=True)
            contexts = np.unique(h, return_counts=True)
            types = np.unique(pairs[0] // self.base, return_counts=True)
            self.tables.append((pairs, contexts, types))

    def bits_per_char(self, held_out: np.ndarray, order: int | None = None) -> float:
        """Mean bits per id of `held_out` under the model of order `order` (default: its own)."""
        order = self.order if order is None else order
        if not 1 <= order <= self.order:
            raise ValueError(f"Invalid order={order!r}. Valid choices: 1 to {self.order}.")
        held_out = np.asarray(held_out, dtype=np.int64)
        p = np.full(len(held_out), 1.0 / self.vocab_size)  # P_0: uniform
        for width, (pairs, contexts, types) in enumerate(self.tables[:order]):
            h = _codes(held_out, width, self.base)
            c_hc = _lookup(*pairs, h * self.base + held_out)
            c_h, n1 = _lookup(*contexts, h), _lookup(*types, h)
            seen = c_h > 0  # an unseen context keeps the lower order's estimate
            p = np.where(seen, (c_hc + n1 * p) / np.maximum(c_h + n1, 1), p)
        return float(-np.mean(np.log(p)) / math.log(2))


def bits_per_char(train: np.ndarray, test: np.ndarray, order: int, vocab_size: int) -> float:
    """Held-out bpc of an order-`order` interpolated Witten–Bell model (`WittenBell`)."""
    return WittenBell(train, order, vocab_size).bits_per_char(test)

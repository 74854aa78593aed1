"""The n-gram yardstick of the char-LM task against a count-by-count Witten–Bell written from the
formula, and its behaviour on real text."""

import math
from collections import Counter

import numpy as np
import pytest

from experiments.training.tasks import ngram


def _witten_bell(train: list[int], test: list[int], order: int, vocab: int) -> float:
    """Chen & Goodman's interpolated Witten–Bell, one probability at a time, from dictionaries."""
    padded = lambda seq, t, w: tuple(seq[t - k] if t - k >= 0 else 0 for k in range(w, 0, -1))  # noqa: E731
    pairs, contexts, types = Counter(), Counter(), {}
    for w in range(order):
        for t, c in enumerate(train):
            h = (w, padded(train, t, w))
            pairs[h, c] += 1
            contexts[h] += 1
            types.setdefault(h, set()).add(c)
    bits = 0.0
    for t, c in enumerate(test):
        p = 1.0 / vocab
        for w in range(order):
            h = (w, padded(test, t, w))
            if contexts[h]:
                n1 = len(types[h])
                p = (pairs[h, c] + n1 * p) / (contexts[h] + n1)
        bits -= math.log2(p)
    return bits / len(test)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_matches_the_formula_applied_count_by_count(order):
    rng = np.random.default_rng(0)
    train = rng.choice(6, 3000, p=[0.05, 0.3, 0.25, 0.2, 0.15, 0.05])
    train[1::3] = (train[::3][: len(train[1::3])] + 1) % 6  # some structure for higher orders to find
    test = rng.choice(6, 400)
    test[1::3] = (test[::3][: len(test[1::3])] + 1) % 6
    want = _witten_bell(list(train), list(test), order, 6)
    assert ngram.bits_per_char(train, test, order, 6) == pytest.approx(want, rel=1e-12)


def test_higher_orders_predict_structured_text_better_and_the_unigram_is_near_the_entropy():
    rng = np.random.default_rng(1)
    text = np.tile(np.arange(5), 2000)
    text[rng.random(len(text)) < 0.1] = 0  # noise
    train, test = text[:8000], text[8000:]
    bpc = [ngram.bits_per_char(train, test, n, 5) for n in (1, 2, 3)]
    assert bpc[1] < 0.6 * bpc[0] and bpc[2] <= bpc[1] + 1e-9
    freq = np.bincount(train, minlength=5) / len(train)
    assert bpc[0] == pytest.approx(-(freq * np.log2(freq)).sum(), abs=0.02)
    with pytest.raises(ValueError, match="order=0"):
        ngram.bits_per_char(train, test, 0, 5)

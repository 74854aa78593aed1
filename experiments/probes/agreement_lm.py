"""The word-level language model of the agreement probe: PTB as a project Task, its test
perplexity, and how it scores the correct against the wrong verb form after a prefix.

PTB (Mikolov's copy, `ptb` in the corpora registry): each line's words then "<eos>"; the
vocabulary is PTB's own 10,000 words (with "<unk>" and "<eos>"), ids by first occurrence in
ptb.train.txt. The LM trains on windows drawn from the first `train_words` words of train (the
budget), starting each from a zero state; validation during training reads the first
`VALID_WINDOWS` windows of valid; test perplexity reads the whole of test in windows.

Scoring: a sentence's prefix (the words before the verb) is lower-cased, each number becomes
"N" (as in PTB), each word outside PTB's vocabulary "<unk>", and "<eos>" is put in front (what
precedes a sentence in PTB). The LM's next-word log-probabilities after the prefix rank the two
forms; a pair with a form outside the vocabulary is excluded (and counted).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from experiments.training.tasks.base import Task, cross_entropy_nats, entropy_nats

EOS, UNK_WORD = "<eos>", "<unk>"
VALID_WINDOWS = 100
EVAL_CHUNK = 100  # windows per forward pass when scoring the test split
_NUMBER = re.compile(r"^[+-]?\d[\d,.:/-]*$")


def read_words(path: Path) -> list[str]:
    return [w for line in path.read_text(encoding="utf-8").splitlines() for w in (*line.split(), EOS)]


def vocabulary(train_words: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(train_words))


def ptb_word(word: str, ids: dict[str, int]) -> str:
    """A word of another corpus as PTB spells it: lower case, numbers as "N", else "<unk>"."""
    w = word.lower()
    if _NUMBER.match(w):
        w = "N"
    return w if w in ids else UNK_WORD


def encode(words: Sequence[str], ids: dict[str, int]) -> np.ndarray:
    return np.array([ids[ptb_word(w, ids)] for w in words], dtype=np.int32)


def windows(stream: np.ndarray, seq_len: int, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping (inputs, next-word targets) windows of `seq_len` from a token stream."""
    n = (len(stream) - 1) // seq_len
    n = n if limit is None else min(n, limit)
    index = np.arange(n)[:, None] * seq_len + np.arange(seq_len)
    return stream[index], stream[index + 1]


def make_task(paths: dict[str, Path], seq_len: int, train_words: int, data_checksum: str) -> Task:
    """The PTB word-LM task; its `test` is left None (perplexity is read in chunks, `perplexity`)."""
    words = read_words(paths["ptb.train.txt"])
    vocab = vocabulary(words)
    ids = {w: k for k, w in enumerate(vocab)}
    train = encode(words[:train_words], ids)
    valid = windows(encode(read_words(paths["ptb.valid.txt"]), ids), seq_len, VALID_WINDOWS)
    counts = np.bincount(train, minlength=len(vocab))

    def train_batch(rng: np.random.Generator, batch: int) -> tuple[np.ndarray, np.ndarray]:
        starts = rng.integers(0, len(train) - seq_len, batch)
        w = train[starts[:, None] + np.arange(seq_len + 1)]
        return w[:, :-1], w[:, 1:]

    return Task(
        name="word_lm",
        seq_len=seq_len,
        input_vocab=len(vocab),
        n_features=0,
        output="sequence",
        n_outputs=len(vocab),
        loss="sparse_ce",
        mask_zero=False,
        metric_name="perplexity",
        higher_is_better=False,
        target=0.0,
        baseline_loss=entropy_nats(counts),
        baseline_metric=math.exp(entropy_nats(counts)),
        train_batch=train_batch,
        valid=valid,
        test=None,
        metric=lambda y, logits: float(np.exp(np.mean(cross_entropy_nats(y, logits)))),
        data_checksum=data_checksum,
        info={
            "corpus": "ptb",
            "train_words": str(len(train)),
            "vocab_size": str(len(vocab)),
            "vocab_sha256": hashlib.sha256("\n".join(vocab).encode()).hexdigest(),
        },
        vocabulary=vocab,
    )


def perplexity(predict, paths: dict[str, Path], vocab: Sequence[str], seq_len: int) -> float:
    """exp(mean next-word cross-entropy) over the whole PTB test split, windows from zero state."""
    ids = {w: k for k, w in enumerate(vocab)}
    x, y = windows(encode(read_words(paths["ptb.test.txt"]), ids), seq_len)
    total = 0.0
    for i in range(0, len(x), EVAL_CHUNK):
        total += float(np.sum(cross_entropy_nats(y[i : i + EVAL_CHUNK], predict(x[i : i + EVAL_CHUNK]))))
    return math.exp(total / y.size)


def prefix_rows(prefixes: Sequence[Sequence[str]], vocab: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(rows, last): "<eos>" + each prefix as ids, end-padded with id 0 (any id would do: the
    model is causal and is read at `last`, the row's final real step)."""
    ids = {w: k for k, w in enumerate(vocab)}
    encoded = [encode([EOS, *p], ids) for p in prefixes]
    last = np.array([len(e) - 1 for e in encoded])
    rows = np.zeros((len(encoded), max(len(e) for e in encoded)), dtype=np.int32)
    for r, e in enumerate(encoded):
        rows[r, : len(e)] = e
    return rows, last


def form_ids(pairs: Sequence[tuple[str, str]], vocab: Sequence[str]) -> np.ndarray:
    """(n, 2) ids of (correct, wrong) lower-cased; -1 where a form is not in the vocabulary."""
    ids = {w: k for k, w in enumerate(vocab)}
    return np.array([[ids.get(a.lower(), -1), ids.get(b.lower(), -1)] for a, b in pairs], dtype=np.int64)


def choose(log_probs: np.ndarray, forms: np.ndarray) -> np.ndarray:
    """1.0 where the correct form (column 0) is more probable than the wrong one, 0.0 where less,
    NaN where a form is unknown (id -1) or the two tie. `log_probs`: (n, vocab) at the verb."""
    out = np.full(len(forms), np.nan)
    known = (forms >= 0).all(axis=1)
    rows = np.flatnonzero(known)
    a = log_probs[rows, forms[rows, 0]]
    b = log_probs[rows, forms[rows, 1]]
    out[rows] = np.where(a > b, 1.0, np.where(a < b, 0.0, np.nan))
    return out


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))

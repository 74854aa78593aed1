"""Number prediction (Linzen et al. 2016's task) as a project Task: read the prefix before the
verb, predict the verb's number (0 singular, 1 plural); and what a trained model got right."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from experiments.probes import agreement_split as split
from experiments.probes.agreement_data import Item
from experiments.training.tasks.base import Task, entropy_nats, sampled_batches


def accuracy(y_true: np.ndarray, logits: np.ndarray) -> float:
    return float(np.mean(np.argmax(logits, axis=-1) == np.asarray(y_true)))


def make_task(
    items: Sequence[Item], seed: int, seq_len: int, data_checksum: str
) -> tuple[Task, dict[str, np.ndarray]]:
    """The classification task of training seed `seed`: its fold's parts, its own vocabulary."""
    parts = split.split_for_seed(items, seed)
    vocab = split.vocabulary([items[i].prefix for i in parts["train"]])

    def xy(part: str) -> tuple[np.ndarray, np.ndarray]:
        chosen = [items[i] for i in parts[part]]
        x = split.encode([it.prefix for it in chosen], vocab, seq_len)
        return x, np.array([int(it.plural) for it in chosen], dtype=np.int32)

    (x_train, y_train), valid, test = xy("train"), xy("valid"), xy("test")
    counts = np.bincount(y_train, minlength=2)
    unknown = float(np.mean(test[0][test[0] > 0] == 1))
    return Task(
        name="agreement",
        seq_len=seq_len,
        input_vocab=len(vocab),
        n_features=0,
        output="last",
        n_outputs=2,
        loss="sparse_ce",
        mask_zero=True,
        metric_name="accuracy",
        higher_is_better=True,
        target=1.0,
        baseline_loss=entropy_nats(counts),
        baseline_metric=float(counts.max() / counts.sum()),
        train_batch=sampled_batches(x_train, y_train),
        valid=valid,
        test=test,
        metric=accuracy,
        data_checksum=data_checksum,
        info={
            "corpus": "linzen_agreement",
            "fold": str(seed % split.N_FOLDS),
            "train_size": str(len(y_train)),
            "valid_size": str(len(valid[1])),
            "test_size": str(len(test[1])),
            "vocab_size": str(len(vocab)),
            "vocab_sha256": hashlib.sha256("\n".join(vocab).encode()).hexdigest(),
            "test_unknown_token_fraction": f"{unknown:.4f}",
        },
        vocabulary=vocab,
    ), parts


def predictions(predict, task: Task, items: Sequence[Item], test_index: np.ndarray) -> dict:
    """The test fold's items with the model's predicted number: rows for the tables."""
    predicted = np.argmax(predict(task.test[0]), axis=-1)
    truth = task.test[1]
    return {
        "index": np.asarray(test_index),
        "truth": truth,
        "predicted": predicted,
        "bucket": np.array([items[i].bucket for i in test_index]),
    }

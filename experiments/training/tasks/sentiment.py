"""Binary sentiment classification of real text, read by the model word by word.

Corpora:
    sst2: GLUE SST-2. train = train.tsv (67,349 phrases of the Stanford Sentiment Treebank),
        valid = dev.tsv (872 sentences), test = test.tsv (1,821 sentences). GLUE publishes its
        test set without labels; this labelled test.tsv is a third-party copy (the URL in
        corpora.py) whose labels follow the treebank's own test sentences: its accuracy is not a
        GLUE leaderboard score. A training phrase that is, word for word (lower-cased), a dev or
        test sentence is dropped from training (in the pinned files: one, "what 's next ?", in
        test), and the count is logged (`train_dropped_overlap`); the same holds for imdb.
    imdb: Maas et al. 2011 movie reviews. The 25,000 training reviews are split 95/5 into
        train/valid by a permutation with its own fixed seed (0), so every run validates on the
        same reviews whatever its seed; test = the 25,000 test reviews. "<br />" tags are
        replaced by spaces.

Texts become word ids with Keras's TextVectorization adapted on the training texts: lower-cased,
punctuation stripped, split on whitespace, the `vocab_size` most frequent words (ties broken
by the word itself, so adapting twice gives the same vocabulary). Id 0 is padding (masked),
id 1 is out-of-vocabulary. Sequences keep their first `seq_len` words and are padded at the
end; the model reads the label off the last unmasked step.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from experiments.training import corpora
from experiments.training.corpora import CorpusError
from experiments.training.tasks.base import Task, entropy_nats, sampled_batches

DEFAULT_TARGET = {"sst2": 0.80, "imdb": 0.85}
IMDB_VALID_FRACTION = 0.05
IMDB_SPLIT_SEED = 0  # not the run seed: the train/valid split must be the same in every run
# The text column's header differs between SST-2's train file and its dev/test files.
SST2_TEXT_COLUMN = {"train.tsv": "sentence", "dev.tsv": "content", "test.tsv": "content"}

Texts = tuple[list[str], np.ndarray]


def make(
    *,
    seq_len: int,
    seed: int,
    corpus: str = "sst2",
    data_dir: str | Path | None = None,
    vocab_size: int = 20000,
    target: float | None = None,
) -> Task:
    """The sentiment task on `corpus`, sequences of `seq_len` word ids.

    `seed` is unused: the splits are fixed; training minibatches are drawn by the trainer's rng.
    """
    del seed
    _check(seq_len, vocab_size, corpus)
    paths = corpora.ensure(corpus, data_dir)
    train, valid, test = _read_sst2(paths) if corpus == "sst2" else _read_imdb(paths)
    n_read, train = len(train[0]), without_overlap(train, valid[0] + test[0])
    n_dropped = n_read - len(train[0])
    vectorizer = _adapted_vectorizer(train[0], vocab_size, seq_len)

    def vectorize(texts: list[str]) -> np.ndarray:
        return np.asarray(vectorizer(np.array(texts, dtype=object)), dtype=np.int32)

    x_train, x_valid, x_test = (vectorize(texts) for texts, _ in (train, valid, test))
    y_train, y_valid, y_test = (labels for _, labels in (train, valid, test))
    counts = np.bincount(y_train, minlength=2)
    vocabulary = tuple(vectorizer.get_vocabulary())

    return Task(
        name="sentiment",
        seq_len=seq_len,
        input_vocab=vectorizer.vocabulary_size(),
        n_features=0,
        output="last",
        n_outputs=2,
        loss="sparse_ce",
        mask_zero=True,
        metric_name="accuracy",
        higher_is_better=True,
        target=DEFAULT_TARGET[corpus] if target is None else float(target),
        baseline_loss=entropy_nats(counts),
        baseline_metric=float(counts.max() / counts.sum()),
        train_batch=sampled_batches(x_train, y_train),
        valid=(x_valid, y_valid),
        test=(x_test, y_test),
        metric=accuracy,
        data_checksum=corpora.checksum(paths),
        info=_info(corpus, n_dropped, vocabulary, x_train, y_valid, y_test),
        vocabulary=vocabulary,
    )


def _info(
    corpus: str,
    n_dropped: int,
    vocabulary: tuple[str, ...],
    x_train: np.ndarray,
    y_valid: np.ndarray,
    y_test: np.ndarray,
) -> dict[str, str]:
    return {
        "corpus": corpus,
        "train_size": str(len(x_train)),
        "train_dropped_overlap": str(n_dropped),
        "valid_size": str(len(y_valid)),
        "test_size": str(len(y_test)),
        "vocab_size": str(len(vocabulary)),  # including padding (0) and OOV (1)
        # identifies the word -> id mapping a trained model depends on
        "vocab_sha256": hashlib.sha256("\n".join(vocabulary).encode()).hexdigest(),
        # reviews longer than seq_len words are cut: worth knowing when comparing seq_lens
        "train_truncated_fraction": f"{np.mean(x_train[:, -1] != 0):.4f}",
    }


def _check(seq_len: int, vocab_size: int, corpus: str) -> None:
    if seq_len < 1:
        raise ValueError(f"Invalid seq_len={seq_len!r}. Valid choices: an integer >= 1.")
    if vocab_size < 3:
        raise ValueError(
            f"Invalid vocab_size={vocab_size!r}. Valid choices: an integer >= 3 (padding, OOV, a word)."
        )
    error = corpora.validate_corpus("sentiment", corpus)
    if error:
        raise CorpusError(error)


def _adapted_vectorizer(train_texts: list[str], vocab_size: int, seq_len: int):
    """Keras's TextVectorization with its vocabulary adapted on the training texts."""
    import keras  # here, not at the top: validating parameters must not load TensorFlow

    vectorizer = keras.layers.TextVectorization(
        max_tokens=vocab_size, output_sequence_length=seq_len, standardize="lower_and_strip_punctuation"
    )
    vectorizer.adapt(np.array(train_texts, dtype=object))
    return vectorizer


def accuracy(y_true: np.ndarray, logits: np.ndarray) -> float:
    """Fraction of examples whose highest logit is the true class."""
    return float(np.mean(np.argmax(logits, axis=-1) == np.asarray(y_true)))


def _read_sst2(paths: dict[str, Path]) -> tuple[Texts, Texts, Texts]:
    return _read_tsv(paths["train.tsv"]), _read_tsv(paths["dev.tsv"]), _read_tsv(paths["test.tsv"])


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def without_overlap(train: Texts, held_out: list[str]) -> Texts:
    """`train` without the texts that equal a held-out one (lower-cased, whitespace-normalised)."""
    seen = {_norm(t) for t in held_out}
    keep = np.array([_norm(t) not in seen for t in train[0]], dtype=bool)
    return [t for t, k in zip(train[0], keep) if k], train[1][keep]


def _read_tsv(path: Path) -> Texts:
    # QUOTE_NONE: sentences contain bare quotes; na_filter off: "null" or "nan" are words here
    frame = pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, dtype=str, na_filter=False)
    column = SST2_TEXT_COLUMN[path.name]
    if list(frame.columns) != ["label", column]:
        raise CorpusError(f"{path}: expected the header 'label<TAB>{column}', found {list(frame.columns)}.")
    return frame[column].tolist(), _labels(frame["label"], path)


def _read_imdb(paths: dict[str, Path]) -> tuple[Texts, Texts, Texts]:
    texts, labels = _read_jsonl(paths["imdb_train.jsonl.gz"])
    order = np.random.default_rng(IMDB_SPLIT_SEED).permutation(len(labels))
    n_valid = round(len(labels) * IMDB_VALID_FRACTION)
    valid_index, train_index = np.sort(order[:n_valid]), np.sort(order[n_valid:])
    train = [texts[i] for i in train_index], labels[train_index]
    valid = [texts[i] for i in valid_index], labels[valid_index]
    return train, valid, _read_jsonl(paths["imdb_test.jsonl.gz"])


def _read_jsonl(path: Path) -> Texts:
    frame = pd.read_json(path, lines=True, compression="gzip", dtype={"text": str, "label": int})
    texts = frame["text"].str.replace("<br />", " ", regex=False).tolist()
    return texts, _labels(frame["label"], path)


def _labels(column: pd.Series, path: Path) -> np.ndarray:
    labels = column.astype(np.int32).to_numpy()
    if not np.isin(labels, (0, 1)).all():
        raise CorpusError(f"{path}: labels must be 0 or 1, found {sorted(set(labels.tolist()))}.")
    return labels

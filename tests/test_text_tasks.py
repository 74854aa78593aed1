"""char_lm and sentiment on the real corpora (read in place from ../shared/corpora).

Expected values are computed here independently of the task code: splits by slicing the raw
text, vocabularies with set(), entropies with collections.Counter, labels with csv/json.
"""

import collections
import csv
import gzip
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

from experiments.training.corpora import CorpusError
from experiments.training.tasks import char_lm

SHARED = Path(__file__).resolve().parents[2] / "shared" / "corpora"
SEQ = 50


@pytest.fixture(scope="module")
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"the offline corpora are not at {SHARED}")
    return SHARED


def _entropy(text: str) -> float:
    counts = collections.Counter(text)
    return -sum(c / len(text) * math.log(c / len(text)) for c in counts.values())


def _encode(text: str, vocab: list[str]) -> np.ndarray:
    index = {c: i + 1 for i, c in enumerate(vocab)}
    return np.array([index.get(c, 0) for c in text], dtype=np.int32)


# ---------------------------------------------------------------- char_lm


@pytest.fixture(scope="module")
def shakespeare(shared):
    text = (shared / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")
    return text, char_lm.make(seq_len=SEQ, seed=0, corpus="tinyshakespeare", data_dir=shared)


def test_char_lm_tinyshakespeare_splits_90_5_5(shakespeare):
    text, task = shakespeare
    n = len(text)
    assert n == 1_115_394
    sizes = [int(task.info[f"{split}_chars"]) for split in ("train", "valid", "test")]
    assert sizes == [int(0.9 * n), int(0.05 * n), n - int(0.9 * n) - int(0.05 * n)]
    assert task.info["corpus"] == "tinyshakespeare"


def test_char_lm_vocabulary_and_windows(shakespeare, rng):
    text, task = shakespeare
    n_train, n_valid = int(0.9 * len(text)), int(0.05 * len(text))
    train, valid = text[:n_train], text[n_train : n_train + n_valid]
    vocab = sorted(set(train))
    assert len(vocab) == 65
    assert task.input_vocab == task.n_outputs == 66 == int(task.info["vocab_size"])
    assert (task.output, task.loss, task.metric_name, task.higher_is_better) == (
        "sequence",
        "sparse_ce",
        "bpc",
        False,
    )

    x, y = task.train_batch(rng, 16)
    assert x.shape == y.shape == (16, SEQ) and x.dtype == y.dtype == np.int32
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
    chars = np.array(["?", *vocab])
    for row_x, row_y in zip(x, y):
        window = "".join(chars[row_x]) + chars[row_y[-1]]
        assert window in train

    vx, vy = task.valid
    assert vx.shape == vy.shape == (min(1000, (n_valid - 1) // SEQ), SEQ)
    np.testing.assert_array_equal(vx.ravel(), _encode(valid[: vx.size], vocab))
    np.testing.assert_array_equal(vy.ravel(), _encode(valid[1 : vx.size + 1], vocab))
    assert task.test[0].shape == vx.shape
    np.testing.assert_array_equal(
        task.train_batch(np.random.default_rng(3), 4)[0], task.train_batch(np.random.default_rng(3), 4)[0]
    )


def test_char_lm_baseline_is_the_unigram_entropy(shakespeare):
    text, task = shakespeare
    train = text[: int(0.9 * len(text))]
    assert task.baseline_loss == pytest.approx(_entropy(train), abs=1e-12)
    assert task.baseline_metric == pytest.approx(_entropy(train) / math.log(2), abs=1e-12)
    # Solved: better than the 5-gram on the validation split (about 2.5 bpc on tinyshakespeare).
    assert 2.2 < task.target < 2.8 and task.solved(task.target - 0.01) and not task.solved(task.target + 0.01)
    assert task.target < task.references["ngram5_test_bpc"] + 0.3 < task.references["unigram_test_bpc"]


def test_char_lm_bpc_of_the_unigram_model_is_the_baseline(shakespeare):
    text, task = shakespeare
    train = text[: int(0.9 * len(text))]
    vocab = sorted(set(train))
    counts = collections.Counter(train)
    log_p = np.log([1e-300] + [counts[c] / len(train) for c in vocab])  # id 0 never occurs in train
    ids = _encode(train, vocab)
    # every training character as a target, in chunks (one logits row per position is big)
    chunks = np.array_split(ids, 10)
    total = sum(
        task.metric(c[None, :], np.broadcast_to(log_p, (1, len(c), len(log_p)))) * len(c) for c in chunks
    )
    assert total / len(ids) == pytest.approx(task.baseline_metric, abs=1e-6)
    # uniform logits cost log2(V) bits whatever the targets
    vx, vy = task.valid
    assert task.metric(vy, np.zeros((*vy.shape, task.n_outputs))) == pytest.approx(math.log2(66), abs=1e-12)
    # shift-invariant and stable for huge logits
    shifted = np.broadcast_to(log_p + 1e4, (1, 100, len(log_p)))
    assert task.metric(ids[None, :100], shifted) == pytest.approx(task.metric(ids[None, :100], shifted - 1e4))


def test_char_lm_ptb_reads_its_three_files(shared):
    texts = {
        s: (shared / "ptb" / f"ptb.{s}.txt").read_text(encoding="utf-8") for s in ("train", "valid", "test")
    }
    task = char_lm.make(seq_len=SEQ, seed=0, corpus="ptb", data_dir=shared, max_eval_windows=20)
    assert [int(task.info[f"{s}_chars"]) for s in texts] == [5_101_618, 399_782, 449_945]
    vocab = sorted(set(texts["train"]))
    assert task.input_vocab == len(vocab) + 1 == 51
    assert task.valid[0].shape == task.test[0].shape == (20, SEQ)
    np.testing.assert_array_equal(task.test[1].ravel(), _encode(texts["test"][1 : 20 * SEQ + 1], vocab))
    assert task.baseline_loss == pytest.approx(_entropy(texts["train"]), abs=1e-12)
    lines = sorted(f"ptb.{s}.txt  {hashlib.sha256(t.encode()).hexdigest()}\n" for s, t in texts.items())
    assert task.data_checksum == hashlib.sha256("".join(lines).encode()).hexdigest()


def test_char_lm_user_file_with_unseen_characters(tmp_path):
    path = tmp_path / "tiny.txt"
    text = "ab" * 900 + "é" * 100  # the last 5 % (test) is only a character training never saw
    path.write_text(text, encoding="utf-8")
    task = char_lm.make(seq_len=10, seed=0, corpus=str(path), target=1.5)
    assert task.input_vocab == 3 and task.target == 1.5
    assert [task.info[f"{s}_chars"] for s in ("train", "valid", "test")] == ["1710", "95", "95"]
    assert (task.test[0] == 0).all()  # unseen → id 0
    assert task.data_checksum == hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert task.baseline_loss == pytest.approx(math.log(2))


def test_char_lm_rejects_a_non_utf8_file(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\xe9 ".encode("latin-1") * 100)
    with pytest.raises(CorpusError, match="not UTF-8") as err:
        char_lm.make(seq_len=10, seed=0, corpus=str(path))
    assert str(path) in str(err.value)


def test_char_lm_rejects_windows_longer_than_a_split(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("abc" * 100, encoding="utf-8")
    with pytest.raises(ValueError, match="seq_len=20.*valid split has only 15"):
        char_lm.make(seq_len=20, seed=0, corpus=str(path))


# ---------------------------------------------------------------- sentiment


def _sst2_labels(path: Path) -> np.ndarray:
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    return np.array([int(row[0]) for row in rows[1:]])


@pytest.fixture(scope="module")
def sst2(shared):
    from experiments.training.tasks import sentiment

    return sentiment.make(seq_len=SEQ, seed=0, corpus="sst2", data_dir=shared)


@pytest.mark.tf_only
def test_sentiment_sst2_shapes_labels_baseline(sst2, shared, rng):
    task = sst2
    train_labels = _sst2_labels(shared / "sst2_glue" / "train.tsv")
    # One training phrase is word for word a test sentence ("what 's next ?"): dropped from training.
    assert len(train_labels) == 67_349 and int(task.info["train_size"]) == 67_348
    assert task.info["train_dropped_overlap"] == "1"
    assert (task.output, task.n_outputs, task.mask_zero, task.metric_name) == ("last", 2, True, "accuracy")
    x, y = task.train_batch(rng, 32)
    assert x.shape == (32, SEQ) and y.shape == (32,) and x.dtype == np.int32
    for (vx, vy), name in ((task.valid, "dev.tsv"), (task.test, "test.tsv")):
        np.testing.assert_array_equal(vy, _sst2_labels(shared / "sst2_glue" / name))
        assert vx.shape == (len(vy), SEQ)
        assert vx.min() >= 0 and vx.max() < task.input_vocab
    assert set(np.unique(y)) <= {0, 1}
    counts = np.bincount(train_labels)
    assert task.baseline_metric == pytest.approx(37_569 / 67_349, abs=2e-5)  # ± the dropped phrase
    p = counts / counts.sum()
    assert task.baseline_loss == pytest.approx(-(p * np.log(p)).sum(), abs=2e-5)
    assert task.target == 0.80


@pytest.mark.tf_only
def test_no_training_text_is_a_held_out_one():
    from experiments.training.tasks import sentiment

    train = (["A good film", "bad", "what 's  next ?"], np.array([1, 0, 1]))
    texts, labels = sentiment.without_overlap(train, ["what 's next ?", "a GOOD film"])
    assert texts == ["bad"] and labels.tolist() == [0]


def test_sentiment_pads_with_zero_at_the_end(sst2):
    x = sst2.valid[0]
    # dev sentence 0: "one long string of cliches ." → five words, then padding
    assert (x[0, :5] > 1).all() and (x[0, 5:] == 0).all()
    lengths = (x != 0).sum(axis=1)
    assert (x[np.arange(len(x)), np.maximum(lengths - 1, 0)] != 0).all()  # no holes: padding only at the end


def test_sentiment_accuracy_is_argmax_agreement():
    from experiments.training.tasks.sentiment import accuracy

    logits = np.array([[2.0, 1.0], [0.0, 3.0], [5.0, 1.0], [1.0, 0.0]])
    assert accuracy(np.array([0, 1, 1, 0]), logits) == 0.75
    assert accuracy(np.array([1, 0, 0, 1]), logits) == 0.25


@pytest.mark.tf_only
def test_sentiment_vocabulary_is_deterministic(sst2, shared):
    from experiments.training.tasks import sentiment

    again = sentiment.make(seq_len=SEQ, seed=1, corpus="sst2", data_dir=shared)
    assert again.info["vocab_sha256"] == sst2.info["vocab_sha256"]
    assert again.input_vocab == sst2.input_vocab
    np.testing.assert_array_equal(again.test[0], sst2.test[0])
    assert again.data_checksum == sst2.data_checksum


@pytest.mark.tf_only
def test_sentiment_vocab_size_caps_the_vocabulary(shared):
    from experiments.training.tasks import sentiment

    task = sentiment.make(seq_len=8, seed=0, corpus="sst2", data_dir=shared, vocab_size=50)
    assert task.input_vocab == 50
    assert task.valid[0].max() == 49 and (task.valid[0] == 1).any()  # rare words become OOV (1)


@pytest.mark.tf_only
@pytest.mark.slow  # a training, a compiler or a fresh TensorFlow in a subprocess
def test_sentiment_imdb_fixed_split(shared):
    from experiments.training.tasks import sentiment

    task = sentiment.make(seq_len=200, seed=5, corpus="imdb", data_dir=shared)
    sizes = [int(task.info[f"{s}_size"]) for s in ("train", "valid", "test")]
    # 124 training reviews are word for word a valid or test review (IMDB's known duplicates): dropped.
    assert int(task.info["train_dropped_overlap"]) == 124 and sizes == [23_750 - 124, 1_250, 25_000]
    with gzip.open(shared / "imdb" / "imdb_test.jsonl.gz", "rt", encoding="utf-8") as handle:
        test_labels = [json.loads(line)["label"] for line in handle]
    np.testing.assert_array_equal(task.test[1], test_labels)
    # train + valid are the original 12,500 / 12,500; the baseline is the majority of what is left
    valid_counts = np.bincount(task.valid[1], minlength=2)
    train_counts = 12_500 - valid_counts
    assert task.baseline_metric == pytest.approx(train_counts.max() / 23_750, abs=124 / 23_626)
    assert task.target == 0.85 and task.input_vocab == 20_000
    # the split is the seed-0 permutation whatever the run seed (5 here)
    expected = np.random.default_rng(0).permutation(25_000)[:1250]
    assert valid_counts[1] == (np.sort(expected) >= 12_500).sum()  # file order: 12,500 neg then pos


def test_sentiment_imdb_drops_br_tags(shared):
    from experiments.training.tasks.sentiment import _read_jsonl

    texts, labels = _read_jsonl(shared / "imdb" / "imdb_test.jsonl.gz")
    assert len(texts) == 25_000 and not any("<br />" in t for t in texts)
    assert set(labels.tolist()) == {0, 1}


def test_sentiment_rejects_an_unknown_corpus():
    from experiments.training.tasks import sentiment

    with pytest.raises(CorpusError, match="'ptb'.*'sst2', 'imdb'"):
        sentiment.make(seq_len=10, seed=0, corpus="ptb")

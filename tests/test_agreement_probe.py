"""The agreement probe (issue 17, probe 2): the number rule, the prefix/verb alignment, the
split, the vocabulary, LM scoring against numpy, and the corpus registry entry."""

from pathlib import Path

import numpy as np
import pytest

from experiments.probes import agreement_data as data
from experiments.probes import agreement_lm as lm
from experiments.probes import agreement_split as split
from experiments.training import corpora


@pytest.mark.parametrize(
    ("correct", "wrong", "plural"),
    [
        ("are", "is", True),
        ("is", "are", False),
        ("were", "was", True),
        ("has", "have", False),
        ("include", "includes", True),
        ("goes", "go", False),
        ("carry", "carries", True),
        ("passes", "pass", False),
        ("Are", "Is", True),
    ],
)
def test_the_number_rule_on_known_pairs(correct, wrong, plural):
    assert data.is_plural(correct, wrong) is plural


def test_the_number_rule_refuses_a_pair_it_cannot_order():
    with pytest.raises(ValueError, match="cannot tell"):
        data.is_plural("lie", "lie")
    with pytest.raises(ValueError, match="cannot tell"):
        data.is_plural("go", "went")


def test_the_prefix_is_the_words_before_the_verb():
    tokens = tuple(["the", "keys", "to", "the", "cabinet", "are", "on", "the", "table", ".", "<eos>"])
    item = data.Item(tokens, 5, "are", "is", data.is_plural("are", "is"), 1)
    assert item.prefix == ("the", "keys", "to", "the", "cabinet")
    assert item.tokens[item.verb] == item.correct and item.plural and item.bucket == "1"
    assert data.bucket(7) == "4+"
    with pytest.raises(ValueError, match="outside"):
        data.prefix(tokens, 11)


def _hand_items():
    rng = np.random.default_rng(0)
    items = []
    for k in range(200):
        words = [f"w{rng.integers(0, 30)}" for _ in range(3 + k % 5)]
        if k % 40 == 0 and items:  # a prefix shared with an earlier sentence
            words = list(items[-1].prefix)
        verb = len(words)
        items.append(data.Item((*words, "are", "<eos>"), verb, "are", "is", bool(k % 3), k % 6))
    return items


def test_the_folds_share_no_sentence_and_no_prefix_and_cover_everything():
    items = _hand_items()
    prefixes = split.groups(items)
    tested = []
    for train, test in split.folds(items):
        assert not set(train) & set(test)
        assert not set(prefixes[train]) & set(prefixes[test])
        tested += list(test)
    assert sorted(tested) == list(range(len(items)))
    parts = split.split_for_seed(items, 6)  # seed 6 → fold 1
    assert np.array_equal(parts["test"], split.folds(items)[1][1])
    assert not set(parts["train"]) & set(parts["valid"]) and not set(parts["valid"]) & set(parts["test"])


def test_the_real_split_is_disjoint_and_stratified(shared_corpora):
    items, counts = data.read_linzen(shared_corpora / "linzen_agreement")
    assert counts == {"read": 7489, "dropped_same_form": 4, "kept": 7485}
    train, test = split.folds(items)[0]
    g = split.groups(items)
    assert not set(g[train]) & set(g[test])
    share = {b: np.mean([items[i].bucket == b for i in test]) for b in data.ATTRACTOR_BUCKETS}
    for b, s in share.items():
        assert s == pytest.approx(np.mean([it.bucket == b for it in items]), abs=0.02)


def test_the_rule_agrees_with_the_nonce_sets_own_morphology(shared_corpora):
    items = data.read_nonce(shared_corpora / "linzen_agreement")
    assert len(items) == 410 and sum(it.kind == "original" for it in items) == 41
    assert all(data.is_plural(it.correct, it.wrong) == it.plural for it in items)
    assert all(0 <= it.subject < it.verb for it in items)


def test_the_vocabulary_comes_from_the_training_prefixes_only():
    vocab = split.vocabulary([("a", "b", "a"), ("b", "c")], min_count=2)
    assert vocab == ("", "[UNK]", "a", "b")
    x = split.encode([("a", "z", "b"), tuple("abababa")], vocab, 4)
    assert x.tolist() == [[2, 1, 3, 0], [3, 2, 3, 2]]  # unknown → 1; a long prefix keeps its end


def test_lm_scoring_picks_the_more_probable_form_as_numpy_does():
    vocab = ("<eos>", "<unk>", "N", "dogs", "bark", "barks", "the")
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(50, len(vocab)))
    forms = lm.form_ids(
        [("bark", "barks"), ("barks", "bark")] * 24 + [("bark", "meows"), ("Barks", "bark")], vocab
    )
    picked = lm.choose(lm.log_softmax(logits), forms)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = p[np.arange(50), np.maximum(forms[:, 0], 0)] > p[np.arange(50), np.maximum(forms[:, 1], 0)]
    assert np.isnan(picked[48]) and forms[48, 1] == -1  # "meows" is not in the vocabulary
    known = ~np.isnan(picked)
    np.testing.assert_array_equal(picked[known], expected[known].astype(float))
    assert known.sum() == 49
    rows, last = lm.prefix_rows([["The", "dogs"], ["12", "dogs", "near", "cats"]], vocab)
    assert rows.tolist() == [[0, 6, 3, 0, 0], [0, 2, 3, 1, 1]] and last.tolist() == [2, 4]


def test_lm_windows_predict_the_next_word():
    x, y = lm.windows(np.arange(11), 3)
    assert x.tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]] and y.tolist() == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]


def test_the_registry_pins_every_agreement_file(shared_corpora):
    corpus = corpora.CORPORA["linzen_agreement"]
    paths = corpora.ensure("linzen_agreement", shared_corpora, download=False)
    assert Path(paths["gulordava_generated_english/generated.tab"]).is_file()
    assert all(
        f.url.startswith(
            "https://raw.githubusercontent.com/facebookresearch/colorlessgreenRNNs/"
            "dbffbf0f2ef86c50bac204d7a2292862e1c6036f/data/"
        )
        for f in corpus.files
    )
    with pytest.raises(corpora.CorpusError, match="incomplete"):
        corpora.ensure("linzen_agreement", shared_corpora / "no_such", download=False)

"""What the word LM's cell carries: the agreeing word's number read out of c_t and h_t, and the
forget gate, at aligned positions between that word and the verb (issue 17, probe 2, part 3).

Data: the nonce sentences, the only set here that names the word the verb agrees with (the
subject noun, or in the VERB_NOUN_CCONJ_VERB pattern the first conjoined verb). Every span has at
least 4 words, so the positions `POSITIONS` exist in every sentence: the step before the agreeing
word (the control: the state has not seen it yet), the word itself and the three after it, and
the last word before the verb. A position's state is the LM's state after reading that word.

Readout: a scikit-learn logistic regression (standardised features) per position and per state,
predictions out of fold with 5 group folds over the construction ids (the 10 sentences of a
construction share structure and number, so a construction is never on both sides). The verdict
compares, per construction, the readout's accuracy from c at "verb−1" with the control's, and
asks for the 95 % t-interval over constructions of that difference to lie above 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from experiments.probes import agreement_lm as lm
from experiments.probes import but_stats

POSITIONS = ("before", "word", "word+1", "word+2", "word+3", "verb−1")
FOLDS = 5
CLAIM = "the cell carries the number to the verb (c at verb−1 − c before the agreeing word)"


def aligned_steps(items: Sequence) -> np.ndarray:
    """(n, len(POSITIONS)) step indices into rows of `lm.prefix_rows` ("<eos>" first, so the state
    after word j is step j + 1); ValueError for a span shorter than 4 words."""
    steps = []
    for it in items:
        if it.subject < 0 or it.verb - it.subject < 4:
            raise ValueError(f"agreeing word {it.subject} and verb {it.verb}: the span needs ≥ 4 words")
        word = it.subject + 1
        steps.append([word - 1, word, word + 1, word + 2, word + 3, it.verb])
    return np.array(steps)


def trace_states(model, items: Sequence, vocab: Sequence[str]) -> dict[str, np.ndarray]:
    """The LM's c, h and forget gate at the aligned steps ((n, positions, units) each), and each
    sentence's mean forget gate over its whole prefix (n,)."""
    import lstm_keras as lk
    from experiments.training.model import RECURRENT

    rows, last = lm.prefix_rows([it.prefix for it in items], vocab)
    embedded = model.get_layer("embedding")(rows)
    trace = lk.gate_trace(model.get_layer(RECURRENT), embedded)
    at = aligned_steps(items)
    pick = np.arange(len(items))[:, None]
    f_mean = trace["f"].mean(axis=-1)  # (n, steps): mean over units
    real = np.arange(rows.shape[1])[None, :] <= last[:, None]
    sentence_f = (f_mean * real).sum(axis=1) / real.sum(axis=1)
    return {
        "c": trace["c"][pick, at],
        "h": trace["h"][pick, at],
        "f": f_mean[pick, at],
        "sentence_f": sentence_f,
    }


def readout(features: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """(n, positions) 1.0 where the out-of-fold logistic readout of the number is right."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    out = np.zeros(features.shape[:2])
    for p in range(features.shape[1]):
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        predicted = cross_val_predict(probe, features[:, p], labels, groups=groups, cv=GroupKFold(FOLDS))
        out[:, p] = predicted == labels
    return out


def by_group(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Per construction (rows in sorted group order): the mean of `values` over its sentences."""
    names = np.unique(groups)
    return np.array([values[groups == g].mean(axis=0) for g in names])


def summarise(states: dict, labels: np.ndarray, groups: np.ndarray) -> dict:
    """Per position: readout accuracy from c and h (t-interval over constructions), balanced
    accuracy, mean forget gate; the verdict row; and the sentences' mean forget gate."""
    from sklearn.metrics import balanced_accuracy_score

    rows, hits = [], {}
    for state in ("c", "h"):
        hits[state] = readout(states[state], labels, groups)
        per_group = by_group(hits[state], groups)
        mean, low, high = but_stats.mean_curve(per_group)
        for p, name in enumerate(POSITIONS):
            right = hits[state][:, p].astype(bool)
            predicted = np.where(right, labels, 1 - labels)
            balanced = balanced_accuracy_score(labels, predicted)
            rows.append(
                {"state": state, "position": name, "accuracy": mean[p], "low": low[p], "high": high[p]}
                | {"balanced": float(balanced), "n": len(labels)}
            )
    f_mean, f_low, f_high = but_stats.mean_curve(states["f"])
    forget = [
        {"position": name, "f_mean": f_mean[p], "low": f_low[p], "high": f_high[p]}
        for p, name in enumerate(POSITIONS)
    ]
    diffs = by_group(hits["c"][:, -1] - hits["c"][:, 0], groups)
    over = but_stats.over_seeds(list(diffs))
    verdict = {
        "claim": CLAIM,
        "diff": over["diff"],
        "ci_low": over["seeds_ci_low"],
        "ci_high": over["seeds_ci_high"],
        "n_groups": len(diffs),
        "verdict": but_stats.verdict(over["seeds_ci_low"], over["seeds_ci_high"]),
    }
    sentence_f = but_stats.mean_curve(states["sentence_f"][:, None])
    return {
        "readout": rows,
        "forget": forget,
        "verdict": verdict,
        "sentence_f": [float(v[0]) for v in sentence_f],
        "plural_share": float(labels.mean()),
    }


def probe(model, items: Sequence, vocab: Sequence[str]) -> dict:
    """The whole cell probe on the items that name an agreeing word."""
    chosen = [it for it in items if it.subject >= 0]
    states = trace_states(model, chosen, vocab)
    labels = np.array([int(it.plural) for it in chosen])
    groups = np.array([it.group for it in chosen])
    return summarise(states, labels, groups)

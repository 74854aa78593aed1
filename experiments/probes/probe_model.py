"""One trained sentiment model under the "but" probe: its keep gate at the connectives, and
whether its label follows the clause after "but" in composites of clauses it is sure of."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from experiments.probes import composites, connectives, gates
from experiments.probes.connectives import Occurrence

HEATMAP_SENTENCES = 2  # per group
HEATMAP_TOKENS = (7, 16)  # short enough to read the words under the columns


@dataclass(frozen=True)
class Selection:
    """The dev sentences the gate analysis reads (fixed by the data, the same for every model)."""

    contrastive: list[Occurrence]
    control: list[Occurrence]

    def rows(self) -> np.ndarray:
        return np.array([o.sentence for o in self.contrastive + self.control], dtype=np.int64)

    def renumbered(self) -> tuple[list[Occurrence], list[Occurrence]]:
        """The occurrences with `sentence` counting rows of `x[self.rows()]`."""
        n = len(self.contrastive)
        return (
            [replace(o, sentence=k) for k, o in enumerate(self.contrastive)],
            [replace(o, sentence=n + k) for k, o in enumerate(self.control)],
        )


def select(x_valid: np.ndarray, vocabulary) -> Selection:
    contrastive, candidates = connectives.find_occurrences(x_valid, vocabulary)
    return Selection(contrastive, connectives.match_controls(contrastive, candidates))


def gate_results(model, layer, x_valid: np.ndarray, selection: Selection, vocabulary) -> dict | None:
    """Per-sentence drops (n, windows) for both groups, aligned curves and heat-map examples;
    None when the cell has no keep gate."""
    x = x_valid[selection.rows()]
    gate = gates.keep_gate_trace(model, layer, x)
    if gate is None:
        return None
    mask = x != 0
    contrastive, control = selection.renumbered()
    examples = []
    for group in (contrastive, control):
        short = [o for o in group if HEATMAP_TOKENS[0] <= o.n_tokens <= HEATMAP_TOKENS[1]]
        for o in short[:HEATMAP_SENTENCES]:
            steps = connectives.token_steps(mask[o.sentence])
            examples.append(
                {
                    "words": connectives.words_of(x[o.sentence], vocabulary),
                    "gate": gate[o.sentence][steps],
                    "index": o.index,
                    "group": o.group,
                }
            )
    return {
        # dev rows and words, to name each drop's sentence in the tables
        "sentences_contrastive": [(o.sentence, o.word, o.index) for o in selection.contrastive],
        "sentences_and": [(o.sentence, o.word, o.index) for o in selection.control],
        "drops_contrastive": connectives.gate_drops(gate, mask, contrastive),
        "drops_and": connectives.gate_drops(gate, mask, control),
        "curves_contrastive": connectives.aligned_curves(gate, mask, contrastive),
        "curves_and": connectives.aligned_curves(gate, mask, control),
        "examples": examples,
    }


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def follow_results(
    predict, x_pool: np.ndarray, y_pool: np.ndarray, vocabulary, *, confidence: float, n_pairs: int, seed: int
) -> dict:
    """How often the label follows the clause after the connective, for 'but' and for 'and',
    over both orders of each (positive, negative) pair of confident clauses."""
    probs = softmax(predict(x_pool))
    positive, negative = composites.clause_pool(x_pool, y_pool, probs, vocabulary, confidence=confidence)
    pairs = composites.sample_pairs(positive, negative, n_pairs, np.random.default_rng([seed, 17]))
    out = {"n_positive_clauses": len(positive), "n_negative_clauses": len(negative), "n_pairs": len(pairs)}
    seq_len = x_pool.shape[1]
    for word in ("but", "and"):
        if len(pairs) == 0:
            out[word] = {"follows": np.zeros(0, bool), "both_orders": np.zeros(0, bool)}
            continue
        cid = vocabulary.index(word)
        pos_first, _ = composites.compose(x_pool, pairs[:, 0], pairs[:, 1], cid, seq_len)  # B negative
        neg_first, _ = composites.compose(x_pool, pairs[:, 1], pairs[:, 0], cid, seq_len)  # B positive
        follow_a = composites.follows_second(np.argmax(predict(pos_first), axis=1), np.zeros(len(pairs)))
        follow_b = composites.follows_second(np.argmax(predict(neg_first), axis=1), np.ones(len(pairs)))
        out[word] = {"follows": np.concatenate([follow_a, follow_b]), "both_orders": follow_a & follow_b}
    return out

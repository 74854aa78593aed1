"""Reading a trained word LM after a prefix: next-word log-probabilities at the verb's position."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from experiments.probes import agreement_lm as lm

CHUNK = 500


def next_word_log_probs(model, prefixes: Sequence[Sequence[str]], vocab: Sequence[str]) -> np.ndarray:
    """(n, vocab) log p(next word | "<eos>" + prefix) under `model` (embedding → recurrent → head,
    the recurrent layer returning sequences); rows of any length, read at their last real step."""
    import keras

    from experiments.training.model import RECURRENT

    inputs = keras.Input((None,), dtype="int32")
    states = keras.Model(inputs, model.get_layer(RECURRENT)(model.get_layer("embedding")(inputs)))
    head = model.get_layer("head")
    rows, last = lm.prefix_rows(prefixes, vocab)
    out = []
    for i in range(0, len(rows), CHUNK):
        h = states(rows[i : i + CHUNK], training=False).numpy()
        at = h[np.arange(len(h)), last[i : i + CHUNK]]
        out.append(lm.log_softmax(keras.ops.convert_to_numpy(head(at))))
    return np.concatenate(out)

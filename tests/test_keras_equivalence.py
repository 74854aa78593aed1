"""Default LSTM/GRU given a Keras built-in's weights produce the built-in's outputs."""

import keras
import numpy as np
import pytest

import lstm_keras as lk

pytestmark = pytest.mark.backend_agnostic

B, T, F, U = 6, 9, 4, 7

PAIRS = {
    "lstm": (keras.layers.LSTM, lk.LSTM, {}),
    "gru": (keras.layers.GRU, lk.GRU, {}),
    "gru_cho2014": (keras.layers.GRU, lk.GRU, {"reset_after": False}),
}


def _pair(kind, rng, **layer_kwargs):
    ref_cls, our_cls, extra = PAIRS[kind]
    ours_extra = {"variant": "cho2014"} if extra.get("reset_after") is False else {}
    ref = ref_cls(U, **extra, **layer_kwargs)
    ours = our_cls(U, **ours_extra, **layer_kwargs)
    x = rng.normal(size=(B, T, F)).astype("float32")
    ref(x)
    ours(x)
    ours.set_weights([rng.normal(0, 0.4, w.shape).astype("float32") for w in ref.get_weights()])
    ref.set_weights(ours.get_weights())
    return ref, ours, x


def _close(a, b):
    for u, v in zip(keras.tree.flatten(a), keras.tree.flatten(b), strict=True):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(u), keras.ops.convert_to_numpy(v), atol=1e-5)


@pytest.mark.parametrize("kind", list(PAIRS))
@pytest.mark.parametrize("go_backwards", [False, True])
def test_sequences_and_states_match(kind, go_backwards, rng):
    ref, ours, x = _pair(kind, rng, return_sequences=True, return_state=True, go_backwards=go_backwards)
    _close(ref(x), ours(x))


@pytest.mark.parametrize("kind", list(PAIRS))
def test_mask_and_initial_state_match(kind, rng):
    ref, ours, x = _pair(kind, rng, return_sequences=True, return_state=True)
    mask = np.ones((B, T), bool)
    mask[:, -3:] = False
    mask[0, 2:] = False
    n_states = 2 if kind == "lstm" else 1
    init = [rng.normal(size=(B, U)).astype("float32") for _ in range(n_states)]
    _close(ref(x, mask=mask, initial_state=init), ours(x, mask=mask, initial_state=init))


@pytest.mark.parametrize("kind", list(PAIRS))
def test_stateful_matches(kind, rng):
    ref, ours, x = _pair(kind, rng, stateful=True)
    ref.reset_state()  # _pair's first calls ran with different weights
    ours.reset_state()
    for chunk in (x[:, :4], x[:, 4:]):
        _close(ref(chunk), ours(chunk))
    ref.reset_state()
    ours.reset_state()
    _close(ref(x[:, :4]), ours(x[:, :4]))


def test_embedding_masking_in_a_model(rng):
    tokens = rng.integers(1, 20, (B, T))
    tokens[:, -2:] = 0
    outs = []
    for cls in (keras.layers.LSTM, lk.LSTM):
        keras.utils.set_random_seed(3)
        model = keras.Sequential([keras.Input((T,)), keras.layers.Embedding(20, F, mask_zero=True), cls(U)])
        outs.append(model)
    outs[1].set_weights(outs[0].get_weights())
    _close(outs[0](tokens), outs[1](tokens))


@pytest.mark.parametrize(
    ("ours", "ref"), [(lk.LSTMCell, keras.layers.LSTMCell), (lk.GRUCell, keras.layers.GRUCell)]
)
def test_default_initialisation_matches_keras(ours, ref):
    """Same seeds → same initial weights, forget-gate bias included (unit_forget_bias)."""
    weights = []
    for cls in (ref, ours):
        keras.utils.set_random_seed(11)
        cell = cls(U)
        cell.build((B, F))
        weights.append(cell.get_weights())
    _close(weights[0], weights[1])

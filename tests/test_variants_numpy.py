"""Every variant's step against an independent numpy implementation of its equations."""

import keras
import numpy as np
import pytest
from reference import GRU_LAYOUT, LSTM_TABLE, gru_step, lstm_step

import lstm_keras as lk

pytestmark = pytest.mark.backend_agnostic

UNITS, FEATURES, BATCH = 5, 3, 4


def _randomize(cell, rng):
    """Random values in every weight (peepholes and gate recurrence included)."""
    cell.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in cell.get_weights()])


def _blocks(matrix, slots, units):
    return {s: matrix[..., k * units : (k + 1) * units] for k, s in enumerate(slots)}


def _lstm_weights(cell):
    slots = [s for s in "ifco" if s == "c" or s in LSTM_TABLE[cell.variant.name][0]]
    w = {v.name: np.array(v.numpy() if hasattr(v, "numpy") else v) for v in cell.weights}
    weights = {
        "W": _blocks(w["kernel"], slots, UNITS),
        "R": _blocks(w["recurrent_kernel"], slots, UNITS),
        "b": _blocks(w["bias"], slots, UNITS),
        "p": {g: w[f"peephole_{g}"] for g in "ifo" if f"peephole_{g}" in w},
    }
    if "gate_recurrent_kernel" in w:
        learned = [g for g in "ifo" if g in LSTM_TABLE[cell.variant.name][0]]
        weights["R_gates"] = _blocks(w["gate_recurrent_kernel"], learned, UNITS)
    return weights


@pytest.mark.parametrize("variant", list(lk.LSTM_VARIANTS))
def test_lstm_step_matches_numpy(variant, rng):
    assert set(LSTM_TABLE) == set(lk.LSTM_VARIANTS)
    cell = lk.LSTMCell(UNITS, variant=variant, forget_bias=None)
    cell.build((BATCH, FEATURES))
    _randomize(cell, rng)
    x = rng.normal(size=(BATCH, FEATURES)).astype("float32")
    states = [rng.normal(size=(BATCH, s)).astype("float32") for s in cell.state_size]
    h, new_states = cell(x, states)
    h_ref, c_ref, gates_ref, _ = lstm_step(
        variant, _lstm_weights(cell), x, states[0], states[1], states[2] if len(states) > 2 else None
    )
    np.testing.assert_allclose(keras.ops.convert_to_numpy(h), h_ref, atol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(new_states[1]), c_ref, atol=1e-5)
    if len(states) > 2:
        np.testing.assert_allclose(keras.ops.convert_to_numpy(new_states[2]), gates_ref, atol=1e-5)


@pytest.mark.parametrize("variant", list(lk.GRU_VARIANTS))
def test_gru_step_matches_numpy(variant, rng):
    assert set(GRU_LAYOUT) == set(lk.GRU_VARIANTS)
    features = UNITS if variant in ("MUT1", "MUT2") else FEATURES
    cell = lk.GRUCell(UNITS, variant=variant)
    cell.build((BATCH, features))
    _randomize(cell, rng)
    kernel_slots, rec_slots, bias_slots, reset_after = GRU_LAYOUT[variant]
    w = {v.name: np.array(keras.ops.convert_to_numpy(v)) for v in cell.weights}
    bias = w["bias"]
    weights = {
        "W": _blocks(w["kernel"], kernel_slots, UNITS),
        "R": _blocks(w["recurrent_kernel"], rec_slots, UNITS),
        "b": _blocks(bias[0] if reset_after else bias, bias_slots, UNITS),
    }
    if reset_after:
        weights["rb"] = _blocks(bias[1], bias_slots, UNITS)
    x = rng.normal(size=(BATCH, features)).astype("float32")
    h0 = rng.normal(size=(BATCH, UNITS)).astype("float32")
    h, _ = cell(x, [h0])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(h), gru_step(variant, weights, x, h0), atol=1e-5)


def _trace(variant, rng, **kwargs):
    layer = lk.LSTM(UNITS, variant=variant, forget_bias=None, **kwargs)
    x = rng.normal(size=(BATCH, 6, FEATURES)).astype("float32")
    layer(x)
    _randomize(layer.cell, rng)
    return lk.gate_trace(layer, x)


@pytest.mark.parametrize(("variant", "gate"), [("NIG", "i"), ("NFG", "f"), ("NOG", "o"), ("lstm1997", "f")])
def test_removed_gate_is_exactly_one(variant, gate, rng):
    trace = _trace(variant, rng)
    assert np.all(trace[gate] == 1.0)
    assert not np.all(trace["i" if gate != "i" else "f"] == 1.0)


def test_cifg_forget_is_one_minus_input(rng):
    trace = _trace("CIFG", rng)
    np.testing.assert_array_equal(trace["f"], 1.0 - trace["i"])


def test_activation_ranges_follow_the_variant(rng):
    lstm1997 = _trace("lstm1997", rng)
    assert np.abs(lstm1997["g"]).max() <= 2.0 and np.abs(lstm1997["g"]).max() > 1.0
    noaf = _trace("NOAF", rng)  # h = o * c, with no squashing
    np.testing.assert_allclose(noaf["h"], noaf["o"] * noaf["c"], atol=1e-6)

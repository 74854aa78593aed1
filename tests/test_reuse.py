"""Cells and layers behave as first-class Keras layers: config, saving, models, fit."""

import keras
import numpy as np
import pytest

import lstm_keras as lk

pytestmark = pytest.mark.backend_agnostic

T, F, U = 6, 4, 4  # F == U so that MUT1/MUT2 fit the same input

ALL = [("lstm", v) for v in lk.LSTM_VARIANTS] + [("gru", v) for v in lk.GRU_VARIANTS]


def _layer(kind, variant, **kwargs):
    if kind == "lstm":
        fb = 2.0 if lk.LSTM_VARIANTS[variant].has_forget_gate else None
        return lk.LSTM(U, variant=variant, forget_bias=fb, return_sequences=True, **kwargs)
    fb = None if variant == "NUG" else 0.5
    return lk.GRU(U, variant=variant, forget_bias=fb, return_sequences=True, **kwargs)


@pytest.mark.parametrize(("kind", "variant"), ALL)
def test_config_round_trip(kind, variant):
    layer = _layer(kind, variant, dropout=0.1)
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    cell = layer.cell
    assert type(cell).from_config(cell.get_config()).get_config() == cell.get_config()


@pytest.mark.parametrize(("kind", "variant"), ALL)
def test_keras_file_round_trip(kind, variant, tmp_path, rng):
    model = keras.Sequential([keras.Input((T, F)), _layer(kind, variant), keras.layers.Dense(2)])
    x = rng.normal(size=(3, T, F)).astype("float32")
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(x)), keras.ops.convert_to_numpy(model(x)), atol=1e-6
    )
    assert type(loaded.layers[0]) is type(model.layers[0])
    assert loaded.layers[0].cell.variant.name == variant


@pytest.mark.parametrize(
    ("kind", "variant"), [("lstm", "keras"), ("lstm", "CIFG"), ("gru", "keras"), ("lstm", "FGR")]
)
def test_fits_inside_sequential(kind, variant, rng):
    model = keras.Sequential([keras.Input((T, F)), _layer(kind, variant), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    x = rng.normal(size=(32, T, F)).astype("float32")
    y = x.sum(axis=-1, keepdims=True)  # a per-step target the model can learn
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=5, batch_size=8, verbose=0)
    assert model.evaluate(x, y, verbose=0) < before


def test_cell_in_keras_rnn_and_functional_api(rng):
    inputs = keras.Input((T, F))
    seq = keras.layers.RNN(lk.LSTMCell(U, variant="vanilla"), return_sequences=True)(inputs)
    out = lk.GRU(U, variant="cho2014")(seq)
    model = keras.Model(inputs, keras.layers.Dense(1)(out))
    x = rng.normal(size=(2, T, F)).astype("float32")
    assert model(x).shape == (2, 1)
    assert len(model.trainable_weights) == 3 + 3 + 3 + 2  # LSTM(k, r, b, 3 peepholes), GRU, Dense


def test_stacked_cells(rng):
    layer = keras.layers.RNN([lk.LSTMCell(U), lk.GRUCell(U)], return_state=True)
    out, (h1, c1), (h2,) = layer(  # the structure keras.layers.RNN gives its own cells
        rng.normal(size=(2, T, F)).astype("float32")
    )
    assert out.shape == (2, U) and c1.shape == (2, U) and h2.shape == (2, U)


def test_dropout_changes_training_outputs_only(rng):
    layer = lk.LSTM(U, dropout=0.5, recurrent_dropout=0.5, seed=1)
    x = rng.normal(size=(4, T, F)).astype("float32")
    eval_a, eval_b = layer(x), layer(x)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(eval_a), keras.ops.convert_to_numpy(eval_b))
    train = layer(x, training=True)
    assert not np.allclose(keras.ops.convert_to_numpy(train), keras.ops.convert_to_numpy(eval_a))

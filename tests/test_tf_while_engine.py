"""The tf_while engine (one tf.while_loop) computes exactly what keras.layers.RNN computes, or steps aside."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import lstm_keras as lk
from lstm_keras import layers as lk_layers

pytestmark = pytest.mark.tf_only

B, T, F, U = 3, 7, 6, 6  # F == U so that MUT1–3 (which add x elementwise) apply


def _kwargs(cls, variant):
    gateless = cls is lk.LSTM and not lk.LSTM_VARIANTS[variant].has_forget_gate
    return {"variant": variant, **({"forget_bias": None} if gateless else {})}


def _pair(cls, variant, rng, **layer_kwargs):
    plain = cls(U, engine="keras", **_kwargs(cls, variant), **layer_kwargs)
    tf_while = cls(U, engine="tf_while", **_kwargs(cls, variant), **layer_kwargs)
    plain.build((B, T, F))
    tf_while.build((B, T, F))
    # Non-zero peepholes and gate-recurrent weights, so every term of every variant counts.
    plain.set_weights([rng.normal(0, 0.4, w.shape).astype("float32") for w in plain.get_weights()])
    tf_while.set_weights(plain.get_weights())
    return plain, tf_while


def _outputs_and_grads(layer, x, initial_state=None):
    x = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = layer(x, initial_state=initial_state)
        loss = sum(tf.reduce_sum(tf.sin(t)) for t in tf.nest.flatten(out))
    return tf.nest.flatten(out), tape.gradient(loss, [x, *layer.trainable_weights])


VARIANTS = [(lk.LSTM, v) for v in lk.LSTM_VARIANTS] + [(lk.GRU, v) for v in lk.GRU_VARIANTS]


@pytest.mark.parametrize("steps_per_iteration", [1, 3])
@pytest.mark.parametrize(("cls", "variant"), VARIANTS, ids=[f"{c.__name__}-{v}" for c, v in VARIANTS])
def test_outputs_and_gradients_equal_the_keras_rnn_path(cls, variant, steps_per_iteration, rng, monkeypatch):
    monkeypatch.setattr(lk_layers, "STEPS_PER_ITERATION", steps_per_iteration)  # 3: T=7 leaves 1
    x = rng.normal(size=(B, T, F)).astype("float32")
    for options in (
        {"return_sequences": True, "return_state": True},
        {"go_backwards": True},
        {"return_sequences": True, "go_backwards": True},
    ):
        plain, tf_while = _pair(cls, variant, rng, **options)
        assert plain.tf_while_engine_reason() == "engine='keras'"
        assert tf_while.tf_while_engine_reason() is None
        (out_p, grad_p), (out_l, grad_l) = _outputs_and_grads(plain, x), _outputs_and_grads(tf_while, x)
        assert len(out_p) == len(out_l)
        for a, b in zip(out_p + grad_p, out_l + grad_l, strict=True):
            np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)


@pytest.mark.parametrize(("cls", "variant"), [(lk.LSTM, "vanilla"), (lk.LSTM, "FGR"), (lk.GRU, "keras")])
def test_outputs_and_gradients_equal_inside_tf_function(cls, variant, rng):
    """Training runs traced (graph mode): equal there too, with an unknown batch size."""
    x = rng.normal(size=(B, T, F)).astype("float32")
    plain, tf_while = _pair(cls, variant, rng, return_sequences=True, return_state=True)
    spec = tf.TensorSpec((None, T, F), tf.float32)
    traced = [
        tf.function(lambda x, layer=layer: _outputs_and_grads(layer, x), input_signature=[spec])
        for layer in (plain, tf_while)
    ]
    (out_p, grad_p), (out_l, grad_l) = (f(tf.constant(x)) for f in traced)
    for a, b in zip(out_p + grad_p, out_l + grad_l, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)


def test_initial_state_and_unknown_length_inside_a_functional_model(rng):
    plain, tf_while = _pair(lk.LSTM, "keras", rng, return_sequences=True)
    h0, c0 = (rng.normal(size=(B, U)).astype("float32") for _ in range(2))
    x = rng.normal(size=(B, T, F)).astype("float32")
    ref = plain(x, initial_state=[h0, c0])
    np.testing.assert_allclose(tf_while(x, initial_state=[h0, c0]).numpy(), ref.numpy(), atol=1e-5)
    inputs = keras.Input((None, F))  # the loop's trip count is only known at run time
    model = keras.Model(inputs, tf_while(inputs))
    assert model.output_shape == (None, None, U)
    np.testing.assert_allclose(model.predict(x, verbose=0), plain(x).numpy(), atol=1e-5)


@pytest.mark.parametrize(
    ("options", "call", "reason"),
    [
        ({}, {"mask": np.ones((B, T), bool)}, "a mask"),
        ({"stateful": True}, {}, "stateful=True"),
        ({"unroll": True}, {}, "unroll=True"),
        ({"dropout": 0.2}, {"training": True}, "dropout in training"),
    ],
)
def test_falls_back_to_keras_rnn_where_it_cannot_apply(options, call, reason, rng):
    layer = lk.LSTM(U, engine="tf_while", **options)
    assert layer.tf_while_engine_reason(call.get("mask"), call.get("training", False)) == reason
    x = rng.normal(size=(B, T, F)).astype("float32")
    assert layer(x, **call).shape == (B, U)  # still runs, on keras.layers.RNN


def test_engine_is_serialised_and_validated():
    layer = lk.GRU(4, engine="keras")
    assert layer.get_config()["engine"] == "keras"
    assert lk.GRU.from_config(layer.get_config()).engine == "keras"
    with pytest.raises(ValueError, match=r"engine='cuda'.*'auto', 'keras', 'tf_while'"):
        lk.LSTM(4, engine="cuda")


def test_fit_on_the_tf_while_engine_lowers_the_loss(rng):
    x = rng.normal(size=(32, T, F)).astype("float32")
    y = x[:, :3, :].sum(axis=(1, 2))[:, None]  # depends on early steps only
    model = keras.Sequential([keras.Input((T, F)), lk.LSTM(16, engine="tf_while"), keras.layers.Dense(1)])
    assert model.layers[0].tf_while_engine_reason() is None
    model.compile(keras.optimizers.Adam(0.02), "mse")
    history = model.fit(x, y, epochs=30, batch_size=32, verbose=0).history["loss"]
    assert history[-1] < 0.5 * history[0]

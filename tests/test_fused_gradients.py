"""The fused ops' gradients inside tf.function, where the backward op receives only what left the
layer and writes ∂L/∂z over the forward's gate activations (lstm_keras/fused_ops.py)."""

import numpy as np
import pytest
import tensorflow as tf
from test_fused_engine import B, F, T, U, _assert_same, _kernel, _layers, _lstm_kwargs, _outputs_and_grads  # noqa: F401

import lstm_keras as lk
from lstm_keras import fused_engine

pytestmark = pytest.mark.tf_only

OPTIONS = [
    {"return_sequences": True, "return_state": True},
    {"return_sequences": False, "return_state": True},
    {"return_sequences": False},
]


def _traced_outputs_and_grads(layer, x):
    """`_outputs_and_grads` traced, as a training step runs: the graph frees the gate activations
    once the backward op is their last reader, so that op may write ∂L/∂z into their buffer
    (eagerly, the tape still holds them and it cannot)."""
    return tf.function(lambda x: _outputs_and_grads(layer, x), autograph=False)(tf.constant(x))


# keras / vanilla / NP: ∂L/∂z has the gates' 4 blocks (written in place); NFG, CIFG: 3 (a new
# buffer); FGR: act is also read for ∂Q after the backward op (it must not be overwritten first).
@pytest.mark.parametrize("variant", ["keras", "vanilla", "NP", "NFG", "CIFG", "FGR"])
@pytest.mark.parametrize("options", OPTIONS, ids=["sequences+state", "last+state", "last"])
def test_traced_lstm_gradients_equal_the_keras_rnn_path(variant, options, rng):
    plain, fused = _layers(lk.LSTM, rng, **_lstm_kwargs(variant), **options)
    assert fused.engine_used() == "fused"
    x = rng.normal(size=(B, T, F)).astype("float32")
    _assert_same(_traced_outputs_and_grads(plain, x), _traced_outputs_and_grads(fused, x))


@pytest.mark.parametrize("variant", ["keras", "cho2014", "MUT3"])
@pytest.mark.parametrize("options", OPTIONS, ids=["sequences+state", "last+state", "last"])
def test_traced_gru_gradients_equal_the_keras_rnn_path(variant, options, rng):
    plain, fused = _layers(lk.GRU, rng, variant=variant, **options)
    x = rng.normal(size=(B, T, F)).astype("float32")
    _assert_same(_traced_outputs_and_grads(plain, x), _traced_outputs_and_grads(fused, x))


def _grad_op_inputs(layer, op_type: str) -> list[tf.TensorShape]:
    x = tf.zeros([B, T, F])

    @tf.function(autograph=False)
    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.nest.flatten(layer(x))[0])
        return tape.gradient(loss, layer.trainable_weights)

    graph = step.get_concrete_function(x).graph
    (op,) = [op for op in graph.get_operations() if op.type == op_type]
    return [i.shape for i in op.inputs]


@pytest.mark.parametrize("return_sequences", [True, False])
def test_only_what_leaves_the_layer_reaches_the_backward_op(return_sequences, rng):
    """No (B, T, H) ∂L/∂c (c's sequence never leaves the layer) and, for a layer that returns
    its last step only, no (B, T, H) ∂L/∂h of zeros: the final states' (B, H) gradients."""
    _, layer = _layers(lk.LSTM, rng, return_sequences=return_sequences)
    r, p, c0, c, act, dh, dh_last, dc_last, q, da = _grad_op_inputs(layer, "LstmSequenceGrad")
    assert dh.as_list() == ([B, T, U] if return_sequences else [0])
    assert dh_last.as_list() == dc_last.as_list() == [B, U]
    _, gru = _layers(lk.GRU, rng, return_sequences=return_sequences)
    u, h0, h, act, rh, dh, dh_last = _grad_op_inputs(gru, "GruSequenceGrad")
    assert dh.as_list() == ([B, T, U] if return_sequences else [0]) and dh_last.as_list() == [B, U]


def test_the_backward_op_refuses_a_sequence_gradient_of_the_wrong_shape():
    k = fused_engine.kernel()
    codes = dict(input_gate=0, forget_gate=0, output_gate=0, peepholes=False)
    codes.update(candidate_activation=0, output_activation=0)
    state, seq = tf.zeros([B, U]), tf.zeros([B, T, U])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"dh must be \[B, T, H\] or \[0\]"):
        k.op("LstmSequenceGrad")(
            tf.zeros([U, 4 * U]), tf.zeros([3, U]), state, seq, tf.zeros([B, T, 4 * U]),
            tf.zeros([B, T + 1, U]), state, state, tf.zeros([0, 0]), tf.zeros([B, 0]), **codes,
        )  # fmt: skip
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"dh_last \[B, H\]"):
        k.op("GruSequenceGrad")(
            tf.zeros([U, 3 * U]), state, seq, tf.zeros([B, T, 3 * U]), seq, seq, tf.zeros([B, U + 1]),
            update=1, z_operand=1, reset=True, reset_after=True,
        )  # fmt: skip


def test_the_backward_op_sums_the_bias_gradient_over_batch_and_steps_in_a_fixed_order(rng):
    """db, summed inside the op while each step's ∂L/∂z is in cache, is Σ_{b,t} ∂L/∂z_t, and the
    chunks' partial sums meet in one order: the same call gives the same bits."""
    k = fused_engine.kernel()
    codes = dict(input_gate=0, forget_gate=0, output_gate=0, peepholes=True)
    codes.update(candidate_activation=0, output_activation=0)
    batch = 40  # two chunks of rows on two threads

    def normal(*shape, scale=1.0):
        return tf.constant(scale * rng.standard_normal(shape).astype("float32"))

    act = tf.sigmoid(normal(batch, T, 4 * U))
    inputs = (normal(U, 4 * U, scale=0.3), normal(3, U), normal(batch, U), normal(batch, T, U), act)
    grads = (normal(batch, T, U), normal(batch, U), normal(batch, U), tf.zeros([0, 0]), tf.zeros([batch, 0]))
    first = k.op("LstmSequenceGrad")(*inputs, *grads, **codes)
    dz, db = first[0].numpy(), first[5].numpy()
    np.testing.assert_allclose(
        db, dz.sum(axis=(0, 1)), rtol=1e-5, atol=1e-5 * np.abs(dz).sum(axis=(0, 1)).max()
    )
    for _ in range(3):
        again = k.op("LstmSequenceGrad")(*inputs, *grads, **codes)
        assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(first, again))


def test_the_gru_backward_op_sums_both_bias_gradients(rng):
    """dxb = Σ_{b,t} ∂L/∂xp and drb = Σ_{b,t} ∂L/∂(recurrent terms), summed inside the op."""
    k = fused_engine.kernel()
    batch = 40
    u = tf.constant(0.3 * rng.standard_normal((U, 3 * U)).astype("float32"))
    h0 = tf.constant(rng.standard_normal((batch, U)).astype("float32"))
    h = tf.tanh(tf.constant(rng.standard_normal((batch, T, U)).astype("float32")))
    act = tf.sigmoid(tf.constant(rng.standard_normal((batch, T, 3 * U)).astype("float32")))
    rh, dh = (tf.constant(rng.standard_normal((batch, T, U)).astype("float32")) for _ in range(2))
    dxp, drec, _, dxb, drb = k.op("GruSequenceGrad")(
        u, h0, h, act, rh, dh, h0, update=1, z_operand=1, reset=True, reset_after=True
    )
    for total, each in ((dxb, dxp), (drb, drec)):
        each = each.numpy()
        np.testing.assert_allclose(
            total.numpy(), each.sum(axis=(0, 1)), rtol=1e-5, atol=1e-5 * np.abs(each).sum(axis=(0, 1)).max()
        )

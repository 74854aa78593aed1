"""The fused ops' gradients inside tf.function, where the backward op receives only what left the
layer and writes ∂L/∂z over the forward's gate activations (lstm_keras/fused_ops.py)."""

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
    u, h0, h, act, dh, dh_last = _grad_op_inputs(gru, "GruSequenceGrad")
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
            tf.zeros([U, 3 * U]), state, seq, tf.zeros([B, T, 4 * U]), seq, tf.zeros([B, U + 1]),
            update=1, z_operand=1, reset=True, reset_after=True,
        )  # fmt: skip

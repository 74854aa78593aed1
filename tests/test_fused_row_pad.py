"""The LSTM op's (B, T, ·) tensors with a cache line after each row (fused_ops.row_pad): the pad
moves where rows lie in memory, never what is computed."""

import numpy as np
import pytest
import tensorflow as tf
from test_fused_engine import _assert_same, _layers, _lstm_kwargs, _outputs_and_grads

import lstm_keras as lk
from lstm_keras import fused_engine, fused_ops

pytestmark = pytest.mark.tf_only

PAD = 16


def test_rows_a_multiple_of_2kb_long_get_a_cache_line_and_others_none():
    assert fused_ops.row_pad(4 * 128) == fused_ops.row_pad(4 * 256) == fused_ops.row_pad(3 * 512) == PAD
    assert fused_ops.row_pad(3 * 256) == fused_ops.row_pad(4 * 6) == fused_ops.row_pad(4 * 200) == 0


# Gate codes as the kernel reads them (variants.GATE_MODES: learned, open, coupled); slots: the
# column blocks of z that own weights; FGR: the learned gates see each other through q.
OP_VARIANTS = {
    "vanilla+peepholes": (dict(input_gate=0, forget_gate=0, output_gate=0, peepholes=True), 4, False),
    "NFG": (dict(input_gate=0, forget_gate=1, output_gate=0, peepholes=False), 3, False),
    "CIFG": (dict(input_gate=0, forget_gate=2, output_gate=0, peepholes=False), 3, False),
    "NOG": (dict(input_gate=0, forget_gate=0, output_gate=1, peepholes=False), 3, False),
    "FGR": (dict(input_gate=0, forget_gate=0, output_gate=0, peepholes=False), 4, True),
}


@pytest.mark.parametrize("variant", list(OP_VARIANTS))
def test_the_padded_ops_compute_bit_for_bit_what_the_unpadded_ones_do(variant, rng):
    """Forward and backward, on an odd batch split over two threads; whatever is in xp's pad is
    never read, and act's and ∂L/∂z's pads come out zero (the products outside read them)."""
    k = fused_engine.kernel()
    codes, slots, fgr = OP_VARIANTS[variant]
    codes = {**codes, "candidate_activation": 0, "output_activation": 0}
    batch, steps, units = 37, 7, 8
    gates = 3 * units if fgr else 0

    def normal(*shape, scale=1.0):
        return tf.constant(scale * rng.standard_normal(shape).astype("float32"))

    xp = normal(batch, steps, slots * units)
    xp_padded = tf.concat([xp, normal(batch, steps, PAD, scale=1e3)], axis=-1)
    weights = (
        normal(units, slots * units, scale=0.3),
        normal(3, units),
        normal(batch, units),
        normal(batch, units),
    )
    q = normal(gates, gates, scale=0.3) if fgr else tf.zeros([0, 0])
    a0 = tf.sigmoid(normal(batch, gates))
    plain = k.op("LstmSequence")(xp, *weights, q, a0, **codes)
    padded = k.op("LstmSequence")(xp_padded, *weights, q, a0, **codes, pad=PAD)
    np.testing.assert_array_equal(padded[0], plain[0])
    np.testing.assert_array_equal(padded[1], plain[1])
    np.testing.assert_array_equal(padded[2][..., : 4 * units], plain[2])
    np.testing.assert_array_equal(padded[2][..., 4 * units :], 0.0)

    r, p, _, c0 = weights
    grads = (normal(batch, steps, units), normal(batch, units), normal(batch, units), q, normal(batch, gates))
    plain_grads = k.op("LstmSequenceGrad")(r, p, c0, plain[1], plain[2], *grads, **codes)
    padded_grads = k.op("LstmSequenceGrad")(r, p, c0, padded[1], padded[2], *grads, **codes, pad=PAD)
    np.testing.assert_array_equal(padded_grads[0][..., : slots * units], plain_grads[0])
    np.testing.assert_array_equal(padded_grads[0][..., slots * units :], 0.0)
    for a, b in zip(padded_grads[1:], plain_grads[1:]):
        np.testing.assert_array_equal(a, b)


def test_an_op_given_rows_of_the_wrong_width_says_what_it_expected():
    k = fused_engine.kernel()
    codes = dict(input_gate=0, forget_gate=0, output_gate=0, peepholes=False)
    codes.update(candidate_activation=0, output_activation=0)
    state = tf.zeros([2, 4])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"xp \[B, T, 4H \+ pad\].*\(pad 16\)"):
        k.op("LstmSequence")(
            tf.zeros([2, 3, 16]), tf.zeros([4, 16]), tf.zeros([3, 4]), state, state, tf.zeros([0, 0]),
            tf.zeros([2, 0]), **codes, pad=PAD,
        )  # fmt: skip
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=r"act must be \[B, T, 4H \+ pad\] = \[2, 3, 32\]"
    ):
        k.op("LstmSequenceGrad")(
            tf.zeros([4, 16]), tf.zeros([3, 4]), state, tf.zeros([2, 3, 4]), tf.zeros([2, 3, 16]),
            tf.zeros([0]), state, state, tf.zeros([0, 0]), tf.zeros([2, 0]), **codes, pad=PAD,
        )  # fmt: skip


# The layer pads where 4 or 3 gate blocks of these units make rows of 2 KB; traced, as training
# runs, so that act takes over xp's buffer and ∂L/∂z act's.
@pytest.mark.parametrize("variant,units", [("vanilla", 128), ("FGR", 128), ("NFG", 512)])
def test_a_padded_layer_equals_the_keras_rnn_path(variant, units, rng):
    options = {"return_sequences": True, "return_state": True, **_lstm_kwargs(variant)}
    plain, fused = _layers(lk.LSTM, rng, units=units, batch=3, steps=5, features=4, scale=0.1, **options)
    x = tf.constant(rng.normal(size=(3, 5, 4)).astype("float32"))
    traced = tf.function(lambda x: _outputs_and_grads(fused, x), autograph=False)
    graph = traced.get_concrete_function(x).graph
    pads = {op.get_attr("pad") for op in graph.get_operations() if op.type.startswith("LstmSequence")}
    assert pads == {PAD}
    _assert_same(_outputs_and_grads(plain, x), traced(x))

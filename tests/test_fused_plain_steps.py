"""The one-pass steps in the kernel for the usual LSTM (PlainLstmForward / PlainLstmBack: every
gate learned, no peepholes, no gate recurrence, tanh) and Keras's GRU (PlainGruBack): the same
equations as the general steps, so the same numbers; widths with a SIMD part and a scalar tail
(35 = 2 · 16 + 3, and 4 · 8 + 3)."""

import numpy as np
import pytest
import tensorflow as tf
from test_fused_engine import _assert_same, _layers, _outputs_and_grads

import lstm_keras as lk
from lstm_keras import fused_engine

pytestmark = pytest.mark.tf_only

CODES = dict(input_gate=0, forget_gate=0, output_gate=0, candidate_activation=0, output_activation=0)


def _assert_equal(a, b, exact: bool, name: str = ""):
    if exact:
        np.testing.assert_array_equal(a, b, err_msg=name)
    else:
        np.testing.assert_allclose(
            a, b, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(b).max(initial=0.0))), err_msg=name
        )


# At 128 units every row of act starts on a 64-byte boundary and Eigen's passes in the general
# steps are SIMD throughout: bit for bit. At 35, Eigen peels the unaligned head of each block
# with its scalar functions, whose last bits differ from the SIMD ones the plain steps use there.
@pytest.mark.parametrize("units,exact", [(128, True), (35, False)], ids=["128-bitwise", "35-tail"])
@pytest.mark.parametrize("sequence_grad", [True, False], ids=["dh", "no-dh"])
def test_the_one_pass_steps_equal_the_general_steps(units, exact, sequence_grad, rng):
    """Peepholes of zero send the op down the general steps with the very same arithmetic (adding
    c ⊙ 0 changes no bit); the plain steps must give every output and gradient the same, on an odd
    batch split over two threads, ∂L/∂z over act as in training (act not held elsewhere)."""
    k = fused_engine.kernel()
    batch, steps = 37, 6

    def normal(*shape, scale=1.0):
        return tf.constant(scale * rng.standard_normal(shape).astype("float32"))

    xp, r = normal(batch, steps, 4 * units), normal(units, 4 * units, scale=0.3)
    h0, c0, zero_p = normal(batch, units), normal(batch, units), tf.zeros([3, units])
    none_q, none_a = tf.zeros([0, 0]), tf.zeros([batch, 0])
    dh = normal(batch, steps, units) if sequence_grad else tf.zeros([0])
    dh_last, dc_last = normal(batch, units), normal(batch, units)

    @tf.function(autograph=False)
    def both(peepholes):
        h, c, act = k.op("LstmSequence")(xp, r, zero_p, h0, c0, none_q, none_a, peepholes=peepholes, **CODES)
        grads = k.op("LstmSequenceGrad")(
            r, zero_p, c0, c, act, dh, dh_last, dc_last, none_q, none_a, peepholes=peepholes, **CODES
        )
        return (h, c), grads

    (plain, plain_grads), (general, general_grads) = both(False), both(True)
    for a, b in zip(plain, general):
        _assert_equal(a.numpy(), b.numpy(), exact)
    for name, a, b in zip(("dz", "dh0", "dc0", "dp", "da0", "db"), plain_grads, general_grads):
        if name != "dp":  # ∂L/∂p: only the general step computes it
            _assert_equal(a.numpy(), b.numpy(), exact, name)
    assert np.abs(plain_grads[0].numpy()).max() > 0


@pytest.mark.parametrize("cls", [lk.LSTM, lk.GRU], ids=["LSTM", "GRU"])
@pytest.mark.parametrize("options", [{"return_sequences": True, "return_state": True}, {}])
def test_the_usual_layers_with_a_scalar_tail_equal_the_keras_rnn_path(cls, options, rng):
    """Keras's GRU has no general-step twin of the same arithmetic to be compared with bit for bit
    (its plain step gave the general step's bits at 35 and 128 units when it was written)."""
    plain, fused = _layers(cls, rng, units=35, batch=19, steps=5, features=3, scale=0.3, **options)
    x = tf.constant(rng.normal(size=(19, 5, 3)).astype("float32"))
    traced = tf.function(lambda x: _outputs_and_grads(fused, x), autograph=False)
    _assert_same(_outputs_and_grads(plain, x), traced(x))

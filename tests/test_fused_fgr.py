"""FGR (full gate recurrence) on the fused C++ kernel: its gates of t−1 feed its gates of t through
a matrix Q, and the kernel computes that forward and backward exactly as keras.layers.RNN and the
tf_while engine do, initial states (FGR's third state included), several chunks and an odd batch."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from test_fused_engine import _assert_same, _kernel, _layers, _outputs_and_grads  # noqa: F401

import lstm_keras as lk
from lstm_keras import fused_engine, fused_ops

pytestmark = pytest.mark.tf_only

B, T, F, U = 5, 9, 4, 6
ENGINES = ("keras", "tf_while", "fused")


@pytest.mark.parametrize(
    "options",
    [
        {"return_sequences": True, "return_state": True},
        {"go_backwards": True, "return_state": True},
        {"use_bias": False, "return_sequences": True},
    ],
    ids=["sequences+state", "backwards+state", "no-bias"],
)
def test_fgr_equals_the_keras_rnn_path_and_the_tf_while_engine(options, rng):
    layers = _layers(lk.LSTM, rng, engines=ENGINES, variant="FGR", **options)
    assert [layer.engine_used() for layer in layers] == list(ENGINES)
    q = layers[0].cell.gate_recurrent_kernel.numpy()
    assert q.shape == (3 * U, 3 * U) and np.abs(q).min() > 0  # every gate-to-gate term counts
    x = rng.normal(size=(B, T, F)).astype("float32")
    reference = _outputs_and_grads(layers[0], x)
    if options.get("return_state"):
        assert [tuple(t.shape) for t in reference[0][-3:]] == [(B, U), (B, U), (B, 3 * U)]
    for layer in layers[1:]:
        _assert_same(reference, _outputs_and_grads(layer, x))


def test_fgr_initial_states_get_their_gradients(rng):
    """h0, c0 and the gates a0 before the first step, each with its own gradient."""
    layers = _layers(lk.LSTM, rng, engines=ENGINES, variant="FGR", return_sequences=True, return_state=True)
    widths = (U, U, 3 * U)
    state = [tf.constant(rng.uniform(0.05, 0.95, size=(B, w)).astype("float32")) for w in widths]
    x = rng.normal(size=(B, T, F)).astype("float32")
    reference = _outputs_and_grads(layers[0], x, state)
    assert all(float(tf.reduce_max(tf.abs(g))) > 0 for g in reference[1][1:4])  # ∂ initial states
    for layer in layers[1:]:
        _assert_same(reference, _outputs_and_grads(layer, x, state))


def test_the_gate_blocks_follow_the_learned_gates():
    learned, open_ = lk.variants.GATE_MODES.index("learned"), lk.variants.GATE_MODES.index("open")
    every = {"input_gate": learned, "forget_gate": learned, "output_gate": learned}
    assert fused_ops.lstm_gate_blocks(every) == ([0, 1, 3], [0, 1, 3], 4)  # act and z: i f c/g o
    no_forget = {**every, "forget_gate": open_}
    assert fused_ops.lstm_gate_blocks(no_forget) == ([0, 3], [0, 2], 3)  # z has no f slot
    t = tf.reshape(tf.range(2 * 8), [2, 8])
    assert fused_ops.take_blocks(t, [0, 3], 4).numpy().tolist() == [[0, 1, 6, 7], [8, 9, 14, 15]]


def test_a_wrong_gate_matrix_is_refused_by_the_kernel():
    k = fused_engine.kernel()
    xp, r, p, h0 = tf.zeros([1, 2, 4 * U]), tf.zeros([U, 4 * U]), tf.zeros([3, U]), tf.zeros([1, U])
    codes = dict(input_gate=0, forget_gate=0, output_gate=0, peepholes=True)
    codes |= dict(candidate_activation=0, output_activation=0)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"q must be \[18, 18\] or \[0, 0\]"):
        k.op("LstmSequence")(xp, r, p, h0, h0, tf.zeros([U, U]), tf.zeros([1, U]), **codes)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"a0 must be \[B, 18\]"):
        k.op("LstmSequence")(xp, r, p, h0, h0, tf.zeros([3 * U, 3 * U]), tf.zeros([1, U]), **codes)


_CHUNKED_FGR = """
import json
import numpy as np, tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(3)
import lstm_keras as lk
B, T, F, U = 67, 13, 5, 6
rng = np.random.default_rng(7)
layers = [lk.LSTM(U, variant="FGR", return_sequences=True, return_state=True, engine=e)
          for e in ("tf_while", "fused")]
for layer in layers:
    layer.build((B, T, F))
weights = [rng.normal(0, 0.5, w.shape).astype("float32") for w in layers[0].get_weights()]
x = tf.constant(rng.normal(size=(B, T, F)).astype("float32"))
state = [tf.constant(rng.uniform(0.1, 0.9, size=(B, w)).astype("float32")) for w in (U, U, 3 * U)]
results = []
for layer in layers:
    layer.set_weights(weights)
    with tf.GradientTape() as tape:
        tape.watch([x, *state])
        out = layer(x, initial_state=state)
        loss = sum(tf.reduce_sum(tf.sin(3.0 * t)) for t in out)
    grads = tape.gradient(loss, [x, *state, *layer.trainable_weights])
    results.append([t.numpy() for t in out] + [g.numpy() for g in grads])
error = max(float(np.abs(a - b).max() / max(1.0, np.abs(a).max())) for a, b in zip(*results))
print(json.dumps({"threads": tf.config.threading.get_intra_op_parallelism_threads(),
                  "engine": layers[1].engine_used(), "error": error}))
"""


@pytest.mark.slow  # a fresh TensorFlow in a subprocess
def test_fgr_over_several_batch_chunks_of_an_odd_batch():
    """3 threads split a batch of 67 into chunks of 22, 22 and 23 rows, each with its own rows of
    a0 and of ∂L/∂a0: outputs, final states and every gradient equal the tf_while engine's."""
    result = subprocess.run([sys.executable, "-c", _CHUNKED_FGR], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["threads"] == 3 and found["engine"] == "fused" and found["error"] < 1e-5, found

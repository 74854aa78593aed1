"""The fused C++ kernel computes every GRU variant exactly as keras.layers.RNN and the tf_while
engine do."""

import json
import subprocess
import sys

import pytest
import tensorflow as tf
from test_fused_engine import _assert_same, _kernel, _layers, _lstm_kwargs, _outputs_and_grads  # noqa: F401

import lstm_keras as lk

pytestmark = pytest.mark.tf_only

B, T, F, U = 5, 9, 4, 6


GRU_OPTIONS = [
    {"return_sequences": True, "return_state": True},
    {"go_backwards": True, "use_bias": False},
    {"forget_bias": "chrono", "chrono_tmax": 2 * T, "return_sequences": True},
]


def _gru_layers(variant: str, rng, **options) -> list:
    """Our GRU `variant` on keras.layers.RNN, the tf_while engine and the fused engine, one set of
    random weights; MUT1 and MUT2 add x elementwise, so their input is `units` wide."""
    features = U if lk.GRU_VARIANTS[variant].adds_input_elementwise else F
    engines = ("keras", "tf_while", "fused")
    return _layers(lk.GRU, rng, engines=engines, features=features, variant=variant, **options)


@pytest.mark.parametrize("options", GRU_OPTIONS, ids=["sequences+state", "backwards-no-bias", "chrono"])
@pytest.mark.parametrize("variant", list(lk.GRU_VARIANTS))
def test_every_gru_variant_equals_the_keras_rnn_path_and_the_tf_while_engine(variant, options, rng):
    """Update gate keeping, writing (MUT1–3) or absent (NUG); reset gate after or before its
    product (cho2014, MUT1–3) or absent (NRG); U_z on tanh(h) (MUT3) or no U_z (MUT1)."""
    if "chrono_tmax" in options and not lk.GRU_VARIANTS[variant].has_forget_gate:
        pytest.skip("NUG has no update gate to chrono-initialise")
    plain, while_, fused = _gru_layers(variant, rng, **options)
    assert [layer.engine_used() for layer in (plain, while_, fused)] == ["keras", "tf_while", "fused"]
    x = rng.normal(size=(B, T, plain.cell.kernel.shape[0])).astype("float32")
    state = None if options.get("go_backwards") else [tf.constant(rng.normal(size=(B, U)).astype("float32"))]
    reference = _outputs_and_grads(plain, x, state)
    _assert_same(reference, _outputs_and_grads(while_, x, state))
    _assert_same(reference, _outputs_and_grads(fused, x, state))


def test_no_variant_leaves_the_fused_kernel():
    lstm = {v: lk.LSTM(U, **_lstm_kwargs(v)).engine_used() for v in lk.LSTM_VARIANTS}
    gru = {v: lk.GRU(U, variant=v).engine_used() for v in lk.GRU_VARIANTS}
    assert {v for v, e in {**lstm, **gru}.items() if e != "fused"} == set()


_CHUNKED_GRUS = """
import json
import numpy as np, tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(3)
import lstm_keras as lk
B, T, U = 67, 13, 6
rng = np.random.default_rng(6)
found = {}
for variant in lk.GRU_VARIANTS:
    layers = [lk.GRU(U, variant=variant, return_sequences=True, engine=e) for e in ("tf_while", "fused")]
    for layer in layers:
        layer.build((B, T, U))
    weights = [rng.normal(0, 0.5, w.shape).astype("float32") for w in layers[0].get_weights()]
    x = tf.constant(rng.normal(size=(B, T, U)).astype("float32"))
    results = []
    for layer in layers:
        layer.set_weights(weights)
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = layer(x)
            loss = tf.reduce_sum(tf.sin(3.0 * out))
        grads = tape.gradient(loss, [x, *layer.trainable_weights])
        results.append([out.numpy()] + [g.numpy() for g in grads])
    found[variant] = {
        "engine": layers[1].engine_used(),
        "error": max(float(np.abs(a - b).max() / max(1.0, np.abs(a).max())) for a, b in zip(*results)),
    }
print(json.dumps({"threads": tf.config.threading.get_intra_op_parallelism_threads(), "variants": found}))
"""


@pytest.mark.slow  # a fresh TensorFlow in a subprocess
def test_every_gru_variant_over_several_batch_chunks_of_an_odd_batch():
    """3 threads split a batch of 67 into chunks of 22, 22 and 23 rows; outputs and every gradient
    of each GRU variant equal the tf_while engine's."""
    result = subprocess.run(
        [sys.executable, "-c", _CHUNKED_GRUS], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["threads"] == 3 and set(found["variants"]) == set(lk.GRU_VARIANTS)
    for variant, row in found["variants"].items():
        assert row["engine"] == "fused" and row["error"] < 1e-5, (variant, row)

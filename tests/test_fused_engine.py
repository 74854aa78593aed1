"""The fused C++ kernel computes exactly what keras.layers.RNN and Keras's built-ins compute,
or steps aside with its reason."""

import contextlib
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import lstm_keras as lk
from lstm_keras import fused_engine, kernel_build

pytestmark = pytest.mark.tf_only

B, T, F, U = 5, 9, 4, 6
KINDS = [lk.LSTM, lk.GRU]


@pytest.fixture(scope="module", autouse=True)
def _kernel():
    # Skipped only when switched off on purpose; otherwise a missing kernel is a failure here.
    if kernel_build.opted_out():
        pytest.skip(kernel_build.opted_out())
    if fused_engine.kernel() is None:
        pytest.fail(fused_engine.unavailable_reason())


def _layers(
    cls, rng, engines=("keras", "fused"), features=F, units=U, batch=B, steps=T, scale=0.5, **options
):
    layers = [cls(units, engine=e, **options) for e in engines]
    for layer in layers:
        layer.build((batch, steps, features))
    # Random non-zero weights everywhere, biases included, so every term counts.
    weights = [rng.normal(0, scale, w.shape).astype("float32") for w in layers[0].get_weights()]
    for layer in layers:
        layer.set_weights(weights)
    return layers


def _outputs_and_grads(layer, x, initial_state=None):
    x = tf.convert_to_tensor(x)
    watched = [x, *(initial_state or [])]
    with tf.GradientTape() as tape:
        tape.watch(watched)
        out = layer(x, initial_state=initial_state)
        # Every output enters the loss non-linearly, so each output's gradient path is checked.
        loss = sum(tf.reduce_sum(tf.sin(3.0 * t)) for t in tf.nest.flatten(out))
    return tf.nest.flatten(out), tape.gradient(loss, [*watched, *layer.trainable_weights])


def _assert_same(a, b, normwise=False):
    """Equal to 1e-5 (relative above 1). Gradients are compared normwise (the absolute part
    scales with the tensor's largest entry): a weight gradient sums terms of up to ~90, whose
    float32 rounding (~1e-7 of the largest) depends on the order of the sums, which differ between
    engines. `normwise`: the outputs too, for unbounded activations whose sums cancel terms of ~50
    down to ~1."""
    (out_a, grad_a), (out_b, grad_b) = a, b
    assert len(out_a) == len(out_b) and len(grad_a) == len(grad_b)
    checked = [(p, q, normwise) for p, q in zip(out_a, out_b)] + [
        (p, q, True) for p, q in zip(grad_a, grad_b)
    ]
    for p, q, scaled in checked:
        p, q = p.numpy(), q.numpy()
        atol = 1e-5 * max(1.0, float(np.abs(q).max())) if scaled else 1e-5
        np.testing.assert_allclose(p, q, atol=atol, rtol=1e-5)


@pytest.mark.parametrize("cls", KINDS)
@pytest.mark.parametrize(
    "options",
    [
        {"return_sequences": True, "return_state": True},
        {"go_backwards": True},
        {"return_sequences": True, "go_backwards": True},
        {"use_bias": False, "return_state": True},
    ],
    ids=["sequences+state", "backwards", "sequences+backwards", "no-bias"],
)
def test_outputs_and_gradients_equal_the_keras_rnn_path(cls, options, rng):
    plain, fused = _layers(cls, rng, **options)
    assert plain.engine_used() == "keras" and fused.engine_used() == "fused"
    x = rng.normal(size=(B, T, F)).astype("float32")
    _assert_same(_outputs_and_grads(plain, x), _outputs_and_grads(fused, x))


FUSED_LSTM_VARIANTS = list(lk.LSTM_VARIANTS)


def _lstm_kwargs(variant: str) -> dict:
    gateless = not lk.LSTM_VARIANTS[variant].has_forget_gate
    return {"variant": variant, **({"forget_bias": None} if gateless else {})}


@pytest.mark.parametrize("variant", FUSED_LSTM_VARIANTS)
def test_every_lstm_variant_equals_the_keras_rnn_path(variant, rng):
    """Gate modes (open, coupled), peepholes (non-zero here), the 1997 activations and FGR's
    gate-to-gate matrix (non-zero here, its final gates returned as the third state)."""
    for options in ({"return_sequences": True, "return_state": True}, {"go_backwards": True}):
        plain, fused = _layers(lk.LSTM, rng, **_lstm_kwargs(variant), **options)
        assert fused.engine_used() == "fused"
        x = rng.normal(size=(B, T, F)).astype("float32")
        _assert_same(_outputs_and_grads(plain, x), _outputs_and_grads(fused, x))


SWAPPED = [
    ("relu", "tanh"),
    ("tanh", "relu"),
    ("linear", "linear"),
    ("sigmoid", "4sigmoid-2"),
    ("2sigmoid-1", "relu"),
]


def test_every_activation_the_kernel_has_is_checked_against_the_keras_rnn_path():
    """The kernel knows an activation by its position in KERNEL_ACTIVATIONS (its `enum class
    Act` follows that order): each one is computed below beside Keras, so a wrong order fails."""
    assert {name for pair in SWAPPED for name in pair} == set(fused_engine.KERNEL_ACTIVATIONS)


def test_an_unknown_activation_code_is_refused_by_the_kernel():
    k = fused_engine.kernel()
    xp, r, p, h0 = tf.zeros([1, 2, 4 * U]), tf.zeros([U, 4 * U]), tf.zeros([3, U]), tf.zeros([1, U])
    codes = dict(input_gate=0, forget_gate=0, output_gate=0, peepholes=False, output_activation=0)
    with pytest.raises(tf.errors.InvalidArgumentError, match="candidate_activation: unknown code 99"):
        k.op("LstmSequence")(
            xp, r, p, h0, h0, tf.zeros([0, 0]), tf.zeros([1, 0]), candidate_activation=99, **codes
        )


@pytest.mark.parametrize(("candidate", "output"), SWAPPED)
@pytest.mark.parametrize("variant", ["keras", "vanilla", "CIFG"])
def test_swapped_activations_equal_the_keras_rnn_path(variant, candidate, output, rng):
    kwargs = {"variant": variant, "candidate_activation": candidate, "output_activation": output}
    plain, fused = _layers(lk.LSTM, rng, return_sequences=True, return_state=True, **kwargs)
    assert fused.engine_used() == "fused"
    x = 2.0 * rng.normal(size=(B, T, F)).astype("float32")  # both sides of relu's kink
    _assert_same(_outputs_and_grads(plain, x), _outputs_and_grads(fused, x), normwise=True)


@pytest.mark.parametrize("cls", KINDS)
def test_initial_state_gets_its_gradient(cls, rng):
    plain, fused = _layers(cls, rng, return_sequences=True, return_state=True)
    n_states = 2 if cls is lk.LSTM else 1
    state = [tf.constant(rng.normal(size=(B, U)).astype("float32")) for _ in range(n_states)]
    x = rng.normal(size=(B, T, F)).astype("float32")
    _assert_same(_outputs_and_grads(plain, x, state), _outputs_and_grads(fused, x, state))


@pytest.mark.parametrize(("ours", "builtin"), [(lk.LSTM, keras.layers.LSTM), (lk.GRU, keras.layers.GRU)])
def test_equals_keras_builtin_with_copied_weights_over_a_long_sequence(ours, builtin, rng):
    """Golden reference: Keras's own layer, 200 steps, batch large enough to be split over threads."""
    x = rng.normal(size=(64, 200, F)).astype("float32")
    reference = builtin(U, return_sequences=True)
    reference.build(x.shape)
    reference.set_weights([rng.normal(0, 0.3, w.shape).astype("float32") for w in reference.get_weights()])
    fused = ours(U, return_sequences=True)
    fused.build(x.shape)
    fused.set_weights(reference.get_weights())
    assert fused.engine_used() == "fused"
    # Weight gradients sum 12,800 step terms of size ~1e3: float32 order differences are relative.
    _assert_same(_outputs_and_grads(reference, x), _outputs_and_grads(fused, x))


@pytest.mark.parametrize("cls", KINDS)
def test_inside_tf_function_with_unknown_batch_and_length(cls, rng):
    plain, fused = _layers(cls, rng, return_sequences=True, return_state=True)
    spec = tf.TensorSpec((None, None, F), tf.float32)
    traced = [
        tf.function(lambda x, layer=layer: _outputs_and_grads(layer, x), input_signature=[spec])
        for layer in (plain, fused)
    ]
    for length in (1, T):
        x = tf.constant(rng.normal(size=(B, length, F)).astype("float32"))
        _assert_same(traced[0](x), traced[1](x))


def _square(x):
    return x * x


@pytest.mark.parametrize(
    ("options", "call", "reason", "engine"),
    [
        ({"engine": "tf_while"}, {}, "engine='tf_while'", "tf_while"),
        (
            {"gate_activation": "hard_sigmoid"},
            {},
            "gate_activation='hard_sigmoid' (the kernel has sigmoid)",
            "tf_while",
        ),
        (
            {"candidate_activation": "softsign"},
            {},
            "candidate_activation='softsign' (the kernel has tanh, linear, relu, sigmoid, 2sigmoid-1, "
            "4sigmoid-2)",
            "tf_while",
        ),
        (
            {"output_activation": _square},
            {},
            "output_activation='a custom function' (the kernel has tanh, linear, relu, sigmoid, 2sigmoid-1, "
            "4sigmoid-2)",
            "tf_while",
        ),
        ({"dtype": "mixed_bfloat16"}, {}, "compute dtype bfloat16 (the kernel is float32)", "tf_while"),
        ({}, {"mask": np.ones((B, T), bool)}, "a mask", "keras"),
        ({"dropout": 0.2}, {"training": True}, "dropout in training", "keras"),
    ],
)
def test_steps_aside_with_its_reason(options, call, reason, engine, rng):
    layer = lk.LSTM(U, **options)
    mask, training = call.get("mask"), call.get("training", False)
    assert layer.fused_engine_reason(mask, training) == reason
    assert layer.engine_used(mask, training) == engine
    x = rng.normal(size=(B, T, F)).astype("float32")
    assert layer(x, **call).shape == (B, U)


def test_fit_lowers_the_loss_and_a_saved_model_reloads_on_the_fused_kernel(rng, tmp_path):
    x = rng.normal(size=(64, T, F)).astype("float32")
    y = x[:, :3, :].sum(axis=(1, 2))[:, None]  # depends on the earliest steps only
    model = keras.Sequential(
        [keras.Input((T, F)), lk.LSTM(16, return_sequences=True), lk.GRU(8), keras.layers.Dense(1)]
    )
    assert [layer.engine_used() for layer in model.layers[:2]] == ["fused", "fused"]
    model.compile(keras.optimizers.Adam(0.02), "mse")
    assert not model.jit_compile  # XLA cannot compile the fused op
    history = model.fit(x, y, epochs=30, batch_size=32, verbose=0).history["loss"]
    assert history[-1] < 0.5 * history[0]
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    assert again.layers[0].engine == "auto" and again.layers[0].engine_used() == "fused"
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


@pytest.mark.slow  # a training, a compiler or a fresh TensorFlow in a subprocess
def test_without_a_compiler_the_layers_fall_back_and_say_why(tmp_path):
    """A fresh kernel cache and no compiler: the layer runs on the tf_while engine, naming the cause."""
    script = (
        "import numpy as np, lstm_keras as lk\n"
        "layer = lk.LSTM(3)\n"
        "print(layer.engine_used()); print(layer.fused_engine_reason())\n"
        "print(layer(np.ones((2, 4, 1), 'float32')).shape)\n"
    )
    env = {**os.environ, "LSTM_KERAS_KERNEL_CACHE": str(tmp_path), "CXX": "no-such-compiler++"}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    engine, reason, shape = result.stdout.strip().splitlines()[-3:]
    assert engine == "tf_while"
    assert reason == "the fused kernel is not available: no C++ compiler 'no-such-compiler++' (set CXX)"
    assert shape == "(2, 3)"
    assert not list(tmp_path.glob("*.so"))  # nothing half-built left behind


def test_build_is_cached_by_source_tensorflow_and_rung():
    built = kernel_build.build()
    kernel = fused_engine.kernel()
    assert built.library == kernel.path and built.library.exists()
    assert f"tf{tf.__version__}" in built.library.name
    assert built.library.name.endswith(f"-{built.rung.name}.so")
    assert kernel_build.build().library == built.library  # cached: no recompilation
    assert fused_engine.record() == {
        "fused_kernel_rung": built.rung.name,
        "fused_kernel_flags": " ".join(built.rung.flags),
    }


# Run in a fresh process: the intra-op pool's size (which sets the kernel's batch chunks, one per
# thread and at most B/16) is fixed once TensorFlow starts.
_CHUNKED_PEEPHOLES = """
import json
import numpy as np, tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(3)
import lstm_keras as lk
B, T, F, U = 67, 13, 4, 6
rng = np.random.default_rng(5)
layers = [lk.LSTM(U, variant="vanilla", return_sequences=True, return_state=True, engine=e)
          for e in ("tf_while", "fused")]
for layer in layers:
    layer.build((B, T, F))
weights = [rng.normal(0, 0.5, w.shape).astype("float32") for w in layers[0].get_weights()]
x = tf.constant(rng.normal(size=(B, T, F)).astype("float32"))
results = []
for layer in layers:
    layer.set_weights(weights)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = layer(x)
        loss = sum(tf.reduce_sum(tf.sin(3.0 * t)) for t in out)
    grads = tape.gradient(loss, [x, *layer.trainable_weights])
    results.append(([t.numpy() for t in out], [g.numpy() for g in grads]))
names = ["x", *(w.path for w in layers[1].trainable_weights)]
(out_a, grad_a), (out_b, grad_b) = results
print(json.dumps({
    "threads": tf.config.threading.get_intra_op_parallelism_threads(),
    "engines": [layer.engine_used() for layer in layers],
    "outputs": max(float(np.abs(a - b).max()) for a, b in zip(out_a, out_b)),
    "grads": {n: float(np.abs(a - b).max() / max(1.0, np.abs(a).max()))
              for n, a, b in zip(names, grad_a, grad_b)},
}))
"""


@pytest.mark.slow  # a training, a compiler or a fresh TensorFlow in a subprocess
def test_peephole_gradient_summed_over_several_batch_chunks_of_an_odd_batch():
    """The peephole gradient is a sum of per-chunk partials: 3 threads split a batch of 67 into
    chunks of 22, 22 and 23 rows; every gradient equals the tf_while engine's."""
    result = subprocess.run(
        [sys.executable, "-c", _CHUNKED_PEEPHOLES], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["threads"] == 3 and found["engines"] == ["tf_while", "fused"]
    assert found["outputs"] < 1e-5
    peepholes = [n for n in found["grads"] if "peephole" in n]
    assert len(peepholes) == 3, found["grads"]
    assert all(err < 1e-5 for err in found["grads"].values()), found["grads"]


@pytest.mark.slow  # compiles the x86-64-v2 rung (cached per machine)
@pytest.mark.parametrize("cls", KINDS)
def test_a_pinned_rung_traces_its_own_ops_and_computes_what_the_default_build_does(cls, rng):
    """What the benchmark's `--rungs` rests on: inside `pinned`, a traced layer calls the other
    build's renamed ops, forwards and backwards, with the same results."""
    other = fused_engine.load_rung("x86-64-v2")
    _, layer = _layers(cls, rng, return_sequences=True)
    x = tf.constant(rng.normal(size=(B, T, F)).astype("float32"))
    graphs, results = [], []
    for pin in (contextlib.nullcontext(), fused_engine.pinned(other)):
        with pin:
            traced = tf.function(lambda x: _outputs_and_grads(layer, x)).get_concrete_function(x)
        graphs.append({op.type for op in traced.graph.get_operations()})
        results.append(traced(x))
    op = "LstmSequence" if cls is lk.LSTM else "GruSequence"
    assert {op, op + "Grad"} <= graphs[0] and not {op + "X8664V2"} & graphs[0]
    assert {op + "X8664V2", op + "GradX8664V2"} <= graphs[1] and op not in graphs[1]
    _assert_same(results[0], results[1])

"""Gate traces agree with the layer; gradient flow agrees with finite differences."""

import keras
import numpy as np
import pytest

import lstm_keras as lk

T, F, U = 8, 3, 5


@pytest.mark.backend_agnostic
@pytest.mark.parametrize("layer", [lambda: lk.LSTM(U, variant="vanilla"), lambda: lk.GRU(U, variant="MUT3")])
def test_gate_trace_reproduces_the_layer(layer, rng):
    layer = layer()
    x = rng.normal(size=(2, T, F)).astype("float32")
    last = keras.ops.convert_to_numpy(layer(x))
    trace = lk.gate_trace(layer, x)
    np.testing.assert_allclose(trace["h"][:, -1], last, atol=1e-6)
    for key, values in trace.items():
        assert values.shape == (2, T, U), key
    gates = [k for k in trace if k not in ("h", "c", "g", "h_cand")]
    for gate in gates:
        assert np.all((trace[gate] >= 0) & (trace[gate] <= 1)), gate


@pytest.mark.tf_only
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_gradient_flow_matches_finite_differences(kind, rng):
    layer = lk.LSTM(U, return_sequences=False) if kind == "lstm" else lk.GRU(U)
    model = keras.Sequential([keras.Input((T, F)), layer, keras.layers.Dense(1)])
    x = rng.normal(size=(4, T, F)).astype("float32")
    y = rng.normal(size=(4, 1)).astype("float32")
    loss_fn = keras.losses.mean_squared_error
    flow = lk.gradient_flow(model, x, y, loss_fn)
    assert flow["h"].shape == (T,) and ("c" in flow) == (kind == "lstm")

    # Independent check: perturb h_t in a float64 numpy unroll and difference the loss.
    cell = layer.cell
    w = [np.asarray(keras.ops.convert_to_numpy(v), np.float64) for v in cell.weights]
    dense_w, dense_b = (
        np.asarray(keras.ops.convert_to_numpy(v), np.float64) for v in model.layers[-1].weights
    )

    def loss(t_probe, delta):
        h = np.zeros((4, U))
        c = np.zeros((4, U))
        for t in range(T):
            if kind == "lstm":
                z = x[:, t] @ w[0] + h @ w[1] + w[2]
                i, f, g, o = np.split(z, 4, axis=-1)
                sig = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
                c = sig(f) * c + sig(i) * np.tanh(g)
                h = sig(o) * np.tanh(c)
            else:
                xz, xr, xh = np.split(x[:, t] @ w[0] + w[2][0], 3, axis=-1)
                rz, rr, rh = np.split(h @ w[1] + w[2][1], 3, axis=-1)
                sig = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
                z_, r_ = sig(xz + rz), sig(xr + rr)
                h = z_ * h + (1 - z_) * np.tanh(xh + r_ * rh)
            if t == t_probe:
                h = h + delta
        return np.mean(((h @ dense_w + dense_b) - y) ** 2)

    for t in (0, T // 2, T - 1):
        eps = 1e-6
        grad = np.zeros((4, U))
        for idx in np.ndindex(4, U):
            d = np.zeros((4, U))
            d[idx] = eps
            grad[idx] = (loss(t, d) - loss(t, -d)) / (2 * eps)
        np.testing.assert_allclose(flow["h"][t], np.linalg.norm(grad), rtol=2e-3)
    assert abs(flow["loss"] - loss(-1, 0)) < 1e-5


@pytest.mark.tf_only
def test_forget_bias_slows_gradient_decay(rng):
    """The quantity the claims are about: bias 0 vs 5 at initialisation, long sequence."""
    x = rng.normal(size=(8, 60, F)).astype("float32")
    y = rng.normal(size=(8, 1)).astype("float32")
    ratios = {}
    for fb in (0.0, 5.0):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((60, F)), lk.LSTM(U, forget_bias=fb), keras.layers.Dense(1)])
        flow = lk.gradient_flow(model, x, y, keras.losses.mean_squared_error)
        ratios[fb] = flow["h"][0] / flow["h"][-1]
    assert ratios[5.0] > 100 * ratios[0.0]


def _unrolled_flow(model, layer, x, y, loss_fn, mask=None):
    """The straightforward reference: a Python-unrolled eager pass, the tape asked for ∂L/∂h_t
    of every step's own tensor."""
    import tensorflow as tf

    from lstm_keras.diagnostics import _recurrent_cell, _split_model, _unroll

    before, after = _split_model(model, layer)
    features = before(tf.constant(x))
    if isinstance(features, (list, tuple)):
        features, mask = features
    with tf.GradientTape() as tape:
        outputs, hs, cs = [], [], []
        for out, states, _ in _unroll(
            _recurrent_cell(layer), features, go_backwards=layer.go_backwards, mask=mask
        ):
            outputs.append(out)
            hs.append(states[0])
            cs.extend(states[1:2])
        output = keras.ops.stack(outputs, axis=1) if layer.return_sequences else outputs[-1]
        loss = keras.ops.mean(loss_fn(tf.constant(y), after(output)))
    grads = tape.gradient(loss, hs + cs)
    norms = np.array([0.0 if g is None else np.linalg.norm(g.numpy().astype(np.float64)) for g in grads])
    return {"h": norms[: len(hs)], "c": norms[len(hs) :], "loss": float(loss)}


def _sequential(layer, steps=T):
    return keras.Sequential([keras.Input((steps, F)), layer, keras.layers.Dense(1)])


CASES = {
    "lstm-vanilla-backwards": lambda: _sequential(lk.LSTM(U, variant="vanilla", go_backwards=True)),
    "lstm-FGR-sequences": lambda: _sequential(lk.LSTM(U, variant="FGR", return_sequences=True)),
    "gru-cho2014": lambda: _sequential(lk.GRU(U, variant="cho2014")),
    "simple_rnn": lambda: _sequential(keras.layers.SimpleRNN(U)),
    "keras_lstm": lambda: _sequential(keras.layers.LSTM(U)),
}


@pytest.mark.tf_only
@pytest.mark.parametrize("case", list(CASES))
def test_one_backward_pass_equals_the_unrolled_per_step_gradients(case, rng):
    model = CASES[case]()
    layer = model.layers[0]
    model.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in model.get_weights()])
    x = rng.normal(size=(4, T, F)).astype("float32")
    y = rng.normal(size=(4, T, 1) if layer.return_sequences else (4, 1)).astype("float32")
    loss_fn = keras.losses.mean_squared_error
    probe = lk.GradientFlow(model, loss_fn, layer=layer)
    flow, reference = probe(x, y), _unrolled_flow(model, layer, x, y, loss_fn)
    np.testing.assert_allclose(flow["h"], reference["h"], rtol=1e-4)
    assert ("c" in flow) == (len(reference["c"]) > 0)
    if "c" in flow:
        np.testing.assert_allclose(flow["c"], reference["c"], rtol=1e-4)
    assert flow["loss"] == pytest.approx(reference["loss"], rel=1e-6)
    # Called again on other data: the same traced function, the same answer as the reference.
    x2 = rng.normal(size=x.shape).astype("float32")
    np.testing.assert_allclose(
        probe(x2, y)["h"], _unrolled_flow(model, layer, x2, y, loss_fn)["h"], rtol=1e-4
    )
    # One trace serves every call; a Keras LSTMCell (no ε inside its step) is unrolled eagerly.
    assert probe.one_pass == (case != "keras_lstm")
    assert probe._traced.experimental_get_tracing_count() == int(probe.one_pass)


@pytest.mark.tf_only
def test_a_padding_mask_from_the_embedding_carries_states_over(rng):
    tokens = keras.Input((T,), dtype="int32")
    layer = lk.LSTM(U)
    x = keras.layers.Embedding(7, F, mask_zero=True)(tokens)
    model = keras.Model(tokens, keras.layers.Dense(1)(layer(x)))
    ids = rng.integers(1, 7, size=(4, T))
    ids[:, T // 2 :] = 0  # the second half is padding
    y = rng.normal(size=(4, 1)).astype("float32")
    loss_fn = keras.losses.mean_squared_error
    flow = lk.gradient_flow(model, ids, y, loss_fn, layer=layer)
    reference = _unrolled_flow(model, layer, ids, y, loss_fn)
    np.testing.assert_allclose(flow["h"], reference["h"], rtol=1e-4)
    # c_t past the padding start is read by nothing (h is carried, not recomputed from it).
    assert np.all(flow["c"][: T // 2] > 0) and np.all(flow["c"][T // 2 :] == 0)
    # Padded steps pass h through unchanged: the gradient reaching them is the final one.
    np.testing.assert_allclose(flow["h"][T // 2 :], flow["h"][-1], rtol=1e-6)


@pytest.mark.parametrize(
    ("ours", "builtin", "n_states"), [(lk.LSTM, keras.layers.LSTM, 2), (lk.GRU, keras.layers.GRU, 1)]
)
@pytest.mark.parametrize("zero_output_for_mask", [False, True])
def test_gate_trace_under_a_mask_and_an_initial_state_is_what_keras_computes(
    ours, builtin, n_states, zero_output_for_mask, rng
):
    """First steps masked in some rows, a gap in others, a non-zero initial state: the traced
    outputs and final states equal Keras's own layer with copied weights."""
    B, T, F, U = 4, 6, 3, 5
    x = rng.normal(size=(B, T, F)).astype("float32")
    mask = np.ones((B, T), bool)
    mask[0, :2] = False  # starts masked: Keras outputs zeros there, the state stays the initial one
    mask[1, 0] = False
    mask[2, 3:5] = False  # a gap: the previous output is repeated
    state = [rng.normal(size=(B, U)).astype("float32") for _ in range(n_states)]
    options = {"return_sequences": True, "return_state": True, "zero_output_for_mask": zero_output_for_mask}
    reference = builtin(U, **options)
    reference.build((B, T, F))
    reference.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in reference.get_weights()])
    layer = ours(U, **options)
    layer.build((B, T, F))
    layer.set_weights(reference.get_weights())
    expected = [keras.ops.convert_to_numpy(t) for t in reference(x, initial_state=state, mask=mask)]
    trace = lk.gate_trace(layer, x, initial_state=state, mask=mask)
    np.testing.assert_allclose(trace["h"], expected[0], atol=1e-5)
    np.testing.assert_allclose(trace["h"][0, :2], 0.0)  # not the initial state
    final_states = [trace["h"][:, -1], *([trace["c"][:, -1]] if n_states == 2 else [])]
    for ours_state, keras_state in zip(final_states, expected[1:], strict=True):
        np.testing.assert_allclose(ours_state, keras_state, atol=1e-5)


def _graph(probe, function, x, y):
    """(op type, its inputs' op types) of every op the probe's traced function builds."""
    import tensorflow as tf

    features = probe.before(tf.constant(x))
    mask = tf.ones(features.shape[:2], features.dtype)
    graph = function.get_concrete_function(features, tf.constant(y), mask).graph
    return [(op.type, tuple(i.op.type for i in op.inputs)) for op in graph.get_operations()]


@pytest.mark.tf_only
@pytest.mark.parametrize("case", [c for c in CASES if c != "keras_lstm"])
def test_the_probe_traced_without_autograph_is_the_graph_autograph_builds(case, rng):
    """AutoGraph is skipped for our cells and Keras's (it only re-parses them, ~1 s a process):
    the same ops, bitwise the same norms. A cell of someone else's keeps AutoGraph."""
    import tensorflow as tf

    from lstm_keras.diagnostics import _needs_autograph

    model = CASES[case]()
    layer = model.layers[0]
    x = rng.normal(size=(4, T, F)).astype("float32")
    y = rng.normal(size=(4, T, 1) if layer.return_sequences else (4, 1)).astype("float32")
    probe = lk.GradientFlow(model, keras.losses.mean_squared_error, layer=layer)
    assert not _needs_autograph(probe.cell)
    with_autograph = tf.function(probe._one_pass, reduce_retracing=True, autograph=True)
    assert _graph(probe, probe._traced, x, y) == _graph(probe, with_autograph, x, y)
    fast = probe(x, y)
    probe._traced = with_autograph
    reference = probe(x, y)
    assert all(np.array_equal(fast[k], reference[k]) for k in reference)

    class OwnCell(keras.layers.SimpleRNNCell):
        pass

    assert _needs_autograph(OwnCell(U))

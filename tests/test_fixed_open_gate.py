"""A gate held fixed open (fixed_open_gate, constraints.HoldGateOpen) stays exactly open through
training on every engine, and computes what the variant with that gate removed computes."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from reference import lstm_step

import lstm_keras as lk
from lstm_keras import fused_engine, kernel_build
from lstm_keras.constraints import OPEN_GATE_BIAS, HoldGateOpen

pytestmark = pytest.mark.tf_only

B, T, F, U = 3, 5, 2, 4
ENGINES = ["keras", "tf_while", "fused"]
REMOVED = {"i": "NIG", "f": "NFG", "o": "NOG"}  # the variant whose gate is absent


@pytest.fixture(params=ENGINES)
def engine(request):
    if request.param == "fused" and fused_engine.kernel() is None:
        if kernel_build.opted_out():
            pytest.skip(kernel_build.opted_out())
        pytest.fail(fused_engine.unavailable_reason())
    return request.param


def _block(w, gate, slots="ifco"):
    k = slots.index(gate)
    return np.asarray(w)[..., k * U : (k + 1) * U]


def _randomize(layer, rng):
    """Random values in every weight, the held gate's included: the hold must undo them."""
    layer.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in layer.get_weights()])


def _project(layer):
    """What the optimizer does after an update: every weight through its constraint."""
    for v in layer.weights:
        if v.constraint is not None:
            v.assign(v.constraint(v))


def _assert_held(cell, gate):
    assert np.all(_block(cell.kernel.numpy(), gate) == 0.0)
    assert np.all(_block(cell.recurrent_kernel.numpy(), gate) == 0.0)
    assert np.all(_block(cell.bias.numpy(), gate) == np.float32(OPEN_GATE_BIAS))
    if gate in cell.peephole:
        assert np.all(cell.peephole[gate].numpy() == 0.0)


@pytest.mark.parametrize("gate", ["i", "f", "o"])
def test_held_from_build_on(gate):
    layer = lk.LSTM(U, variant="vanilla", fixed_open_gate=gate)
    layer.build((B, T, F))
    _assert_held(layer.cell, gate)
    # The gate owns its weights: the same parameters as vanilla, more than the removed variant.
    counts = {v: lk.LSTM(U, variant=v, forget_bias=None) for v in ("vanilla", REMOVED[gate])}
    for other in counts.values():
        other.build((B, T, F))
    assert layer.count_params() == counts["vanilla"].count_params() > counts[REMOVED[gate]].count_params()


@pytest.mark.parametrize("gate", ["f", "o"])
def test_training_keeps_the_gate_exactly_open(gate, engine, rng):
    layer = lk.LSTM(U, variant="vanilla", fixed_open_gate=gate, engine=engine, kernel_constraint="non_neg")
    model = keras.Sequential([keras.Input((T, F)), layer, keras.layers.Dense(1)])
    _randomize(layer, rng)  # the held block starts far from open, so its gradients are not zero
    x = rng.normal(size=(8, T, F)).astype("float32")
    y = rng.normal(size=(8, 1)).astype("float32")
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean((model(x) - y) ** 2)
    grad_kernel = tape.gradient(loss, layer.cell.kernel)
    assert np.abs(_block(grad_kernel, gate)).max() > 1e-4  # the held columns are in the step
    before = layer.cell.kernel.numpy().copy()
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.5, global_clipnorm=1.0), loss="mse")
    model.fit(x, y, batch_size=4, epochs=2, verbose=0)  # 4 updates
    assert layer.engines_run["training"] == engine
    cell = layer.cell
    _assert_held(cell, gate)
    kept = [s for s in "ifco" if s != gate]
    assert all(np.abs(_block(cell.kernel.numpy(), s) - _block(before, s)).max() > 1e-3 for s in kept)
    assert cell.kernel.numpy().min() >= 0.0  # the user's constraint still applied, then the hold
    trace = lk.gate_trace(layer, x)
    assert trace[gate].dtype == np.float32 and np.all(trace[gate] == 1.0)
    assert not np.all(trace["i" if gate != "i" else "f"] == 1.0)  # the other gates are not held


def _reference_sequence(removed, cell, x):
    """The removed-gate variant's equations in numpy (float64), fed the held cell's other weights."""
    w = {v.name: np.asarray(v.numpy(), dtype=np.float64) for v in cell.weights}
    names = ("kernel", "recurrent_kernel", "bias")
    blocks = {name: {s: _block(w[name], s) for s in "ifco"} for name in names}
    weights = {
        "W": blocks["kernel"],
        "R": blocks["recurrent_kernel"],
        "b": blocks["bias"],
        "p": {g: w[f"peephole_{g}"] for g in "ifo"},
    }
    h = c = np.zeros((x.shape[0], U))
    out = []
    for t in range(x.shape[1]):
        h, c, _, _ = lstm_step(removed, weights, x[:, t].astype(np.float64), h, c)
        out.append(h)
    return np.stack(out, axis=1)


@pytest.mark.parametrize("gate", ["i", "f", "o"])
def test_a_held_gate_computes_what_the_removed_gate_computes(gate, engine, rng):
    held = lk.LSTM(U, variant="vanilla", fixed_open_gate=gate, engine=engine, return_sequences=True)
    removed = lk.LSTM(U, variant=REMOVED[gate], forget_bias=None, engine=engine, return_sequences=True)
    held.build((B, T, F))
    removed.build((B, T, F))
    raw = [rng.normal(0, 0.5, w.shape).astype("float32") for w in held.get_weights()]
    held.set_weights(raw)
    _project(held)
    keep = "".join(s for s in "ifco" if s != gate)
    cell, other = held.cell, removed.cell
    for name in ("kernel", "recurrent_kernel", "bias"):
        w = getattr(cell, name).numpy()
        getattr(other, name).assign(np.concatenate([_block(w, s) for s in keep], axis=-1))
    for g, p in other.peephole.items():
        p.assign(cell.peephole[g].numpy())
    x = rng.normal(size=(B, T, F)).astype("float32")
    out_held = keras.ops.convert_to_numpy(held(x))
    assert held.engine_used() == removed.engine_used() == engine
    np.testing.assert_allclose(out_held, keras.ops.convert_to_numpy(removed(x)), rtol=0, atol=1e-6)
    np.testing.assert_allclose(out_held, _reference_sequence(REMOVED[gate], cell, x), rtol=0, atol=1e-5)
    # The comparison can fail: the same weights with the gate not held give another function.
    free = lk.LSTM(U, variant="vanilla", forget_bias=None, engine=engine, return_sequences=True)
    free.build((B, T, F))
    free.set_weights(raw)
    assert np.abs(keras.ops.convert_to_numpy(free(x)) - out_held).max() > 1e-3


def test_save_and_load_round_trip(tmp_path, rng):
    layer = lk.LSTM(U, variant="vanilla", fixed_open_gate="f", bias_constraint="non_neg", name="rnn")
    model = keras.Sequential([keras.Input((T, F)), layer, keras.layers.Dense(1)])
    _randomize(layer, rng)
    _project(layer)
    x = rng.normal(size=(B, T, F)).astype("float32")
    path = tmp_path / "held.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(x)), keras.ops.convert_to_numpy(model(x)))
    cell = loaded.get_layer("rnn").cell
    assert cell.get_config()["fixed_open_gate"] == "f"
    assert cell.get_config()["bias_constraint"]["class_name"] == "NonNeg"  # the user's, not the hold
    hold = cell.bias.constraint
    assert isinstance(hold, HoldGateOpen) and isinstance(hold.inner, keras.constraints.NonNeg)
    assert cell.kernel.constraint.inner is None  # no kernel_constraint given: the hold alone
    _assert_held(cell, "f")


def test_constraint_serialises_with_its_inner_constraint():
    hold = HoldGateOpen("o", slots="ico", weight="bias", open_bias=25.0, inner="non_neg")
    config = hold.get_config()
    assert set(config) == {"gate", "slots", "weight", "open_bias", "inner"}
    again = keras.constraints.deserialize(keras.constraints.serialize(hold))
    assert again.get_config() == config
    w = keras.ops.convert_to_tensor(np.array([-1.0, 2.0, -3.0, 4.0, -5.0, 6.0], dtype="float32"))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(again(w)), [0.0, 2.0, 0.0, 4.0, 25.0, 25.0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"gate": "g"}, r"Invalid gate='g'\. Valid choices: 'i', 'f', 'o'"),
        ({"gate": "f", "slots": "ico"}, r"gate='f' is not among slots='ico'\. Valid choices: 'i', 'o'"),
        ({"gate": "f", "slots": "ifx"}, r"Invalid slots='ifx'"),
        ({"gate": "f", "weight": "peephole"}, r"Invalid weight='peephole'\. Valid choices: 'kernel', 'bias'"),
        ({"gate": "f", "open_bias": 10.0}, r"Invalid open_bias=10\.0\. Valid choices: a number > 17"),
    ],
)
def test_constraint_refuses_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        HoldGateOpen(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fixed_open_gate": "g"}, r"Invalid fixed_open_gate='g'\. Valid choices: None, 'i', 'f', 'o'"),
        ({"variant": "NFG", "fixed_open_gate": "f"}, r"'f' open, not learned.*choices here: none, i, o"),
        ({"variant": "CIFG", "fixed_open_gate": "f"}, r"gate 'f' coupled, not learned"),
        ({"variant": "FGR", "fixed_open_gate": "i"}, r"variant='FGR'.*feed the other gates"),
        ({"fixed_open_gate": "o", "use_bias": False}, r"use_bias=False.*0\.5"),
        ({"fixed_open_gate": "f", "forget_bias": 2.0}, r"forget_bias=2\.0 given.*no forget/update gate"),
        ({"fixed_open_gate": "f", "forget_bias": "chrono", "chrono_tmax": 10}, r"forget_bias='chrono' given"),
    ],
)
def test_cell_refuses_what_it_cannot_hold(kwargs, message):
    kwargs = {"variant": "vanilla", **kwargs}
    with pytest.raises(ValueError, match=message):
        lk.LSTMCell(U, **kwargs)
    with pytest.raises(ValueError, match=message):
        lk.LSTM(U, **kwargs)  # the layer forwards it to the cell


def test_held_forget_gate_takes_no_forget_bias():
    assert lk.LSTMCell(U, variant="vanilla", fixed_open_gate="f").forget_bias is None
    assert lk.LSTMCell(U, variant="CIFG", fixed_open_gate="i").forget_bias is None  # f = 1 − i ≡ 0
    assert lk.LSTMCell(U, variant="vanilla", fixed_open_gate="o").forget_bias == 1.0

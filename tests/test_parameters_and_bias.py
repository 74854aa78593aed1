"""Parameter counts per variant, and where forget_bias values land."""

import keras
import numpy as np
import pytest
from reference import sigmoid

import lstm_keras as lk

pytestmark = pytest.mark.backend_agnostic

F, U = 3, 10


def _bias(cell_cls, features=F, **kwargs):
    cell = cell_cls(U, **kwargs)
    cell.build((None, features))
    return keras.ops.convert_to_numpy(cell.bias), cell


# n·(F·U + U·U + U) for n weighted slots, + U per peephole, + (gU)² for FGR's gate matrix.
LSTM_PARAMS = {
    "keras": 4 * (F * U + U * U + U),
    "vanilla": 4 * (F * U + U * U + U) + 3 * U,
    "NIG": 3 * (F * U + U * U + U) + 2 * U,
    "NFG": 3 * (F * U + U * U + U) + 2 * U,
    "NOG": 3 * (F * U + U * U + U) + 2 * U,
    "NIAF": 4 * (F * U + U * U + U) + 3 * U,
    "NOAF": 4 * (F * U + U * U + U) + 3 * U,
    "NP": 4 * (F * U + U * U + U),
    "CIFG": 3 * (F * U + U * U + U) + 2 * U,
    "FGR": 4 * (F * U + U * U + U) + 3 * U + (3 * U) ** 2,
    "lstm1997": 3 * (F * U + U * U + U),
}
# (input matrices, recurrent matrices, bias vectors); inputs are U wide for MUT1/MUT2.
GRU_PARAMS = {
    "keras": 3 * (F * U + U * U + 2 * U),
    "cho2014": 3 * (F * U + U * U + U),
    "NRG": 2 * (F * U + U * U + 2 * U),
    "NUG": 2 * (F * U + U * U + 2 * U),
    "MUT1": 2 * U * U + 2 * U * U + 3 * U,  # W_z, W_r; R_r, R_h
    "MUT2": 2 * U * U + 3 * U * U + 3 * U,  # W_z, W_h; R_z, R_r, R_h
    "MUT3": 3 * U * U + 3 * U * U + 3 * U,
}


@pytest.mark.parametrize("variant", list(lk.LSTM_VARIANTS))
def test_lstm_parameter_count(variant):
    _, cell = _bias(lk.LSTMCell, variant=variant, forget_bias=None)
    assert cell.count_params() == LSTM_PARAMS[variant]


@pytest.mark.parametrize("variant", list(lk.GRU_VARIANTS))
def test_gru_parameter_count(variant):
    features = U if variant.startswith("MUT") else F
    _, cell = _bias(lk.GRUCell, features=features, variant=variant)
    assert cell.count_params() == GRU_PARAMS[variant]


def test_keras_counts_equal_builtins():
    for ours, ref in ((lk.LSTM(U), keras.layers.LSTM(U)), (lk.GRU(U), keras.layers.GRU(U))):
        ours.build((None, 5, F))
        ref.build((None, 5, F))
        assert ours.count_params() == ref.count_params()


@pytest.mark.parametrize("value", [0.0, 1.0, 2.5, -3.0])
def test_lstm_forget_bias_sets_exactly_the_forget_slice(value):
    bias, _ = _bias(lk.LSTMCell, forget_bias=value, bias_initializer="ones")
    i, f, c, o = np.split(bias, 4)
    np.testing.assert_array_equal(f, value)
    for other in (i, c, o):  # the rest keep bias_initializer
        np.testing.assert_array_equal(other, 1.0)


def test_lstm_forget_bias_none_leaves_initializer_alone():
    bias, _ = _bias(lk.LSTMCell, forget_bias=None, bias_initializer="ones")
    np.testing.assert_array_equal(bias, 1.0)


def test_cifg_forget_bias_lands_on_the_coupled_gate():
    bias, _ = _bias(lk.LSTMCell, variant="CIFG", forget_bias=2.0)
    i = np.split(bias, 3)[0]
    np.testing.assert_allclose(1.0 - sigmoid(i), sigmoid(2.0), rtol=1e-6)  # f = 1 − i has bias 2


def test_chrono_statistics():
    tmax = 200
    bias, _ = _bias(lk.LSTMCell, forget_bias="chrono", chrono_tmax=tmax)
    big_u = 4000
    cell = lk.LSTMCell(
        big_u,
        forget_bias="chrono",
        chrono_tmax=tmax,
        kernel_initializer="zeros",
        recurrent_initializer="zeros",
    )
    cell.build((None, 2))
    i, f, c, o = np.split(keras.ops.convert_to_numpy(cell.bias), 4)
    np.testing.assert_array_equal(i, -f)
    u = np.exp(f)  # should be U[1, tmax − 1]
    assert u.min() >= 1.0 and u.max() <= tmax - 1
    assert abs(u.mean() - tmax / 2) < 0.05 * tmax
    assert abs(np.median(u) - tmax / 2) < 0.05 * tmax
    np.testing.assert_array_equal(c, 0.0)
    np.testing.assert_array_equal(o, 0.0)
    assert bias.shape == (4 * U,)


@pytest.mark.parametrize(("variant", "sign"), [("keras", 1), ("cho2014", 1), ("NRG", 1), ("MUT1", -1)])
def test_gru_forget_bias_keeps_the_old_state(variant, sign):
    features = U if variant.startswith("MUT") else F
    bias, cell = _bias(lk.GRUCell, features=features, variant=variant, forget_bias=1.5)
    if bias.ndim == 2:  # reset_after: the two rows add up to the gate's total bias
        np.testing.assert_array_equal(bias[1][:U], 0.0)
        bias = bias[0]
    np.testing.assert_array_equal(bias[:U], sign * 1.5)
    np.testing.assert_array_equal(bias[U:], 0.0)


def test_gru_chrono():
    bias, _ = _bias(lk.GRUCell, forget_bias="chrono", chrono_tmax=50)
    z = bias[0][:U]
    assert np.all((z >= 0) & (z <= np.log(49) + 1e-6))

"""Bad arguments raise ValueError naming the value and the valid choices."""

import pytest

import lstm_keras as lk

pytestmark = pytest.mark.backend_agnostic


@pytest.mark.parametrize(
    ("make", "needles"),
    [
        (lambda: lk.LSTMCell(4, variant="nope"), ["'nope'", "vanilla", "CIFG", "lstm1997"]),
        (lambda: lk.GRUCell(4, variant="LSTM"), ["'LSTM'", "cho2014", "MUT3"]),
        (lambda: lk.LSTMCell(0), ["units=0", "positive integer"]),
        (lambda: lk.GRUCell(-2), ["units=-2", "positive integer"]),
        (lambda: lk.LSTMCell(4, candidate_activation="relux"), ["'relux'", "relu", "tanh", "4sigmoid-2"]),
        (lambda: lk.LSTMCell(4, output_activation="nah"), ["output_activation='nah'", "linear"]),
        (lambda: lk.LSTMCell(4, gate_activation=3), ["gate_activation=3"]),
        (lambda: lk.LSTMCell(4, variant="NIAF", candidate_activation="relu"), ["NIAF", "'relu'", "vanilla"]),
        (lambda: lk.LSTMCell(4, variant="NOAF", output_activation="tanh"), ["NOAF", "'tanh'"]),
        (lambda: lk.LSTMCell(4, variant="NFG", forget_bias=0.0), ["forget_bias=0.0", "no forget"]),
        (lambda: lk.LSTMCell(4, variant="lstm1997", forget_bias=2.0), ["forget_bias=2.0", "None"]),
        (lambda: lk.GRUCell(4, variant="NUG", forget_bias=1.0), ["forget_bias=1.0", "None"]),
        (lambda: lk.LSTMCell(4, forget_bias="chrono"), ["chrono_tmax"]),
        (lambda: lk.LSTMCell(4, forget_bias="big"), ["'big'", "chrono"]),
        (lambda: lk.LSTMCell(4, chrono_tmax=100), ["chrono_tmax=100", "forget_bias"]),
        (lambda: lk.LSTMCell(4, dropout=1.5), ["dropout=1.5", "[0, 1)"]),
        (lambda: lk.GRUCell(4, variant="MUT1", reset_after=True), ["reset_after=True", "MUT1"]),
        (lambda: lk.LSTM(4, use_cudnn=True), ["use_cudnn=True", "'auto'"]),
        # An argument and Keras's alias for it, both given: each is named, neither is dropped.
        (
            lambda: lk.GRUCell(4, candidate_activation="tanh", activation="relu"),
            ["candidate_activation='tanh'", "activation='relu'", "not both"],
        ),
        (
            lambda: lk.GRUCell(4, gate_activation="sigmoid", recurrent_activation="hard_sigmoid"),
            ["gate_activation='sigmoid'", "recurrent_activation='hard_sigmoid'"],
        ),
        (
            lambda: lk.GRU(4, candidate_activation="relu", activation="relu"),
            ["candidate_activation='relu'", "activation='relu'"],
        ),
        (
            lambda: lk.LSTMCell(4, gate_activation="sigmoid", recurrent_activation="hard_sigmoid"),
            ["gate_activation='sigmoid'", "recurrent_activation='hard_sigmoid'"],
        ),
        (
            lambda: lk.LSTMCell(4, candidate_activation="relu", activation="tanh"),
            ["candidate_activation='relu'", "activation='tanh'"],
        ),
    ],
)
def test_bad_argument_is_a_clear_value_error(make, needles):
    with pytest.raises(ValueError) as err:
        make()
    for needle in needles:
        assert needle in str(err.value), (needle, str(err.value))


def test_mut_needs_input_width_equal_units():
    cell = lk.GRUCell(4, variant="MUT2")
    with pytest.raises(ValueError, match="must equal units=4; got 3"):
        cell.build((None, 3))


def test_consistent_overrides_are_accepted():
    assert lk.LSTMCell(4, variant="NIAF", candidate_activation="linear").variant.name == "NIAF"
    assert lk.LSTMCell(4, variant="NFG", forget_bias=None).forget_bias is None
    assert lk.LSTMCell(4, variant="NFG").forget_bias is None  # the default is not an override
    assert lk.LSTMCell(4, variant="lstm1997", candidate_activation="tanh").variant.name == "lstm1997"
    assert lk.GRUCell(4, reset_after=False).variant.name == "cho2014"
    assert lk.LSTMCell(4, unit_forget_bias=False).forget_bias is None
    # Keras's names alone are Keras's meaning.
    gru = lk.GRUCell(4, activation="relu", recurrent_activation="hard_sigmoid")
    assert (gru.candidate_activation.__name__, gru.gate_activation.__name__) == ("relu", "hard_sigmoid")
    lstm = lk.LSTMCell(4, activation="relu")
    assert lstm.candidate_activation.__name__ == lstm.output_activation.__name__ == "relu"
    assert lk.GRUCell(4).candidate_activation.__name__ == "tanh"

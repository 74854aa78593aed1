"""lstm_keras: gated recurrent cells whose every gate can be ablated, as Keras 3 layers."""

from lstm_keras.activations import sigmoid_2m1, sigmoid_4m2
from lstm_keras.diagnostics import GradientFlow, gate_trace, gradient_flow
from lstm_keras.forget_bias import ChronoInitializer
from lstm_keras.gru_cell import GRUCell
from lstm_keras.layers import GRU, LSTM
from lstm_keras.lstm_cell import LSTMCell
from lstm_keras.variants import GRU_VARIANTS, LSTM_VARIANTS, GRUVariant, LSTMVariant

__version__ = "0.1.0"

__all__ = [
    "LSTMCell",
    "GRUCell",
    "LSTM",
    "GRU",
    "LSTM_VARIANTS",
    "GRU_VARIANTS",
    "LSTMVariant",
    "GRUVariant",
    "ChronoInitializer",
    "gate_trace",
    "gradient_flow",
    "GradientFlow",
    "sigmoid_2m1",
    "sigmoid_4m2",
]

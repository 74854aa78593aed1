"""lstm_keras: gated recurrent cells whose every gate can be ablated, as Keras 3 layers.

The names below load their module on first use (PEP 562), so the variants as data
(`lstm_keras.variants`, `lstm_keras.activation_names`) are read without importing Keras or
TensorFlow. Touching any of them (`lstm_keras.LSTM`) imports the layers, which registers every
class and activation with Keras; a process that only loads a saved model does
`import lstm_keras.layers` first.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# Public name → the module that defines it.
_HOMES = {
    "LSTMCell": "lstm_keras.lstm_cell",
    "GRUCell": "lstm_keras.gru_cell",
    "LSTM": "lstm_keras.layers",
    "GRU": "lstm_keras.layers",
    "LSTM_VARIANTS": "lstm_keras.variants",
    "GRU_VARIANTS": "lstm_keras.variants",
    "LSTMVariant": "lstm_keras.variants",
    "GRUVariant": "lstm_keras.variants",
    "ChronoInitializer": "lstm_keras.forget_bias",
    "HoldGateOpen": "lstm_keras.constraints",
    "gate_trace": "lstm_keras.diagnostics",
    "gradient_flow": "lstm_keras.diagnostics",
    "GradientFlow": "lstm_keras.diagnostics",
    "sigmoid_2m1": "lstm_keras.activations",
    "sigmoid_4m2": "lstm_keras.activations",
}

__all__ = list(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        return _submodule(name)
    if _HOMES[name] != "lstm_keras.variants":
        importlib.import_module("lstm_keras.layers")  # every Keras class registered, as before
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value  # looked up once
    return value


def _submodule(name: str):
    """`lstm_keras.layers` and the like, as an eager package would have them."""
    if name.startswith("__"):  # dunder probes (copy, pickle, doctest) are not submodules
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as e:
        if e.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])

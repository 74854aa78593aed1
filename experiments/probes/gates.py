"""Which gate of a trained cell plays the forget gate, read at every step of id-encoded sentences."""

from __future__ import annotations

import keras
import numpy as np

import lstm_keras as lk


def keep_gate_name(layer) -> str | None:
    """The gate whose value 1 keeps the previous state: 'f' (LSTM), 'z' or '1-z' (GRU, by whether
    the variant's z keeps or writes), None when the variant has none (NFG, NUG)."""
    cell = layer.cell
    if isinstance(cell, lk.LSTMCell):
        return "f" if cell.variant.has_forget_gate else None
    if isinstance(cell, lk.GRUCell):
        if cell.variant.update_gate is None:
            return None
        return "z" if cell.variant.update_keeps_state else "1-z"
    raise ValueError(f"Expected an lstm_keras LSTM or GRU layer; got {type(layer).__name__}.")


def convention(layer) -> str:
    """One sentence on what the probe reads as the keep ("forget") gate of `layer`."""
    name = keep_gate_name(layer)
    cell = layer.cell
    if isinstance(cell, lk.GRUCell):
        if name is None:
            return f"GRU {cell.variant.name}: no update gate, nothing to read."
        mix = "z ⊙ h_{t−1} + (1 − z) ⊙ h̃_t" if name == "z" else "z ⊙ h̃_t + (1 − z) ⊙ h_{t−1}"
        return (
            f"GRU {cell.variant.name}: h_t = {mix}, so {name} keeps the old state; the probe reads "
            f"{name} as the forget-gate analogue (1 = keep, a drop = forgetting)."
        )
    if name is None:
        return f"LSTM {cell.variant.name}: no forget gate (f ≡ 1), nothing to read."
    coupled = " (coupled: f = 1 − i)" if cell.variant.forget_gate == "coupled" else ""
    return f"LSTM {cell.variant.name}: c_t = f ⊙ c_{{t−1}} + i ⊙ g; the probe reads f{coupled} (1 = keep)."


def keep_gate_trace(model: keras.Model, layer, x: np.ndarray) -> np.ndarray | None:
    """(batch, timesteps, units): the keep gate at every step of the id rows `x` (0 = padding,
    masked as the model masks it), or None when the cell has no such gate."""
    name = keep_gate_name(layer)
    if name is None:
        return None
    features = keras.Model(model.input, layer.input)(x, training=False)
    if isinstance(features, (list, tuple)):  # a functional layer input carries its mask along
        features = features[0]
    trace = lk.gate_trace(layer, features, mask=np.asarray(x) != 0)
    return 1.0 - trace["z"] if name == "1-z" else trace[name]

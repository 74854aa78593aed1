"""What a run measures inside the network at each evaluation: gate statistics and gradient flow."""

from __future__ import annotations

import keras
import numpy as np

import lstm_keras as lk
from experiments.training.tasks.base import Task

SATURATED_LOW, SATURATED_HIGH = 0.05, 0.95


def learned_gates(layer) -> tuple[str, ...]:
    """Gates that the variant computes (fixed-open gates are constants, not statistics)."""
    cell = getattr(layer, "cell", None)
    if isinstance(cell, lk.LSTMCell):
        return tuple(g for g, mode in cell.variant.gates.items() if mode != "open")
    if isinstance(cell, lk.GRUCell):
        return tuple(g for g, spec in cell.variant.gates.items() if spec is not None)
    return ()


def _features(model: keras.Model, layer, x: np.ndarray):
    """The recurrent layer's input for `x` (the embedding's or the raw features), without mask."""
    features = keras.Model(model.input, layer.input)(x, training=False)
    return features[0] if isinstance(features, (list, tuple)) else features


def _mask(task: Task, x: np.ndarray) -> np.ndarray | None:
    return (x != 0) if task.mask_zero else None


def gate_statistics(model: keras.Model, layer, task: Task, x: np.ndarray) -> tuple[dict, dict]:
    """(metrics, activations): per gate its mean and saturated fractions over real steps.

    Metric names: `gate_<g>_mean`, `gate_<g>_sat_low` (< 0.05), `gate_<g>_sat_high` (> 0.95).
    `activations` holds each gate's values (flattened) for the histograms.
    """
    gates = learned_gates(layer)
    if not gates:
        return {}, {}
    mask = _mask(task, x)
    trace = lk.gate_trace(layer, _features(model, layer, x), mask=mask)
    metrics, values = {}, {}
    for g in gates:
        v = trace[g]
        v = v[mask] if mask is not None else v.reshape(-1, v.shape[-1])
        v = v.reshape(-1)
        values[g] = v
        metrics[f"gate_{g}_mean"] = float(v.mean())
        metrics[f"gate_{g}_sat_low"] = float((v < SATURATED_LOW).mean())
        metrics[f"gate_{g}_sat_high"] = float((v > SATURATED_HIGH).mean())
    return metrics, values


def loss_function(task: Task):
    if task.loss == "mse":
        return keras.losses.MeanSquaredError()
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def gradient_flow_probe(model: keras.Model, layer, task: Task) -> lk.GradientFlow:
    """The run's gradient-flow probe: traced at its first call, reused at every evaluation."""
    return lk.GradientFlow(model, loss_function(task), layer=layer)


def gradient_flow(
    model: keras.Model, layer, task: Task, x: np.ndarray, y: np.ndarray, probe: lk.GradientFlow | None = None
) -> dict[str, np.ndarray]:
    """‖∂L/∂h_t‖ (and ‖∂L/∂c_t‖) over t, in time order."""
    probe = probe or gradient_flow_probe(model, layer, task)
    return probe(x, y, mask=_mask(task, x))


def flow_ratio(flow: dict[str, np.ndarray]) -> float:
    """‖∂L/∂h_1‖ / ‖∂L/∂h_T‖: how much of the last step's gradient reaches the first."""
    h = flow["h"]
    return float(h[0] / h[-1]) if h[-1] > 0 else float("nan")

"""Diagnostics: what the gates do at every step, and how gradients flow back through time."""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
from keras import ops

from lstm_keras.base_cell import GatedCell


def _cell_of(layer) -> GatedCell:
    cell = getattr(layer, "cell", layer)
    if not isinstance(cell, GatedCell):
        raise ValueError(
            f"Expected an lstm_keras LSTM/GRU layer or cell (or keras.layers.RNN over one); "
            f"got {type(layer).__name__}."
        )
    return cell


def _recurrent_cell(layer):
    """The cell of any Keras recurrent layer (ours, SimpleRNN, keras LSTM/GRU) or a cell."""
    cell = getattr(layer, "cell", layer)
    if not (isinstance(cell, GatedCell) or hasattr(cell, "state_size")):
        raise ValueError(f"Expected a recurrent layer or cell; got {type(layer).__name__}.")
    return cell


def _unroll(cell, inputs, initial_state=None, go_backwards=False, mask=None):
    """Python-unrolled forward pass; yields (h, states, gates) per processed step.

    Works for our cells (gates reported) and any Keras RNN cell (no gates). Where `mask`
    (batch, timesteps) is false the step is skipped as keras.layers.RNN skips it: states
    and output carry over unchanged.
    """
    x = ops.convert_to_tensor(inputs, dtype=cell.compute_dtype)
    if not cell.built:
        cell.build(tuple(x.shape[:1]) + tuple(x.shape[2:]))
    if initial_state is None:
        initial_state = cell.get_initial_state(batch_size=x.shape[0])
    states = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
    gated = isinstance(cell, GatedCell)
    projected = cell.project_inputs(x) if gated else x
    h = ops.zeros((x.shape[0], cell.units), dtype=x.dtype)
    steps = range(x.shape[1] - 1, -1, -1) if go_backwards else range(x.shape[1])
    for t in steps:
        if gated:
            new_h, new_states, gates = cell.recurrent_step(projected[:, t], states, training=False)
        else:
            new_h, new_states = cell(x[:, t], states, training=False)
            gates = {}
            if not isinstance(new_states, (list, tuple)):
                new_states = [new_states]
        if mask is not None:
            keep = ops.expand_dims(ops.convert_to_tensor(mask[:, t]), -1)
            new_h = ops.where(keep, new_h, h)
            new_states = [ops.where(keep, new, old) for new, old in zip(new_states, states)]
        h, states = new_h, list(new_states)
        yield h, states, gates


def gate_trace(layer, inputs, initial_state=None, mask=None) -> dict[str, np.ndarray]:
    """Every gate's activation and the states at every step.

    Args:
        layer: An `lstm_keras.LSTM`/`GRU` layer, a `keras.layers.RNN` over one of our cells,
            or the cell itself.
        inputs: The layer's input, `(batch, timesteps, features)`.
        initial_state: Optional list of initial states.
        mask: Optional boolean `(batch, timesteps)`; masked steps carry the states over.

    Returns:
        A dict of arrays `(batch, timesteps, units)` in processing order: for an LSTM
        `i`, `f`, `g` (candidate), `o`, `c`, `h`; for a GRU `z`, `r`, `h_cand`, `h`. A gate
        that the variant fixes open is reported as ones (CIFG's coupled f as 1 − i).
    """
    cell = _cell_of(layer)
    trace: dict[str, list] = {}
    go_backwards = getattr(layer, "go_backwards", False)
    for h, states, gates in _unroll(cell, inputs, initial_state, go_backwards, mask):
        named = {("h_cand" if k == "h" else k): v for k, v in gates.items()}
        named["h"] = h
        if len(states) > 1:
            named["c"] = states[1]
        for key, value in named.items():
            trace.setdefault(key, []).append(ops.ones_like(h) if value is None else value)
    return {k: np.stack([ops.convert_to_numpy(v) for v in vs], axis=1) for k, vs in trace.items()}


def _split_model(model: keras.Model, layer):
    """Functions before and after `layer` in `model` (Sequential or single-path functional)."""
    if isinstance(model, keras.Sequential):
        index = model.layers.index(layer)

        def before(x):
            for lyr in model.layers[:index]:
                x = lyr(x)
            return x

        def after(y):
            for lyr in model.layers[index + 1 :]:
                y = lyr(y)
            return y

        return before, after
    before = keras.Model(model.input, layer.input)
    after = keras.Model(layer.output, model.output)
    return before, after


def gradient_flow(
    model: keras.Model,
    inputs,
    targets,
    loss_fn: Callable,
    layer=None,
    mask=None,
) -> dict[str, np.ndarray]:
    """‖∂L/∂h_t‖ (and ‖∂L/∂c_t‖ for LSTMs) for every step t of one recurrent layer.

    The derivative is the total one: through every later step and the rest of the model, the
    quantity the vanishing-gradient arguments are about. Norms are Frobenius norms over the
    batch and the units of the gradient of the (mean) loss.

    Args:
        model: A built `keras.Sequential` or single-path functional model.
        inputs, targets: One batch.
        loss_fn: `loss_fn(targets, predictions)` → scalar or per-example losses.
        layer: The recurrent layer to probe (ours, or any Keras RNN such as SimpleRNN);
            default the first lstm_keras layer in `model`.
        mask: Optional boolean `(batch, timesteps)` for padded inputs; by default the mask
            the layer receives in a functional model (e.g. from `Embedding(mask_zero=True)`).

    Returns:
        `{"h": (T,), "c": (T,)}` (no `"c"` for a GRU), indexed by processing step, plus
        `"loss"`, the loss value.
    """
    if keras.backend.backend() != "tensorflow":
        raise NotImplementedError(
            f"gradient_flow supports the 'tensorflow' backend; got {keras.backend.backend()!r}."
        )
    import tensorflow as tf

    if layer is None:
        layer = next(lyr for lyr in model.layers if isinstance(getattr(lyr, "cell", None), GatedCell))
    cell = _recurrent_cell(layer)
    before, after = _split_model(model, layer)
    x = before(ops.convert_to_tensor(inputs))
    if isinstance(x, (list, tuple)):  # a functional layer input carries its mask along
        x, carried = x
        mask = carried if mask is None else mask
    with tf.GradientTape() as tape:
        hs, cs = [], []
        for h, states, _ in _unroll(cell, x, go_backwards=layer.go_backwards, mask=mask):
            hs.append(h)
            if len(states) > 1:
                cs.append(states[1])
        output = ops.stack(hs, axis=1) if layer.return_sequences else hs[-1]
        loss = ops.mean(loss_fn(ops.convert_to_tensor(targets), after(output)))
    grads = tape.gradient(loss, hs + cs)
    norms = [float(np.linalg.norm(g.numpy())) if g is not None else 0.0 for g in grads]
    result = {"h": np.array(norms[: len(hs)]), "loss": float(loss)}
    if cs:
        result["c"] = np.array(norms[len(hs) :])
    return result

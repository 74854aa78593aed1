"""Diagnostics: what the gates do at every step, and how gradients flow back through time."""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
from keras import ops

from lstm_keras.base_cell import GatedCell
from lstm_keras.lstm_cell import LSTMCell


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


def _unroll(cell, inputs, initial_state=None, go_backwards=False, mask=None, zero_output_for_mask=False):
    """Python-unrolled forward pass; yields (output, states, gates) per processed step.

    Works for our cells (gates reported) and any Keras RNN cell (no gates). Where `mask`
    (batch, timesteps) is false the step is skipped as keras.layers.RNN skips it: the states
    carry over, and the output repeats the previous output (zeros before the first unmasked
    step, whatever the initial state; zeros at every masked step with `zero_output_for_mask`).
    The output is computed from states[0], so a gradient with respect to states[0] is the total
    one, through the output and the next step.
    """
    x = ops.convert_to_tensor(inputs, dtype=cell.compute_dtype)
    if not cell.built:
        cell.build(tuple(x.shape[:1]) + tuple(x.shape[2:]))
    if initial_state is None:
        initial_state = cell.get_initial_state(batch_size=x.shape[0])
    states = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
    gated = isinstance(cell, GatedCell)
    projected = cell.project_inputs(x) if gated else x
    zeros = ops.zeros((x.shape[0], cell.units), dtype=x.dtype)
    started = ops.zeros((x.shape[0], 1), dtype="bool")  # has the row had an unmasked step yet?
    steps = range(x.shape[1] - 1, -1, -1) if go_backwards else range(x.shape[1])
    for t in steps:
        if gated:
            _, new_states, gates = cell.recurrent_step(projected[:, t], states, training=False)
        else:
            _, new_states = cell(x[:, t], states, training=False)
            gates = {}
        new_states = list(new_states) if isinstance(new_states, (list, tuple)) else [new_states]
        if mask is None:
            states, output = new_states, new_states[0]  # h is states[0] in every Keras RNN cell
        else:
            keep = ops.expand_dims(ops.convert_to_tensor(mask[:, t]), -1)
            states = [ops.where(keep, new, old) for new, old in zip(new_states, states)]
            started = ops.logical_or(started, keep)
            # Keras repeats the previous output, which is the carried h once the row has
            # started, and zeros before: written from states[0], so gradients reach it.
            output = ops.where(keep if zero_output_for_mask else started, states[0], zeros)
        yield output, states, gates


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
        that the variant fixes open is reported as ones (CIFG's coupled f as 1 − i). `h` is
        the layer's output sequence and `c` its cell state, both as `keras.layers.RNN` has them
        under a mask (a masked step carries the state over and repeats the previous output).
    """
    cell = _cell_of(layer)
    trace: dict[str, list] = {}
    go_backwards = getattr(layer, "go_backwards", False)
    zero_output = getattr(layer, "zero_output_for_mask", False)
    for h, states, gates in _unroll(cell, inputs, initial_state, go_backwards, mask, zero_output):
        named = {("h_cand" if k == "h" else k): v for k, v in gates.items()}
        named["h"] = h
        if len(states) > 1:
            named["c"] = states[1]
        for key, value in named.items():
            trace.setdefault(key, []).append(ops.ones_like(h) if value is None else value)
    return {k: np.stack([ops.convert_to_numpy(v) for v in vs], axis=1) for k, vs in trace.items()}


def _needs_autograph(cell) -> bool:
    """Whether tracing through `cell` may need AutoGraph: not for ours or Keras's own cells."""
    return not (isinstance(cell, GatedCell) or type(cell).__module__.startswith("keras."))


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


def _n_states(cell) -> int:
    size = cell.state_size
    return len(size) if isinstance(size, (list, tuple)) else 1


class GradientFlow:
    """‖∂L/∂h_t‖ (and ‖∂L/∂c_t‖ for LSTMs) for every step t of one recurrent layer, as a probe
    that is traced once and called at every evaluation.

    The derivative is the total one: through every later step and the rest of the model, the
    quantity the vanishing-gradient arguments are about. Norms are Frobenius norms over the
    batch and the units of the gradient of the (mean) loss. One backward pass gives all of
    them: the layer is rerun in a `tf.while_loop` that adds a zero tensor ε_t to h_t (and to
    c_t before h_t reads it), so ∂L/∂ε_t = ∂L/∂h_t for every t at once, and the traced graph
    does not grow with the length. (A Keras `LSTMCell` cannot take ε inside its step: that
    layer is unrolled eagerly, step by step, with the same result.)

    Args:
        model: A built `keras.Sequential` or single-path functional model.
        loss_fn: `loss_fn(targets, predictions)` → scalar or per-example losses.
        layer: The recurrent layer to probe (ours, or any Keras RNN such as SimpleRNN);
            default the first lstm_keras layer in `model`.

    Call arguments:
        inputs, targets: One batch.
        mask: Optional boolean `(batch, timesteps)` for padded inputs; by default the mask
            the layer receives in a functional model (e.g. from `Embedding(mask_zero=True)`).
            Masked steps carry the states over, as `keras.layers.RNN` does.

    Returns:
        `{"h": (T,), "c": (T,)}` (no `"c"` without a cell state), indexed by processing step,
        plus `"loss"`, the loss value.

    Example:

    >>> probe = GradientFlow(model, keras.losses.MeanSquaredError())
    >>> flow = probe(x, y)
    >>> flow["h"][0] / flow["h"][-1]  # how much of the last step's gradient reaches the first
    """

    def __init__(self, model: keras.Model, loss_fn: Callable, layer=None):
        if keras.backend.backend() != "tensorflow":
            raise NotImplementedError(
                f"gradient_flow supports the 'tensorflow' backend; got {keras.backend.backend()!r}."
            )
        import tensorflow as tf

        if layer is None:
            layer = next(lyr for lyr in model.layers if isinstance(getattr(lyr, "cell", None), GatedCell))
        self.layer, self.loss_fn = layer, loss_fn
        self.cell = _recurrent_cell(layer)
        self.before, self.after = _split_model(model, layer)
        self.one_pass = isinstance(self.cell, GatedCell) or _n_states(self.cell) == 1
        # AutoGraph rewrites Python control flow on tensors; our cells and Keras's have none (the
        # loop is an explicit tf.while_loop), so for them it would only re-parse the source:
        # about a second per process for the same graph. Other cells keep it.
        self._traced = tf.function(
            self._one_pass, reduce_retracing=True, autograph=_needs_autograph(self.cell)
        )

    def __call__(self, inputs, targets, mask=None) -> dict[str, np.ndarray]:
        x = self.before(ops.convert_to_tensor(inputs))
        if isinstance(x, (list, tuple)):  # a functional layer input carries its mask along
            x, carried = x
            mask = carried if mask is None else mask
        if mask is None:  # all steps real: one traced signature for masked and unmasked calls
            mask = np.ones(tuple(x.shape[:2]), dtype=bool)
        # As 0/1 floats: exact blends, and oneDNN logs an error line for bool tensors on CPUs
        # without AVX-512.
        mask = ops.cast(ops.convert_to_tensor(mask), x.dtype)
        args = (x, ops.convert_to_tensor(targets), mask)
        loss, h, c = self._traced(*args) if self.one_pass else self._unrolled(*args)
        result = {"h": np.asarray(h, np.float64), "loss": float(loss)}
        if c is not None:
            result["c"] = np.asarray(c, np.float64)
        return result

    def _loss(self, output, targets):
        return ops.mean(self.loss_fn(targets, self.after(output)))

    def _one_pass(self, x, targets, mask):
        import tensorflow as tf

        cell, layer = self.cell, self.layer
        x = tf.cast(x, cell.compute_dtype)
        xs, keeps = tf.transpose(x, [1, 0, 2]), tf.transpose(mask, [1, 0])
        if layer.go_backwards:
            xs, keeps = tf.reverse(xs, [0]), tf.reverse(keeps, [0])
        length = xs.shape[0] if xs.shape[0] is not None else tf.shape(xs)[0]
        states = cell.get_initial_state(batch_size=tf.shape(x)[0])
        states = list(states) if isinstance(states, (list, tuple)) else [states]
        has_c = len(states) > 1
        zero_output = getattr(layer, "zero_output_for_mask", False)
        zeros = tf.zeros(tf.stack([length, tf.shape(x)[0], cell.units]), x.dtype)
        eps_h, eps_c = tf.identity(zeros), tf.identity(zeros)

        def unstack(t):
            return tf.TensorArray(t.dtype, size=length).unstack(t)

        with tf.GradientTape() as tape:
            tape.watch([eps_h, eps_c])
            steps, kept, push_h, push_c = unstack(xs), unstack(keeps), unstack(eps_h), unstack(eps_c)

            def body(t, states, outputs):
                x_t, keep = steps.read(t), kept.read(t)[:, None]

                def carry(new, old):  # keras.layers.RNN's masking: a padded step keeps the old state
                    return keep * new + (1.0 - keep) * old

                if isinstance(cell, GatedCell):
                    # In an LSTM, ε_t joins c_t inside the step, before h_t reads it.
                    shift = {"c_shift": push_c.read(t)} if isinstance(cell, LSTMCell) else {}
                    h, new_states, _ = cell.recurrent_step(cell.project_inputs(x_t), states, **shift)
                else:
                    h, new_states = cell(x_t, states, training=False)
                new_states = list(new_states) if isinstance(new_states, (list, tuple)) else [new_states]
                h = carry(h, states[0]) + push_h.read(t)  # h_t + ε_t
                rest = [carry(n, o) for n, o in zip(new_states[1:], states[1:])]
                if has_c:  # a masked step carries c_{t-1} over: ε_t joins it there
                    rest[0] = carry(new_states[1], states[1] + push_c.read(t))
                out = h * keep if zero_output else h  # keras.layers.RNN's zero_output_for_mask
                return t + 1, [h, *rest], outputs.write(t, out)

            _, states, outputs = tf.while_loop(
                lambda t, *_: t < length,
                body,
                (tf.constant(0), states, tf.TensorArray(x.dtype, size=length)),
                maximum_iterations=length,
            )
            output = tf.transpose(outputs.stack(), [1, 0, 2]) if layer.return_sequences else states[0]
            loss = self._loss(output, targets)
        d_h, d_c = tape.gradient(loss, [eps_h, eps_c], unconnected_gradients=tf.UnconnectedGradients.ZERO)

        def norms(d):
            return tf.sqrt(tf.reduce_sum(tf.square(tf.cast(d, tf.float64)), axis=[1, 2]))

        return loss, norms(d_h), (norms(d_c) if has_c else None)

    def _unrolled(self, x, targets, mask):
        """Eagerly, step by step, asking the tape for each step's own h_t and c_t tensors."""
        import tensorflow as tf

        layer = self.layer
        with tf.GradientTape() as tape:
            outputs, hs, cs = [], [], []
            mask = None if np.all(mask) else np.asarray(mask) > 0.5
            zero_output = getattr(layer, "zero_output_for_mask", False)
            for out, states, _ in _unroll(self.cell, x, None, layer.go_backwards, mask, zero_output):
                outputs.append(out)
                hs.append(states[0])  # the output is computed from it: ∂L/∂h_t is the total one
                cs.extend(states[1:2])
            output = ops.stack(outputs, axis=1) if layer.return_sequences else outputs[-1]
            loss = self._loss(output, targets)
        grads = tape.gradient(loss, hs + cs)
        norms = [np.linalg.norm(np.asarray(g, np.float64)) if g is not None else 0.0 for g in grads]
        return loss, norms[: len(hs)], (norms[len(hs) :] or None)


def gradient_flow(
    model: keras.Model,
    inputs,
    targets,
    loss_fn: Callable,
    layer=None,
    mask=None,
) -> dict[str, np.ndarray]:
    """‖∂L/∂h_t‖ (and ‖∂L/∂c_t‖ for LSTMs) for every step t of one recurrent layer, once.

    `GradientFlow(model, loss_fn, layer)(inputs, targets, mask)`: see `GradientFlow` (which a
    caller probing the same model repeatedly keeps, so that it is traced once).
    """
    return GradientFlow(model, loss_fn, layer=layer)(inputs, targets, mask=mask)

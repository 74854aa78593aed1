"""The tf_while engine: one `tf.while_loop` over the cell's own `recurrent_step`.

`keras.layers.RNN` runs a general loop (nested states, masks, constants, per-step Layer calls
that re-read every variable). For the common case — no mask, not stateful, no dropout in
training — this engine runs the same cell step with the weights read once before the loop,
a fixed trip count (`maximum_iterations=T`), and `steps_per_iteration` steps written out per
loop iteration, which saves the loop's per-iteration bookkeeping. The sequence layers choose
it with `engine="auto" | "tf_while"`; anywhere it cannot apply they fall back to the plain
`keras.layers.RNN` path, so results never depend on which engine ran (tested to 1e-5).

This is the one module of the library that uses `tf.*`: it is only imported on the TensorFlow
backend.
"""

from __future__ import annotations

import tensorflow as tf
from keras import ops, tree


def unsupported_reason(layer, mask, training) -> str | None:
    """Why the tf_while engine cannot run this call (None: it can)."""
    if mask is not None:
        return "a mask"
    if layer.stateful:
        return "stateful=True"
    if layer.unroll:
        return "unroll=True"
    cell = layer.cell
    if training and (cell.dropout > 0 or cell.recurrent_dropout > 0):
        return "dropout in training"
    return None


def run(layer, sequences, initial_state, training, steps_per_iteration: int):
    """What `keras.layers.RNN.call` returns for `layer`, computed with one `tf.while_loop`."""
    cell = layer.cell
    inputs = tf.transpose(sequences, [1, 0, 2])  # time-major: the loop reads step t
    if layer.go_backwards:
        inputs = tf.reverse(inputs, [0])
    length = inputs.shape[0] if inputs.shape[0] is not None else tf.shape(inputs)[0]
    if initial_state is None:
        initial_state = cell.get_initial_state(batch_size=tf.shape(sequences)[0])
    states = list(tree.flatten(initial_state))
    # Every weight read once, before the loop; the step sees tensors, not variables.
    weights = tree.map_structure(
        lambda w: None if w is None else ops.convert_to_tensor(w), cell.step_weights()
    )
    steps = tf.TensorArray(inputs.dtype, size=length, clear_after_read=True).unstack(inputs)
    outputs = tf.TensorArray(sequences.dtype, size=length) if layer.return_sequences else None

    def one_step(t, states, outputs):
        x_proj = cell.project_inputs(steps.read(t), weights=weights)
        h, new_states, _ = cell.recurrent_step(x_proj, states, training, weights=weights)
        if outputs is not None:
            outputs = outputs.write(t, h)
        return list(tree.flatten(new_states)), outputs

    # k steps written out per iteration (a known length's remainder after the loop).
    static = isinstance(length, int)
    k = max(1, min(steps_per_iteration, length)) if static else 1

    def body(t, states, *outputs):
        out = outputs[0] if outputs else None
        for j in range(k):
            states, out = one_step(t + j, states, out)
        return (t + k, states, *([out] if outputs else []))

    loop_vars = (tf.constant(0, tf.int32), states, *([outputs] if outputs is not None else []))
    t, states, *outputs = tf.while_loop(
        lambda t, *_: t < length - length % k if static else t < length,
        body,
        loop_vars,
        maximum_iterations=length // k if static else length,
    )
    out = outputs[0] if outputs else None
    for j in range(length % k if static else 0):
        states, out = one_step(t + j, states, out)
    if layer.return_sequences:
        output = tf.transpose(out.stack(), [1, 0, 2])
        if static:
            output.set_shape([sequences.shape[0], length, cell.output_size])
    else:
        output = states[0]
    if layer.return_state:
        return output, *states
    return output

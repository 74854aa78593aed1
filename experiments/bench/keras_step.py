"""The Keras contenders' training step: the bare compiled step the experiments' Trainer runs.

`model.train_on_batch` wraps the same graph in per-call Python (the data adapter, the loss
tracker, the logs turned into NumPy): about 3 ms a call at the char-LM shape on 2 cores, the
same for every Keras contender and absent from PyTorch's plain loop. The benchmark compares
layers, so every contender gets its framework's bare step: here forward, loss, backward and the
optimiser's update in one `tf.function`, with the loss read back to Python as PyTorch's
`loss.item()` is.
"""

from __future__ import annotations

from collections.abc import Callable


def compiled_step(model, x, y) -> Callable[[], float]:
    """A function that runs one training step of the compiled `model` on (x, y) and returns the
    loss: `model.loss` and `model.optimizer` as `model.compile` set them."""
    import tensorflow as tf

    inputs, targets = tf.constant(x), tf.constant(y)
    variables = model.trainable_variables
    model.optimizer.build(variables)

    # No AutoGraph, as in experiments.training.trainer: there is no control flow to convert.
    @tf.function(autograph=False)
    def step():
        with tf.GradientTape() as tape:
            loss = model.loss(targets, model(inputs, training=True))
        model.optimizer.apply(tape.gradient(loss, variables), variables)
        return loss

    return lambda: float(step())

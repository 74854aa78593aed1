"""PyTorch's `nn.LSTM` and `nn.GRU` as benchmark contenders, doing the work of the Keras step.

`experiments.benchmark.build_model` is Embedding (for tokens) → recurrent layer → Dense head,
trained by a compiled step (`experiments.bench.keras_step`) with Adam(1e-3) on sparse
cross-entropy per step (or MSE on the last step's output). The step here is the same: forward,
loss, backward, one Adam update, in float32 on the same batch, with the loss read back as the
Keras step does. torch is an optional extra (`pip install .[bench]`); without it the benchmark
says so and times the rest.
"""

from __future__ import annotations

import contextlib
import os

KINDS = ("LSTM", "GRU")


def torch_or_reason():
    """(the torch module, None), or (None, why it cannot be used)."""
    try:
        import torch
    except ImportError as e:  # also what `sys.modules["torch"] = None` raises
        return None, f"PyTorch not installed: {e} (pip install '.[bench]' adds it)"
    return torch, None


def set_threads(torch, intra: int, inter: int) -> None:
    """Give torch the thread counts TensorFlow runs with. The inter-op pool can only be sized
    before torch first uses it; a second call (several shapes in one process) keeps the first."""
    torch.set_num_threads(intra)
    # TensorFlow flushes denormals to zero in its threads; without this, the adding shape's
    # vanishing gradients (loss on the last step only) run torch ~10× slower on denormal floats.
    torch.set_flush_denormal(True)
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(inter)


def tf_threads() -> tuple[int, int]:
    """TensorFlow's intra- and inter-op thread counts, 0 (its default) read as every usable core."""
    import tensorflow as tf

    cores = len(os.sched_getaffinity(0))
    return (
        tf.config.threading.get_intra_op_parallelism_threads() or cores,
        tf.config.threading.get_inter_op_parallelism_threads() or cores,
    )


def prepare(threads: int = 0):
    """Set TensorFlow to `threads` (0: its default) and torch to TensorFlow's thread counts;
    (torch, None), or (None, why PyTorch cannot be used)."""
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    torch, reason = torch_or_reason()
    if torch is not None:
        set_threads(torch, *tf_threads())
    return torch, reason


def build(torch, shape, kind: str):
    """The model of `build_model(shape, keras.layers.<kind>)` in torch: a ModuleDict."""
    nn = torch.nn
    width = shape.embedding or shape.features
    parts = {
        "rnn": getattr(nn, kind)(width, shape.units, batch_first=True),
        "head": nn.Linear(shape.units, shape.outputs),
    }
    if shape.embedding:
        parts["embed"] = nn.Embedding(shape.features, shape.embedding)
    return nn.ModuleDict(parts)


def param_count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def train_step(torch, shape, model, x, y):
    """A function that runs one training step on (x, y), NumPy arrays from `_batch`."""
    xs = torch.from_numpy(x).long() if shape.embedding else torch.from_numpy(x)
    ys = torch.from_numpy(y).long() if shape.per_step else torch.from_numpy(y)
    # Keras's Adam: learning rate 1e-3, betas 0.9 / 0.999, epsilon 1e-7 (torch's default is 1e-8).
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    loss_fn = torch.nn.CrossEntropyLoss() if shape.per_step else torch.nn.MSELoss()

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        inputs = model["embed"](xs) if shape.embedding else xs
        h, _ = model["rnn"](inputs)
        logits = model["head"](h if shape.per_step else h[:, -1])
        if shape.per_step:
            loss = loss_fn(logits.reshape(-1, shape.outputs), ys.reshape(-1))
        else:
            loss = loss_fn(logits, ys)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def contenders(torch, shape, x, y, seed: int = 0) -> dict:
    """name → (step function, parameter count) for `torch.LSTM` and `torch.GRU`."""
    torch.manual_seed(seed)
    out = {}
    for kind in KINDS:
        model = build(torch, shape, kind)
        out[f"torch.{kind}"] = (train_step(torch, shape, model, x, y), param_count(model))
    return out

"""The fused engine: LSTM and GRU steps with all T steps in one C++ TensorFlow op.

The lean `tf.while_loop` engine (tf_engine.py) still pays TensorFlow's fixed price per op, a
dozen ops per step forwards and more backwards, which on a small CPU costs more than the step's
arithmetic. `kernels/fused_rnn.cc` runs the whole recurrence in one op per direction
(forward, backward), the way cuDNN does on a GPU:

    forward   xp = W x + b for every step           one large product, TensorFlow
              z_t = xp_t + R h_{t-1}; gates; c, h    the op, step by step
    backward  ∂L/∂z_t for t = T … 1                  the op, step by step
              ∂R = Σ_t h_{t-1}ᵀ ∂L/∂z_t              one large product, TensorFlow

The LSTM kernel takes the variant as attributes (gate modes learned / open / coupled,
peepholes, candidate and output activation among `KERNEL_ACTIVATIONS`), so it covers every
`LSTMVariant` but FGR's gate recurrence; the GRU kernel computes Keras's GRU (`variant="keras"`).
Anything it does not cover (FGR, other GRU variants, other activations, σ replaced, masks,
dropout in training, a GPU, another dtype) runs on the lean engine or on `keras.layers.RNN`.

The kernel is compiled once per machine and TensorFlow version with the system's C++ compiler
(`python -m lstm_keras.fused_engine build`, which `make setup` runs; else on first use) into
`$LSTM_KERAS_KERNEL_CACHE` (default `~/.cache/lstm_keras`).

This module is only imported on the TensorFlow backend.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import tensorflow as tf
from keras import tree

from lstm_keras import tf_engine
from lstm_keras.activations import serialize_activation
from lstm_keras.lstm_cell import LSTMCell

SOURCE = Path(__file__).parent / "kernels" / "fused_rnn.cc"
CXX_FLAGS = ["-std=c++17", "-O3", "-march=native", "-shared", "-fPIC", "-Wno-deprecated-declarations"]

_library = None  # the loaded op module, once built
_library_error: str | None = None  # why it could not be built or loaded


class KernelBuildError(RuntimeError):
    pass


def _cpu_signature() -> str:
    """What `-march=native` compiled for: a kernel built on one CPU must not run on another."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return "|".join(sorted({ln for ln in lines if ln.startswith(("model name", "flags"))}))
    except OSError:
        return platform.processor() or platform.machine()


def library_path() -> Path:
    """Where the kernel for this source, TensorFlow version, compiler flags and CPU lives."""
    key = hashlib.sha256(
        b"\0".join(
            s.encode() if isinstance(s, str) else s
            for s in (SOURCE.read_bytes(), tf.__version__, " ".join(CXX_FLAGS), _cpu_signature())
        )
    ).hexdigest()[:16]
    cache = Path(os.environ.get("LSTM_KERAS_KERNEL_CACHE") or Path.home() / ".cache" / "lstm_keras")
    return cache / f"fused_rnn-tf{tf.__version__}-{key}.so"


def build(force: bool = False) -> Path:
    """Compile the kernel unless it is already there (safe to call from concurrent processes)."""
    target = library_path()
    if target.exists() and not force:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it right now
        if target.exists() and not force:
            return target
        cxx = os.environ.get("CXX", "g++")
        with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".so", delete=False) as tmp:
            partial = Path(tmp.name)
        command = [
            cxx,
            *CXX_FLAGS,
            *tf.sysconfig.get_compile_flags(),
            str(SOURCE),
            "-o",
            str(partial),
            *tf.sysconfig.get_link_flags(),
        ]
        try:
            result = subprocess.run(command, capture_output=True, text=True)
        except FileNotFoundError as e:
            partial.unlink(missing_ok=True)
            raise KernelBuildError(f"no C++ compiler {cxx!r} (set CXX)") from e
        if result.returncode != 0:
            partial.unlink(missing_ok=True)
            errors = [ln for ln in result.stderr.splitlines() if "error" in ln][:5]
            raise KernelBuildError(f"{cxx} failed ({result.returncode}): " + " | ".join(errors))
        os.replace(partial, target)  # atomic: a reader never sees half a library
    return target


def library():
    """The loaded op module, building it on first use; None if that failed (see `unavailable_reason`)."""
    global _library, _library_error
    if _library is None and _library_error is None:
        try:
            path = library_path()
            if not path.exists():
                print(f"lstm_keras: compiling the fused RNN kernel into {path} (once)", file=sys.stderr)
            _library = tf.load_op_library(str(build()))
            _register_gradients(_library)
        except (KernelBuildError, OSError, tf.errors.NotFoundError) as e:
            _library_error = f"the fused kernel is not available: {e}"
    return _library


def unavailable_reason() -> str | None:
    library()
    return _library_error


# Activations the kernel computes (and differentiates from their outputs) for φ and ψ.
KERNEL_ACTIVATIONS = ("tanh", "linear", "relu", "sigmoid", "2sigmoid-1", "4sigmoid-2")


def _activation_name(fn) -> str | None:
    name = serialize_activation(fn)
    return name if isinstance(name, str) else None


def _cell_reason(cell) -> str | None:
    """What of the cell's own configuration the kernel does not compute (None: it all is)."""
    if isinstance(cell, LSTMCell):
        if cell.variant.gate_recurrence:
            return f"variant={cell.variant.name!r} (gate recurrence)"
        supported = {"candidate_activation": KERNEL_ACTIVATIONS, "output_activation": KERNEL_ACTIVATIONS}
    else:
        if cell.variant.name != "keras":
            return f"variant={cell.variant.name!r} (the GRU kernel computes variant='keras')"
        supported = {"candidate_activation": ("tanh",)}
    supported["gate_activation"] = ("sigmoid",)
    for argument, choices in supported.items():
        name = _activation_name(getattr(cell, argument))
        if name not in choices:
            return f"{argument}={name or 'a custom function'!r} (the kernel has {', '.join(choices)})"
    return None


def unsupported_reason(layer, mask, training) -> str | None:
    """Why the fused kernel cannot run this call (None: it can)."""
    reason = tf_engine.unsupported_reason(layer, mask, training) or _cell_reason(layer.cell)
    if reason is not None:
        return reason
    cell = layer.cell
    if cell.compute_dtype != "float32":
        return f"compute dtype {cell.compute_dtype} (the kernel is float32)"
    if tf.config.list_logical_devices("GPU"):
        return "a GPU (the kernel runs on the CPU; Keras's cuDNN layers are the GPU's fused kernels)"
    return unavailable_reason()


LSTM_ATTRS = (
    "input_gate",
    "forget_gate",
    "output_gate",
    "peepholes",
    "candidate_activation",
    "output_activation",
)


def _register_gradients(lib) -> None:
    def previous_states(h0, h):
        return tf.concat([h0[:, None], h[:, :-1]], axis=1)  # h_{t-1} for t = 1 … T, batch-major

    def weight_gradient(h0, h, dz):
        """Σ_t h_{t-1}ᵀ ∂L/∂z_t as one product over every step."""
        units = h.shape[-1] or tf.shape(h)[-1]
        hp = tf.reshape(previous_states(h0, h), [-1, units])
        return tf.matmul(hp, tf.reshape(dz, [-1, tf.shape(dz)[-1]]), transpose_a=True)

    def zeros_if_none(grad, like):
        return tf.zeros_like(like) if grad is None else grad

    @tf.RegisterGradient("LstmSequence")
    def _lstm_gradient(op, dh, dc, _dact):
        _, r, p, h0, c0 = op.inputs
        h, c, act = op.outputs
        attrs = {k: op.get_attr(k) for k in LSTM_ATTRS}
        attrs = {k: v.decode() if isinstance(v, bytes) else v for k, v in attrs.items()}
        dz, dh0, dc0, dp = lib.lstm_sequence_grad(
            r, p, c0, c, act, zeros_if_none(dh, h), zeros_if_none(dc, c), **attrs
        )  # dp: i and f saw c_{t-1}, o saw c_t; zeros for a gate without a peephole
        return dz, weight_gradient(h0, h, dz), dp, dh0, dc0

    @tf.RegisterGradient("GruSequence")
    def _gru_gradient(op, dh, _dact):
        _, u, _, h0 = op.inputs
        h, act = op.outputs
        dxp, drec, dh0 = lib.gru_sequence_grad(u, h0, h, act, zeros_if_none(dh, h))
        return dxp, weight_gradient(h0, h, drec), tf.reduce_sum(drec, axis=[0, 1]), dh0


def run(layer, sequences, initial_state):
    """What `keras.layers.RNN.call` returns for `layer`, computed by the fused kernel."""
    lib = library()
    cell = layer.cell
    weights = tree.map_structure(
        lambda w: None if w is None else tf.convert_to_tensor(w), cell.step_weights()
    )
    inputs = tf.reverse(sequences, [1]) if layer.go_backwards else sequences
    batch, steps = tf.shape(inputs)[0], tf.shape(inputs)[1]
    # W x + b for every step in one product; everything stays batch-major (B, T, ·).
    xp = cell.project_inputs(tf.reshape(inputs, [-1, inputs.shape[-1]]), weights=weights)
    xp = tf.reshape(xp, [batch, steps, xp.shape[-1]])
    if initial_state is None:
        initial_state = cell.get_initial_state(batch_size=batch)
    states = [tf.convert_to_tensor(s, sequences.dtype) for s in tf.nest.flatten(initial_state)]
    if isinstance(cell, LSTMCell):
        v = cell.variant
        zeros = tf.zeros([cell.units], xp.dtype)
        peepholes = tf.stack([weights["peephole"].get(g, zeros) for g in "ifo"])
        h, c, _ = lib.lstm_sequence(
            xp,
            weights["recurrent_kernel"],
            peepholes,
            states[0],
            states[1],
            input_gate=v.input_gate,
            forget_gate=v.forget_gate,
            output_gate=v.output_gate,
            peepholes=bool(v.peephole_gates),
            candidate_activation=serialize_activation(cell.candidate_activation),
            output_activation=serialize_activation(cell.output_activation),
        )
        final = [h[:, -1], c[:, -1]]
    else:
        _, recurrent_bias = cell._biases(weights["bias"])
        if recurrent_bias is None:
            recurrent_bias = tf.zeros([3 * cell.units], xp.dtype)
        h, _ = lib.gru_sequence(xp, weights["recurrent_kernel"], recurrent_bias, states[0])
        final = [h[:, -1]]
    output = h if layer.return_sequences else final[0]
    if layer.return_sequences:
        output.set_shape([sequences.shape[0], sequences.shape[1], cell.units])
    if layer.return_state:
        return output, *final
    return output


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv not in (["build"], ["build", "--force"]):
        print("usage: python -m lstm_keras.fused_engine build [--force]", file=sys.stderr)
        return 2
    try:
        path = build(force="--force" in argv)
    except KernelBuildError as e:
        # Not fatal: the layers fall back to the lean engine. Say so and let setup go on.
        print(f"lstm_keras: {e}; the layers will use the tf_while engine", file=sys.stderr)
        return 0
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

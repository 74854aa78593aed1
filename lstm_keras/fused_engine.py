"""The fused engine: LSTM and GRU steps with all T steps in one C++ TensorFlow op.

The tf_while engine (tf_while_engine.py, one `tf.while_loop`) still pays TensorFlow's fixed price per op, a
dozen ops per step forwards and more backwards, which on a small CPU costs more than the step's
arithmetic. `kernels/fused_rnn.cc` runs the whole recurrence in one op per direction
(forward, backward), the way cuDNN does on a GPU:

    forward   xp = W x + b for every step           one large product, TensorFlow
              z_t = xp_t + R h_{t-1}; gates; c, h    the op, step by step
    backward  ∂L/∂z_t for t = T … 1                  the op, step by step
              ∂R = Σ_t h_{t-1}ᵀ ∂L/∂z_t              one large product, TensorFlow

The LSTM kernel takes the variant as attributes (gate modes learned / open / coupled,
peepholes, candidate and output activation among `KERNEL_ACTIVATIONS`) and FGR's gate-to-gate
matrix as an input, so it covers every `LSTMVariant`; the GRU kernel computes every `GRUVariant` (update gate
keeping, writing or absent; reset gate or none, after or before the product; U_z on h or tanh(h)).
Anything it does not cover (other activations, σ replaced, masks, dropout in training, a
GPU, another dtype) runs on the tf_while engine or on `keras.layers.RNN`.

The kernel is compiled once per machine and TensorFlow version with the system's C++ compiler
(`python -m lstm_keras.fused_engine build`, which `make setup` runs; else on first use), down a
ladder of compiler flags until one builds (lstm_keras/kernel_build.py); `LSTM_KERAS_FUSED=0`
switches it off on purpose.

This module is only imported on the TensorFlow backend.
"""

from __future__ import annotations

import contextlib
import sys
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

import tensorflow as tf
from keras import tree

from lstm_keras import fused_ops, kernel_build, tf_while_engine
from lstm_keras.activation_names import KERNEL_ACTIVATIONS, SIGMOID, TANH, kernel_code
from lstm_keras.activations import serialize_activation
from lstm_keras.fused_ops import gru_attrs
from lstm_keras.lstm_cell import LSTMCell
from lstm_keras.variants import GATE_MODES


@dataclass(frozen=True)
class Kernel:
    """A loaded build of the kernel: its ops, and the rung of the flag ladder it was built with."""

    module: object  # what tf.load_op_library returned
    rung: kernel_build.Rung
    path: Path
    suffix: str = ""  # the ops' name suffix of an extra build (kernel_build.build_rung)

    def op(self, op_type: str):
        """This build's Python function for the op `op_type` (LstmSequence, …)."""
        wanted = (op_type + self.suffix).lower()
        for attr in dir(self.module):
            # the snake_case wrapper (the CamelCase one takes keyword arguments only)
            if attr.islower() and attr.replace("_", "") == wanted:
                return getattr(self.module, attr)
        raise AttributeError(f"{self.path.name} has no op {op_type + self.suffix}")


_default: Kernel | None = None  # the build the layers use, once loaded
_default_error: str | None = None  # why it could not be built or loaded
_pinned: ContextVar[Kernel | None] = ContextVar("fused_kernel", default=None)


def _load(path: Path, rung: kernel_build.Rung, suffix: str = "") -> Kernel:
    return Kernel(tf.load_op_library(str(path)), rung, path, suffix)


def kernel() -> Kernel | None:
    """The kernel the layers run, building it on first use; None if it is switched off or could
    not be built (`unavailable_reason` says why; a failed build is said once, on stderr)."""
    global _default, _default_error
    if _default is not None or _default_error is not None:
        return _default
    _default_error = kernel_build.opted_out()
    if _default_error is not None:
        return None
    try:
        if kernel_build.cached() is None:
            print(
                f"lstm_keras: compiling the fused RNN kernel into {kernel_build.cache_dir()} (once)",
                file=sys.stderr,
            )
        result = kernel_build.build()
        if result.rung is None:
            raise kernel_build.KernelBuildError(
                f"no rung of the flag ladder built: {result.summary()}; "
                "rebuild with python -m lstm_keras.fused_engine build"
            )
        _default = _load(result.library, result.rung)
    except (kernel_build.KernelBuildError, OSError, tf.errors.NotFoundError) as e:
        _default_error = f"the fused kernel is not available: {e}"
        if not isinstance(e, kernel_build.NoCompilerError):
            print(f"lstm_keras: {_default_error}; LSTM/GRU layers use the tf_while engine", file=sys.stderr)
    return _default


def unavailable_reason() -> str | None:
    kernel()
    return _default_error


_rungs: dict[str, Kernel] = {}  # extra builds loaded in this process (ops register only once)


def load_rung(name: str) -> Kernel:
    """Another rung's build beside the default one (ops renamed), for side-by-side timing."""
    if name not in _rungs:
        rung = kernel_build.rung_named(name)
        _rungs[name] = _load(kernel_build.build_rung(rung), rung, kernel_build.op_suffix(rung))
    return _rungs[name]


@contextlib.contextmanager
def pinned(kernel: Kernel):
    """Layers traced inside this block run `kernel` instead of the default build."""
    token = _pinned.set(kernel)
    try:
        yield kernel
    finally:
        _pinned.reset(token)


def current() -> Kernel | None:
    """The build that layers traced here run: the pinned one, else the default (None: none)."""
    return _pinned.get() or kernel()


def record() -> dict[str, str]:
    """What a run records of the kernel: the rung and flags it was built with, or why there is none."""
    k = kernel()
    if k is None:
        return {"fused_kernel": "unavailable", "fused_kernel_reason": _default_error[:500]}
    return {"fused_kernel_rung": k.rung.name, "fused_kernel_flags": " ".join(k.rung.flags)}


def _activation_name(fn) -> str | None:
    name = serialize_activation(fn)
    return name if isinstance(name, str) else None


def _cell_reason(cell) -> str | None:
    """What of the cell's own configuration the kernel does not compute (None: it all is)."""
    if isinstance(cell, LSTMCell):
        supported = {"candidate_activation": KERNEL_ACTIVATIONS, "output_activation": KERNEL_ACTIVATIONS}
    else:
        supported = {"candidate_activation": (TANH,)}
    supported["gate_activation"] = (SIGMOID,)
    for argument, choices in supported.items():
        name = _activation_name(getattr(cell, argument))
        if name not in choices:
            return f"{argument}={name or 'a custom function'!r} (the kernel has {', '.join(choices)})"
    return None


def unsupported_reason(layer, mask, training) -> str | None:
    """Why the fused kernel cannot run this call (None: it can)."""
    reason = tf_while_engine.unsupported_reason(layer, mask, training) or _cell_reason(layer.cell)
    if reason is not None:
        return reason
    cell = layer.cell
    if cell.compute_dtype != "float32":
        return f"compute dtype {cell.compute_dtype} (the kernel is float32)"
    if tf.config.list_logical_devices("GPU"):
        return "a GPU (the kernel runs on the CPU; Keras's cuDNN layers are the GPU's fused kernels)"
    return unavailable_reason()


def run(layer, sequences, initial_state):
    """What `keras.layers.RNN.call` returns for `layer`, computed by the fused kernel."""
    k = current()
    cell = layer.cell
    weights = tree.map_structure(
        lambda w: None if w is None else tf.convert_to_tensor(w), cell.step_weights()
    )
    inputs = tf.reverse(sequences, [1]) if layer.go_backwards else sequences
    if initial_state is None:
        initial_state = cell.get_initial_state(batch_size=tf.shape(inputs)[0])
    states = [tf.convert_to_tensor(s, sequences.dtype) for s in tf.nest.flatten(initial_state)]
    call = _lstm if isinstance(cell, LSTMCell) else _gru
    # final: h_T (and c_T; for FGR, the learned gates of the last step: its third state)
    h, final = call(k, cell, weights, inputs, states, layer.return_sequences)
    output = h if layer.return_sequences else final[0]
    if layer.return_sequences:
        output.set_shape([sequences.shape[0], sequences.shape[1], cell.units])
    if layer.return_state:
        return output, *final
    return output


def _lstm(k, cell, weights: dict, inputs, states: list, return_sequences: bool):
    v, dtype = cell.variant, inputs.dtype
    zeros = tf.zeros([cell.units], dtype)
    peepholes = tf.stack([weights["peephole"].get(g, zeros) for g in "ifo"])
    attrs = {
        "input_gate": GATE_MODES.index(v.input_gate),
        "forget_gate": GATE_MODES.index(v.forget_gate),
        "output_gate": GATE_MODES.index(v.output_gate),
        "peepholes": bool(v.peephole_gates),
        "candidate_activation": kernel_code(serialize_activation(cell.candidate_activation)),
        "output_activation": kernel_code(serialize_activation(cell.output_activation)),
    }
    q = weights["gate_recurrent_kernel"]
    batch = tf.shape(inputs)[0]
    q, a0 = (tf.zeros([0, 0], dtype), tf.zeros([batch, 0], dtype)) if q is None else (q, states[2])
    kernel_, bias = weights["kernel"], weights["bias"]
    bias = tf.zeros([kernel_.shape[-1]], dtype) if bias is None else bias
    return fused_ops.lstm_sequence(
        k, attrs, inputs, kernel_, bias, weights["recurrent_kernel"], peepholes, states[0], states[1], q, a0,
        return_sequences,
    )  # fmt: skip


def _gru(k, cell, weights: dict, inputs, states: list, return_sequences: bool):
    dtype = inputs.dtype
    # The input terms of every step in one product; everything stays batch-major (B, T, ·).
    terms = cell.input_terms(tf.reshape(inputs, [-1, inputs.shape[-1]]), weights["kernel"])
    terms = tf.reshape(terms, [tf.shape(inputs)[0], tf.shape(inputs)[1], terms.shape[-1]])
    input_bias, recurrent_bias = cell._biases(weights["bias"])
    if input_bias is None:
        input_bias = tf.zeros([terms.shape[-1]], dtype)
    if recurrent_bias is None:  # reset before the product, or no bias: no recurrent bias
        recurrent_bias = tf.zeros([weights["recurrent_kernel"].shape[1]], dtype)
    return fused_ops.gru_sequence(
        k, gru_attrs(cell.variant), terms, input_bias, weights["recurrent_kernel"], recurrent_bias, states[0],
        return_sequences,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """`build [--force]`, which `make setup` runs: climb the flag ladder and print the rung that
    built and the library. Exit 1, with every rung's errors, if a compiler is there and no rung
    builds; exit 0 with a note when there is no compiler or LSTM_KERAS_FUSED=0."""
    argv = sys.argv[1:] if argv is None else argv
    if argv not in (["build"], ["build", "--force"]):
        print("usage: python -m lstm_keras.fused_engine build [--force]", file=sys.stderr)
        return 2
    reason = kernel_build.opted_out()
    if reason is not None:
        print(f"lstm_keras: {reason}; nothing to build", file=sys.stderr)
        return 0
    previous = kernel_build.cached()
    try:  # setup is where a build should be tried: a failure cached earlier is tried again
        result = kernel_build.build(
            force="--force" in argv or (previous is not None and previous.rung is None)
        )
    except kernel_build.NoCompilerError as e:
        print(f"lstm_keras: {e}; the layers will use the tf_while engine", file=sys.stderr)
        return 0
    for f in result.failures:
        flags = " ".join(f["flags"]) or "no -march"
        print(f"lstm_keras: rung {f['rung']} ({flags}) failed: {' | '.join(f['errors'])}", file=sys.stderr)
    if result.rung is None:
        print(
            f"lstm_keras: no rung of the flag ladder built the fused kernel (errors of every rung in "
            f"{result.log}). Fix the compiler, or set {kernel_build.OPT_OUT}=0 to use the tf_while "
            "engine on purpose.",
            file=sys.stderr,
        )
        return 1
    print(f"rung {result.rung.describe()}")
    print(result.library)
    return 0


if __name__ == "__main__":
    sys.exit(main())

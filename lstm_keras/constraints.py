"""HoldGateOpen: a gate kept in the computation but held fixed open (σ = 1 exactly, in float32).

A removed gate (NIG/NFG/NOG) is its absence: no weights, no compute. A held gate is the same
function reached the other way: the gate owns its weights, its columns are computed on every
engine, its gradients reach the optimizer (and global-norm clipping sees them), but after every
update the optimizer projects its weights back: kernel, recurrent-kernel and peephole entries to
0, bias to `OPEN_GATE_BIAS`, so its pre-activation is exactly B and σ(B) rounds to 1.0. That
makes "a gate fixed open is the same as a removed gate" a claim a test can check directly.
"""

from __future__ import annotations

import keras
from keras import ops

# σ(B) rounds to 1.0 in float32 once 1 − σ(B) ≈ e^−B falls below half an ulp of 1 (2^−25), i.e.
# B > 25 ln 2 ≈ 17.3 (measured: tf.sigmoid, keras.ops.sigmoid and Eigen's logistic, which the fused
# kernel uses, give 1.0 from 17 on, not at 16). 20 leaves a margin of e^3 ≈ 20 over that, and stays
# far below 88.7, where an implementation that computes e^{+B} would overflow float32.
OPEN_GATE_BIAS = 20.0
GATES = ("i", "f", "o")
SLOT_NAMES = "ifco"
WEIGHT_KINDS = ("kernel", "bias")


def _validate_slots(slots) -> tuple[str, ...]:
    parts = tuple(slots) if isinstance(slots, (str, list, tuple)) else None
    if not parts or len(set(parts)) != len(parts) or not set(parts) <= set(SLOT_NAMES):
        raise ValueError(
            f"Invalid slots={slots!r}. Valid choices: distinct names among {', '.join(SLOT_NAMES)}, "
            "in the weight's column order (e.g. 'ifco')."
        )
    return parts


@keras.saving.register_keras_serializable(package="lstm_keras")
class HoldGateOpen(keras.constraints.Constraint):
    """Holds one gate's columns of a gate-stacked LSTM weight so that the gate is σ(B) = 1.

    The weight's last axis is `len(slots)` blocks of equal width, one per pre-activation in
    `slots` order (LSTMCell's kernel, recurrent kernel and bias: the variant's slots; a peephole
    vector: just its gate). The block of `gate` is set to 0 (`weight="kernel"`: any weight that
    multiplies an input or state) or to `open_bias` (`weight="bias"`); every other entry is left
    as `inner` (a user's own constraint, applied first) leaves it. Keras applies constraints
    after each optimizer update, so the held block is exact whatever the engine.

    Args:
        gate: The held gate: `"i"`, `"f"` or `"o"`; it must be one of `slots`.
        slots: The pre-activations stacked along the last axis, in order (default `"ifco"`,
            Keras's layout).
        weight: `"kernel"` (held at 0) or `"bias"` (held at `open_bias`).
        open_bias: The held bias. Default `OPEN_GATE_BIAS` (20); it must be > 17 so that
            σ(open_bias) is exactly 1.0 in float32.
        inner: A constraint applied before the hold (a `keras.constraints` name, config or
            instance), or None.

    Example:

    >>> hold = HoldGateOpen("f", slots="ifco", weight="bias")
    >>> keras.ops.convert_to_numpy(hold(keras.ops.zeros((8,))))  # units = 2: f is entries 2, 3
    array([ 0.,  0., 20., 20.,  0.,  0.,  0.,  0.], dtype=float32)
    """

    def __init__(
        self,
        gate: str,
        slots: str | tuple[str, ...] = SLOT_NAMES,
        weight: str = "kernel",
        open_bias: float = OPEN_GATE_BIAS,
        inner=None,
    ):
        if gate not in GATES:
            raise ValueError(f"Invalid gate={gate!r}. Valid choices: {', '.join(map(repr, GATES))}.")
        self.slots = _validate_slots(slots)
        if gate not in self.slots:
            raise ValueError(
                f"gate={gate!r} is not among slots={''.join(self.slots)!r}. Valid choices: "
                f"{', '.join(repr(s) for s in self.slots if s in GATES)}."
            )
        if weight not in WEIGHT_KINDS:
            choices = ", ".join(map(repr, WEIGHT_KINDS))
            raise ValueError(f"Invalid weight={weight!r}. Valid choices: {choices}.")
        if isinstance(open_bias, bool) or not isinstance(open_bias, (int, float)) or not open_bias > 17:
            raise ValueError(
                f"Invalid open_bias={open_bias!r}. Valid choices: a number > 17 (σ of it is 1.0 in float32)."
            )
        self.gate = gate
        self.weight = weight
        self.open_bias = float(open_bias)
        self.inner = keras.constraints.get(inner)

    def __call__(self, w):
        if self.inner is not None:
            w = self.inner(w)
        width = w.shape[-1]
        if width % len(self.slots):
            raise ValueError(
                f"HoldGateOpen: the weight's last axis ({width}) is not {len(self.slots)} equal "
                f"blocks (slots={''.join(self.slots)!r})."
            )
        units = width // len(self.slots)
        start = self.slots.index(self.gate) * units
        column = ops.arange(width)
        held = ops.logical_and(column >= start, column < start + units)  # broadcasts over rows
        value = 0.0 if self.weight == "kernel" else self.open_bias
        return ops.where(held, ops.cast(value, w.dtype), w)

    def get_config(self) -> dict:
        return {
            "gate": self.gate,
            "slots": "".join(self.slots),
            "weight": self.weight,
            "open_bias": self.open_bias,
            "inner": keras.constraints.serialize(self.inner),
        }

    @classmethod
    def from_config(cls, config: dict) -> HoldGateOpen:
        return cls(**config)  # `inner` arrives serialised; __init__'s constraints.get reads it

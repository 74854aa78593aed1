"""Cell variants as data: each ablation is a small frozen spec, interpreted once by the cells.

LSTM variants follow Greff et al. 2017 ("LSTM: A Search Space Odyssey"): every ablation is
relative to their *vanilla* LSTM (peepholes, all three gates). ``keras`` is Keras's own LSTM
(no peepholes) and ``lstm1997`` is Hochreiter & Schmidhuber's original (no forget gate).

GRU variants: ``keras`` (reset applied after the recurrent matmul, Keras's default),
``cho2014`` (reset before, the original paper), the gate removals NRG/NUG, and the three
architectures MUT1–3 found by Jozefowicz et al. 2015.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from lstm_keras import activation_names as act

# How a gate is present in the cell.
LEARNED = "learned"  # σ(W x + R h + b): owns weights
OPEN = "open"  # fixed to 1: owns nothing, costs nothing
COUPLED = "coupled"  # forget gate only: f = 1 − i (CIFG)
GateMode = Literal["learned", "open", "coupled"]
# A mode's code in the fused kernel is its position here (kernels/fused_rnn.cc's `enum class Gate`).
GATE_MODES = (LEARNED, OPEN, COUPLED)

# The forget (LSTM) or update (GRU) gate's bias when `forget_bias` is not given: Keras's defaults
# (unit_forget_bias=True for the LSTM, nothing for the GRU).
LSTM_DEFAULT_FORGET_BIAS = 1.0
GRU_DEFAULT_FORGET_BIAS = None


@dataclass(frozen=True)
class LSTMVariant:
    name: str
    description: str
    input_gate: GateMode = LEARNED
    forget_gate: GateMode = LEARNED
    output_gate: GateMode = LEARNED
    peepholes: bool = False  # i, f see c_{t-1}; o sees c_t (diagonal weights)
    gate_recurrence: bool = False  # FGR: i, f, o also see i, f, o of t−1
    candidate_activation: str = act.TANH
    output_activation: str = act.TANH
    # Activations that *are* the variant (NIAF's linear candidate): overriding them is a
    # contradiction, not a configuration.
    defining_activations: frozenset[str] = frozenset()

    @property
    def gates(self) -> dict[str, GateMode]:
        return {"i": self.input_gate, "f": self.forget_gate, "o": self.output_gate}

    @property
    def slots(self) -> tuple[str, ...]:
        """Pre-activations that own weights, in Keras's column order (i, f, c, o)."""
        return tuple(s for s in "ifco" if s == "c" or self.gates[s] == LEARNED)

    @property
    def has_forget_gate(self) -> bool:
        return self.forget_gate != OPEN

    @property
    def peephole_gates(self) -> tuple[str, ...]:
        if not self.peepholes:
            return ()
        return tuple(g for g in "ifo" if self.gates[g] == LEARNED)


_VANILLA = LSTMVariant("vanilla", "Greff et al. 2017 reference LSTM with peepholes", peepholes=True)


def _ablate(name: str, description: str, **changes) -> LSTMVariant:
    return dataclasses.replace(_VANILLA, name=name, description=description, **changes)


LSTM_VARIANTS: dict[str, LSTMVariant] = {
    v.name: v
    for v in [
        LSTMVariant("keras", "exactly keras.layers.LSTMCell: gates i, f, c, o, no peepholes"),
        _VANILLA,
        _ablate("NIG", "no input gate (i = 1)", input_gate=OPEN),
        _ablate("NFG", "no forget gate (f = 1)", forget_gate=OPEN),
        _ablate("NOG", "no output gate (o = 1)", output_gate=OPEN),
        _ablate(
            "NIAF",
            "no input activation function (linear candidate)",
            candidate_activation=act.LINEAR,
            defining_activations=frozenset({"candidate_activation"}),
        ),
        _ablate(
            "NOAF",
            "no output activation function (h = o * c)",
            output_activation=act.LINEAR,
            defining_activations=frozenset({"output_activation"}),
        ),
        _ablate("NP", "no peepholes", peepholes=False),
        _ablate("CIFG", "coupled input and forget gate (f = 1 - i)", forget_gate=COUPLED),
        _ablate("FGR", "full gate recurrence (gates see all gates of t-1)", gate_recurrence=True),
        LSTMVariant(
            "lstm1997",
            "Hochreiter & Schmidhuber 1997: no forget gate, g = 4σ-2, h = 2σ-1",
            forget_gate=OPEN,
            candidate_activation=act.SIGMOID_4M2,
            output_activation=act.SIGMOID_2M1,
        ),
    ]
}


# LSTMCell's `fixed_open_gate`: a learned gate kept in the computation but held at σ = 1
# (lstm_keras/constraints.py), the counterpart of removing it (NIG/NFG/NOG).
FIXED_OPEN_GATES = ("i", "f", "o")


def fixed_open_gate_problem(variant: LSTMVariant, gate: str) -> str | None:
    """Why `gate` (one of FIXED_OPEN_GATES) cannot be held open in `variant`; None: it can."""
    learned = [g for g, mode in variant.gates.items() if mode == LEARNED]
    if variant.gate_recurrence:
        # Its activation would still reach the other gates through the gate-to-gate matrix.
        return (
            f"fixed_open_gate={gate!r} is not available for variant={variant.name!r} "
            f"({variant.description}): a held gate would still feed the other gates. "
            "Valid choices here: none."
        )
    if variant.gates[gate] != LEARNED:
        return (
            f"fixed_open_gate={gate!r}, but variant={variant.name!r} ({variant.description}) has gate "
            f"{gate!r} {variant.gates[gate]}, not learned: there is nothing to hold. "
            f"Valid choices here: none, {', '.join(learned)}."
        )
    return None


def keeps_forget_gate(variant, fixed_open_gate: str | None = None) -> bool:
    """A forget gate whose bias `forget_bias` sets: not removed, and not fixed by a held gate
    (f held open, or CIFG's f = 1 − i with i held open, which makes f ≡ 0)."""
    if not variant.has_forget_gate or fixed_open_gate is None:
        return variant.has_forget_gate
    return not (fixed_open_gate == "f" or (fixed_open_gate == "i" and variant.forget_gate == COUPLED))


# --- GRU ---------------------------------------------------------------------------------

DENSE = "dense"  # W x  (or R h): owns a matrix
IDENTITY = "identity"  # x as it is (needs input_dim == units)
TANH = "tanh"  # tanh(x) or R tanh(h)
NONE = "none"  # term absent
TermKind = Literal["dense", "identity", "tanh", "none"]


@dataclass(frozen=True)
class GRUGate:
    """Where a GRU pre-activation gets its terms: `input` from x, `recurrent` from h."""

    input: TermKind = DENSE
    recurrent: TermKind = DENSE  # DENSE: R h; TANH: R tanh(h) (MUT3's update gate)


@dataclass(frozen=True)
class GRUVariant:
    name: str
    description: str
    update_gate: GRUGate | None = GRUGate()  # None: no update gate, h_t = candidate
    reset_gate: GRUGate | None = GRUGate()  # None: r = 1
    candidate_input: TermKind = DENSE  # MUT1 uses tanh(x) instead of W x
    reset_after: bool = True  # r ⊙ (R h + b) (Keras) vs R (r ⊙ h) (Cho et al. 2014)
    # Keras writes h = z ⊙ h_{t-1} + (1 − z) ⊙ h̃ (z keeps); Jozefowicz et al. write
    # h = z ⊙ h̃ + (1 − z) ⊙ h_{t-1} (z writes). Kept per variant so each reads like its paper.
    update_keeps_state: bool = True
    candidate_activation: str = act.TANH

    @property
    def gates(self) -> dict[str, GRUGate | None]:
        return {"z": self.update_gate, "r": self.reset_gate}

    @property
    def slots(self) -> tuple[str, ...]:
        """Pre-activations that exist, in Keras's column order (z, r, h)."""
        return tuple(s for s in "zrh" if s == "h" or self.gates[s] is not None)

    @property
    def has_forget_gate(self) -> bool:
        """The update gate is the GRU's forget gate (`forget_bias` sets its bias)."""
        return self.update_gate is not None

    def input_term(self, slot: str) -> str:
        return self.candidate_input if slot == "h" else self.gates[slot].input

    def recurrent_term(self, slot: str) -> str:
        return DENSE if slot == "h" else self.gates[slot].recurrent

    @property
    def adds_input_elementwise(self) -> bool:
        """x or tanh(x) enters a pre-activation as it is (MUT1, MUT2): input width must be units."""
        return any(self.input_term(s) in (IDENTITY, TANH) for s in self.slots)


_MUT = dict(reset_after=False, update_keeps_state=False)

GRU_VARIANTS: dict[str, GRUVariant] = {
    v.name: v
    for v in [
        GRUVariant("keras", "exactly keras.layers.GRUCell (reset_after=True), gates z, r, h"),
        GRUVariant("cho2014", "Cho et al. 2014: reset before the recurrent matmul", reset_after=False),
        GRUVariant("NRG", "no reset gate (r = 1)", reset_gate=None),
        GRUVariant("NUG", "no update gate (h_t = candidate)", update_gate=None),
        GRUVariant(
            "MUT1",
            "Jozefowicz et al. 2015 MUT1: z = σ(W x), candidate sees tanh(x)",
            update_gate=GRUGate(recurrent=NONE),
            candidate_input=TANH,
            **_MUT,
        ),
        GRUVariant(
            "MUT2",
            "Jozefowicz et al. 2015 MUT2: r = σ(x + R h)",
            reset_gate=GRUGate(input=IDENTITY),
            **_MUT,
        ),
        GRUVariant(
            "MUT3",
            "Jozefowicz et al. 2015 MUT3: z = σ(W x + R tanh(h))",
            update_gate=GRUGate(recurrent=TANH),
            **_MUT,
        ),
    ]
}


# Every variant by cell kind, as the sequence layers and a run's `cell` parameter name them.
VARIANTS: dict[str, dict] = {"lstm": LSTM_VARIANTS, "gru": GRU_VARIANTS}


def lookup(registry: dict, variant: str, kind: str):
    if variant not in registry:
        raise ValueError(f"Unknown {kind} variant={variant!r}. Valid choices: {', '.join(registry)}.")
    return registry[variant]

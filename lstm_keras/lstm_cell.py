"""LSTMCell: Keras's LSTM cell, and every Greff et al. 2017 ablation of it, from one step."""

from __future__ import annotations

import keras
from keras import initializers, ops

from lstm_keras.activation_names import SIGMOID
from lstm_keras.activations import ActivationLike, either, get_activation, serialize_activation
from lstm_keras.base_cell import GatedCell, held_from_start, times
from lstm_keras.constraints import HoldGateOpen
from lstm_keras.forget_bias import CHRONO, ForgetBias, forget_bias_values, validate_forget_bias
from lstm_keras.variants import (
    COUPLED,
    FIXED_OPEN_GATES,
    LEARNED,
    LSTM_DEFAULT_FORGET_BIAS,
    LSTM_VARIANTS,
    LSTMVariant,
    fixed_open_gate_problem,
    keeps_forget_gate,
    lookup,
)


def resolve_activations(
    variant: LSTMVariant,
    *,
    candidate_activation: ActivationLike,
    output_activation: ActivationLike,
    activation: ActivationLike,
) -> dict:
    """Variant defaults, overridden by explicit arguments; `activation` is Keras's name for both.

    Overriding an activation that defines the variant (NIAF's linear candidate) is a
    contradiction and raises ValueError.
    """
    resolved = {}
    for argument, explicit in (
        ("candidate_activation", candidate_activation),
        ("output_activation", output_activation),
    ):
        default = get_activation(getattr(variant, argument), argument=argument)
        chosen = either(argument, explicit, "activation", activation)
        fn = default if chosen is None else get_activation(chosen, argument=argument)
        if argument in variant.defining_activations and fn is not default:
            raise ValueError(
                f"variant={variant.name!r} ({variant.description}) fixes {argument}="
                f"{getattr(variant, argument)!r}; got {argument}={chosen!r}. Use variant="
                f"'vanilla' to choose the activation freely."
            )
        resolved[argument] = fn
    return resolved


@keras.saving.register_keras_serializable(package="lstm_keras")
class LSTMCell(GatedCell):
    """One step of an LSTM, in any of the variants of Greff et al. 2017.

    The step, with σ the gate activation, φ the candidate and ψ the output activation:

        i = σ(W_i x + R_i h + p_i ⊙ c_{t-1} + b_i)      (1 if the input gate is removed)
        f = σ(W_f x + R_f h + p_f ⊙ c_{t-1} + b_f)      (1 if removed, 1 − i if coupled)
        g = φ(W_c x + R_c h + b_c)
        c = f ⊙ c_{t-1} + i ⊙ g
        o = σ(W_o x + R_o h + p_o ⊙ c_t + b_o)          (1 if removed)
        h = o ⊙ ψ(c)

    Peepholes p exist only in variants that have them (not in `keras`, `NP`, `lstm1997`).
    A removed or coupled gate owns no weights and costs no compute. A gate held fixed open
    (`fixed_open_gate`) is the same function reached the other way: it keeps its weights and
    its compute, and is held at σ = 1.

    Args:
        units: Positive integer, dimensionality of h and c.
        variant: One of `lstm_keras.LSTM_VARIANTS`: `keras` (exactly `keras.layers.LSTMCell`),
            `vanilla` (Greff et al.'s peephole LSTM), `NIG`, `NFG`, `NOG`, `NIAF`, `NOAF`,
            `NP`, `CIFG`, `FGR` (ablations of `vanilla`), `lstm1997`.
        forget_bias: Float: the forget-gate bias is set to exactly this value (the other
            slices keep `bias_initializer`), so 1.0 equals Keras's `unit_forget_bias=True`.
            For CIFG (f = 1 − i) the input-gate bias is set to −value, which gives f the same
            bias. `None`: leave `bias_initializer` alone. `"chrono"`: Tallec & Ollivier 2018,
            b_f ~ log(U[1, chrono_tmax − 1]) and b_i = −b_f. Variants without a forget gate
            accept only the default or None.
        chrono_tmax: Longest dependency in steps, required by `forget_bias="chrono"`.
        candidate_activation: φ; default from the variant (tanh; linear for NIAF; 4σ−2 for
            lstm1997). Any Keras activation name, `"2sigmoid-1"`, `"4sigmoid-2"` or a callable.
        output_activation: ψ; default from the variant (tanh; linear for NOAF; 2σ−1 for
            lstm1997).
        gate_activation: σ for the gates. Default `"sigmoid"`.
        activation, recurrent_activation: Keras's names (φ and ψ together; σ), accepted so
            the cell is a drop-in replacement; an explicit argument above takes precedence.
        unit_forget_bias: Keras's name: `False` means `forget_bias=None`.
        fixed_open_gate: None (default), or `"i"`, `"f"`, `"o"`: that gate, learned in the
            variant, stays in the computation (its weights, columns and gradients exist on
            every engine) but is held open by `constraints.HoldGateOpen` from the start and after
            every optimizer update: its kernel, recurrent-kernel and peephole entries at 0, its
            bias at 20, so it is exactly 1.0 in float32, the same function as the variant with
            the gate removed (NIG/NFG/NOG). It wraps (applies after) `kernel_constraint`,
            `recurrent_constraint` and `bias_constraint`. Holding f (or i in CIFG, where
            f = 1 − i) leaves no forget gate to set: `forget_bias` then takes only its default
            or None. Not for FGR (a held gate would still feed the others) nor `use_bias=False`.
        peephole_initializer, gate_recurrent_initializer: Initializers of the peephole
            vectors and of FGR's gate-to-gate matrix. Default zeros, so that `vanilla` and
            `FGR` start as the same function as `NP` and differ only by what they learn.
        use_bias, kernel_initializer, recurrent_initializer, bias_initializer,
        kernel_regularizer, recurrent_regularizer, bias_regularizer, kernel_constraint,
        recurrent_constraint, bias_constraint, dropout, recurrent_dropout, seed: as in
            `keras.layers.LSTMCell`.

    Call arguments:
        inputs: A 2D tensor `(batch, features)`.
        states: `[h, c]` (FGR adds the previous gate activations as a third state).
        training: Whether dropout is active.

    Example:

    >>> cell = LSTMCell(8, variant="CIFG", forget_bias="chrono", chrono_tmax=100)
    >>> layer = keras.layers.RNN(cell, return_sequences=True)
    >>> layer(np.zeros((2, 5, 3))).shape
    (2, 5, 8)
    """

    def __init__(
        self,
        units: int,
        *,
        variant: str = "keras",
        forget_bias: ForgetBias = LSTM_DEFAULT_FORGET_BIAS,
        chrono_tmax: float | None = None,
        candidate_activation: ActivationLike = None,
        output_activation: ActivationLike = None,
        gate_activation: ActivationLike = None,
        activation: ActivationLike = None,
        recurrent_activation: ActivationLike = None,
        unit_forget_bias: bool | None = None,
        fixed_open_gate: str | None = None,
        peephole_initializer="zeros",
        gate_recurrent_initializer="zeros",
        **kwargs,
    ):
        kwargs.pop("implementation", None)  # Keras's matmul-layout hint; one layout here
        super().__init__(units, **kwargs)
        self.variant = lookup(LSTM_VARIANTS, variant, "LSTM")
        if unit_forget_bias is False:
            if forget_bias not in (LSTM_DEFAULT_FORGET_BIAS, None):
                raise ValueError(
                    f"unit_forget_bias=False contradicts forget_bias={forget_bias!r}; "
                    "pass only forget_bias (None for no forget-bias initialisation)."
                )
            forget_bias = None
        self.fixed_open_gate = self._validate_fixed_open_gate(fixed_open_gate)
        self.forget_bias = validate_forget_bias(
            forget_bias,
            chrono_tmax,
            has_forget_gate=keeps_forget_gate(self.variant, self.fixed_open_gate),
            default=LSTM_DEFAULT_FORGET_BIAS,
        )
        self.chrono_tmax = chrono_tmax
        acts = resolve_activations(
            self.variant,
            candidate_activation=candidate_activation,
            output_activation=output_activation,
            activation=activation,
        )
        self.candidate_activation = acts["candidate_activation"]
        self.output_activation = acts["output_activation"]
        gate = either("gate_activation", gate_activation, "recurrent_activation", recurrent_activation)
        self.gate_activation = get_activation(gate or SIGMOID, argument="gate_activation")
        self.peephole_initializer = initializers.get(peephole_initializer)
        self.gate_recurrent_initializer = initializers.get(gate_recurrent_initializer)
        self.learned_gates = tuple(g for g, mode in self.variant.gates.items() if mode == LEARNED)
        self.state_size = [self.units, self.units]
        if self.variant.gate_recurrence:
            self.state_size.append(len(self.learned_gates) * self.units)

    def _validate_fixed_open_gate(self, gate: str | None) -> str | None:
        if gate is None:
            return None
        if gate not in FIXED_OPEN_GATES:
            raise ValueError(
                f"Invalid fixed_open_gate={gate!r}. Valid choices: None, "
                f"{', '.join(map(repr, FIXED_OPEN_GATES))}."
            )
        problem = fixed_open_gate_problem(self.variant, gate)
        if problem is not None:
            raise ValueError(problem)
        if not self.use_bias:
            raise ValueError(
                f"fixed_open_gate={gate!r} holds the gate's bias at 20 (σ = 1); use_bias=False leaves "
                "it σ(0) = 0.5. Valid choices: use_bias=True, or fixed_open_gate=None."
            )
        return gate

    def _hold(self, weight: str, user_constraint, slots: tuple[str, ...]):
        """The held gate's HoldGateOpen for a weight (wrapping the user's constraint), or None."""
        if self.fixed_open_gate is None or self.fixed_open_gate not in slots:
            return None
        return HoldGateOpen(self.fixed_open_gate, slots, weight, inner=user_constraint)

    def build(self, input_shape):
        super().build(input_shape)
        slots = self.variant.slots
        width = len(slots) * self.units
        self.kernel = self._add_kernel(
            "kernel", input_shape[-1], width, hold=self._hold("kernel", self.kernel_constraint, slots)
        )
        self.recurrent_kernel = self._add_kernel(
            "recurrent_kernel",
            self.units,
            width,
            kind="recurrent",
            hold=self._hold("kernel", self.recurrent_constraint, slots),
        )
        self.bias = None
        if self.use_bias:
            hold = self._hold("bias", self.bias_constraint, slots)
            self.bias = self._add_bias("bias", (width,), self._bias_initializer, hold=hold)
        self.peephole = {}
        for g in self.variant.peephole_gates:
            hold = self._hold("kernel", None, (g,))  # p_g ⊙ c held at 0 too: nothing reaches a held gate
            self.peephole[g] = self.add_weight(
                shape=(self.units,),
                name=f"peephole_{g}",
                initializer=held_from_start(self.peephole_initializer, hold),
                constraint=hold,
            )
        self.gate_recurrent_kernel = None
        if self.variant.gate_recurrence:
            n = len(self.learned_gates) * self.units
            self.gate_recurrent_kernel = self.add_weight(
                shape=(n, n),
                name="gate_recurrent_kernel",
                initializer=self.gate_recurrent_initializer,
                regularizer=self.recurrent_regularizer,
                constraint=self.recurrent_constraint,
            )

    def _bias_initializer(self, shape, dtype=None):
        slots = self.variant.slots
        parts = dict(zip(slots, ops.split(self.bias_initializer(shape, dtype=dtype), len(slots))))
        b_f = forget_bias_values(self.forget_bias, self.chrono_tmax, self.units, self.seed, dtype)
        if b_f is not None:
            if "f" in parts:
                parts["f"] = b_f
                if self.forget_bias == CHRONO and "i" in parts:
                    parts["i"] = -b_f
            elif self.variant.forget_gate == COUPLED:
                parts["i"] = -b_f  # f = 1 − σ(a) = σ(−a): the forget gate's bias is −b_i
        return ops.concatenate([parts[s] for s in slots])

    def project_inputs(self, x, weights: dict | None = None):
        """W x + b for one step (B, F) or a whole sequence (B, T, F)."""
        w = weights or self.step_weights()
        z = ops.matmul(x, w["kernel"])
        return z if w["bias"] is None else z + w["bias"]

    def step_weights(self) -> dict:
        """The weights `project_inputs` and `recurrent_step` read (tf_while passes them read once)."""
        return {
            "kernel": self.kernel,
            "bias": self.bias,
            "recurrent_kernel": self.recurrent_kernel,
            "peephole": self.peephole,
            "gate_recurrent_kernel": self.gate_recurrent_kernel,
        }

    def _gate(self, name: str, pre: dict, c, peephole: dict):
        """σ(pre + p ⊙ c) for a learned gate; None (≡ 1) for a removed one."""
        if self.variant.gates[name] != LEARNED:
            return None
        a = pre[name] + peephole[name] * c if name in peephole else pre[name]
        return self.gate_activation(a)

    def recurrent_step(self, x_proj, states, training=False, weights: dict | None = None, c_shift=None):
        """One step from projected inputs. Returns (h, new_states, gates).

        `weights`: `step_weights()` as tensors; default: read this cell's variables.
        `c_shift`: added to c_t before anything reads it (diagnostics.GradientFlow's zero ε_t,
        whose gradient is the total ∂L/∂c_t); None: nothing added."""
        w = weights or self.step_weights()
        h_prev, c_prev = states[0], states[1]
        z = x_proj + ops.matmul(self._drop_recurrent(h_prev, training), w["recurrent_kernel"])
        slots = self.variant.slots
        pre = dict(zip(slots, ops.split(z, len(slots), axis=-1)))
        if w["gate_recurrent_kernel"] is not None:
            from_gates = ops.matmul(states[2], w["gate_recurrent_kernel"])
            for g, term in zip(self.learned_gates, ops.split(from_gates, len(self.learned_gates), -1)):
                pre[g] = pre[g] + term

        p = w["peephole"]
        i = self._gate("i", pre, c_prev, p)
        f = 1.0 - i if self.variant.forget_gate == COUPLED else self._gate("f", pre, c_prev, p)
        g = self.candidate_activation(pre["c"])
        c = times(f, c_prev) + times(i, g)
        c = c if c_shift is None else c + c_shift
        o = self._gate("o", pre, c, p)
        h = times(o, self.output_activation(c))

        gates = {"i": i, "f": f, "g": g, "o": o}
        new_states = [h, c]
        if w["gate_recurrent_kernel"] is not None:
            new_states.append(ops.concatenate([gates[n] for n in self.learned_gates], axis=-1))
        return h, new_states, gates

    def get_config(self):
        config = {
            "variant": self.variant.name,
            "forget_bias": self.forget_bias,
            "chrono_tmax": self.chrono_tmax,
            "fixed_open_gate": self.fixed_open_gate,
            "candidate_activation": serialize_activation(self.candidate_activation),
            "output_activation": serialize_activation(self.output_activation),
            "gate_activation": serialize_activation(self.gate_activation),
            "peephole_initializer": initializers.serialize(self.peephole_initializer),
            "gate_recurrent_initializer": initializers.serialize(self.gate_recurrent_initializer),
        }
        return {**super().get_config(), **config}

"""GRUCell: Keras's GRU cell, Cho et al.'s original, gate removals and Jozefowicz's MUT1-3."""

from __future__ import annotations

import functools
import itertools

import keras
from keras import ops

from lstm_keras.activation_names import SIGMOID
from lstm_keras.activations import ActivationLike, either, get_activation, serialize_activation
from lstm_keras.base_cell import GatedCell, plus, times
from lstm_keras.forget_bias import ForgetBias, forget_bias_values, validate_forget_bias
from lstm_keras.variants import DENSE, GRU_DEFAULT_FORGET_BIAS, GRU_VARIANTS, IDENTITY, NONE, TANH, lookup


# The forms an equation's recurrent term takes, chosen per variant once (GRUCell._resolve_step).
# Each maps (h, products, matrices) of `GRUCell._recurrence` to the term; None: no term.
def _shared(slot, h, products, matrices):
    return products[slot]  # R h + b, from the one matmul the slots share


def _own(slot, h, products, matrices):
    return ops.matmul(h, matrices[slot])  # R h, after a term that could not share the matmul


def _of_tanh(slot, h, products, matrices):
    return ops.matmul(ops.tanh(h), matrices[slot])  # R tanh(h): MUT3's update gate


def _absent(h, products, matrices):
    return None  # no recurrent term (MUT1's z), or no gate at all (NRG's r, NUG's z)


def _gate_term(slot: str, variant, shared: tuple[str, ...]):
    if slot not in variant.slots or variant.recurrent_term(slot) == NONE:
        return _absent
    if variant.recurrent_term(slot) == TANH:
        return functools.partial(_of_tanh, slot)
    return functools.partial(_shared if slot in shared else _own, slot)


def _reset_after(h, r, products, matrices):
    return times(r, products["h"])  # r ⊙ (R_h h + b'_h): Keras


def _reset_before(h, r, products, matrices):
    return ops.matmul(times(r, h), matrices["h"])  # R_h (r ⊙ h): Cho et al. 2014, MUT1–3


# h from z, h_{t-1} and h̃: z keeps the old state (Keras, Cho), z writes (Jozefowicz), or no z.
def _keeps(z, h_prev, h_cand):
    return z * h_prev + (1.0 - z) * h_cand


def _writes(z, h_prev, h_cand):
    return z * h_cand + (1.0 - z) * h_prev


def _candidate_only(z, h_prev, h_cand):
    return h_cand


_ELEMENTWISE = {IDENTITY: lambda x: x, TANH: ops.tanh}  # input terms without a matrix (MUT1, MUT2)


@keras.saving.register_keras_serializable(package="lstm_keras")
class GRUCell(GatedCell):
    """One step of a GRU, in any of its published variants.

    `keras` (Keras's `reset_after=True`), with φ the candidate activation:

        z = σ(W_z x + R_z h + b_z)
        r = σ(W_r x + R_r h + b_r)
        h̃ = φ(W_h x + b_h + r ⊙ (R_h h + b'_h))       (cho2014: φ(W_h x + R_h (r ⊙ h) + b_h))
        h = z ⊙ h_{t-1} + (1 − z) ⊙ h̃

    `NRG` sets r = 1, `NUG` has no update gate (h = h̃). MUT1–3 (Jozefowicz et al. 2015) are
    written as in their paper, where z *writes*: h = z ⊙ h̃ + (1 − z) ⊙ h_{t-1};
    MUT1: z = σ(W_z x + b_z), h̃ = tanh(R_h (r ⊙ h) + tanh(x) + b_h);
    MUT2: r = σ(x + R_r h + b_r); MUT3: z = σ(W_z x + R_z tanh(h) + b_z).
    MUT1 and MUT2 add x elementwise, so they need input features == units.

    Args:
        units: Positive integer, dimensionality of h.
        variant: One of `lstm_keras.GRU_VARIANTS`: `keras`, `cho2014`, `NRG`, `NUG`, `MUT1`,
            `MUT2`, `MUT3`.
        forget_bias: `None` (default) leaves `bias_initializer` alone, as Keras does. A float
            makes the update gate's total bias exactly that value *in the direction that keeps
            the old state*: positive means remember. In `keras`/`cho2014`/`NRG` (z keeps) the
            bias of z is +value; in MUT1–3 (z writes) it is −value. `"chrono"`: that bias is
            drawn as log(U[1, chrono_tmax − 1]) (Tallec & Ollivier 2018).
        chrono_tmax: Longest dependency in steps, required by `forget_bias="chrono"`.
        candidate_activation: φ, default `"tanh"`.
        gate_activation: σ for the gates, default `"sigmoid"`.
        activation, recurrent_activation, reset_after: Keras's names, accepted for drop-in
            use (`reset_after=False` selects `cho2014`).
        use_bias, kernel_initializer, recurrent_initializer, bias_initializer,
        kernel_regularizer, recurrent_regularizer, bias_regularizer, kernel_constraint,
        recurrent_constraint, bias_constraint, dropout, recurrent_dropout, seed: as in
            `keras.layers.GRUCell`.

    Call arguments:
        inputs: A 2D tensor `(batch, features)`.
        states: `[h]`.
        training: Whether dropout is active.

    Example:

    >>> cell = GRUCell(8, variant="cho2014", forget_bias=1.0)
    >>> keras.layers.RNN(cell)(np.zeros((2, 5, 3))).shape
    (2, 8)
    """

    def __init__(
        self,
        units: int,
        *,
        variant: str = "keras",
        forget_bias: ForgetBias = GRU_DEFAULT_FORGET_BIAS,
        chrono_tmax: float | None = None,
        candidate_activation: ActivationLike = None,
        gate_activation: ActivationLike = None,
        activation: ActivationLike = None,
        recurrent_activation: ActivationLike = None,
        reset_after: bool | None = None,
        **kwargs,
    ):
        kwargs.pop("implementation", None)
        super().__init__(units, **kwargs)
        if reset_after is not None:
            keras_name = "keras" if reset_after else "cho2014"
            if variant not in ("keras", keras_name):
                raise ValueError(
                    f"reset_after={reset_after!r} contradicts variant={variant!r}; "
                    "reset_after=True is variant='keras', False is variant='cho2014'."
                )
            variant = keras_name
        self.variant = lookup(GRU_VARIANTS, variant, "GRU")
        self.forget_bias = validate_forget_bias(
            forget_bias,
            chrono_tmax,
            has_forget_gate=self.variant.update_gate is not None,
            default=GRU_DEFAULT_FORGET_BIAS,
        )
        self.chrono_tmax = chrono_tmax
        candidate = either("candidate_activation", candidate_activation, "activation", activation)
        gate = either("gate_activation", gate_activation, "recurrent_activation", recurrent_activation)
        self.candidate_activation = get_activation(
            candidate or self.variant.candidate_activation, argument="candidate_activation"
        )
        self.gate_activation = get_activation(gate or SIGMOID, argument="gate_activation")
        self._resolve_step()
        self.state_size = self.units

    def _resolve_step(self) -> None:
        """Read the variant once: which matrix each term uses, and the form of each equation."""
        v = self.variant
        self.dense_in = tuple(s for s in v.slots if v.input_term(s) == DENSE)
        self.dense_rec = tuple(s for s in v.slots if v.recurrent_term(s) != NONE)
        # Recurrent terms that multiply h itself (one fused matmul) form a prefix of dense_rec;
        # R tanh(h) (MUT3) and R (r ⊙ h) (reset before) are computed after it.
        on_h = [s for s in self.dense_rec if v.recurrent_term(s) == DENSE and (s != "h" or v.reset_after)]
        self.fused_rec = tuple(itertools.takewhile(lambda s: s in on_h, self.dense_rec))
        self._z_term = _gate_term("z", v, self.fused_rec)
        self._r_term = _gate_term("r", v, self.fused_rec)
        self._h_term = _reset_after if v.reset_after else _reset_before
        self._mix = _candidate_only if v.update_gate is None else _keeps if v.update_keeps_state else _writes

    def build(self, input_shape):
        super().build(input_shape)
        v, u = self.variant, self.units
        if v.adds_input_elementwise and input_shape[-1] != u:
            raise ValueError(
                f"variant={v.name!r} adds the input elementwise ({v.description}), so the input "
                f"features must equal units={u}; got {input_shape[-1]}. Put a Dense or "
                f"Embedding of width {u} before it."
            )
        self.kernel = self._add_kernel("kernel", input_shape[-1], len(self.dense_in) * u)
        self.recurrent_kernel = self._add_kernel(
            "recurrent_kernel", u, len(self.dense_rec) * u, kind="recurrent"
        )
        self.bias = None
        if self.use_bias:
            # Keras's layout: reset_after keeps a second row of biases inside the recurrent term.
            shape = (2, len(v.slots) * u) if v.reset_after else (len(v.slots) * u,)
            self.bias = self._add_bias("bias", shape, self._bias_initializer)

    def _bias_initializer(self, shape, dtype=None):
        bias = self.bias_initializer(shape, dtype=dtype)
        keep = forget_bias_values(self.forget_bias, self.chrono_tmax, self.units, self.seed, dtype)
        if keep is None:
            return bias
        b_z = keep if self.variant.update_keeps_state else -keep
        rows = [bias] if len(shape) == 1 else [bias[0], bias[1]]
        parts = ops.split(rows[0], len(self.variant.slots))  # "z" is the first slot
        rows[0] = ops.concatenate([b_z, *parts[1:]])
        if len(rows) == 2:
            rest = ops.split(rows[1], len(self.variant.slots))
            rows[1] = ops.concatenate([ops.zeros_like(b_z), *rest[1:]])
            return ops.stack(rows)
        return rows[0]

    def _biases(self, bias=None):
        """(input bias, recurrent bias) of `bias` (default: this cell's variable)."""
        bias = self.bias if bias is None else bias
        if bias is None:
            return None, None
        if self.variant.reset_after:
            return bias[0], bias[1]
        return bias, None

    def step_weights(self) -> dict:
        """The weights `project_inputs` and `recurrent_step` read (tf_while passes them read once)."""
        return {"kernel": self.kernel, "recurrent_kernel": self.recurrent_kernel, "bias": self.bias}

    def project_inputs(self, x, weights: dict | None = None):
        """Input terms of every slot (W x, x or tanh(x)) plus input biases, concatenated."""
        w = weights or self.step_weights()
        input_bias, _ = self._biases(w["bias"])
        return plus(self.input_terms(x, w["kernel"]), input_bias)

    def input_terms(self, x, kernel):
        """Input terms of every slot (W x, x or tanh(x)), concatenated, without their biases."""
        slots = self.variant.slots
        if len(self.dense_in) == len(slots):
            return ops.matmul(x, kernel)
        dense = dict(zip(self.dense_in, ops.split(ops.matmul(x, kernel), len(self.dense_in), -1)))
        terms = [dense[s] if s in dense else _ELEMENTWISE[self.variant.input_term(s)](x) for s in slots]
        return ops.concatenate(terms, axis=-1)

    def _recurrence(self, h, w) -> tuple[dict, dict]:
        """(R h + b of the slots that share one matmul, the matrices R of the other slots)."""
        u = self.units
        n_fused = len(self.fused_rec) * u
        if n_fused == w["recurrent_kernel"].shape[1]:
            R_fused, R_rest = w["recurrent_kernel"], None
        else:
            R_fused, R_rest = ops.split(w["recurrent_kernel"], [n_fused], axis=1)
        products = {}
        if self.fused_rec:
            _, recurrent_bias = self._biases(w["bias"])
            fused = plus(ops.matmul(h, R_fused), recurrent_bias)
            products = dict(zip(self.fused_rec, ops.split(fused, len(self.fused_rec), axis=-1)))
        rest = self.dense_rec[len(self.fused_rec) :]
        return products, dict(zip(rest, ops.split(R_rest, len(rest), axis=1))) if rest else {}

    def _gate(self, pre):
        """σ(pre) for a gate that exists; None (no gate: r ≡ 1, or no z) for one that does not."""
        return None if pre is None else self.gate_activation(pre)

    def recurrent_step(self, x_proj, states, training=False, weights: dict | None = None):
        """One step from projected inputs. Returns (h, new_states, gates).

        `weights`: `step_weights()` as tensors; default: read this cell's variables."""
        w = weights or self.step_weights()
        h_prev = states[0] if isinstance(states, (list, tuple)) else states
        h_rec = self._drop_recurrent(h_prev, training)
        x = dict(zip(self.variant.slots, ops.split(x_proj, len(self.variant.slots), axis=-1)))
        rec = self._recurrence(h_rec, w)

        z = self._gate(plus(x.get("z"), self._z_term(h_rec, *rec)))
        r = self._gate(plus(x.get("r"), self._r_term(h_rec, *rec)))
        h_cand = self.candidate_activation(x["h"] + self._h_term(h_rec, r, *rec))
        h = self._mix(z, h_prev, h_cand)

        new_states = [h] if isinstance(states, (list, tuple)) else h  # as keras.layers.GRUCell
        return h, new_states, {"z": z, "r": r, "h": h_cand}

    def get_config(self):
        config = {
            "variant": self.variant.name,
            "forget_bias": self.forget_bias,
            "chrono_tmax": self.chrono_tmax,
            "candidate_activation": serialize_activation(self.candidate_activation),
            "gate_activation": serialize_activation(self.gate_activation),
        }
        return {**super().get_config(), **config}

"""GRUCell: Keras's GRU cell, Cho et al.'s original, gate removals and Jozefowicz's MUT1-3."""

from __future__ import annotations

import itertools

import keras
from keras import ops

from lstm_keras.activations import ActivationLike, either, get_activation, serialize_activation
from lstm_keras.base_cell import GatedCell
from lstm_keras.forget_bias import ForgetBias, forget_bias_values, validate_forget_bias
from lstm_keras.variants import DENSE, GRU_VARIANTS, IDENTITY, NONE, TANH, lookup


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
        forget_bias: ForgetBias = None,
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
            default=None,
        )
        self.chrono_tmax = chrono_tmax
        candidate = either("candidate_activation", candidate_activation, "activation", activation)
        gate = either("gate_activation", gate_activation, "recurrent_activation", recurrent_activation)
        self.candidate_activation = get_activation(candidate or "tanh", argument="candidate_activation")
        self.gate_activation = get_activation(gate or "sigmoid", argument="gate_activation")
        v = self.variant
        self.dense_in = tuple(s for s in v.slots if v.input_term(s) == DENSE)
        self.dense_rec = tuple(s for s in v.slots if v.recurrent_term(s) != NONE)
        # Recurrent terms that multiply h itself (one fused matmul) form a prefix of dense_rec;
        # R tanh(h) (MUT3) and R (r ⊙ h) (reset before) are computed after it.
        on_h = [s for s in self.dense_rec if v.recurrent_term(s) == DENSE and (s != "h" or v.reset_after)]
        self.fused_rec = tuple(itertools.takewhile(lambda s: s in on_h, self.dense_rec))
        self.state_size = self.units

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
        """The weights `project_inputs` and `recurrent_step` read (the lean engine passes them read once)."""
        return {"kernel": self.kernel, "recurrent_kernel": self.recurrent_kernel, "bias": self.bias}

    def project_inputs(self, x, weights: dict | None = None):
        """Input terms of every slot (W x, x or tanh(x)) plus input biases, concatenated."""
        v, w = self.variant, weights or self.step_weights()
        dense = ops.matmul(x, w["kernel"]) if w["kernel"] is not None else None
        if len(self.dense_in) == len(v.slots):
            z = dense
        else:
            by_slot = (
                dict(zip(self.dense_in, ops.split(dense, len(self.dense_in), -1))) if self.dense_in else {}
            )
            by_slot.update(
                {s: x if v.input_term(s) == IDENTITY else ops.tanh(x) for s in v.slots if s not in by_slot}
            )
            z = ops.concatenate([by_slot[s] for s in v.slots], axis=-1)
        input_bias, _ = self._biases(w["bias"])
        return z if input_bias is None else z + input_bias

    def recurrent_step(self, x_proj, states, training=False, weights: dict | None = None):
        """One step from projected inputs. Returns (h, new_states, gates).

        `weights`: `step_weights()` as tensors; default: read this cell's variables."""
        w = weights or self.step_weights()
        v, u = self.variant, self.units
        h_prev = states[0] if isinstance(states, (list, tuple)) else states
        h_rec = self._drop_recurrent(h_prev, training)
        x = dict(zip(v.slots, ops.split(x_proj, len(v.slots), axis=-1)))

        n_fused = len(self.fused_rec) * u
        if n_fused == w["recurrent_kernel"].shape[1]:
            R_fused, R_rest = w["recurrent_kernel"], None
        else:
            R_fused, R_rest = ops.split(w["recurrent_kernel"], [n_fused], axis=1)
        rec = {}
        if self.fused_rec:
            fused = ops.matmul(h_rec, R_fused)
            _, recurrent_bias = self._biases(w["bias"])
            if recurrent_bias is not None:
                fused = fused + recurrent_bias
            rec.update(zip(self.fused_rec, ops.split(fused, len(self.fused_rec), axis=-1)))
        rest = self.dense_rec[len(self.fused_rec) :]
        R = dict(zip(rest, ops.split(R_rest, len(rest), axis=1))) if rest else {}
        if v.update_gate is not None and v.update_gate.recurrent == TANH:
            rec["z"] = ops.matmul(ops.tanh(h_rec), R["z"])
        if "r" in R:
            rec["r"] = ops.matmul(h_rec, R["r"])

        z = self.gate_activation(x["z"] + rec["z"] if "z" in rec else x["z"]) if "z" in x else None
        r = self.gate_activation(x["r"] + rec["r"]) if "r" in x else None
        if v.reset_after:
            h_cand = self.candidate_activation(x["h"] + (rec["h"] if r is None else r * rec["h"]))
        else:
            h_cand = self.candidate_activation(x["h"] + ops.matmul(h_rec if r is None else r * h_rec, R["h"]))
        if z is None:
            h = h_cand
        elif v.update_keeps_state:
            h = z * h_prev + (1.0 - z) * h_cand
        else:
            h = z * h_cand + (1.0 - z) * h_prev
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

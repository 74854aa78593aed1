"""The fused kernel's ops as differentiable functions: attributes, block maps, and each forward op
with its backward op under one custom gradient.

Why a custom gradient rather than one registered for the op: TensorFlow's tape hands an op's
gradient function zeros, at full size, for every output no one differentiated — for the LSTM op
a (B, T, H) ∂L/∂c and a (B, T, 4H) ∂L/∂act, written and read on every training step although only
c's last step ever leaves the layer. Here the differentiated function's outputs are what the layer
returns (h if it returns sequences, and the final states), so the backward op receives (B, H)
gradients of the final states and the sequence's ∂L/∂h only when there is one.

Only imported on the TensorFlow backend (through fused_engine).
"""

from __future__ import annotations

import itertools

import tensorflow as tf

from lstm_keras.variants import DENSE, GATE_MODES, LEARNED, NONE
from lstm_keras.variants import TANH as TANH_TERM

LSTM_ATTRS = (
    "input_gate",
    "forget_gate",
    "output_gate",
    "peepholes",
    "candidate_activation",
    "output_activation",
)


def lstm_gate_blocks(attrs: dict) -> tuple[list[int], list[int], int]:
    """FGR's state a (the learned gates, in the order i, f, o): its blocks of units in the op's
    `act` (blocks i, f, g, o), its blocks in ∂L/∂z (the learned slots of i, f, c, o), and how many
    blocks ∂L/∂z has."""
    learned = [attrs[f"{g}_gate"] == GATE_MODES.index(LEARNED) for g in ("input", "forget", "output")]
    slots = [s for s, own in zip("ifco", [learned[0], learned[1], True, learned[2]]) if own]
    gates = [g for g, own in zip("ifo", learned) if own]
    return ["ifgo".index(g) for g in gates], [slots.index(g) for g in gates], len(slots)


def take_blocks(t: tf.Tensor, blocks: list[int], n: int, units: int | None = None) -> tf.Tensor:
    """The chosen of the last axis's first n blocks of `units` (all of the axis in n equal blocks
    if None; after them, a row's pad), concatenated (slices: a gather of columns copies element by
    element, two to three times slower)."""
    sizes = n if units is None else [units] * n + [-1]
    parts = tf.split(t, sizes, axis=-1)
    return tf.concat([parts[b] for b in blocks], axis=-1)


def row_pad(width: int) -> int:
    """Unused floats after each row of the LSTM op's (B, T, ·) tensors xp, act and ∂L/∂z (the op's
    `pad`): one cache line where a row is a multiple of 2 KB. Rows 4 KB apart (4 gates × 256
    units = 1,024 floats) fall on the same cache sets; the products outside the recurrence over
    them (∂R = Σ h_{t−1}ᵀ ∂z_t, ∂W) ran at half speed in oneDNN's AVX2 code (36 → 18 ms for ∂R at
    the char-LM shape) and slower in its AVX-512 code, and 16 floats more per row cost 1.6 % of
    the products."""
    return 16 if width % 512 == 0 else 0


GRU_ATTRS = ("update", "z_operand", "reset", "reset_after")
GRU_UPDATES = (None, "keeps", "writes")  # the kernel's `enum class Update`
GRU_Z_OPERANDS = (NONE, DENSE, TANH_TERM)  # `enum class Operand`: what U_z multiplies


def gru_attrs(variant) -> dict:
    """The GRU op's attributes for `variant` (a `GRUVariant`)."""
    update = None if variant.update_gate is None else "keeps" if variant.update_keeps_state else "writes"
    z_operand = NONE if variant.update_gate is None else variant.update_gate.recurrent
    return {
        "update": GRU_UPDATES.index(update),
        "z_operand": GRU_Z_OPERANDS.index(z_operand),
        "reset": variant.reset_gate is not None,
        "reset_after": variant.reset_after,
    }


def gru_operands(attrs: dict) -> list[str]:
    """What each block of U multiplies, in U's column order (z, r, h that have a term)."""
    z = GRU_Z_OPERANDS[attrs["z_operand"]]
    operands = [] if z == NONE else ["h" if z == DENSE else "tanh"]
    operands += ["h"] if attrs["reset"] else []
    return [*operands, "h" if attrs["reset_after"] else "rh"]


def previous_states(h0: tf.Tensor, h: tf.Tensor) -> tf.Tensor:
    """h_{t-1} for t = 1 … T, batch-major."""
    return tf.concat([h0[:, None], h[:, :-1]], axis=1)


def weight_gradient(h0: tf.Tensor, h: tf.Tensor, dz: tf.Tensor) -> tf.Tensor:
    """Σ_t h_{t-1}ᵀ ∂L/∂z_t as one product over every step."""
    units = h.shape[-1] or tf.shape(h)[-1]
    hp = tf.reshape(previous_states(h0, h), [-1, units])
    return tf.matmul(hp, tf.reshape(dz, [-1, tf.shape(dz)[-1]]), transpose_a=True)


def gru_weight_gradient(h0, h, act, drec, attrs: dict) -> tf.Tensor:
    """Σ_t operandᵀ ∂L/∂term_t per block of U: h_{t-1} for the terms that share its product,
    tanh(h_{t-1}) for MUT3's z, r_t ⊙ h_{t-1} for a candidate reset before its product."""
    operands = gru_operands(attrs)
    if set(operands) == {"h"}:
        return weight_gradient(h0, h, drec)
    units = h.shape[-1] or tf.shape(h)[-1]
    hp = previous_states(h0, h)
    left = {"h": hp, "tanh": tf.tanh(hp), "rh": act[..., units : 2 * units] * hp}
    # Neighbouring blocks with the same operand (the terms on h_{t-1}) share one product.
    runs = [(o, len(list(g))) for o, g in itertools.groupby(operands)]
    blocks = tf.split(drec, [n * units for _, n in runs], axis=-1)
    return tf.concat(
        [
            tf.matmul(tf.reshape(left[o], [-1, units]), tf.reshape(d, [-1, n * units]), transpose_a=True)
            for (o, n), d in zip(runs, blocks)
        ],
        axis=1,
    )


def unpadded(t: tf.Tensor, width: int) -> tf.Tensor:
    """The first `width` columns (all of them without a pad: no copy)."""
    return t if t.shape[-1] == width else t[:, :width]


def _or_zeros(grad, like: tf.Tensor) -> tf.Tensor:
    return tf.zeros_like(like) if grad is None else grad


def _sequence_grad(grad, like: tf.Tensor) -> tf.Tensor:
    """∂L/∂h for every step, or [0] when no one differentiated the sequence (the ops' 'none')."""
    return tf.zeros([0], like.dtype) if grad is None else grad


def lstm_sequence(kernel, attrs: dict, inputs, w, b, r, p, h0, c0, q, a0, return_sequences: bool):
    """(h for every step, or None unless `return_sequences`; [h_T, c_T] and, for FGR, its learned
    gates of the last step): xp = W x + b for every step, then the LstmSequence op, differentiated
    by LstmSequenceGrad and the projection's own products."""
    act_blocks, z_blocks, slots = lstm_gate_blocks(attrs)
    fgr = q.shape[0] != 0
    units, width = r.shape[0], w.shape[-1]
    pad = row_pad(width)
    attrs = {**attrs, "pad": pad}

    @tf.custom_gradient
    def sequence(inputs, w, b, r, p, h0, c0, q, a0):
        # W x + b inside the custom gradient: the op is then xp's only reader and (with all four
        # gates) writes act over it; passed in from outside, xp would be held for the gradient's
        # bookkeeping until the op ends, and act would need a buffer of its own.
        x = tf.reshape(inputs, [-1, inputs.shape[-1]])
        w_pad, b_pad = (tf.pad(w, [[0, 0], [0, pad]]), tf.pad(b, [[0, pad]])) if pad else (w, b)
        xp = tf.reshape(tf.matmul(x, w_pad) + b_pad, [tf.shape(inputs)[0], tf.shape(inputs)[1], width + pad])
        h, c, act = kernel.op("LstmSequence")(xp, r, p, h0, c0, q, a0, **attrs)
        final = [h[:, -1], c[:, -1]] + ([take_blocks(act[:, -1], act_blocks, 4, units)] if fgr else [])

        def grad(*douts):
            dh = _sequence_grad(douts[0] if return_sequences else None, h)
            dh_last, dc_last, *da_last = douts[1:] if return_sequences else douts
            # FGR's final gates are read from act's last step: their gradient enters there.
            da = _or_zeros(da_last[0], a0) if fgr else tf.zeros_like(a0)
            dz, dh0, dc0, dp, da0, db = kernel.op("LstmSequenceGrad")(
                r, p, c0, c, act, dh, _or_zeros(dh_last, h0), _or_zeros(dc_last, c0), q, da, **attrs
            )  # dp: i and f saw c_{t-1}, o saw c_t; zeros for a gate without a peephole
            dq = tf.zeros_like(q)
            if fgr:  # Σ_t a_{t-1}ᵀ ∂L/∂z_t over the gates' columns
                dq = weight_gradient(
                    a0, take_blocks(act, act_blocks, 4, units), take_blocks(dz, z_blocks, slots, units)
                )
            dr = unpadded(weight_gradient(h0, h, dz), width)
            dz = tf.reshape(dz, [-1, width + pad])  # xp = x W + b differentiated (db: by the op)
            dx = tf.reshape(tf.matmul(dz, w_pad, transpose_b=True), tf.shape(inputs))  # (dz's pad: zeros)
            return dx, unpadded(tf.matmul(x, dz, transpose_a=True), width), db, dr, dp, dh0, dc0, dq, da0

        return ([h] if return_sequences else []) + final, grad

    outputs = sequence(inputs, w, b, r, p, h0, c0, q, a0)
    return (outputs[0], outputs[1:]) if return_sequences else (None, list(outputs))


def gru_sequence(kernel, attrs: dict, terms, xb, u, rb, h0, return_sequences: bool):
    """(h for every step, or None unless `return_sequences`; [h_T]): xp = the input terms plus
    their bias `xb`, then the GruSequence op, differentiated by GruSequenceGrad."""

    @tf.custom_gradient
    def sequence(terms, xb, u, rb, h0):
        # The biases' gradients are the op's sums over batch and steps (xb added in here for that).
        h, act, rh = kernel.op("GruSequence")(terms + xb, u, rb, h0, **attrs)

        def grad(*douts):
            dh = _sequence_grad(douts[0] if return_sequences else None, h)
            dxp, drec, dh0, dxb, drb = kernel.op("GruSequenceGrad")(
                u, h0, h, act, rh, dh, _or_zeros(douts[-1], h0), **attrs
            )
            return dxp, dxb, gru_weight_gradient(h0, h, act, drec, attrs), drb, dh0

        return ([h] if return_sequences else []) + [h[:, -1]], grad

    outputs = sequence(terms, xb, u, rb, h0)
    return (outputs[0], outputs[1:]) if return_sequences else (None, list(outputs))

"""The activation names lstm_keras adds to Keras's, and the fused kernel's codes for the ones it
computes. No Keras import, so a parameter can be checked before TensorFlow loads."""

from __future__ import annotations

TANH = "tanh"
LINEAR = "linear"
RELU = "relu"
SIGMOID = "sigmoid"
SIGMOID_2M1 = "2sigmoid-1"  # 2σ(x) − 1: the 1997 LSTM's cell output (range (−1, 1))
SIGMOID_4M2 = "4sigmoid-2"  # 4σ(x) − 2: the 1997 LSTM's cell input (range (−2, 2))

OWN = (SIGMOID_2M1, SIGMOID_4M2)  # ours: a config names them so, not as Keras would
# Other spellings a user may write, and the activation each stands for.
ALIASES = {"sigmoid_2m1": SIGMOID_2M1, "sigmoid_4m2": SIGMOID_4M2, "identity": LINEAR}

# What the fused kernel computes for φ and ψ; an activation's code is its position here, which
# kernels/fused_rnn.cc's `enum class Act` follows.
KERNEL_ACTIVATIONS = (TANH, LINEAR, RELU, SIGMOID, SIGMOID_2M1, SIGMOID_4M2)


def kernel_code(name: str) -> int:
    """The fused kernel's code for activation `name` (one of KERNEL_ACTIVATIONS)."""
    return KERNEL_ACTIVATIONS.index(name)

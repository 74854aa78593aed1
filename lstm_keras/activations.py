"""Activation functions used by the cells, including the 1997 scaled sigmoids.

Hochreiter & Schmidhuber (1997) squash the cell input with g(x) = 4σ(x) − 2 (range [−2, 2])
and the cell output with h(x) = 2σ(x) − 1 (range [−1, 1]). Both are registered Keras objects,
so a layer using them serialises and reloads like any other.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import ops

from lstm_keras.activation_names import ALIASES, SIGMOID_2M1, SIGMOID_4M2

ActivationLike = str | Callable | None


@keras.saving.register_keras_serializable(package="lstm_keras")
def sigmoid_2m1(x):
    """2σ(x) − 1: the 1997 LSTM's cell-output squashing, range (−1, 1)."""
    return 2.0 * ops.sigmoid(x) - 1.0


@keras.saving.register_keras_serializable(package="lstm_keras")
def sigmoid_4m2(x):
    """4σ(x) − 2: the 1997 LSTM's cell-input squashing, range (−2, 2)."""
    return 4.0 * ops.sigmoid(x) - 2.0


# Our activations by the name a config gives them (activation_names.OWN).
_OWN: dict[str, Callable] = {SIGMOID_2M1: sigmoid_2m1, SIGMOID_4M2: sigmoid_4m2}


def keras_activation_names() -> list[str]:
    """Every activation name `keras.activations.get` accepts."""
    return sorted(
        name
        for name in dir(keras.activations)
        if not name.startswith("_") and name not in {"get", "serialize", "deserialize"}
    )


def valid_activation_names() -> list[str]:
    return sorted(set(keras_activation_names()) | set(_OWN) | set(ALIASES))


def get_activation(activation: ActivationLike, *, argument: str) -> Callable:
    """Resolve a name or callable, raising a ValueError that names `argument` and the choices."""
    if activation is None:
        return keras.activations.linear
    if callable(activation):
        return activation
    if isinstance(activation, str):
        name = ALIASES.get(activation, activation)
        if name in _OWN:
            return _OWN[name]
        if name in keras_activation_names():
            return keras.activations.get(name)
    raise ValueError(
        f"Unknown {argument}={activation!r}. Valid choices: "
        f"{', '.join(valid_activation_names())} (or a callable)."
    )


def either(name: str, value: ActivationLike, alias_name: str, alias: ActivationLike) -> ActivationLike:
    """`value`, or Keras's name for the same argument; both given is an error naming both
    (one of them would otherwise be dropped without a word)."""
    if value is not None and alias is not None:
        raise ValueError(f"Give either {name}={value!r} or Keras's alias {alias_name}={alias!r}, not both.")
    return alias if value is None else value


def serialize_activation(fn: Callable):
    """Config form: our own names for the 1997 sigmoids, Keras's serialisation otherwise."""
    own = [name for name, candidate in _OWN.items() if candidate is fn]
    return own[0] if own else keras.activations.serialize(fn)

"""Forget-gate bias: a constant (Gers et al. 2000; Jozefowicz et al. 2015) or chrono
initialisation (Tallec & Ollivier 2018, "Can recurrent neural networks warp time?").

Chrono draws b_f ~ log(U[1, T_max − 1]) so that the forget gate's characteristic memory
time 1 / (1 − σ(b_f)) spreads over [2, T_max]; the input gate gets b_i = −b_f.
"""

from __future__ import annotations

import numbers

import keras
from keras import ops

CHRONO = "chrono"
ForgetBias = float | str | None


def validate_forget_bias(
    forget_bias: ForgetBias, chrono_tmax: float | None, *, has_forget_gate: bool, default: ForgetBias
) -> ForgetBias:
    """Check the forget_bias / chrono_tmax pair; return forget_bias as float, 'chrono' or None."""
    if forget_bias is not None and not isinstance(forget_bias, (numbers.Real, str)):
        raise ValueError(f"Invalid forget_bias={forget_bias!r}. Valid choices: a float, 'chrono' or None.")
    if isinstance(forget_bias, str):
        if forget_bias != CHRONO:
            try:
                forget_bias = float(forget_bias)
            except ValueError:
                raise ValueError(
                    f"Invalid forget_bias={forget_bias!r}. Valid choices: a float, 'chrono' or None."
                ) from None
    elif isinstance(forget_bias, numbers.Real) and not isinstance(forget_bias, bool):
        forget_bias = float(forget_bias)
    elif isinstance(forget_bias, bool):
        raise ValueError(f"Invalid forget_bias={forget_bias!r}. Valid choices: a float, 'chrono' or None.")
    if forget_bias == CHRONO:
        if chrono_tmax is None or not isinstance(chrono_tmax, numbers.Real) or chrono_tmax <= 2:
            raise ValueError(
                f"forget_bias='chrono' needs chrono_tmax > 2 (the longest dependency, in steps); "
                f"got chrono_tmax={chrono_tmax!r}."
            )
    elif chrono_tmax is not None:
        raise ValueError(
            f"chrono_tmax={chrono_tmax!r} is only used with forget_bias='chrono' "
            f"(got forget_bias={forget_bias!r})."
        )
    if not has_forget_gate and forget_bias not in (None, default):
        raise ValueError(
            f"forget_bias={forget_bias!r} given, but this variant has no forget/update gate; "
            f"valid choices here: None (or the default {default!r})."
        )
    return forget_bias if has_forget_gate else None


@keras.saving.register_keras_serializable(package="lstm_keras")
class ChronoInitializer(keras.initializers.Initializer):
    """log(U[1, tmax − 1]), elementwise: chrono forget-gate biases."""

    def __init__(self, tmax: float, seed: int | None = None):
        self.tmax = float(tmax)
        self.seed = seed
        self._seed_generator = keras.random.SeedGenerator(seed) if seed is not None else None

    def __call__(self, shape, dtype=None):
        u = keras.random.uniform(
            shape, minval=1.0, maxval=self.tmax - 1.0, dtype=dtype, seed=self._seed_generator
        )
        return ops.log(u)

    def get_config(self):
        return {"tmax": self.tmax, "seed": self.seed}


def forget_bias_values(forget_bias: ForgetBias, chrono_tmax, units: int, seed, dtype):
    """The forget pre-activation bias to install (a tensor of shape (units,)), or None."""
    if forget_bias is None:
        return None
    if forget_bias == CHRONO:
        return ChronoInitializer(chrono_tmax, seed=seed)((units,), dtype=dtype)
    return ops.full((units,), forget_bias, dtype=dtype)

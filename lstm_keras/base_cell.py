"""What the LSTM and GRU cells share: Keras's usual arguments, dropout, and the split of a
step into an input projection (computable for the whole sequence at once) and a recurrence."""

from __future__ import annotations

import keras
from keras import constraints, initializers, ops, regularizers

# keras.layers.RNN prepares dropout masks before its loop only for cells of this class
# (which keeps the loop stateless on JAX); it is not exported publicly.
from keras.src.layers.rnn.dropout_rnn_cell import DropoutRNNCell


def times(gate, x):
    """gate ⊙ x, where a fixed-open gate is None and costs nothing."""
    return x if gate is None else gate * x


def plus(x, term):
    """x + term, where an absent term is None and costs nothing (so is an absent x)."""
    return x if term is None else term if x is None else x + term


def validate_units(units) -> int:
    if isinstance(units, bool) or not isinstance(units, int) or units <= 0:
        raise ValueError(f"Invalid units={units!r}. Valid choices: a positive integer.")
    return units


def validate_rate(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"Invalid {name}={value!r}. Valid choices: a float in [0, 1).")
    return float(value)


def validate_choice(name: str, value, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"Invalid {name}={value!r}. Valid choices: {', '.join(map(repr, choices))}.")
    return value


def held_from_start(initializer, hold):
    """`initializer`, its values passed through `hold`: Keras applies constraints only after an
    optimizer update, and a held weight must be held before the first step too."""
    if hold is None:
        return initializer
    return lambda shape, dtype=None: hold(initializer(shape, dtype=dtype))


class GatedCell(keras.layers.Layer, DropoutRNNCell):
    """Base class: stores and serialises the arguments every Keras recurrent cell takes.

    Subclasses define `build`, `project_inputs(x)` (x may be one step (B, F) or a whole
    sequence (B, T, F)) and `recurrent_step(x_proj, states, training)`; `call` composes them
    so the cell works inside any `keras.layers.RNN`, and the sequence layers project the
    whole sequence with one matrix product before the loop.
    """

    def __init__(
        self,
        units: int,
        *,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: int | None = None,
        **kwargs,
    ):
        self.units = validate_units(units)
        super().__init__(**kwargs)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.recurrent_constraint = constraints.get(recurrent_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.dropout = validate_rate("dropout", dropout)
        self.recurrent_dropout = validate_rate("recurrent_dropout", recurrent_dropout)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed=seed)
        self.output_size = self.units

    # -- weights ---------------------------------------------------------------------------
    def _add_kernel(self, name: str, rows: int, columns: int, kind: str = "kernel", hold=None):
        """`hold`: a constraint that replaces the user's (wrapping it) and holds from the start."""
        if columns == 0:
            return None
        return self.add_weight(
            shape=(rows, columns),
            name=name,
            initializer=held_from_start(getattr(self, f"{kind}_initializer"), hold),
            regularizer=getattr(self, f"{kind}_regularizer"),
            constraint=hold or getattr(self, f"{kind}_constraint"),
        )

    def _add_bias(self, name: str, shape, initializer, hold=None):
        return self.add_weight(
            shape=shape,
            name=name,
            initializer=held_from_start(initializer, hold),
            regularizer=self.bias_regularizer,
            constraint=hold or self.bias_constraint,
        )

    # -- dropout ---------------------------------------------------------------------------
    def _drop_inputs(self, x, training):
        if training and 0.0 < self.dropout < 1.0:
            mask = self.get_dropout_mask(x if len(x.shape) == 2 else x[:, 0, :])
            # One mask for every step, as in Keras (variational dropout, Gal & Ghahramani).
            return x * (mask if len(x.shape) == 2 else ops.expand_dims(mask, 1))
        return x

    def _drop_recurrent(self, h, training):
        if training and 0.0 < self.recurrent_dropout < 1.0:
            return h * self.get_recurrent_dropout_mask(h)
        return h

    # -- Keras cell contract -----------------------------------------------------------------
    def call(self, inputs, states, training=False):
        x_proj = self.project_inputs(self._drop_inputs(inputs, training))
        h, new_states, _ = self.recurrent_step(x_proj, states, training)
        return h, new_states

    def get_initial_state(self, batch_size=None):
        sizes = self.state_size if isinstance(self.state_size, list) else [self.state_size]
        return [ops.zeros((batch_size, d), dtype=self.compute_dtype) for d in sizes]

    def get_config(self):
        config = {
            "units": self.units,
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "recurrent_regularizer": regularizers.serialize(self.recurrent_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "recurrent_constraint": constraints.serialize(self.recurrent_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
        }
        return {**super().get_config(), **config}

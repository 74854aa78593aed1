"""LSTM and GRU sequence layers: `keras.layers.RNN` over our cells, or a faster TF engine.

Measured on the 2-core CPU (experiments.benchmark, copy shape): hoisting the input projection
W x + b out of the time loop made training *slower* (0.65x the built-in, against 0.95x for the
plain per-step cell), because the loop then carries a (T, B, 4·units) tensor and its gradient
instead of (T, B, features). So the layers run the cell step by step, as Keras does; on the
TensorFlow backend, in their own `tf.while_loop` (the tf_while engine, lstm_keras/tf_while_engine.py)
wherever it applies, and, for every LSTM variant (FGR included) and every GRU variant, in one C++ op for
the whole sequence (lstm_keras/fused_engine.py), where the input projection is hoisted for free
because nothing is carried through a TF loop.
"""

from __future__ import annotations

import keras

from lstm_keras.base_cell import validate_choice
from lstm_keras.gru_cell import GRUCell
from lstm_keras.lstm_cell import LSTMCell

# Arguments that belong to the layer itself; everything else configures the cell.
_LAYER_KWARGS = {"name", "dtype", "trainable", "autocast", "input_shape", "batch_size", "input_dim"}
ENGINES = ("auto", "keras", "tf_while", "fused")
# Cell steps written out per iteration of the tf_while engine's loop (measured: experiments.benchmark).
STEPS_PER_ITERATION = 4


class _GatedRNN(keras.layers.RNN):
    cell_class: type = None

    def __init__(
        self,
        units: int,
        *,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        zero_output_for_mask: bool = False,
        activity_regularizer=None,
        use_cudnn="auto",
        engine: str = "auto",
        **kwargs,
    ):
        self.engine = validate_choice("engine", engine, ENGINES)
        if use_cudnn not in ("auto", False):
            raise ValueError(
                f"Invalid use_cudnn={use_cudnn!r}. Valid choices: 'auto', False "
                "(these cells have no cuDNN kernel; use keras.layers.LSTM/GRU for cuDNN)."
            )
        layer_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in _LAYER_KWARGS}
        cell = self.cell_class(
            units,
            dtype=layer_kwargs.get("dtype"),
            trainable=layer_kwargs.get("trainable", True),
            name=f"{self.cell_class.__name__.lower().replace('cell', '')}_cell",
            **kwargs,
        )
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            zero_output_for_mask=zero_output_for_mask,
            activity_regularizer=activity_regularizer,
            **layer_kwargs,
        )
        self.use_cudnn = use_cudnn
        self.input_spec = keras.layers.InputSpec(ndim=3)
        self.engines_run: dict[str, str] = {}
        self.fused_reasons: dict[str, str | None] = {}  # by mode: why that call was not fused
        if self.engine in ("auto", "fused") and keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            # XLA cannot compile the fused op (CPU only): Keras then trains without jit_compile.
            self.supports_jit = bool(tf.config.list_logical_devices("GPU"))

    @property
    def units(self) -> int:
        return self.cell.units

    @property
    def variant(self) -> str:
        return self.cell.variant.name

    def tf_while_engine_reason(self, mask=None, training=False) -> str | None:
        """Why this call runs on `keras.layers.RNN` rather than the tf_while engine (None: it doesn't)."""
        if self.engine == "keras":
            return "engine='keras'"
        if keras.backend.backend() != "tensorflow":
            return f"the {keras.backend.backend()} backend"
        from lstm_keras import tf_while_engine

        return tf_while_engine.unsupported_reason(self, mask, training)

    def fused_engine_reason(self, mask=None, training=False) -> str | None:
        """Why this call does not run on the fused C++ kernel (None: it does)."""
        if self.engine in ("keras", "tf_while"):
            return f"engine={self.engine!r}"
        if keras.backend.backend() != "tensorflow":
            return f"the {keras.backend.backend()} backend"
        from lstm_keras import fused_engine

        return fused_engine.unsupported_reason(self, mask, training)

    def engine_used(self, mask=None, training=False) -> str:
        """The engine this call runs on: "fused", "tf_while" or "keras" (`keras.layers.RNN`)."""
        if self.fused_engine_reason(mask, training) is None:
            return "fused"
        return "tf_while" if self.tf_while_engine_reason(mask, training) is None else "keras"

    def call(self, sequences, initial_state=None, mask=None, training=False):
        reason = self.fused_engine_reason(mask, training)
        engine = "fused" if reason is None else self.engine_used(mask, training)
        # What the last traced call ran, and why not fused, by mode (masks are known only here).
        mode = "training" if training else "inference"
        self.engines_run[mode], self.fused_reasons[mode] = engine, reason
        if engine == "fused":
            from lstm_keras import fused_engine

            return fused_engine.run(self, sequences, initial_state)
        if engine == "tf_while":
            from lstm_keras import tf_while_engine

            return tf_while_engine.run(self, sequences, initial_state, training, STEPS_PER_ITERATION)
        return super().call(sequences, mask=mask, training=training, initial_state=initial_state)

    def get_config(self):
        config = super().get_config()
        cell_config = config.pop("cell")["config"]
        for key in ("name", "trainable", "dtype"):
            cell_config.pop(key, None)
        config["use_cudnn"] = self.use_cudnn
        config["engine"] = self.engine
        return {**config, **cell_config}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="lstm_keras")
class LSTM(_GatedRNN):
    """LSTM layer over `LSTMCell`: any variant, forget bias and activations.

    Args:
        units: Positive integer, dimensionality of the output space.
        **cell_kwargs: Everything `LSTMCell` takes (variant, forget_bias, chrono_tmax,
            fixed_open_gate, candidate_activation, output_activation, gate_activation, Keras's initializers,
            regularizers, constraints, dropout, recurrent_dropout, seed, and Keras's names
            activation / recurrent_activation / unit_forget_bias).
        return_sequences, return_state, go_backwards, stateful, unroll, zero_output_for_mask,
        activity_regularizer: as in `keras.layers.RNN`.
        use_cudnn: `"auto"` or `False`, accepted for compatibility with `keras.layers.LSTM`.
        engine: `"auto"` (default) and `"fused"`: on the TensorFlow backend and a CPU, the fused
            C++ kernel (every variant, σ gates, φ/ψ among tanh, linear, relu, sigmoid
            and the 1997 sigmoids; no mask, not stateful, no unroll, no dropout in training,
            float32); else the tf_while engine (one `tf.while_loop`) where it applies (any variant, same
            conditions); else `keras.layers.RNN`.
            `"tf_while"`: never the fused kernel. `"keras"`: always `keras.layers.RNN`.
            Outputs and gradients do not depend on it (tested to 1e-5); `engine_used()` says
            which one runs.

    Call arguments:
        sequences: A 3D tensor `(batch, timesteps, features)`.
        initial_state: List of initial state tensors (`[h, c]`).
        mask: Binary tensor `(batch, timesteps)`; masked steps keep the previous state.
        training: Whether dropout is active.

    Example:

    >>> layer = LSTM(16, variant="NFG", forget_bias=None, return_sequences=True)
    >>> layer(np.zeros((4, 10, 3))).shape
    (4, 10, 16)
    """

    cell_class = LSTMCell


@keras.saving.register_keras_serializable(package="lstm_keras")
class GRU(_GatedRNN):
    """GRU layer over `GRUCell`: any variant, update-gate bias and candidate activation.

    Args:
        units: Positive integer, dimensionality of the output space.
        **cell_kwargs: Everything `GRUCell` takes (variant, forget_bias, chrono_tmax,
            candidate_activation, gate_activation, reset_after, Keras's initializers,
            regularizers, constraints, dropout, recurrent_dropout, seed).
        return_sequences, return_state, go_backwards, stateful, unroll, zero_output_for_mask,
        activity_regularizer: as in `keras.layers.RNN`.
        use_cudnn: `"auto"` or `False`, accepted for compatibility with `keras.layers.GRU`.
        engine: `"auto"` (default) and `"fused"`: on the TensorFlow backend and a CPU, the fused
            C++ kernel for `variant="keras"` with σ gates and tanh (no mask, not stateful, no
            unroll, no dropout in training, float32); else the tf_while engine (one `tf.while_loop`)
            where it applies (any variant, same conditions); else `keras.layers.RNN`.
            `"tf_while"`: never the fused kernel. `"keras"`: always `keras.layers.RNN`.
            Outputs and gradients do not depend on it (tested to 1e-5); `engine_used()` says
            which one runs.

    Call arguments:
        sequences: A 3D tensor `(batch, timesteps, features)`.
        initial_state: List with the initial state tensor `[h]`.
        mask: Binary tensor `(batch, timesteps)`.
        training: Whether dropout is active.

    Example:

    >>> GRU(16, variant="MUT2")(np.zeros((4, 10, 16))).shape
    (4, 16)
    """

    cell_class = GRUCell

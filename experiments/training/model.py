"""The model a run trains: input → (Embedding) → one recurrent layer → Dense head."""

from __future__ import annotations

import keras

import lstm_keras as lk
from experiments.training.config import AUTO, RunConfig
from experiments.training.tasks.base import Task
from lstm_keras.variants import GRU_VARIANTS

RECURRENT = "recurrent"  # the probed layer's name


def cell_kwargs(config: RunConfig, task: Task) -> dict:
    """The recurrent layer's arguments that the config chooses (auto: the library's default)."""
    c = config
    init = {} if c.recurrent_initializer == AUTO else {"recurrent_initializer": c.recurrent_initializer}
    if c.cell == "rnn":
        act = c.candidate_activation
        return init if act == AUTO else {**init, "activation": act}
    kwargs: dict = {"variant": c.variant, "seed": c.seed, "engine": c.engine, **init}
    if c.forget_bias != AUTO:
        kwargs["forget_bias"] = (
            None
            if c.forget_bias == "none"
            else ("chrono" if c.forget_bias == "chrono" else float(c.forget_bias))
        )
        if c.forget_bias == "chrono":
            kwargs["chrono_tmax"] = task.seq_len
    if c.fixed_open_gate != "none":  # none: the layer's arguments (and saved config) as before
        kwargs["fixed_open_gate"] = c.fixed_open_gate
    if c.candidate_activation != AUTO:
        kwargs["candidate_activation"] = c.candidate_activation
    if c.output_activation != AUTO:
        kwargs["output_activation"] = c.output_activation
    return kwargs


def needs_input_width_units(config: RunConfig) -> bool:
    """GRU variants that add the input elementwise need features == units."""
    return config.cell == "gru" and GRU_VARIANTS[config.variant].adds_input_elementwise


def build_model(config: RunConfig, task: Task) -> keras.Model:
    """A functional model; its recurrent layer is named `RECURRENT`."""
    c = config
    sequences = task.output == "sequence"
    if task.input_vocab is not None:
        inputs = keras.Input((task.seq_len,), dtype="int32", name="tokens")
        width = c.units if needs_input_width_units(c) else c.embedding_dim
        x = keras.layers.Embedding(task.input_vocab, width, mask_zero=task.mask_zero, name="embedding")(
            inputs
        )
    else:
        inputs = keras.Input((task.seq_len, task.n_features), name="features")
        x = inputs
        if needs_input_width_units(c):
            x = keras.layers.Dense(c.units, name="input_projection")(x)
    layer_class = {"lstm": lk.LSTM, "gru": lk.GRU, "rnn": keras.layers.SimpleRNN}[c.cell]
    seeded = {"seed": c.seed} if c.cell == "rnn" else {}
    h = layer_class(c.units, return_sequences=sequences, name=RECURRENT, **seeded, **cell_kwargs(c, task))(x)
    outputs = keras.layers.Dense(task.n_outputs, name="head")(h)
    return keras.Model(inputs, outputs, name=f"{task.name}_{c.cell}")


def make_optimizer(config: RunConfig) -> keras.optimizers.Optimizer:
    kinds = {
        "adam": keras.optimizers.Adam,
        "adamw": keras.optimizers.AdamW,
        "nadam": keras.optimizers.Nadam,
        "rmsprop": keras.optimizers.RMSprop,
        "sgd": lambda **kw: keras.optimizers.SGD(momentum=0.9, **kw),
    }
    clip = {"global_clipnorm": config.clipnorm} if config.clipnorm > 0 else {}
    return kinds[config.optimizer](learning_rate=config.learning_rate, **clip)

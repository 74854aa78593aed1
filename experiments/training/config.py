"""The training entry point's parameters: one table, parsed and checked before TensorFlow loads.

Every parameter is named as the CLI and MLproject name it, and logged verbatim under that
name. `auto` means "the choice that belongs to the task or variant" (resolved in `resolve`
and recorded in the run's resolved config), so a logged `auto` always means the same thing.
This module imports no Keras: a bad value fails in well under a second, before any run exists.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass, fields

from experiments.training import corpora
from lstm_keras import activation_names, variants  # variants as data: no Keras, no TensorFlow

TASKS = ("copy", "adding", "char_lm", "sentiment")
CELLS = ("lstm", "gru", "rnn")  # rnn: Keras's SimpleRNN, the ungated baseline
OPTIMIZERS = ("adam", "adamw", "nadam", "rmsprop", "sgd")
# lstm_keras.layers.ENGINES (tested equal): the lstm/gru layers' loop. A SimpleRNN (cell rnn)
# always runs keras.layers.RNN's, so a spec may set engine for all its cells.
ENGINES = ("auto", "keras", "tf_while", "fused")
# The recurrent weights' initialiser (auto: the layer's own, orthogonal): claim h's gradient flow
# at initialisation depends on it, so a study can check its verdict under more than one.
RECURRENT_INITIALIZERS = ("auto", "orthogonal", "glorot_uniform", "identity")
# keras.activations names, which only Keras can list (tests/test_config.py keeps ACTIVATIONS in
# step with lstm_keras.activations.valid_activation_names()).
KERAS_ACTIVATIONS = [
    "celu",
    "elu",
    "exponential",
    "gelu",
    "glu",
    "hard_shrink",
    "hard_sigmoid",
    "hard_silu",
    "hard_swish",
    "hard_tanh",
    "leaky_relu",
    "linear",
    "log_sigmoid",
    "log_softmax",
    "mish",
    "relu",
    "relu6",
    "selu",
    "sigmoid",
    "silu",
    "soft_shrink",
    "softmax",
    "softplus",
    "softsign",
    "sparse_plus",
    "sparse_sigmoid",
    "sparsemax",
    "squareplus",
    "swish",
    "tanh",
    "tanh_shrink",
    "threshold",
]
ACTIVATIONS = sorted({*KERAS_ACTIVATIONS, *activation_names.OWN, *activation_names.ALIASES})
AUTO = "auto"


class ConfigError(ValueError):
    """A parameter value the run cannot use; the message names it and the valid choices."""


def variant_names(cell: str) -> tuple[str, ...]:
    return tuple(variants.VARIANTS[cell]) if cell in variants.VARIANTS else ("keras",)


def _bool(text: str) -> bool:
    lowered = str(text).strip().lower()
    if lowered in {"true", "1", "yes"}:
        return True
    if lowered in {"false", "0", "no"}:
        return False
    raise ValueError(text)


@dataclass(frozen=True)
class RunConfig:
    """Parameters of one training run, parsed (types checked) but not yet resolved."""

    # The default run shows the phenomenon on 2 cores in about 2 minutes: the adding problem over
    # 100 steps sits at the memoryless baseline, then an LSTM learns to carry the two marked
    # numbers and solves it, stopping there. Where it solves depends on the CPU's float sums:
    # seeds 0-2 at steps 1,900 / 1,100 / 1,000 on an AVX2 EPYC, 2,800 / 1,000 / 1,000 on an
    # AVX-512 one, so the budget leaves room above the slowest seen.
    task: str = "adding"
    seq_len: int = 100
    cell: str = "lstm"
    variant: str = "keras"
    # none | i | f | o (lstm only): that learned gate stays in the computation, held at σ = 1
    # (lstm_keras.constraints.HoldGateOpen), to compare with the variant where it is removed.
    fixed_open_gate: str = "none"
    forget_bias: str = AUTO  # a float, 'chrono', 'none' or auto (the cell's default)
    candidate_activation: str = AUTO  # auto: the variant's; for rnn, SimpleRNN's activation
    output_activation: str = AUTO
    units: int = 128
    embedding_dim: int = 32  # token tasks only
    recurrent_initializer: str = AUTO  # auto (the layer's: orthogonal) | glorot_uniform | identity
    optimizer: str = "adam"
    learning_rate: float = 0.005
    clipnorm: float = 1.0  # global gradient-norm clipping (Pascanu et al. 2013); 0 turns it off
    # Diverged: a non-finite loss, gradient or weight, or a training-window or validation loss above
    # explode_factor × max(the memoryless baseline loss, the validation loss at step 0).
    explode_factor: float = 100.0
    batch_size: int = 64
    steps: int = 4000
    eval_every: int = 100
    seed: int = 0
    corpus: str = AUTO  # char_lm: tinyshakespeare | ptb | a path; sentiment: sst2 | imdb
    variable_delay: bool = False  # copy only
    copy_symbols: int = 10  # copy only: symbols to recall (Arjovsky et al.: 10)
    vocab_size: int = 20000  # sentiment only
    target: str = AUTO  # task metric value that counts as solved; auto: the task's
    data_dir: str = AUTO  # auto: $LSTM_KERAS_DATA, else the project's data/
    early_stop: bool = True  # stop once solved or diverged; the unspent budget is logged
    engine: str = "auto"  # lstm/gru loop: auto (fused kernel, else tf.while_loop, else keras) | …
    log_model: bool = True
    probe_batch: int = 32  # examples for gate statistics and gradient flow

    def as_params(self) -> dict[str, str]:
        """The parameters as MLflow logs them: strings, under the CLI's names."""
        return {k: _format(v) for k, v in asdict(self).items()}


def _format(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


_TYPES = {int: int, float: float, bool: _bool, str: str}
# Valid choices of numbers with a range, as the error for an unparsable or out-of-range value says.
RANGES = {
    "explode_factor": "a finite number > 1 (a loss above explode_factor × max(baseline loss, "
    "initial validation loss) counts as diverged)",
}


def build_parser(description: str = "Train one recurrent network on one task, tracked in MLflow."):
    parser = argparse.ArgumentParser(description=description)
    for f in fields(RunConfig):
        kind = type(f.default)
        parser.add_argument(
            f"--{f.name}", default=None, metavar=kind.__name__.upper(), help=f"default: {f.default}"
        )
    return parser


def from_strings(values: dict[str, str | None]) -> RunConfig:
    """A RunConfig from CLI strings; unknown names and unparsable values raise ConfigError."""
    known = {f.name: f for f in fields(RunConfig)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"Unknown parameter(s) {', '.join(unknown)}. Valid choices: {', '.join(known)}.")
    parsed = {}
    for name, text in values.items():
        if text is None:
            continue
        kind = type(known[name].default)
        try:
            parsed[name] = _TYPES[kind](text)
        except ValueError:
            choices = RANGES.get(name, _describe(kind))
            raise ConfigError(f"Invalid {name}={text!r}. Valid choices: {choices}.") from None
    return validate(RunConfig(**parsed))


def _describe(kind) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}[kind]


def _check_choice(name: str, value: str, choices) -> None:
    if value not in choices:
        raise ConfigError(f"Invalid {name}={value!r}. Valid choices: {', '.join(choices)}.")


def validate(config: RunConfig) -> RunConfig:
    """Every check that needs no Keras; raise ConfigError naming the value and the choices."""
    c = config
    _check_choice("task", c.task, TASKS)
    _check_choice("cell", c.cell, CELLS)
    _check_choice("variant", c.variant, variant_names(c.cell))
    _check_choice("optimizer", c.optimizer, OPTIMIZERS)
    _check_choice("recurrent_initializer", c.recurrent_initializer, RECURRENT_INITIALIZERS)
    _check_choice("engine", c.engine, ENGINES)
    for name in ("candidate_activation", "output_activation"):
        _check_choice(name, getattr(c, name), (AUTO, *ACTIVATIONS))
    for name, minimum in (
        ("seq_len", 1),
        ("units", 1),
        ("embedding_dim", 1),
        ("batch_size", 1),
        ("steps", 1),
        ("eval_every", 1),
        ("vocab_size", 3),
        ("probe_batch", 1),
        ("seed", 0),
    ):
        if getattr(c, name) < minimum:
            raise ConfigError(f"Invalid {name}={getattr(c, name)!r}. Valid choices: an integer >= {minimum}.")
    if c.task == "adding" and c.seq_len < 2:
        raise ConfigError(f"Invalid seq_len={c.seq_len!r} for task='adding'. Valid choices: an integer >= 2.")
    if not (math.isfinite(c.learning_rate) and c.learning_rate > 0):
        raise ConfigError(f"Invalid learning_rate={c.learning_rate!r}. Valid choices: a number > 0.")
    if not (math.isfinite(c.clipnorm) and c.clipnorm >= 0):
        raise ConfigError(f"Invalid clipnorm={c.clipnorm!r}. Valid choices: a number >= 0 (0 = no clipping).")
    if not (math.isfinite(c.explode_factor) and c.explode_factor > 1):
        raise ConfigError(
            f"Invalid explode_factor={c.explode_factor!r}. Valid choices: {RANGES['explode_factor']}."
        )
    if c.target != AUTO:
        try:
            float(c.target)
        except ValueError:
            raise ConfigError(f"Invalid target={c.target!r}. Valid choices: auto or a number.") from None
    _validate_fixed_open_gate(c)  # first: the forget-bias checks read the held gate
    _validate_gates(c)
    _validate_task_options(c)
    return c


def _validate_gates(c: RunConfig) -> None:
    fb = c.forget_bias
    if fb not in (AUTO, "none", "chrono"):
        try:
            value = float(fb)
        except ValueError:
            raise ConfigError(
                f"Invalid forget_bias={fb!r}. Valid choices: auto, a number, chrono or none."
            ) from None
        if not math.isfinite(value):
            raise ConfigError(
                f"Invalid forget_bias={fb!r}. Valid choices: auto, a finite number, chrono or none."
            )
    if c.cell == "rnn":
        for name in ("forget_bias", "output_activation"):
            if getattr(c, name) != AUTO:
                raise ConfigError(
                    f"Invalid {name}={getattr(c, name)!r}: cell='rnn' (SimpleRNN) has no gates or cell "
                    "state. Valid choices: auto."
                )
        return
    variant = variants.VARIANTS[c.cell][c.variant]
    if c.cell == "lstm":
        for name in variant.defining_activations:
            if getattr(c, name) not in (AUTO, getattr(variant, name)):
                raise ConfigError(
                    f"variant={c.variant!r} ({variant.description}) fixes {name}="
                    f"{getattr(variant, name)!r}; got {name}={getattr(c, name)!r}. Valid choices: auto."
                )
    elif c.output_activation != AUTO:
        raise ConfigError(
            f"Invalid output_activation={c.output_activation!r}: cell='gru' does not squash its "
            "output. Valid choices: auto."
        )
    if not has_forget_gate(c) and fb not in (AUTO, "none"):
        held = f" with fixed_open_gate={c.fixed_open_gate!r}" if variant.has_forget_gate else ""
        raise ConfigError(
            f"forget_bias={fb!r} given, but {c.cell} variant={c.variant!r}{held} has no forget/update "
            "gate; Valid choices: auto or none."
        )
    if fb == "chrono" and input_length(c) <= 2:
        # Chrono draws log(U[1, T − 1]) with T the input length: nothing to draw from for T <= 2.
        raise ConfigError(
            f"forget_bias='chrono' needs inputs longer than 2 steps; task={c.task!r} with "
            f"seq_len={c.seq_len} gives {input_length(c)}. Valid choices: seq_len >= 3, or "
            "forget_bias auto, a number or none."
        )


def has_forget_gate(c: RunConfig) -> bool:
    """A forget (LSTM) or update (GRU) gate whose bias forget_bias sets: not removed, not held open."""
    if c.cell not in variants.VARIANTS:
        return False
    held = c.fixed_open_gate if c.cell == "lstm" and c.fixed_open_gate != "none" else None
    return variants.keeps_forget_gate(variants.VARIANTS[c.cell][c.variant], held)


def _validate_fixed_open_gate(c: RunConfig) -> None:
    _check_choice("fixed_open_gate", c.fixed_open_gate, ("none", *variants.FIXED_OPEN_GATES))
    if c.fixed_open_gate == "none":
        return
    if c.cell != "lstm":
        raise ConfigError(
            f"Invalid fixed_open_gate={c.fixed_open_gate!r} for cell={c.cell!r}: only LSTM gates can be "
            "held open. Valid choices: none."
        )
    problem = variants.fixed_open_gate_problem(variants.LSTM_VARIANTS[c.variant], c.fixed_open_gate)
    if problem is not None:
        raise ConfigError(problem)


def input_length(c: RunConfig) -> int:
    """Timesteps of the model's input (the chrono forget bias's T_max): copy adds its symbols."""
    if c.task == "copy":
        return c.seq_len + 2 * c.copy_symbols
    return c.seq_len


def _validate_task_options(c: RunConfig) -> None:
    if c.copy_symbols < 1:
        raise ConfigError(f"Invalid copy_symbols={c.copy_symbols}. Valid choices: an integer >= 1.")
    if c.copy_symbols != 10 and c.task != "copy":
        raise ConfigError(
            f"Invalid copy_symbols={c.copy_symbols} for task={c.task!r}: it applies to task='copy'. "
            "Valid choices: 10 (the default)."
        )
    if c.variable_delay and c.task != "copy":
        raise ConfigError(
            f"Invalid variable_delay=true for task={c.task!r}: it applies to task='copy'. "
            "Valid choices: false."
        )
    if c.task in ("char_lm", "sentiment"):
        if c.corpus != AUTO:
            problem = corpora.validate_corpus(c.task, c.corpus)
            if problem:
                raise ConfigError(problem)
    elif c.corpus != AUTO:
        raise ConfigError(
            f"Invalid corpus={c.corpus!r} for task={c.task!r}: corpora belong to char_lm and sentiment. "
            "Valid choices: auto."
        )

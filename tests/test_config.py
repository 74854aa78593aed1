"""The run's parameter table: in step with the library, and checked without loading TensorFlow."""

import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from experiments.training import config as cfg

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.tf_only
def test_activation_choices_are_exactly_what_the_library_accepts():
    from lstm_keras.activations import valid_activation_names

    assert sorted(cfg.ACTIVATIONS) == valid_activation_names()


@pytest.mark.tf_only
def test_engine_choices_are_the_layers_and_reach_the_built_layer():
    from experiments.training.model import build_model
    from experiments.training.tasks import make_task
    from lstm_keras.layers import ENGINES

    assert cfg.ENGINES == ENGINES
    for engine in ("keras", "auto"):
        config = cfg.from_strings({"task": "adding", "seq_len": "5", "units": "4", "engine": engine})
        model = build_model(config, make_task(config))
        assert model.get_layer("recurrent").engine == engine


def test_variant_choices_come_from_the_library_specs():
    import lstm_keras

    assert cfg.variant_names("lstm") == tuple(lstm_keras.LSTM_VARIANTS)
    assert cfg.variant_names("gru") == tuple(lstm_keras.GRU_VARIANTS)


def test_parsing_the_config_imports_neither_tensorflow_nor_keras():
    probe = (
        "import sys\n"
        "from experiments.training.config import from_strings\n"
        "c = from_strings({'task': 'char_lm', 'variant': 'NFG', 'seq_len': '50'})\n"
        "assert c.seq_len == 50 and c.variant == 'NFG'\n"
        "print(sorted(m for m in ('tensorflow', 'keras', 'jax') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_strings_are_parsed_to_their_types_and_logged_back_verbatim():
    c = cfg.from_strings(
        {"task": "copy", "seq_len": "100", "learning_rate": "1e-3", "variable_delay": "True", "clipnorm": "0"}
    )
    assert (c.seq_len, c.learning_rate, c.variable_delay, c.clipnorm) == (100, 0.001, True, 0.0)
    params = c.as_params()
    assert set(params) == {f.name for f in fields(cfg.RunConfig)}
    assert params["variable_delay"] == "true" and params["seq_len"] == "100"


@pytest.mark.parametrize(
    "values, named",
    [
        ({"cell": "lstmm"}, "cell='lstmm'. Valid choices: lstm, gru, rnn"),
        ({"cell": "gru", "variant": "NFG"}, "variant='NFG'. Valid choices: keras, cho2014"),
        ({"cell": "gru", "variant": "NUG", "forget_bias": "1"}, "forget_bias='1'"),
        ({"cell": "rnn", "forget_bias": "2"}, "forget_bias='2'"),
        ({"variant": "NOAF", "output_activation": "tanh"}, "output_activation='tanh'"),
        ({"variant": "lstm1997", "forget_bias": "chrono"}, "forget_bias='chrono'"),
        ({"forget_bias": "big"}, "forget_bias='big'"),
        ({"forget_bias": "nan"}, "forget_bias='nan'"),
        ({"clipnorm": "-1"}, "clipnorm=-1.0"),
        ({"learning_rate": "0"}, "learning_rate=0.0"),
        ({"explode_factor": "1"}, "explode_factor=1.0. Valid choices: a finite number > 1"),
        ({"explode_factor": "inf"}, "explode_factor=inf. Valid choices: a finite number > 1"),
        ({"explode_factor": "abc"}, "explode_factor='abc'. Valid choices: a finite number > 1"),
        ({"steps": "1.5"}, "steps='1.5'"),
        ({"early_stop": "maybe"}, "early_stop='maybe'"),
        ({"engine": "cudnn"}, "engine='cudnn'. Valid choices: auto, keras, tf_while, fused"),
        ({"task": "adding", "variable_delay": "true"}, "variable_delay=true"),
        (
            {"recurrent_initializer": "zeros"},
            "recurrent_initializer='zeros'. Valid choices: auto, orthogonal",
        ),
        ({"task": "adding", "copy_symbols": "3"}, "copy_symbols=3"),
        ({"task": "copy", "copy_symbols": "0"}, "copy_symbols=0"),
        ({"task": "copy", "corpus": "ptb"}, "corpus='ptb'"),
        ({"task": "sentiment", "corpus": "tinyshakespeare"}, "corpus='tinyshakespeare'"),
        ({"target": "high"}, "target='high'"),
        ({"task": "adding", "seq_len": "1"}, "seq_len=1"),
        ({"task": "adding", "seq_len": "2", "forget_bias": "chrono"}, "forget_bias='chrono' needs inputs"),
        ({"task": "char_lm", "seq_len": "1", "forget_bias": "chrono"}, "seq_len=1 gives 1"),
        ({"task": "sentiment", "seq_len": "2", "forget_bias": "chrono", "cell": "gru"}, "seq_len >= 3"),
        ({"candidate_activation": "swishy"}, "candidate_activation='swishy'"),
        ({"colour": "red"}, "colour"),
        ({"fixed_open_gate": "g"}, "fixed_open_gate='g'. Valid choices: none, i, f, o"),
        ({"cell": "gru", "fixed_open_gate": "f"}, "fixed_open_gate='f' for cell='gru'"),
        ({"variant": "NFG", "fixed_open_gate": "f"}, "gate 'f' open, not learned"),
        ({"variant": "FGR", "fixed_open_gate": "o"}, "variant='FGR'"),
        ({"variant": "vanilla", "fixed_open_gate": "f", "forget_bias": "2"}, "with fixed_open_gate='f'"),
    ],
)
def test_each_bad_value_is_named_with_the_valid_choices(values, named):
    with pytest.raises(cfg.ConfigError) as error:
        cfg.from_strings(values)
    assert named in str(error.value)
    assert "Valid choices" in str(error.value)


@pytest.mark.parametrize(
    "values",
    [
        {"variant": "NIAF", "candidate_activation": "linear"},  # the variant's own choice is no contradiction
        {"variant": "NFG", "forget_bias": "none"},
        {"cell": "gru", "variant": "MUT1", "forget_bias": "chrono"},
        {"task": "copy", "seq_len": "1", "forget_bias": "chrono"},  # copy's input is T + 20 steps
        {"task": "adding", "seq_len": "3", "forget_bias": "chrono"},
        {"cell": "rnn", "candidate_activation": "relu"},
        {"cell": "rnn", "engine": "keras"},  # a spec's base may set it for every cell
        {"variant": "vanilla", "candidate_activation": "relu", "output_activation": "2sigmoid-1"},
        {"task": "char_lm", "corpus": "ptb"},
        {"task": "sentiment", "corpus": "imdb", "seq_len": "200"},
        {"variant": "vanilla", "fixed_open_gate": "f", "forget_bias": "none"},
        {"variant": "CIFG", "fixed_open_gate": "o", "forget_bias": "chrono"},
        {"fixed_open_gate": "none", "cell": "gru"},
    ],
)
def test_good_combinations_pass(values):
    assert cfg.from_strings(values)


def test_fixed_open_gate_names_the_run_only_when_set():
    from experiments.report.descriptors import descriptor
    from experiments.tracking.records import run_name
    from experiments.training.model import cell_kwargs
    from experiments.training.tasks import make_task

    plain = cfg.from_strings({"seed": "1"})
    assert run_name(plain) == "adding-T100 lstm/keras fb=1 tanh s1"  # as before the parameter existed
    held = cfg.from_strings({"variant": "vanilla", "fixed_open_gate": "f", "seed": "1"})
    assert run_name(held) == "adding-T100 lstm/vanilla open=f tanh s1"  # no forget bias left to set
    assert run_name(held, ("fixed_open_gate",)).startswith("open=f · adding-T100 lstm/vanilla")
    assert "fixed_open_gate" not in cell_kwargs(plain, make_task(plain))  # the layer as before
    assert cell_kwargs(held, make_task(held))["fixed_open_gate"] == "f"
    # A run logged before the parameter existed describes the same configuration as one logged "none".
    old = {k: v for k, v in plain.as_params().items() if k != "fixed_open_gate"}
    assert descriptor(old, {}) == descriptor(plain.as_params(), {})
    assert descriptor(held.as_params(), {})["fixed_open_gate"] == "f"


@pytest.mark.tf_only
def test_fixed_open_gate_reaches_the_built_layer():
    from experiments.training.model import build_model
    from experiments.training.tasks import make_task

    config = cfg.from_strings(
        {"task": "adding", "seq_len": "5", "units": "4", "variant": "NP", "fixed_open_gate": "i"}
    )
    cell = build_model(config, make_task(config)).get_layer("recurrent").cell
    assert cell.fixed_open_gate == "i" and cell.forget_bias == 1.0

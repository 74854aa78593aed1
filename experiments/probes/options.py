"""The `but_probe` entry point's parameters, parsed and checked before TensorFlow loads."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from experiments.training import corpora
from experiments.training.config import ConfigError, RunConfig, from_strings

DEFAULT_CELLS = "lstm,gru,lstm/NFG,lstm/CIFG"
# The default size fits ~30 minutes on 2 cores (docs in the report: measured steps/s); --quick is
# for tests and a first look (< 2 minutes), not for conclusions.
SIZES = {
    "default": {"seeds": 5, "steps": 600, "units": 128, "eval_every": 200, "n_pairs": 200},
    "quick": {"seeds": 2, "steps": 40, "units": 32, "eval_every": 40, "n_pairs": 60},
}
FIXED = {"seq_len": 50, "batch_size": 64, "learning_rate": 0.005, "confidence": 0.9, "vocab_size": 20000}


@dataclass(frozen=True)
class ProbeConfig:
    cells: tuple[tuple[str, str], ...]  # (cell, variant)
    seeds: int
    steps: int
    units: int
    eval_every: int
    n_pairs: int
    seq_len: int
    batch_size: int
    learning_rate: float
    confidence: float
    vocab_size: int
    data_dir: str  # "auto": $LSTM_KERAS_DATA, else the project's data/
    out: str
    quick: bool

    def as_params(self) -> dict[str, str]:
        """The parameters as MLflow logs them, under the CLI's names."""
        params = {k: str(v) for k, v in vars(self).items() if k != "cells"}
        params["cells"] = ",".join(cell_name(c, v) for c, v in self.cells)
        params["quick"] = str(self.quick).lower()
        return params


def cell_name(cell: str, variant: str) -> str:
    return cell if variant == "keras" else f"{cell}/{variant}"


def build_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--cells", default=DEFAULT_CELLS, help=f"cell[/variant],… (default {DEFAULT_CELLS})")
    for name, value in SIZES["default"].items():
        quick = SIZES["quick"][name]
        parser.add_argument(f"--{name}", default=None, help=f"auto: {value}; with --quick {quick}")
    for name, value in FIXED.items():
        parser.add_argument(f"--{name}", default=None, help=f"default {value}")
    parser.add_argument("--quick", default="false", help="true: the test size (under 2 minutes)")
    parser.add_argument(
        "--data_dir", default="auto", help="folder holding sst2_glue/ (auto: $LSTM_KERAS_DATA)"
    )
    parser.add_argument("--out", default="reports/but_probe", help="where the report, tables and plots go")
    return parser


def _number(name: str, text: str, kind, minimum) -> int | float:
    try:
        value = kind(text)
    except ValueError:
        raise ConfigError(f"Invalid {name}={text!r}. Valid choices: a number >= {minimum}.") from None
    if not value >= minimum:
        raise ConfigError(f"Invalid {name}={text!r}. Valid choices: a number >= {minimum}.")
    return value


def parse_cells(text: str) -> tuple[tuple[str, str], ...]:
    """'lstm,gru,lstm/NFG' → ((lstm, keras), (gru, keras), (lstm, NFG)); checked like a run's cell."""
    cells = []
    for item in [s.strip() for s in text.split(",") if s.strip()]:
        cell, _, variant = item.partition("/")
        from_strings({"task": "sentiment", "cell": cell, "variant": variant or "keras"})
        if cell == "rnn":
            raise ConfigError(
                f"Invalid cells entry {item!r}: a SimpleRNN has no gates. Valid choices: lstm, gru."
            )
        cells.append((cell, variant or "keras"))
    if not cells or len(set(cells)) != len(cells):
        raise ConfigError(f"Invalid cells={text!r}. Valid choices: a comma list of distinct cell[/variant].")
    return tuple(cells)


def _given(text: str | None, default) -> str:
    """The value given, or the size's default for none or 'auto' (MLproject passes 'auto')."""
    return str(default) if text in (None, "", "auto") else text


def from_args(args: argparse.Namespace) -> ProbeConfig:
    quick = str(args.quick).strip().lower()
    if quick not in ("true", "false"):
        raise ConfigError(f"Invalid quick={args.quick!r}. Valid choices: true, false.")
    size = SIZES["quick" if quick == "true" else "default"]
    minimum = {"seeds": 1, "steps": 1, "units": 1, "eval_every": 1, "n_pairs": 1}
    values = {k: _number(k, _given(getattr(args, k), v), int, minimum[k]) for k, v in size.items()}
    values["seq_len"] = _number("seq_len", _given(args.seq_len, FIXED["seq_len"]), int, 25)
    values["batch_size"] = _number("batch_size", _given(args.batch_size, FIXED["batch_size"]), int, 1)
    values["vocab_size"] = _number("vocab_size", _given(args.vocab_size, FIXED["vocab_size"]), int, 3)
    values["learning_rate"] = _number(
        "learning_rate", _given(args.learning_rate, FIXED["learning_rate"]), float, 1e-12
    )
    values["confidence"] = _number("confidence", _given(args.confidence, FIXED["confidence"]), float, 0.5)
    if values["confidence"] > 1:
        raise ConfigError(f"Invalid confidence={args.confidence!r}. Valid choices: a number in [0.5, 1].")
    return ProbeConfig(
        cells=parse_cells(args.cells),
        data_dir=args.data_dir,
        out=args.out,
        quick=quick == "true",
        **values,
    )


def data_folder(config: ProbeConfig) -> Path:
    return existing_data_dir(config.data_dir, "sst2_glue/")


def existing_data_dir(data_dir: str, holding: str) -> Path:
    """The data directory, which must exist when named: a mistyped path is refused, never created."""
    explicit = None if data_dir == "auto" else data_dir
    folder = corpora.data_dir(explicit)
    if explicit is not None and not folder.is_dir():
        raise corpora.CorpusError(
            f"Invalid data_dir={data_dir!r}: no such folder. Valid choices: auto "
            f"($LSTM_KERAS_DATA, else the project's data/), or a folder holding {holding} "
            f"(the shared copy: …/shared/corpora)."
        )
    return folder


def run_config(config: ProbeConfig, cell: str, variant: str, seed: int, data_dir: Path) -> RunConfig:
    """The training run of one (cell, variant, seed): the sentiment task at the probe's size."""
    return from_strings(
        {
            "task": "sentiment",
            "corpus": "sst2",
            "cell": cell,
            "variant": variant,
            "units": str(config.units),
            "seq_len": str(config.seq_len),
            "batch_size": str(config.batch_size),
            "learning_rate": str(config.learning_rate),
            "steps": str(config.steps),
            "eval_every": str(config.eval_every),
            "vocab_size": str(config.vocab_size),
            "seed": str(seed),
            "data_dir": str(data_dir),
            "early_stop": "false",  # every seed trains the same number of steps
            "log_model": "false",
        }
    )

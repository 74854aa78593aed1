"""The `agreement_probe` entry point's parameters, parsed and checked before TensorFlow loads."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from experiments.probes.options import _given, _number, cell_name, existing_data_dir
from experiments.training.config import ConfigError, from_strings

DEFAULT_CELLS = "lstm,gru,rnn,lstm/NFG,lstm/NOG,lstm/CIFG"
SIZES = {
    "default": {
        "seeds": 5,
        "steps": 600,
        "units": 64,
        "lm_steps": 1500,
        "lm_units": 128,
        "lm_words": 1000000,
    },
    "quick": {"seeds": 2, "steps": 30, "units": 16, "lm_steps": 20, "lm_units": 32, "lm_words": 20000},
}
FIXED = {"seq_len": 50, "lm_seq_len": 35, "batch_size": 64, "lm_batch_size": 32, "learning_rate": 0.005}


@dataclass(frozen=True)
class AgreementConfig:
    cells: tuple[tuple[str, str], ...]
    seeds: int
    steps: int
    units: int
    lm_steps: int
    lm_units: int
    lm_words: int
    seq_len: int
    lm_seq_len: int
    batch_size: int
    lm_batch_size: int
    learning_rate: float
    data_dir: str
    out: str
    quick: bool

    def as_params(self) -> dict[str, str]:
        params = {k: str(v) for k, v in vars(self).items() if k != "cells"}
        params["cells"] = ",".join(cell_name(c, v) for c, v in self.cells)
        params["quick"] = str(self.quick).lower()
        return params


def build_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--cells", default=DEFAULT_CELLS, help=f"cell[/variant],… (default {DEFAULT_CELLS})")
    for name, value in SIZES["default"].items():
        parser.add_argument(
            f"--{name}", default=None, help=f"auto: {value}; with --quick {SIZES['quick'][name]}"
        )
    for name, value in FIXED.items():
        parser.add_argument(f"--{name}", default=None, help=f"default {value}")
    parser.add_argument("--quick", default="false", help="true: the test size (under 2 minutes)")
    parser.add_argument("--data_dir", default="auto", help="folder holding linzen_agreement/ and ptb/")
    parser.add_argument("--out", default="reports/agreement_probe", help="where the report goes")
    return parser


def parse_cells(text: str) -> tuple[tuple[str, str], ...]:
    cells = []
    for item in [s.strip() for s in text.split(",") if s.strip()]:
        cell, _, variant = item.partition("/")
        from_strings({"task": "sentiment", "cell": cell, "variant": variant or "keras"})
        cells.append((cell, variant or "keras"))
    if not cells or len(set(cells)) != len(cells):
        raise ConfigError(f"Invalid cells={text!r}. Valid choices: a comma list of distinct cell[/variant].")
    return tuple(cells)


def from_args(args: argparse.Namespace) -> AgreementConfig:
    quick = str(args.quick).strip().lower()
    if quick not in ("true", "false"):
        raise ConfigError(f"Invalid quick={args.quick!r}. Valid choices: true, false.")
    size = SIZES["quick" if quick == "true" else "default"]
    values = {k: _number(k, _given(getattr(args, k), v), int, 1) for k, v in size.items()}
    for name, value in FIXED.items():
        kind = float if name == "learning_rate" else int
        values[name] = _number(name, _given(getattr(args, name), value), kind, 1e-12 if kind is float else 2)
    return AgreementConfig(
        cells=parse_cells(args.cells), data_dir=args.data_dir, out=args.out, quick=quick == "true", **values
    )


def data_folder(config: AgreementConfig) -> Path:
    return existing_data_dir(config.data_dir, "linzen_agreement/ and ptb/")


def run_config(config: AgreementConfig, cell: str, variant: str, seed: int, lm: bool = False):
    """The RunConfig the Trainer reads (its task name is only a carrier: the Task is ours)."""
    return from_strings(
        {
            "task": "char_lm" if lm else "sentiment",
            "cell": cell,
            "variant": variant,
            "units": str(config.lm_units if lm else config.units),
            "embedding_dim": str(config.lm_units if lm else 32),
            "seq_len": str(config.lm_seq_len if lm else config.seq_len),
            "batch_size": str(config.lm_batch_size if lm else config.batch_size),
            "learning_rate": str(config.learning_rate),
            "steps": str(config.lm_steps if lm else config.steps),
            "eval_every": str(config.lm_steps if lm else config.steps),
            "clipnorm": "1.0",
            "seed": str(seed),
            "early_stop": "false",
            "log_model": "false",
        }
    )

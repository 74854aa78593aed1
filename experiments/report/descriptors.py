"""A configuration described by its parameters: every RunConfig field (no seed or learning rate),
defaults filled in, `auto` resolved, values in one spelling, so configurations compare by equality."""

from __future__ import annotations

import math
from dataclasses import fields

from experiments.training.config import RunConfig
from lstm_keras.variants import GRU_DEFAULT_FORGET_BIAS, LSTM_DEFAULT_FORGET_BIAS, LSTM_VARIANTS

NOT_CONFIG = {"seed", "learning_rate"}


def norm(value) -> str:
    """A parameter value in one spelling: numbers as floats ('1.0' == '1'), booleans in lower case."""
    text = str(value).strip()
    if text.lower() in ("true", "false"):
        return text.lower()
    try:
        number = float(text)
    except ValueError:
        return text  # variant names are case-sensitive (NFG, keras)
    return repr(number).removesuffix(".0") if math.isfinite(number) else text


def descriptor(params: dict, tags: dict) -> dict[str, str]:
    """A configuration's parameters (no seed/learning rate), defaults filled, activations resolved."""
    d = {
        f.name: str(f.default).lower() if isinstance(f.default, bool) else str(f.default)
        for f in fields(RunConfig)
    }
    d.update({k: v for k, v in params.items() if k in d and v is not None and v == v})
    for k in NOT_CONFIG:
        d.pop(k, None)
    cell, variant = d["cell"], d["variant"]
    lstm = LSTM_VARIANTS.get(variant) if cell == "lstm" else None
    if tags.get("forget_bias_resolved"):
        d["forget_bias"] = tags["forget_bias_resolved"]
    elif d["forget_bias"] == "auto":
        d["forget_bias"] = _bias_text(
            {"lstm": LSTM_DEFAULT_FORGET_BIAS, "gru": GRU_DEFAULT_FORGET_BIAS}, cell
        )
    if tags.get("candidate_activation_resolved"):
        d["candidate_activation"] = tags["candidate_activation_resolved"]
    elif d["candidate_activation"] == "auto":
        d["candidate_activation"] = lstm.candidate_activation if lstm else "tanh"
    if d["output_activation"] == "auto":
        d["output_activation"] = lstm.output_activation if lstm else "n/a"
    return {k: norm(v) for k, v in d.items()}


def _bias_text(defaults: dict, cell: str) -> str:
    """A default forget bias as runs print it: "1", "none", or "n/a" for a cell without one."""
    if cell not in defaults:
        return "n/a"
    return "none" if defaults[cell] is None else f"{defaults[cell]:g}"

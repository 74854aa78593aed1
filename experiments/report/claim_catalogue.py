"""The claims catalogue: each claim of the LSTM explainers as data, judged by `claim_evaluation`.

A claim has parts; a part has contrasts "A vs B" (e.g. forget bias 1 vs forget bias 0): which
configurations are A and B (`Side`s, predicates on a configuration's descriptor), which parameters
may differ besides, the metric, the expected outcome (`Contrast.expect`) and how the part's
contrasts combine (`Part.rule`). Adding a claim is adding one `Claim` to `CLAIMS`; the evaluator,
claims.md and claims.json pick it up. (Not to be confused with the sweep's trial leases,
`experiments.sweep.leases`.)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from experiments.report.metrics import FLOW, FLOW_FINAL, PRIMARY
from lstm_keras.variants import VARIANTS

MEMORY_TASKS = ("copy", "adding")
# The expected outcomes a contrast can state (see claim_evaluation.RULES): A vs B.
EXPECTATIONS = ("lower", "higher", "differs", "equal", "not_higher", "fewer_params", "same_params")


def _fb(d: dict) -> float | None:
    try:
        return float(d.get("forget_bias"))
    except (TypeError, ValueError):
        return None


def _clip(d: dict) -> float:
    try:
        return float(d.get("clipnorm", "1"))
    except ValueError:
        return math.nan


def _is(cell: str, *variants: str) -> Callable[[dict], bool]:
    return lambda d: d.get("cell") == cell and (not variants or d.get("variant") in variants)


def _gated(d: dict) -> bool:
    """A cell with a forget (LSTM) or update (GRU) gate, so its forget bias is set."""
    variant = VARIANTS.get(d.get("cell"), {}).get(d.get("variant"))
    return variant is not None and variant.has_forget_gate


# ----------------------------------------------------------------------- claim definitions


@dataclass(frozen=True)
class Side:
    """One side of a contrast: the configurations whose descriptor `match`es, as claims.md names them."""

    description: str
    match: Callable[[dict], bool]


@dataclass(frozen=True)
class Contrast:
    """A vs B on `metric`, the outcome `expect`ed of A (see claim_evaluation.RULES for each)."""

    name: str
    a: Side
    b: tuple[Side, ...]  # in order of preference: the first that pairs with A is used
    ignore: frozenset[str]  # parameters allowed to differ besides what the sides select
    expect: str  # A vs B: lower | higher | differs | equal | not_higher | fewer_params | same_params
    metric: str = PRIMARY
    tasks: tuple[str, ...] | None = None
    min_effect: float = 0.0  # |difference| a "for" needs (claim h1: one decade)
    divergence: bool = False  # also compare divergence rates over all learning rates

    def __post_init__(self):
        if self.expect not in EXPECTATIONS:
            raise ValueError(f"Invalid expect={self.expect!r}. Valid choices: {', '.join(EXPECTATIONS)}.")


@dataclass(frozen=True)
class Part:
    """A verdict of its own: its contrasts combined by `rule`."""

    id: str
    statement: str
    contrasts: tuple[Contrast, ...]
    rule: str  # any (directional, differs) | all (equivalence, non-inferiority, structural)

    def __post_init__(self):
        if self.rule not in ("any", "all"):
            raise ValueError(f"Invalid rule={self.rule!r}. Valid choices: any, all.")


@dataclass(frozen=True)
class Claim:
    """A claim: the statement quoted, its `definition` as tested, its parts (they decide the verdict)
    and context contrasts (reported, not judged)."""

    id: str
    statement: str
    definition: str
    parts: tuple[Part, ...]
    context: tuple[Contrast, ...] = ()
    plots: tuple[str, ...] = ()  # per-study plot kinds that also show it


def _c(name, a, b, ignore, expect, **kw) -> Contrast:
    return Contrast(name, a, tuple(b), frozenset(ignore), expect, **kw)


def _side(description: str, cell: str | None = None, *variants: str, where=lambda d: True) -> Side:
    """The configurations of `cell` (any if None) and one of `variants` (any if none) that satisfy
    `where`; a variant the library does not define is refused here, when the catalogue loads."""
    registry = VARIANTS.get(cell, {})
    unknown = [v for v in variants if v not in registry]
    if unknown:
        raise ValueError(
            f"Unknown {cell} variant(s) {unknown} in side {description!r}. Valid: {', '.join(registry)}."
        )
    return Side(description, lambda d: (cell is None or _is(cell, *variants)(d)) and where(d))


FB1_ONLY = dict(where=lambda d: _fb(d) == 1)
VANILLA1 = _side("vanilla LSTM, forget bias 1", "lstm", "vanilla", **FB1_ONLY)
KERAS1 = _side("keras LSTM, forget bias 1", "lstm", "keras", **FB1_ONLY)
VANILLA, KERAS = _side("vanilla LSTM", "lstm", "vanilla"), _side("keras LSTM", "lstm", "keras")
NFG, NIG, NOG, NOAF = (_side(f"LSTM {v}", "lstm", v) for v in ("NFG", "NIG", "NOG", "NOAF"))
CIFG_NP = _side("LSTM CIFG or NP", "lstm", "CIFG", "NP")
GRU, RNN = _side("GRU keras/cho2014", "gru", "keras", "cho2014"), _side("SimpleRNN", "rnn")
FB12 = _side("LSTM/GRU, forget bias in [1, 2]", where=lambda d: _gated(d) and 1 <= (_fb(d) or -1) <= 2)
FB0 = _side("LSTM/GRU, forget bias 0", where=lambda d: _gated(d) and _fb(d) == 0)
FB1 = _side("LSTM/GRU, forget bias 1", where=lambda d: _gated(d) and _fb(d) == 1)
FB_1_2 = _side("LSTM/GRU, forget bias in (1, 2]", where=lambda d: _gated(d) and 1 < (_fb(d) or -1) <= 2)
RELU_CLIP0 = _side(
    "ReLU candidate, clipnorm 0", where=lambda d: d["candidate_activation"] == "relu" and _clip(d) == 0
)
RELU_CLIP = _side(
    "ReLU candidate, clipnorm > 0", where=lambda d: d["candidate_activation"] == "relu" and _clip(d) > 0
)
TANH_CLIP0 = _side(
    "tanh candidate, clipnorm 0", where=lambda d: d["candidate_activation"] == "tanh" and _clip(d) == 0
)
LINEAR_OUT = _side(
    "LSTM (not NOAF), output linear",
    "lstm",
    where=lambda d: d["variant"] != "NOAF" and d["output_activation"] == "linear",
)
OTHER_OUT = _side(
    "LSTM, output activation not tanh/linear",
    "lstm",
    where=lambda d: d["output_activation"] not in ("tanh", "linear"),
)
TANH_OUT = _side("the same with output tanh", where=lambda d: d["output_activation"] == "tanh")
CELL_KEYS = {"cell", "variant", "forget_bias", "output_activation", "candidate_activation", "units"}
LSTM1997 = _side("LSTM lstm1997", "lstm", "lstm1997")
MEM = dict(tasks=MEMORY_TASKS)

# fmt: off
CLAIMS: tuple[Claim, ...] = (
    Claim(
        "a", "A forget bias of 1–2 learns long delays better than 0.",
        "On memory tasks (copy, adding), every configuration with forget bias in [1, 2] vs the same "
        "configuration with forget bias 0: lower best_val_loss_over_baseline.",
        (Part("a", "forget bias 1–2 beats 0", (
            _c("fb 1–2 vs 0", FB12, [FB0], {"forget_bias"}, "lower", **MEM),
        ), "any"),),
        plots=("forget_bias",),
    ),
    Claim(
        "b", "No forget gate (NFG) hurts on memory tasks.",
        "On copy/adding, LSTM NFG vs the vanilla LSTM (else Keras's LSTM) with forget bias 1, units "
        "allowed to differ: higher best_val_loss_over_baseline.",
        (Part("b", "NFG is worse", (
            _c("NFG vs vanilla/keras", NFG, [VANILLA1, KERAS1], {"variant", "forget_bias", "units"}, "higher",
               **MEM),
        ), "any"),),
    ),
    Claim(
        "c", "A gate fixed open is the same as a removed gate.",
        "A fixed-open gate (≡ 1) is implemented here as its removal, so the claim is tested as (c1) the "
        "open-gate variants own no weights for the gate: n_params(NIG) = n_params(NOG) < n_params(vanilla); "
        "and (c2) they behave as one 'gate-free' network whichever gate was opened: NIG ≈ NOG (equivalence "
        "on best_val_loss_over_baseline, margin relative to NOG). NIG and NOG vs vanilla (two-sided) are "
        "context, not part of the verdict.",
        (
            Part("c1", "an open gate owns no parameters", (
                _c("NIG vs NOG n_params", NIG, [NOG], {"variant"}, "same_params"),
                _c("NIG vs vanilla n_params", NIG, [VANILLA], {"variant"}, "fewer_params"),
                _c("NOG vs vanilla n_params", NOG, [VANILLA], {"variant"}, "fewer_params"),
            ), "all"),
            Part("c2", "NIG ≈ NOG", (_c("NIG vs NOG", NIG, [NOG], {"variant"}, "equal"),), "all"),
        ),
        context=(
            _c("NIG vs vanilla", NIG, [VANILLA], {"variant"}, "differs"),
            _c("NOG vs vanilla", NOG, [VANILLA], {"variant"}, "differs"),
        ),
    ),
    Claim(
        "d", "A ReLU candidate diverges or underperforms without clipping, and clipping helps.",
        "(d1) ReLU candidate with clipnorm 0 vs the same with clipnorm > 0; (d2) ReLU vs tanh candidate, "
        "both with clipnorm 0. Each: worse best_val_loss_over_baseline (best LR) or a higher divergence "
        "rate (over all learning rates) for the unclipped ReLU.",
        (
            Part("d1", "clipping helps a ReLU candidate", (
                _c("relu clip 0 vs clipped", RELU_CLIP0, [RELU_CLIP], {"clipnorm"}, "higher",
                   divergence=True),
            ), "any"),
            Part("d2", "unclipped, ReLU does worse than tanh", (
                _c("relu vs tanh, clip 0", RELU_CLIP0, [TANH_CLIP0], {"candidate_activation"}, "higher",
                   divergence=True),
            ), "any"),
        ),
    ),
    Claim(
        "e", "The output activation matters (NOAF hurts).",
        "(e1) a linear output activation (NOAF vs vanilla, or any other LSTM variant with "
        "output_activation linear vs tanh): higher best_val_loss_over_baseline; (e2) other output "
        "activations (e.g. relu) vs tanh, same variant: a difference in either direction.",
        (
            Part("e1", "a linear output (no output activation) hurts", (
                _c("NOAF vs vanilla", NOAF, [VANILLA], {"variant", "output_activation"}, "higher"),
                _c("linear vs tanh output", LINEAR_OUT, [TANH_OUT], {"output_activation"}, "higher"),
            ), "any"),
            Part("e2", "other output activations differ from tanh", (
                _c("other vs tanh output", OTHER_OUT, [TANH_OUT], {"output_activation"}, "differs"),
            ), "any"),
        ),
    ),
    Claim(
        "f", "A GRU performs about as well as an LSTM, with fewer parameters.",
        "GRU (keras or cho2014) vs Keras's LSTM (else vanilla) with forget bias 1, units allowed to "
        "differ (parameter-matched designs): (f1) equivalence on best_val_loss_over_baseline; "
        "(f2) n_params(GRU) < n_params(LSTM) at the same number of units.",
        (
            Part("f1", "GRU ≈ LSTM", (
                _c("GRU vs LSTM", GRU, [KERAS1, VANILLA1], CELL_KEYS, "equal"),
            ), "all"),
            # At equal units: a parameter-matched design gives the GRU more units on purpose.
            Part("f2", "GRU has fewer parameters", (
                _c("GRU vs LSTM n_params", GRU, [KERAS1, VANILLA1], CELL_KEYS - {"units"}, "fewer_params"),
            ), "all"),
        ),
    ),
    Claim(
        "g", "CIFG and NP (no peepholes) cost little.",
        "LSTM CIFG and NP vs the vanilla LSTM (else Keras's LSTM), units allowed to differ: "
        "non-inferiority on best_val_loss_over_baseline (at most the margin worse).",
        (Part("g", "CIFG and NP are non-inferior", (
            _c("CIFG/NP vs vanilla/keras", CIFG_NP, [VANILLA, KERAS], {"variant", "units"}, "not_higher"),
        ), "all"),),
    ),
    Claim(
        "h", "Gradients reaching early steps decay much faster in a SimpleRNN than in an LSTM, "
        "and faster with forget bias 0.",
        "log10 grad_flow_ratio_init (‖∂L/∂h_1‖/‖∂L/∂h_T‖ at initialisation): (h1) SimpleRNN vs Keras's "
        "(else vanilla) LSTM with forget bias 1, units allowed to differ: lower by at least one decade; "
        "(h2) LSTM/GRU with forget bias 0 vs 1 (else (1, 2]): lower. The trained ratios "
        "(grad_flow_ratio_final) are context.",
        (
            Part("h1", "SimpleRNN decays ≥ 10× faster than LSTM", (
                _c("rnn vs LSTM", RNN, [KERAS1, VANILLA1], CELL_KEYS, "lower", metric=FLOW, min_effect=1.0),
            ), "any"),
            Part("h2", "forget bias 0 decays faster than 1", (
                _c("fb 0 vs 1", FB0, [FB1, FB_1_2], {"forget_bias"}, "lower", metric=FLOW),
            ), "any"),
        ),
        context=(
            _c("rnn vs LSTM (trained)", RNN, [KERAS1, VANILLA1], CELL_KEYS, "lower", metric=FLOW_FINAL),
            _c("fb 0 vs 1 (trained)", FB0, [FB1, FB_1_2], {"forget_bias"}, "lower", metric=FLOW_FINAL),
        ),
        plots=("gradient_flow",),
    ),
    Claim(
        "i", "The 1997 LSTM is worse than the modern one.",
        "LSTM lstm1997 (Hochreiter & Schmidhuber 1997: no forget gate, no peepholes, g = 4σ−2, "
        "h = 2σ−1) vs Keras's LSTM (else vanilla) with forget bias 1, in the same study and task (any "
        "task), units allowed to differ: higher best_val_loss_over_baseline.",
        (Part("i", "lstm1997 is worse than keras/vanilla", (
            _c("lstm1997 vs keras/vanilla", LSTM1997, [KERAS1, VANILLA1], CELL_KEYS, "higher"),
        ), "any"),),
    ),
)
# fmt: on

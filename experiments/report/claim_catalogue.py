"""The claims catalogue: each claim of the LSTM explainers as data, judged by `claim_evaluation`.

A claim has parts; a part has contrasts "A vs B" (e.g. forget bias 1 vs forget bias 0): which
configurations are A and B (`Side`s, predicates on a configuration's descriptor), which parameters
may differ besides, the metric, the expected outcome (`Contrast.expect`) and how the part's
contrasts combine (`Part.rule`); a `Fact` is a property true by construction (n_params of two
configurations), printed beside the claim and never judged. Adding a claim is adding one `Claim`
to `CLAIMS`; the evaluator, claims.md and claims.json pick it up. (Not to be confused with the
sweep's trial leases, `experiments.sweep.leases`.)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from experiments.report.metrics import FLOW, FLOW_FINAL, JUDGED, TASK_METRICS
from lstm_keras.variants import VARIANTS

MEMORY_TASKS = ("copy", "adding")
TASKS = tuple(TASK_METRICS)  # every task a claim can be judged on, in report order
# The expected outcomes a contrast can state (see claim_rules.RULES): A vs B.
EXPECTATIONS = ("lower", "higher", "differs", "equal", "not_higher")
NEEDS_MARGIN = ("differs", "equal", "not_higher")
GATES = {"i": "NIG", "f": "NFG", "o": "NOG"}  # a gate fixed open → the variant without it
# Metrics fixed by the configuration alone: a contrast on one cannot fail (they are printed as facts).
BY_CONSTRUCTION = ("n_params",)
PARAMS_MATCHED = 0.10  # claim f1: "equal parameters" = n_params within 10 % of each other


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


def _open_gate(d: dict) -> str:
    """Which gate of the configuration is fixed open (≡ 1) while it keeps its weights: none|i|f|o."""
    return d.get("fixed_open_gate", "none")


def _params_matched(a: dict, b: dict) -> bool:
    """Two configuration rows with different units whose logged n_params differ by at most
    PARAMS_MATCHED (a parameter-matched design; equal units are claim f2's)."""
    na, nb = a.get("n_params", math.nan), b.get("n_params", math.nan)
    if a["desc"].get("units") == b["desc"].get("units"):
        return False
    return bool(na > 0 and nb > 0 and abs(math.log(na / nb)) <= math.log1p(PARAMS_MATCHED))


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
    """A vs B on `metric`, the outcome `expect`ed of A (see claim_rules.RULES for each)."""

    name: str
    a: Side
    b: tuple[Side, ...]  # in order of preference: the first that pairs with A is used
    ignore: frozenset[str]  # parameters allowed to differ besides what the sides select
    expect: str  # A vs B: lower | higher | differs | equal | not_higher
    metric: str = JUDGED
    tasks: tuple[str, ...] | None = None
    min_effect: float = 0.0  # |difference| on the metric's scale a "for" needs (claim h1: a decade)
    divergence: bool = False  # also compare divergence rates over all learning rates
    margin: float | None = None  # equivalence band: ratio within [1/(1+margin), 1+margin]
    pair: Callable[[dict, dict], bool] | None = None  # a further condition on the two config rows
    pair_text: str = ""  # that condition, as a reason names it

    def __post_init__(self):
        if self.expect not in EXPECTATIONS:
            raise ValueError(f"Invalid expect={self.expect!r}. Valid choices: {', '.join(EXPECTATIONS)}.")
        if self.expect in NEEDS_MARGIN and not (self.margin and self.margin > 0):
            raise ValueError(
                f"Contrast {self.name!r} (expect={self.expect!r}) needs a margin > 0, got {self.margin!r}."
            )
        # A rule that cannot come out against the claim is not a test: refuse it where it is defined.
        if self.metric in BY_CONSTRUCTION:
            raise ValueError(
                f"Contrast {self.name!r} tests metric={self.metric!r}, which holds by construction and "
                f"cannot fail; print it as a Fact. Valid metrics: any measured outcome, not "
                f"{', '.join(BY_CONSTRUCTION)}."
            )
        if any(side is self.a for side in self.b):
            raise ValueError(
                f"Contrast {self.name!r} compares {self.a.description!r} with itself: it cannot fail."
            )


@dataclass(frozen=True)
class Fact:
    """A by-construction property printed beside a claim, never judged: n_params of A and B."""

    name: str
    a: Side
    b: tuple[Side, ...]
    ignore: frozenset[str]
    tasks: tuple[str, ...] | None = None
    pair: Callable[[dict, dict], bool] | None = None
    pair_text: str = ""


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
        if not self.contrasts:
            raise ValueError(f"Part {self.id!r} has no contrasts: its verdict could never be contradicted.")


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
    facts: tuple[Fact, ...] = ()

    def tasks(self) -> tuple[str, ...]:
        """The tasks its parts can be judged on (a contrast without `tasks`: every task)."""
        wanted = {t for p in self.parts for c in p.contrasts for t in (c.tasks or TASKS)}
        return tuple(t for t in TASKS if t in wanted)


def _c(name, a, b, ignore, expect, **kw) -> Contrast:
    return Contrast(name, a, tuple(b), frozenset(ignore), expect, **kw)


def _fact(name, a, b, ignore, **kw) -> Fact:
    return Fact(name, a, tuple(b), frozenset(ignore), **kw)


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
MATCHED = dict(pair=_params_matched, pair_text=f"units differing, n_params within {PARAMS_MATCHED:.0%}")


def _fixed_open(gate: str) -> Side:
    return _side(
        f"vanilla LSTM, gate {gate} fixed open", "lstm", "vanilla", where=lambda d: _open_gate(d) == gate
    )


def _removed(gate: str) -> Side:
    return _side(f"LSTM {GATES[gate]}", "lstm", GATES[gate], where=lambda d: _open_gate(d) == "none")


def _open_vs_removed(gate: str) -> Contrast:
    """Claim c2: the vanilla LSTM with `gate` fixed open vs the variant without it; a fixed-open
    forget gate has no forget bias to match, so it may differ there."""
    ignore = {"variant", "fixed_open_gate"} | ({"forget_bias"} if gate == "f" else set())
    return _c(
        f"{gate} open vs {GATES[gate]}", _fixed_open(gate), [_removed(gate)], ignore, "equal", margin=0.10
    )


def _open_vs_removed_size(gate: str) -> Fact:
    contrast = _open_vs_removed(gate)
    return _fact(f"{contrast.name} n_params", contrast.a, contrast.b, contrast.ignore)


# fmt: off
CLAIMS: tuple[Claim, ...] = (
    Claim(
        "a", "A forget bias of 1–2 learns long delays better than 0.",
        "On each memory task (copy, adding): every configuration with forget bias in [1, 2] vs the same "
        "configuration with forget bias 0 has a lower test_over_baseline (all such contrasts).",
        (Part("a", "forget bias 1–2 beats 0", (
            _c("fb 1–2 vs 0", FB12, [FB0], {"forget_bias"}, "lower", **MEM),
        ), "all"),),
        # How fast, where both solve (seeds where either side never solved drop out of the pairs).
        context=(_c("fb 1–2 vs 0, steps to solve", FB12, [FB0], {"forget_bias"}, "lower",
                    metric="steps_to_solve", **MEM),),
        plots=("forget_bias",),
    ),
    Claim(
        "b", "No forget gate (NFG) hurts on memory tasks.",
        "On copy/adding, LSTM NFG vs the vanilla LSTM (else Keras's LSTM) with forget bias 1, units "
        "allowed to differ: higher test_over_baseline.",
        (Part("b", "NFG is worse", (
            _c("NFG vs vanilla/keras", NFG, [VANILLA1, KERAS1], {"variant", "forget_bias", "units"}, "higher",
               **MEM),
        ), "any"),),
    ),
    Claim(
        "c", "A gate fixed open is the same as a removed gate.",
        "(c2) The vanilla LSTM with gate g ∈ {i, f, o} fixed open (≡ 1, `fixed_open_gate`) vs the "
        "variant without g (NIG, NFG, NOG), all other parameters equal (a fixed-open f also ignores the "
        "forget bias): equivalent test_over_baseline, ratio within [1/1.1, 1.1] (TOST), for every "
        "gate tested. The n_params of both sides are printed facts (a removed gate owns no weights by "
        "construction); NIG ≈ NOG and NIG/NOG vs vanilla are context, not part of the verdict.",
        (Part("c2", "a gate fixed open ≈ the gate removed", tuple(map(_open_vs_removed, GATES)), "all"),),
        context=(
            _c("NIG vs NOG", NIG, [NOG], {"variant"}, "equal", margin=0.10),
            _c("NIG vs vanilla", NIG, [VANILLA], {"variant"}, "differs", margin=0.10),
            _c("NOG vs vanilla", NOG, [VANILLA], {"variant"}, "differs", margin=0.10),
        ),
        facts=(
            *(_open_vs_removed_size(g) for g in GATES),
            _fact("NIG vs vanilla n_params", NIG, [VANILLA], {"variant"}),
            _fact("NOG vs vanilla n_params", NOG, [VANILLA], {"variant"}),
        ),
    ),
    Claim(
        "d", "A ReLU candidate diverges or underperforms without clipping, and clipping helps.",
        "(d1) ReLU candidate with clipnorm 0 vs the same with clipnorm > 0; (d2) ReLU vs tanh candidate, "
        "both with clipnorm 0. Each: a higher test_over_baseline or a higher divergence rate (over "
        "all learning rates) for the unclipped ReLU.",
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
        "output_activation linear vs tanh): higher test_over_baseline; (e2) other output "
        "activations (e.g. relu) vs tanh, same variant: a difference in either direction (against: "
        "equivalent within a ratio of 1.1, TOST).",
        (
            Part("e1", "a linear output (no output activation) hurts", (
                _c("NOAF vs vanilla", NOAF, [VANILLA], {"variant", "output_activation"}, "higher"),
                _c("linear vs tanh output", LINEAR_OUT, [TANH_OUT], {"output_activation"}, "higher"),
            ), "any"),
            Part("e2", "other output activations differ from tanh", (
                _c("other vs tanh output", OTHER_OUT, [TANH_OUT], {"output_activation"}, "differs",
                   margin=0.10),
            ), "any"),
        ),
    ),
    Claim(
        "f", "A GRU performs about as well as an LSTM, with fewer parameters.",
        "GRU (keras or cho2014) vs Keras's LSTM (else vanilla) with forget bias 1: (f1) at equal "
        f"parameters (units differ, n_params within {PARAMS_MATCHED:.0%}) and (f2) at equal units "
        "(where the GRU has fewer parameters: printed as a fact), equivalent test_over_baseline, "
        "ratio within [1/1.25, 1.25] (TOST).",
        (
            Part("f1", "GRU ≈ LSTM at equal parameters", (
                _c("GRU vs LSTM, matched n_params", GRU, [KERAS1, VANILLA1], CELL_KEYS, "equal", margin=0.25,
                   **MATCHED),
            ), "all"),
            Part("f2", "GRU ≈ LSTM at equal units (fewer parameters)", (
                _c("GRU vs LSTM, equal units", GRU, [KERAS1, VANILLA1], CELL_KEYS - {"units"}, "equal",
                   margin=0.25),
            ), "all"),
        ),
        facts=(_fact("GRU vs LSTM n_params, equal units", GRU, [KERAS1, VANILLA1], CELL_KEYS - {"units"}),),
    ),
    Claim(
        "g", "CIFG and NP (no peepholes) cost little.",
        "LSTM CIFG and NP vs the vanilla LSTM (else Keras's LSTM), units allowed to differ: "
        "non-inferiority on test_over_baseline (ratio A/B below 1.25, one-sided test).",
        (Part("g", "CIFG and NP are non-inferior", (
            _c("CIFG/NP vs vanilla/keras", CIFG_NP, [VANILLA, KERAS], {"variant", "units"}, "not_higher",
               margin=0.25),
        ), "all"),),
    ),
    Claim(
        "h", "Gradients reaching early steps decay much faster in a SimpleRNN than in an LSTM, "
        "and faster with forget bias 0.",
        "log10 grad_flow_ratio (‖∂L/∂h_1‖/‖∂L/∂h_T‖): (h1) at initialisation, SimpleRNN (under each "
        "recurrent initialiser the study runs) vs Keras's (else vanilla) LSTM with forget bias 1, units "
        "allowed to differ: lower by at least one decade; (h2) at initialisation, LSTM/GRU with forget "
        "bias 0 vs 1 (else (1, 2]): lower; (h3) after training, SimpleRNN vs that LSTM: lower (an "
        "initialisation-only verdict would mostly reflect the initialiser). Forget bias 0 vs 1 after "
        "training is context.",
        (
            Part("h1", "SimpleRNN decays ≥ 10× faster than LSTM at initialisation", (
                _c("rnn vs LSTM", RNN, [KERAS1, VANILLA1], CELL_KEYS | {"recurrent_initializer"}, "lower",
                   metric=FLOW, min_effect=1.0),
            ), "all"),
            Part("h2", "forget bias 0 decays faster than 1", (
                _c("fb 0 vs 1", FB0, [FB1, FB_1_2], {"forget_bias"}, "lower", metric=FLOW),
            ), "any"),
            Part("h3", "SimpleRNN decays faster than LSTM after training", (
                _c("rnn vs LSTM (trained)", RNN, [KERAS1, VANILLA1], CELL_KEYS | {"recurrent_initializer"},
                   "lower", metric=FLOW_FINAL),
            ), "all"),
        ),
        context=(
            _c("fb 0 vs 1 (trained)", FB0, [FB1, FB_1_2], {"forget_bias"}, "lower", metric=FLOW_FINAL),
        ),
        plots=("gradient_flow",),
    ),
    Claim(
        "i", "The 1997 LSTM is worse than the modern one.",
        "LSTM lstm1997 (Hochreiter & Schmidhuber 1997: no forget gate, no peepholes, g = 4σ−2, "
        "h = 2σ−1) vs Keras's LSTM (else vanilla) with forget bias 1, in the same study and task, "
        "units allowed to differ: higher test_over_baseline.",
        (Part("i", "lstm1997 is worse than keras/vanilla", (
            _c("lstm1997 vs keras/vanilla", LSTM1997, [KERAS1, VANILLA1], CELL_KEYS, "higher"),
        ), "any"),),
    ),
)
# fmt: on

"""The claims checklist: each explainer claim as contrasts between sweep configurations, with verdicts.

A claim has parts; a part has contrasts "A vs B" (e.g. forget bias 1 vs forget bias 0). A contrast
is found wherever one study, on one task, has a configuration matching A and one matching B whose
other parameters are all equal (except the parameters the contrast names as differing). Values are
per-seed summary metrics at each configuration's best learning rate (best-over-LR). Verdict rules
are in `RULES` (quoted verbatim in claims.md); the numbers behind them come from `experiments.report.stats`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

from experiments.report import stats
from experiments.report.metrics import FLOW, FLOW_FINAL, GROUP, PRIMARY
from experiments.training.config import RunConfig, variant_specs

MEMORY_TASKS = ("copy", "adding")
NOT_CONFIG = {"seed", "learning_rate"}
SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_TESTED = "supported", "contradicted", "inconclusive", "not tested"

RULES = """\
* **Data.** Per configuration, the seeds at its best learning rate (the one whose mean
  `best_val_loss_over_baseline` over seeds is lowest; seeds with a non-finite value rank an LR
  last). A contrast "A vs B" pairs configurations of one study and one task whose parameters are
  equal except those the contrast varies. Metric: `best_val_loss_over_baseline` (lower is better,
  1 = memoryless baseline) unless stated; claim (h) uses log10 of `grad_flow_ratio_init`
  (‖∂L/∂h_1‖/‖∂L/∂h_T‖ at initialisation; lower = faster decay), with `_final` as context.
* **Test.** {test_rule}. Divergence rates (claim d) are compared with Fisher's exact test
  over *all* learning rates of the two configurations. All p-values of one claim (every part,
  every contrast, loss and divergence tests) form one Holm family; context rows form their own.
* **Directional contrast** ("A worse/lower than B"): *for* if Holm p < {alpha} with the difference
  in the claimed direction (claim h1 also needs ≥ 1 decade: mean log10 difference ≤ −1);
  *against* if Holm p < {alpha} in the opposite direction; otherwise *neutral*. With a
  divergence test too, the contrast is *for* if either test is for and neither against.
* **"Differs" contrast** (claim e2): *for* if Holm p < {alpha}; *against* if the 95 % Welch CI of
  the difference lies inside ±margin; otherwise neutral.
* **Equivalence** ("≈", claims c2, f1): *for* if the 95 % Welch CI of mean(A) − mean(B) lies
  inside ±margin; *against* if Holm p < {alpha} and |difference| > margin; otherwise neutral.
* **Non-inferiority** ("costs little", claim g): *for* if the CI's upper end < margin (A at most
  margin worse); *against* if Holm p < {alpha} and A is worse by more than the margin.
* **Margin** = {margin:g} × max(|mean(B)|, {floor:g}): {margin_pct:g} % of the comparison
  configuration's mean, never below {floor_margin:g} (× baseline loss), so near-solved tasks are
  not held to an impossible margin.
* **Structural** (claims c1, f2): exact comparison of logged `n_params` (constant over seeds).
* **Part verdict.** Directional and "differs" parts: *supported* if ≥ 1 contrast is for and none
  against; *contradicted* if ≥ 1 against and none for; else *inconclusive*. Equivalence,
  non-inferiority and structural parts: *supported* if every contrast is for; *contradicted* if
  any is against; else *inconclusive*. A contrast with < 2 finite values on a side is neutral.
* **Nobody learned.** A loss contrast where neither side's mean `best_val_loss_over_baseline`
  is below {learned:g} (neither configuration left the memoryless baseline) is neutral: a
  difference between two untrained networks says nothing about the claim.
* **Claim verdict.** *not tested* if no part has a contrast (the reason names what is missing);
  *contradicted* if any tested part is contradicted; *supported* if every tested part is supported
  (untested parts are listed); otherwise *inconclusive*.
"""


# ----------------------------------------------------------------------- configuration descriptors


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
    lstm = variant_specs().LSTM_VARIANTS.get(variant) if cell == "lstm" else None
    if tags.get("forget_bias_resolved"):
        d["forget_bias"] = tags["forget_bias_resolved"]
    elif d["forget_bias"] == "auto":
        d["forget_bias"] = {"lstm": "1", "gru": "none"}.get(cell, "n/a")
    if tags.get("candidate_activation_resolved"):
        d["candidate_activation"] = tags["candidate_activation_resolved"]
    elif d["candidate_activation"] == "auto":
        d["candidate_activation"] = lstm.candidate_activation if lstm else "tanh"
    if d["output_activation"] == "auto":
        d["output_activation"] = lstm.output_activation if lstm else "n/a"
    return {k: norm(v) for k, v in d.items()}


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
    """A cell with a forget (LSTM) or update (GRU) gate whose bias is set."""
    if d.get("cell") == "lstm":
        return d.get("variant") not in ("NFG", "lstm1997")
    return d.get("cell") == "gru" and d.get("variant") != "NUG"


# ----------------------------------------------------------------------- claim definitions


@dataclass(frozen=True)
class Side:
    description: str
    match: Callable[[dict], bool]


@dataclass(frozen=True)
class Contrast:
    name: str
    a: Side
    b: tuple[Side, ...]  # in order of preference: the first that pairs with A is used
    ignore: frozenset[str]  # parameters allowed to differ besides what the sides select
    expect: str  # A vs B: lower | higher | differs | equal | not_higher | fewer_params | same_params
    metric: str = PRIMARY
    tasks: tuple[str, ...] | None = None
    min_effect: float = 0.0  # |difference| a "for" needs (claim h1: one decade)
    divergence: bool = False  # also compare divergence rates over all learning rates


@dataclass(frozen=True)
class Part:
    id: str
    statement: str
    contrasts: tuple[Contrast, ...]
    rule: str  # any (directional, differs) | all (equivalence, non-inferiority, structural)


@dataclass(frozen=True)
class Claim:
    id: str
    statement: str
    definition: str
    parts: tuple[Part, ...]
    context: tuple[Contrast, ...] = ()
    plots: tuple[str, ...] = ()  # per-study plot kinds that also show it


def _c(name, a, b, ignore, expect, **kw) -> Contrast:
    return Contrast(name, a, tuple(b), frozenset(ignore), expect, **kw)


def _side(description: str, cell: str | None = None, *variants: str, where=lambda d: True) -> Side:
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


# ----------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class Options:
    test: str = "auto"
    alpha: float = 0.05
    margin: float = 0.10
    floor: float = 0.1
    learned: float = 0.9  # best_val_loss_over_baseline below this: the configuration learned

    def rules(self) -> str:
        return RULES.format(
            learned=self.learned,
            test_rule=stats.TEST_RULE,
            alpha=self.alpha,
            margin=self.margin,
            floor=self.floor,
            margin_pct=100 * self.margin,
            floor_margin=self.margin * self.floor,
        )


def _same(a: dict, b: dict, ignore: frozenset[str]) -> bool:
    return all(a.get(k) == b.get(k) for k in (set(a) | set(b)) - ignore)


def find_pairs(configs: pd.DataFrame, contrast: Contrast) -> tuple[list[tuple[dict, dict]], str]:
    """(pairs of config rows A, B, reason when there are none). `configs`: GROUP columns + desc."""
    rows = [r for r in configs.to_dict("records") if contrast.tasks is None or r["task"] in contrast.tasks]
    pairs, any_b = [], False
    for a in (r for r in rows if contrast.a.match(r["desc"])):
        scope = [r for r in rows if (r["sweep"], r["task"]) == (a["sweep"], a["task"]) and r is not a]
        for side in contrast.b:
            bs = [r for r in scope if side.match(r["desc"])]
            any_b |= bool(bs)
            matched = [b for b in bs if _same(a["desc"], b["desc"], contrast.ignore)]
            if matched:
                pairs += [(a, b) for b in matched]
                break
    where = f" on {'/'.join(contrast.tasks)}" if contrast.tasks else ""
    if pairs:
        return pairs, ""
    if not any(contrast.a.match(r["desc"]) for r in rows):
        return [], f"no configuration is {contrast.a.description}{where}"
    b_text = " or ".join(s.description for s in contrast.b)
    if not any_b:
        return [], f"{contrast.a.description} present{where}, but no {b_text} in the same study and task"
    return (
        [],
        f"{contrast.a.description} and {b_text} never differ only in {', '.join(sorted(contrast.ignore))}",
    )


def _values(df: pd.DataFrame, row: dict, metric: str) -> np.ndarray:
    mask = np.ones(len(df), dtype=bool)
    for k in GROUP:
        mask &= (df[k] == row[k]).to_numpy()
    if metric not in df.columns:
        return np.array([])
    return df.loc[mask, metric].to_numpy(dtype=float)


def _count(df: pd.DataFrame, row: dict, column: str) -> tuple[int, int]:
    values = _values(df, row, column)
    return int(np.nansum(values == 1)), len(values)


def _measure(
    contrast: Contrast, a: dict, b: dict, chosen: pd.DataFrame, runs: pd.DataFrame, test: str
) -> dict:
    out = {
        "contrast": contrast.name,
        "expect": contrast.expect,
        "metric": "n_params" if contrast.expect.endswith("_params") else contrast.metric,
        "sweep": a["sweep"],
        "task": a["task"],
        "a": a["config_label"],
        "b": b["config_label"],
    }
    if contrast.expect.endswith("_params"):
        out.update(n_params_a=a.get("n_params", math.nan), n_params_b=b.get("n_params", math.nan))
        return out
    va, vb = _values(chosen, a, contrast.metric), _values(chosen, b, contrast.metric)
    out.update(stats.compare(va, vb, test).as_dict())
    out.update(
        lr_a=float(_values(chosen, a, "learning_rate")[0]) if len(va) else math.nan,
        lr_b=float(_values(chosen, b, "learning_rate")[0]) if len(vb) else math.nan,
        values_a=[float(v) for v in va],
        values_b=[float(v) for v in vb],
    )
    if contrast.divergence:
        (da, na), (db, nb) = _count(runs, a, "diverged"), _count(runs, b, "diverged")
        out.update(diverged_a=da, runs_a=na, diverged_b=db, runs_b=nb, div_p=stats.rate_p(da, na, db, nb))
    return out


def _outcome(row: dict, contrast: Contrast, opts: Options) -> str:
    """for | against | neutral, from the Holm-adjusted p-values already in `row`."""
    expect = contrast.expect
    if expect.endswith("_params"):
        na, nb = row["n_params_a"], row["n_params_b"]
        if not (np.isfinite(na) and np.isfinite(nb)):
            return "neutral"
        return "for" if (na < nb if expect == "fewer_params" else na == nb) else "against"
    if min(row["n_a"], row["n_b"]) < 2:
        return "neutral"
    if contrast.metric == PRIMARY and min(row["mean_a"], row["mean_b"]) >= opts.learned:
        row["note"] = "neither side learned"
        return "neutral"
    diff, low, high, p = row["diff"], row["diff_ci_low"], row["diff_ci_high"], row["p_holm"]
    margin = opts.margin * max(abs(row["mean_b"]), opts.floor)
    row["margin"] = margin
    significant = p < opts.alpha
    inside = -margin < low and high < margin
    if expect == "equal":
        return "for" if inside else ("against" if significant and abs(diff) > margin else "neutral")
    if expect == "not_higher":
        return "for" if high < margin else ("against" if significant and diff > margin else "neutral")
    if expect == "differs":
        return "for" if significant else ("against" if inside else "neutral")
    sign = -1 if expect == "lower" else 1
    votes = []
    if significant and np.sign(diff) == sign:
        votes.append("for" if abs(diff) >= contrast.min_effect else "neutral")
    elif significant and np.sign(diff) == -sign:
        votes.append("against")
    if contrast.divergence and row.get("div_p_holm", 1.0) < opts.alpha:
        rate_a, rate_b = row["diverged_a"] / row["runs_a"], row["diverged_b"] / row["runs_b"]
        votes.append("for" if np.sign(rate_a - rate_b) == sign else "against")
    if "for" in votes and "against" not in votes:
        return "for"
    if "against" in votes and "for" not in votes:
        return "against"
    return "neutral"


def _adjust(rows: list[dict]) -> None:
    """Holm over every p-value in `rows` (loss tests and divergence tests together), in place."""
    keys = [(i, k) for i, r in enumerate(rows) for k in ("p", "div_p") if k in r]
    adjusted = stats.holm([rows[i][k] for i, k in keys])
    for (i, k), p in zip(keys, adjusted):
        rows[i][f"{k}_holm"] = float(p)


def _part_verdict(outcomes: list[str], rule: str) -> str:
    if not outcomes:
        return NOT_TESTED
    n_for, n_against = outcomes.count("for"), outcomes.count("against")
    if rule == "all":
        if n_against:
            return CONTRADICTED
        return SUPPORTED if n_for == len(outcomes) else INCONCLUSIVE
    if n_for and not n_against:
        return SUPPORTED
    if n_against and not n_for:
        return CONTRADICTED
    return INCONCLUSIVE


def claim_verdict(part_verdicts: list[str]) -> str:
    """Combine part verdicts (see RULES): not tested / contradicted / supported / inconclusive."""
    tested = [v for v in part_verdicts if v != NOT_TESTED]
    if not tested:
        return NOT_TESTED
    if CONTRADICTED in tested:
        return CONTRADICTED
    return SUPPORTED if all(v == SUPPORTED for v in tested) else INCONCLUSIVE


def evaluate_claim(
    claim: Claim, configs: pd.DataFrame, chosen: pd.DataFrame, runs: pd.DataFrame, opts: Options
) -> dict:
    parts, rows_all = [], []
    for part in claim.parts:
        rows, reasons = [], []
        for contrast in part.contrasts:
            pairs, reason = find_pairs(configs, contrast)
            reasons += [f"{contrast.name}: {reason}"] if reason else []
            rows += [(contrast, _measure(contrast, a, b, chosen, runs, opts.test)) for a, b in pairs]
        parts.append({"part": part, "rows": rows, "reasons": reasons})
        rows_all += [r for _, r in rows]
    _adjust(rows_all)
    context = []
    for contrast in claim.context:
        pairs, _ = find_pairs(configs, contrast)
        context += [(contrast, _measure(contrast, a, b, chosen, runs, opts.test)) for a, b in pairs]
    _adjust([r for _, r in context])
    out_parts = []
    for p in parts:
        for contrast, row in p["rows"]:
            row["outcome"] = _outcome(row, contrast, opts)
        verdict = _part_verdict([r["outcome"] for _, r in p["rows"]], p["part"].rule)
        out_parts.append(
            {
                "id": p["part"].id,
                "statement": p["part"].statement,
                "rule": p["part"].rule,
                "verdict": verdict,
                "reason": "; ".join(p["reasons"]) if verdict == NOT_TESTED else "",
                "contrasts": [r for _, r in p["rows"]],
            }
        )
    for contrast, row in context:
        row["outcome"] = _outcome(row, contrast, opts)
    verdict = claim_verdict([p["verdict"] for p in out_parts])
    untested = [p["id"] for p in out_parts if p["verdict"] == NOT_TESTED]
    reason = "; ".join(p["reason"] for p in out_parts if p["reason"]) if verdict == NOT_TESTED else ""
    if untested and verdict != NOT_TESTED:
        reason = f"part(s) {', '.join(untested)} not tested: " + "; ".join(
            p["reason"] for p in out_parts if p["reason"]
        )
    return {
        "id": claim.id,
        "statement": claim.statement,
        "definition": claim.definition,
        "verdict": verdict,
        "reason": reason,
        "parts": out_parts,
        "context": [r for _, r in context],
        "sweeps": sorted({r["sweep"] for r in rows_all}),
    }


def evaluate(
    configs: pd.DataFrame,
    chosen: pd.DataFrame,
    runs: pd.DataFrame,
    opts: Options | None = None,
    listed: dict[str, set[str]] | None = None,
) -> list[dict]:
    """Every claim's result (see `evaluate_claim`), in the order a..i.

    `listed`: sweep label → the claims its spec says it tests. A claim is judged only on the
    sweeps that list it (a sweep that lists none informs every claim): a study designed for one
    claim (e.g. untrained runs for gradient flow) must not vote on another, nor enter its Holm family.
    """
    opts = opts or Options()
    results = []
    for claim in CLAIMS:
        keep = [label for label, ids in (listed or {}).items() if ids and claim.id not in ids]
        scoped = configs[~configs["sweep"].isin(keep)] if keep else configs
        result = evaluate_claim(claim, scoped, chosen, runs, opts)
        if keep and result["verdict"] == NOT_TESTED and len(scoped) == 0:
            result["reason"] = f"no sweep in this report lists claim ({claim.id})"
        results.append(result)
    return results


def key_numbers(result: dict) -> str:
    """One line: the contrasts' means, differences and Holm p (or n_params), for the summary table."""
    bits = []
    for part in result["parts"]:
        for r in part["contrasts"]:
            where = f"{r['task']}: {r['a']} vs {r['b']}"
            if r["expect"].endswith("_params"):
                n_a, n_b = fmt(r["n_params_a"], 8), fmt(r["n_params_b"], 8)
                bits.append(f"[{part['id']}] {where}: n_params {n_a} vs {n_b} ({r['outcome']})")
                continue
            text = (
                f"[{part['id']}] {where}: {r['mean_a']:.3g} vs {r['mean_b']:.3g}, "
                f"Δ {r['diff']:+.3g} [{r['diff_ci_low']:+.3g}, {r['diff_ci_high']:+.3g}], "
                f"g {fmt(r['hedges_g'], 2)}, {r['test']} p_holm {fmt(r['p_holm'])}"
            )
            if "div_p" in r:
                text += (
                    f", diverged {r['diverged_a']}/{r['runs_a']} vs {r['diverged_b']}/{r['runs_b']} "
                    f"(p_holm {fmt(r['div_p_holm'])})"
                )
            note = f": {r['note']}" if r.get("note") else ""
            bits.append(f"{text} ({r['outcome']}{note})")
    return "; ".join(bits) if bits else "—"


# ----------------------------------------------------------------------- writing


def fmt(x, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if isinstance(x, (int, np.integer)):
        return str(x)
    return f"{x:.{digits}g}"


def short_labels(labels) -> dict[str, str]:
    """label → the label without the `key=value` tokens every label shares (for plot axes)."""
    labels = list(dict.fromkeys(labels))
    common = set.intersection(*(set(lbl.split()) for lbl in labels)) if len(labels) > 1 else set()
    return {lbl: " ".join(t for t in lbl.split() if t not in common) or lbl for lbl in labels}


def markdown_table(header: list[str], rows: list[list]) -> str:
    esc = [[str(c).replace("|", "\\|").replace("\n", " ") for c in r] for r in [header, *rows]]
    lines = ["| " + " | ".join(esc[0]) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in esc[1:]])


CONTRAST_HEADER = [
    "study/task",
    "A",
    "B",
    "metric",
    "n A/B",
    "mean A",
    "mean B",
    "Δ [95 % CI]",
    "g",
    "test",
    "p (Holm)",
    "extra",
    "outcome",
]


def _contrast_row(r: dict) -> list:
    where = f"{r['sweep']}/{r['task']}"
    if r["expect"].endswith("_params"):
        a, b = fmt(r["n_params_a"], 8), fmt(r["n_params_b"], 8)
        return [
            where,
            r["a"],
            r["b"],
            "n_params",
            "–",
            a,
            b,
            "–",
            "–",
            "exact",
            "–",
            r["expect"],
            r["outcome"],
        ]
    extra = (
        f"margin {fmt(r['margin'])}"
        if "margin" in r and r["expect"] in ("equal", "not_higher", "differs")
        else "–"
    )
    if "div_p" in r:
        extra = (
            f"diverged {r['diverged_a']}/{r['runs_a']} vs {r['diverged_b']}/{r['runs_b']}, "
            f"Fisher p {fmt(r['div_p'], 2)} ({fmt(r['div_p_holm'], 2)})"
        )
    diff = f"{fmt(r['diff'])} [{fmt(r['diff_ci_low'])}, {fmt(r['diff_ci_high'])}]"
    p = f"{fmt(r['p'], 2)} ({fmt(r['p_holm'], 2)})"
    return [
        where,
        r["a"],
        r["b"],
        r["metric"],
        f"{r['n_a']}/{r['n_b']}",
        fmt(r["mean_a"]),
        fmt(r["mean_b"]),
        diff,
        fmt(r["hedges_g"], 2),
        r["test"],
        p,
        extra,
        r["outcome"],
    ]


def claims_markdown(
    results: list[dict], opts: Options, sweeps: dict[str, str], listed: dict[str, set]
) -> str:
    """claims.md: summary table, the verdict rules, then each claim's parts and contrasts.

    `sweeps`: label → parent run id; `listed`: label → claim ids its spec says it informs.
    """
    summary = [
        [
            f"({r['id']}) {r['statement']}",
            f"**{r['verdict']}**",
            key_numbers(r) if r["verdict"] != NOT_TESTED else r["reason"],
            ", ".join(r["plots"]) or "–",
        ]
        for r in results
    ]
    out = [
        "# Claims checklist",
        "",
        f"Sweeps: {', '.join(f'{k} ({v})' for k, v in sweeps.items())}.",
        "",
        markdown_table(["claim", "verdict", "numbers behind it", "plots"], summary),
        "",
        "## Verdict rules",
        "",
        opts.rules(),
    ]
    for r in results:
        informs = [s for s, ids in listed.items() if r["id"] in ids]
        out += [
            "",
            f"## ({r['id']}) {r['statement']}",
            "",
            f"**Verdict: {r['verdict']}.** {r['reason']}",
            "",
            f"*As tested:* {r['definition']}",
            "",
            f"Studies listing this claim: {', '.join(informs) or 'none'}; contrasts found in: "
            f"{', '.join(r['sweeps']) or 'none'}. Plots: {', '.join(r['plots']) or '–'}.",
        ]
        own = f"claim_{r['id']}.png"
        out += ["", f"![{own}]({own})"] if own in r["plots"] else []
        for p in r["parts"]:
            reason = f" — {p['reason']}" if p["reason"] else ""
            out += ["", f"**Part {p['id']}** — {p['statement']} ({p['rule']} rule): {p['verdict']}{reason}"]
            if p["contrasts"]:
                out += ["", markdown_table(CONTRAST_HEADER, [_contrast_row(c) for c in p["contrasts"]])]
        if r["context"]:
            out += [
                "",
                "Context (not part of the verdict; its own Holm family):",
                "",
                markdown_table(CONTRAST_HEADER, [_contrast_row(c) for c in r["context"]]),
            ]
    return "\n".join(out) + "\n"


def plot_claim(result: dict, path) -> str | None:
    """claim_<id>.png: per contrast (≤ 12) the seeds of A and B with mean and 95 % CI; None if none."""
    rows = [r for p in result["parts"] for r in p["contrasts"] if "values_a" in r][:12]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(3, len(rows))
    fig, axes = plt.subplots(
        math.ceil(len(rows) / cols),
        cols,
        figsize=(4.2 * cols, 3.6 * math.ceil(len(rows) / cols)),
        squeeze=False,
    )
    for ax, r in zip(axes.flat, rows):
        for x, key in ((0, "a"), (1, "b")):
            v = np.asarray(r[f"values_{key}"], dtype=float)
            ax.plot(np.full(len(v), x) + np.linspace(-0.08, 0.08, len(v)), v, "o", alpha=0.6)
            n, mean, low, high = stats.mean_ci(v)
            err = [[mean - low], [high - mean]] if n > 1 else None
            ax.errorbar(x + 0.2, mean, yerr=err, fmt="s", color="black", capsize=4)
        names = short_labels([r["a"], r["b"]])
        ax.set_xticks([0, 1], [names[r["a"]][:40], names[r["b"]][:40]], fontsize=7)
        ax.set_ylabel(r["metric"], fontsize=8)
        ax.set_title(f"{r['sweep']}/{r['task']}: p_holm {fmt(r['p_holm'], 2)} → {r['outcome']}", fontsize=8)
    for ax in list(axes.flat)[len(rows) :]:
        ax.axis("off")
    fig.suptitle(f"claim ({result['id']}): {result['verdict']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path).name

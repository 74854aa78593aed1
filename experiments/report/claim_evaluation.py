"""The claims' evaluator: any entry of `claim_catalogue.CLAIMS` judged on a report's configurations.

A contrast is found wherever one study, on one task, has a configuration matching A and one matching
B whose other parameters are all equal (except the parameters the contrast names as differing).
Values are per-seed summary metrics at each configuration's best learning rate (best-over-LR).
Verdict rules are in `RULES` (quoted verbatim in claims.md); the numbers behind them come from
`experiments.report.stats`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from experiments.report import divergence, stats
from experiments.report.claim_catalogue import CLAIMS, Claim, Contrast
from experiments.report.metrics import GROUP, PRIMARY

SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_TESTED = "supported", "contradicted", "inconclusive", "not tested"

RULES = """\
* **Data.** Per configuration, the seeds at its best learning rate (the one with the smallest
  share of diverged or non-finite seeds, then the lowest mean `best_val_loss_over_baseline` over
  the other seeds). A contrast "A vs B" pairs configurations of one study and one task whose parameters are
  equal except those the contrast varies. Metric: `best_val_loss_over_baseline` (lower is better,
  1 = memoryless baseline) unless stated; claim (h) uses log10 of `grad_flow_ratio_init`
  (‖∂L/∂h_1‖/‖∂L/∂h_T‖ at initialisation; lower = faster decay), with `_final` as context.
* **Test.** {test_rule}. Divergence rates (claim d) are compared with Fisher's exact test
  over *all* learning rates of the two configurations. All p-values of one claim (every part,
  every contrast, loss and divergence tests) form one Holm family; context rows form their own.
* **Diverged runs rank worst.** A run diverged when its loss or gradient became non-finite or its
  loss exceeded `explode_factor` × max(memoryless baseline, initial validation loss). Its loss
  and task metric count as the worst possible value, never as the best score it reached before
  diverging: in learning-rate selection its seed counts as bad (like a non-finite one), and a
  contrast with a diverged seed on either side is a worst-rank comparison: Mann–Whitney U with
  every diverged seed ranked below every other and tied with the rest, the Hodges–Lehmann shift
  as Δ, no CI or g (so such a contrast is never *for* an equivalence or non-inferiority), means
  over the seeds that did not diverge.
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
    return divergence.counted(df.loc[mask], metric)  # a diverged run at the metric's worst value


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
    out.update(divergence.compare(va, vb, test).as_dict())
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
    # fmin: a side whose every seed diverged has no mean, and learned nothing either.
    if contrast.metric == PRIMARY and np.fmin(row["mean_a"], row["mean_b"]) >= opts.learned:
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

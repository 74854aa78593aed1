"""The claims' evaluator: any entry of `claim_catalogue.CLAIMS` judged on a report's configurations.

A contrast is found wherever one study, on one task, has a configuration matching A and one matching
B whose other parameters are all equal (except the parameters the contrast names as differing).
Values are the per-seed summary metrics the report's selection hands over (`chosen`), compared by
`experiments.report.comparison` (paired by seed where the seeds match). The rules that turn the
numbers into outcomes and verdicts, per task and overall, are `claim_rules.RULES` (quoted verbatim
in claims.md); this module finds the contrasts, measures them and forms the Holm families.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from experiments.report import comparison, stats
from experiments.report.claim_catalogue import CLAIMS, TASKS, Claim, Contrast, Fact
from experiments.report.claim_rules import (  # noqa: F401  (re-exported: the report's other modules)
    CONTRADICTED,
    INCONCLUSIVE,
    MIXED,
    NOT_TESTED,
    RULES,
    SUPPORTED,
    Options,
    claim_verdict,
    outcome,
    overall_text,
    overall_verdict,
    part_verdict,
)
from experiments.report.metrics import GROUP

P_KEYS = ("p", "p_tost", "p_ni", "div_p")  # every judged p-value a row can carry
EXTRA = {"equal": "tost", "differs": "tost", "not_higher": "ni"}  # expect → its one-sided tests


def _same(a: dict, b: dict, ignore: frozenset[str]) -> bool:
    return all(a.get(k) == b.get(k) for k in (set(a) | set(b)) - ignore)


def _no_pairs_reason(rows: list[dict], contrast: Contrast | Fact, any_b: bool) -> str:
    where = f" on {'/'.join(contrast.tasks)}" if contrast.tasks else ""
    if not any(contrast.a.match(r["desc"]) for r in rows):
        return f"no configuration is {contrast.a.description}{where}"
    b_text = " or ".join(s.description for s in contrast.b)
    if not any_b:
        return f"{contrast.a.description} present{where}, but no {b_text} in the same study and task"
    also = f" (with {contrast.pair_text})" if contrast.pair is not None else ""
    varied = ", ".join(sorted(contrast.ignore))
    return f"{contrast.a.description} and {b_text} never differ only in {varied}{also}"


def find_pairs(configs: pd.DataFrame, contrast: Contrast | Fact) -> tuple[list[tuple[dict, dict]], str]:
    """(pairs of config rows A, B, reason when there are none). `configs`: GROUP columns + desc
    (+ n_params, which a contrast's `pair` condition may read)."""
    rows = [r for r in configs.to_dict("records") if contrast.tasks is None or r["task"] in contrast.tasks]
    pairs, any_b = [], False
    for a in (r for r in rows if contrast.a.match(r["desc"])):
        scope = [r for r in rows if (r["sweep"], r["task"]) == (a["sweep"], a["task"]) and r is not a]
        for side in contrast.b:
            bs = [r for r in scope if side.match(r["desc"])]
            any_b |= bool(bs)
            matched = [b for b in bs if _same(a["desc"], b["desc"], contrast.ignore)]
            matched = [b for b in matched if contrast.pair is None or contrast.pair(a, b)]
            if matched:
                pairs += [(a, b) for b in matched]
                break
    return (pairs, "") if pairs else ([], _no_pairs_reason(rows, contrast, any_b))


def _rows(df: pd.DataFrame, row: dict) -> pd.DataFrame:
    mask = np.ones(len(df), dtype=bool)
    for k in GROUP:
        mask &= (df[k] == row[k]).to_numpy()
    return df.loc[mask]


def _values(df: pd.DataFrame, row: dict, metric: str) -> pd.Series:
    """The configuration's `metric` per seed, a diverged run at the metric's worst value."""
    return comparison.seeded(_rows(df, row), metric)


def _count(df: pd.DataFrame, row: dict, column: str) -> tuple[int, int]:
    values = _rows(df, row)[column].to_numpy(dtype=float) if column in df else np.array([])
    return int(np.nansum(values == 1)), len(values)


def _lr(df: pd.DataFrame, row: dict) -> float:
    lrs = _rows(df, row)["learning_rate"].to_numpy(dtype=float) if "learning_rate" in df else []
    return float(lrs[0]) if len(lrs) else math.nan


def _where(contrast: Contrast | Fact, a: dict, b: dict) -> dict:
    return {
        "sweep": a["sweep"],
        "task": a["task"],
        "a": a["config_label"],
        "b": b["config_label"],
        "n_params_a": a.get("n_params", math.nan),
        "n_params_b": b.get("n_params", math.nan),
    }


def measure(
    contrast: Contrast, a: dict, b: dict, chosen: pd.DataFrame, runs: pd.DataFrame, opts: Options
) -> dict:
    """One contrast row: where, the comparison (`comparison.Comparison` fields), seeds and rates."""
    out = {"contrast": contrast.name, "expect": contrast.expect, "metric": contrast.metric}
    out.update(_where(contrast, a, b))
    va, vb = _values(chosen, a, contrast.metric), _values(chosen, b, contrast.metric)
    margin = opts.margin_of(contrast)
    scale = comparison.scale_of(contrast.metric)
    extra = EXTRA.get(contrast.expect, "")
    c = comparison.compare(va, vb, scale, margin, extra, opts.alpha, opts.test)
    out.update(margin=margin if margin is not None else math.nan, **c.as_dict())
    out.update(
        lr_a=_lr(chosen, a),
        lr_b=_lr(chosen, b),
        values_a=[float(v) for v in va],
        values_b=[float(v) for v in vb],
        seeds_a=[int(s) for s in va.index] if va.index.name == "seed" else [],
        seeds_b=[int(s) for s in vb.index] if vb.index.name == "seed" else [],
    )
    if contrast.divergence:
        (da, na), (db, nb) = _count(runs, a, "diverged"), _count(runs, b, "diverged")
        out.update(diverged_a=da, runs_a=na, diverged_b=db, runs_b=nb, div_p=stats.rate_p(da, na, db, nb))
    return out


def fact_row(fact: Fact, a: dict, b: dict) -> dict:
    """A printed fact: n_params of A and B and their ratio, in words."""
    out = {"fact": fact.name, **_where(fact, a, b)}
    na, nb = out["n_params_a"], out["n_params_b"]
    ok = np.isfinite(na) and np.isfinite(nb) and nb > 0
    ratio = f" (A/B = {na / nb:.3f})" if ok else ""
    out["text"] = f"n_params {na:,.0f} vs {nb:,.0f}{ratio}" if ok else "n_params not logged"
    return out


def adjust_by_study(rows: list[dict]) -> None:
    """Holm over every judged p-value of `rows` (P_KEYS), one family per study (`sweep`), in place."""
    for sweep in sorted({r["sweep"] for r in rows}):
        keys = [(r, k) for r in rows if r["sweep"] == sweep for k in P_KEYS if k in r]
        adjusted = stats.holm([r[k] for r, k in keys])
        for (r, k), p in zip(keys, adjusted):
            r[f"{k}_holm"] = float(p)


def _ordered(tasks) -> list[str]:
    return [t for t in TASKS if t in tasks] + sorted(set(tasks) - set(TASKS))


def _eligible(contrasts) -> tuple[str, ...]:
    wanted = {t for c in contrasts for t in (c.tasks or TASKS)}
    return tuple(t for t in TASKS if t in wanted)


def measure_claim(
    claim: Claim, configs: pd.DataFrame, chosen: pd.DataFrame, runs: pd.DataFrame, opts: Options
) -> dict:
    """Every contrast row of `claim` (parts and context, p-values not yet adjusted) and its facts."""
    parts = []
    for part in claim.parts:
        rows, reasons = [], []
        for contrast in part.contrasts:
            pairs, reason = find_pairs(configs, contrast)
            reasons += [f"{contrast.name}: {reason}"] if reason else []
            rows += [(contrast, measure(contrast, a, b, chosen, runs, opts)) for a, b in pairs]
        parts.append({"part": part, "rows": rows, "reasons": reasons})
    context = [
        (c, measure(c, a, b, chosen, runs, opts)) for c in claim.context for a, b in find_pairs(configs, c)[0]
    ]
    facts = [fact_row(f, a, b) for f in claim.facts for a, b in find_pairs(configs, f)[0]]
    return {"parts": parts, "context": context, "facts": facts}


def _judge_part(p: dict, opts: Options) -> dict:
    part = p["part"]
    for contrast, row in p["rows"]:
        row["outcome"] = outcome(row, contrast, opts)
    rows = [r for _, r in p["rows"]]
    by_task = {
        t: part_verdict([r["outcome"] for r in rows if r["task"] == t], part.rule)
        for t in _ordered({r["task"] for r in rows})
    }
    verdict = overall_verdict(by_task)
    mde = [r["mde_ratio"] for r in rows if r["outcome"] == "neutral" and np.isfinite(r["mde_ratio"])]
    unsure = verdict == INCONCLUSIVE or INCONCLUSIVE in by_task.values()
    return {
        "id": part.id,
        "statement": part.statement,
        "rule": part.rule,
        "verdict": verdict,
        "overall": overall_text(by_task, _eligible(part.contrasts)),
        "by_task": by_task,
        "reason": "; ".join(p["reasons"]) if verdict == NOT_TESTED else "",
        "mde_ratio": [min(mde), max(mde)] if unsure and mde else [],
        "contrasts": rows,
    }


def judge_claim(claim: Claim, measured: dict, opts: Options) -> dict:
    """The claim's result from its measured rows (p-values already Holm-adjusted): outcomes, part and
    claim verdicts per task and overall (`claim_rules`)."""
    parts = [_judge_part(p, opts) for p in measured["parts"]]
    for contrast, row in measured["context"]:
        row["outcome"] = outcome(row, contrast, opts)
    tasks = _ordered({t for p in parts for t in p["by_task"]})
    by_task = {t: claim_verdict([p["by_task"].get(t, NOT_TESTED) for p in parts]) for t in tasks}
    verdict = overall_verdict(by_task)
    reasons = "; ".join(p["reason"] for p in parts if p["reason"])
    untested = [p["id"] for p in parts if p["verdict"] == NOT_TESTED]
    reason = reasons if verdict == NOT_TESTED else ""
    if untested and verdict != NOT_TESTED:
        reason = f"part(s) {', '.join(untested)} not tested: {reasons}"
    rows = [r for p in parts for r in p["contrasts"]]
    return {
        "id": claim.id,
        "statement": claim.statement,
        "definition": claim.definition,
        "verdict": verdict,
        "overall": overall_text(by_task, claim.tasks()),
        "by_task": by_task,
        "reason": reason,
        "parts": parts,
        "facts": measured["facts"],
        "context": [r for _, r in measured["context"]],
        "sweeps": sorted({r["sweep"] for r in rows}),
    }


def _part_rows(measured: dict) -> list[dict]:
    return [r for p in measured["parts"] for _, r in p["rows"]]


def evaluate_claim(
    claim: Claim, configs: pd.DataFrame, chosen: pd.DataFrame, runs: pd.DataFrame, opts: Options
) -> dict:
    """One claim judged on its own: its Holm families are its own rows per study (`evaluate` makes
    them every claim's rows per study, as reports do)."""
    measured = measure_claim(claim, configs, chosen, runs, opts)
    adjust_by_study(_part_rows(measured))
    adjust_by_study([r for _, r in measured["context"]])
    return judge_claim(claim, measured, opts)


def evaluate(
    configs: pd.DataFrame,
    chosen: pd.DataFrame,
    runs: pd.DataFrame,
    opts: Options | None = None,
    listed: dict[str, set[str]] | None = None,
    claims: tuple[Claim, ...] | None = None,
) -> list[dict]:
    """Every claim's result (see `judge_claim`), in catalogue order (`claims`: default CLAIMS).

    `listed`: sweep label → the claims its spec says it tests. A claim is judged only on the
    sweeps that list it (a sweep that lists none informs every claim): a study designed for one
    claim (e.g. untrained runs for gradient flow) must not vote on another, nor enter its Holm
    family. The Holm family is one per study over every claim it informs (see RULES).
    """
    opts = opts or Options()
    measured, empty = [], []
    for claim in claims or CLAIMS:
        keep = [label for label, ids in (listed or {}).items() if ids and claim.id not in ids]
        scoped = configs[~configs["sweep"].isin(keep)] if keep else configs
        measured.append((claim, measure_claim(claim, scoped, chosen, runs, opts)))
        empty.append(bool(keep) and len(scoped) == 0)
    adjust_by_study([r for _, m in measured for r in _part_rows(m)])
    adjust_by_study([r for _, m in measured for _, r in m["context"]])
    results = []
    for (claim, m), none_listed in zip(measured, empty):
        result = judge_claim(claim, m, opts)
        if none_listed and result["verdict"] == NOT_TESTED:
            result["reason"] = f"no sweep in this report lists claim ({claim.id})"
        results.append(result)
    return results

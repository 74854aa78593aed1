"""claims.md: the claims checklist (summary, verdict rules, each claim's facts, parts and contrasts)."""

from __future__ import annotations

import math

from experiments.report import divergence
from experiments.report.claim_evaluation import NOT_TESTED, Options
from experiments.report.write import fmt, markdown_table


def _ok(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _ci(low: float, high: float) -> str:
    return f" [{fmt(low)}, {fmt(high)}]" if _ok(low) and _ok(high) else ""


def _mde(r: dict) -> str:
    """'MDE ×1.23' beside a neutral contrast (the ratio its test would detect at power 0.8)."""
    if r.get("outcome") != "neutral":
        return ""
    if _ok(r.get("mde_ratio")):
        return f"MDE ×{r['mde_ratio']:.3g}"
    return f"MDE Δ {fmt(r['mde'])}" if _ok(r.get("mde")) else ""


def _divergence_text(r: dict) -> str:
    return (
        f"diverged {divergence.rate_text(r['diverged_a'], r['runs_a'])} vs "
        f"{divergence.rate_text(r['diverged_b'], r['runs_b'])} (Fisher p_holm {fmt(r['div_p_holm'])})"
    )


def key_numbers(result: dict) -> str:
    """One line: each contrast's means, ratio, Holm p and outcome, for the summary table."""
    bits = []
    for part in result["parts"]:
        for r in part["contrasts"]:
            text = (
                f"[{part['id']}] {r['task']}: {r['a']} vs {r['b']}: {fmt(r['mean_a'])} vs "
                f"{fmt(r['mean_b'])}, ratio {fmt(r['ratio'])}{_ci(r['ratio_ci_low'], r['ratio_ci_high'])}, "
                f"{r['test']} p_holm {fmt(r['p_holm'])}"
            )
            if _ok(r.get("p_tost_holm")):
                text += f", TOST p_holm {fmt(r['p_tost_holm'])}"
            if _ok(r.get("p_ni_holm")):
                text += f", non-inferiority p_holm {fmt(r['p_ni_holm'])}"
            if "div_p" in r:
                text += ", " + _divergence_text(r)
            extra = "; ".join(x for x in (r.get("note", ""), _mde(r)) if x)
            bits.append(f"{text} ({r['outcome']}{': ' + extra if extra else ''})")
    return "; ".join(bits) if bits else "—"


CONTRAST_HEADER = [
    "study/task",
    "A",
    "B",
    "metric (scale)",
    "n A/B (pairs)",
    "mean A",
    "mean B",
    "Δ [95 % CI]",
    "ratio [95 % CI]",
    "d_z [95 % CI] / g*",
    "test",
    "p (Holm)",
    "TOST / NI p (Holm)",
    "extra",
    "outcome",
]


def _one_sided(r: dict) -> str:
    for key, name in (("p_tost", "TOST"), ("p_ni", "NI")):
        if _ok(r.get(key)):
            return f"{name} {fmt(r[key], 2)} ({fmt(r.get(f'{key}_holm'), 2)})"
    return "–"


def _extra(r: dict) -> str:
    bits = [f"margin ×{fmt(1 + r['margin'])}"] if _ok(r.get("margin")) else []
    bits += [_divergence_text(r)] if "div_p" in r else []
    bits += [x for x in (r.get("note", ""), _mde(r)) if x]
    return "; ".join(bits) or "–"


def _contrast_row(r: dict) -> list:
    paired = f" ({r['n_pairs']})" if r.get("paired") else " (unpaired)"
    effect = (
        f"{fmt(r['d_z'], 2)}{_ci(r['d_z_ci_low'], r['d_z_ci_high'])}"
        if r.get("paired")
        else f"g* {fmt(r['hedges_g'], 2)}"
    )
    return [
        f"{r['sweep']}/{r['task']}",
        r["a"],
        r["b"],
        f"{r['metric']} ({r['scale']})",
        f"{r['n_a']}/{r['n_b']}{paired}",
        fmt(r["mean_a"]),
        fmt(r["mean_b"]),
        f"{fmt(r['diff'])}{_ci(r['diff_ci_low'], r['diff_ci_high'])}",
        f"{fmt(r['ratio'])}{_ci(r['ratio_ci_low'], r['ratio_ci_high'])}",
        effect,
        r["test"],
        f"{fmt(r['p'], 2)} ({fmt(r.get('p_holm'), 2)})",
        _one_sided(r),
        _extra(r),
        r["outcome"],
    ]


def _by_task(by_task: dict) -> str:
    return "; ".join(f"{t}: **{v}**" for t, v in by_task.items()) or "–"


def _summary(results: list[dict]) -> str:
    rows = [
        [
            f"({r['id']}) {r['statement']}",
            f"**{r['verdict']}** — {r['overall']}",
            _by_task(r["by_task"]),
            key_numbers(r) if r["verdict"] != NOT_TESTED else r["reason"],
            ", ".join(r["plots"]) or "–",
        ]
        for r in results
    ]
    return markdown_table(["claim", "overall verdict", "per task", "numbers behind it", "plots"], rows)


def _part_lines(p: dict) -> list[str]:
    reason = f" — {p['reason']}" if p["reason"] else ""
    low_high = p["mde_ratio"]
    mde = f" MDE of its neutral contrasts: ×{fmt(low_high[0])}–×{fmt(low_high[1])}." if low_high else ""
    out = [
        "",
        f"**Part {p['id']}** — {p['statement']} ({p['rule']} rule): {p['overall']}{reason}.{mde}",
        "",
        f"Per task: {_by_task(p['by_task'])}.",
    ]
    if p["contrasts"]:
        out += ["", markdown_table(CONTRAST_HEADER, [_contrast_row(c) for c in p["contrasts"]])]
    return out


def _facts(facts: list[dict]) -> list[str]:
    if not facts:
        return []
    lines = ["", "Facts (true by construction, printed, not judged):", ""]
    return lines + [
        f"* {f['fact']} — {f['sweep']}/{f['task']}: {f['a']} vs {f['b']}: {f['text']}" for f in facts
    ]


def _claim_section(r: dict, listed: dict[str, set]) -> list[str]:
    informs = [s for s, ids in listed.items() if r["id"] in ids]
    out = [
        "",
        f"## ({r['id']}) {r['statement']}",
        "",
        f"**Verdict: {r['verdict']}.** {r['overall']}. {r['reason']}".rstrip(),
        "",
        f"Per task: {_by_task(r['by_task'])}.",
        "",
        f"*As tested:* {r['definition']}",
        "",
        f"Studies listing this claim: {', '.join(informs) or 'none'}; contrasts found in: "
        f"{', '.join(r['sweeps']) or 'none'}. Plots: {', '.join(r['plots']) or '–'}.",
    ]
    own = f"claim_{r['id']}.png"
    out += ["", f"![{own}]({own})"] if own in r["plots"] else []
    out += _facts(r.get("facts", []))
    for p in r["parts"]:
        out += _part_lines(p)
    if r["context"]:
        out += [
            "",
            "Context (not part of the verdict; one Holm family per study of its own):",
            "",
            markdown_table(CONTRAST_HEADER, [_contrast_row(c) for c in r["context"]]),
        ]
    return out


def claims_markdown(
    results: list[dict], opts: Options, sweeps: dict[str, str], listed: dict[str, set]
) -> str:
    """claims.md: summary table, the verdict rules, then each claim's facts, parts and contrasts.

    `sweeps`: label → parent run id; `listed`: label → claim ids its spec says it informs.
    """
    out = [
        "# Claims checklist",
        "",
        f"Sweeps: {', '.join(f'{k} ({v})' for k, v in sweeps.items())}.",
        "",
        _summary(results),
        "",
        "## Verdict rules",
        "",
        opts.rules(),
    ]
    for r in results:
        out += _claim_section(r, listed)
    return "\n".join(out) + "\n"

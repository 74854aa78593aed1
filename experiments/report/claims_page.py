"""claims.md: the claims checklist (summary, verdict rules, each claim's parts and contrasts)."""

from __future__ import annotations

from experiments.report import divergence
from experiments.report.claim_evaluation import NOT_TESTED, Options
from experiments.report.write import fmt, markdown_table


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
            ci = (
                f" [{r['diff_ci_low']:+.3g}, {r['diff_ci_high']:+.3g}]"
                if r["diff_ci_low"] == r["diff_ci_low"]
                else ""
            )
            text = (
                f"[{part['id']}] {where}: {r['mean_a']:.3g} vs {r['mean_b']:.3g}, "
                f"Δ {r['diff']:+.3g}{ci}, "
                f"g {fmt(r['hedges_g'], 2)}, {r['test']} p_holm {fmt(r['p_holm'])}"
            )
            if "div_p" in r:
                text += (
                    f", diverged {divergence.rate_text(r['diverged_a'], r['runs_a'])} vs "
                    f"{divergence.rate_text(r['diverged_b'], r['runs_b'])} "
                    f"(p_holm {fmt(r['div_p_holm'])})"
                )
            note = f": {r['note']}" if r.get("note") else ""
            bits.append(f"{text} ({r['outcome']}{note})")
    return "; ".join(bits) if bits else "—"


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
            f"diverged {divergence.rate_text(r['diverged_a'], r['runs_a'])} vs "
            f"{divergence.rate_text(r['diverged_b'], r['runs_b'])}, "
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

"""The "but" probe's report section (markdown), written from its tables."""

from __future__ import annotations

import math

from experiments.probes.but_stats import VERDICT_RULE
from experiments.probes.connectives import CONTRASTIVE
from experiments.report.write import markdown_table

TARGET = 0.80


def fixed(value: float, digits: int = 3) -> str:
    """A number with `digits` decimals, or n/a (None, NaN, ±inf)."""
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _ci(low: float, high: float, digits: int = 3) -> str:
    return (
        "n/a"
        if not (math.isfinite(low) and math.isfinite(high))
        else f"[{low:.{digits}f}, {high:.{digits}f}]"
    )


def headline(cell: str, summary: list[dict]) -> str:
    at = next(r for r in summary if r["window"] == "at")
    return (
        f"**{at['verdict']}** for {cell} at the connective's step: drop at contrastive connectives "
        f"− drop at 'and' = {fixed(at['diff'], 4)} (95 % CI over {int(at['n_seeds'])} seeds "
        f"{_ci(at['seeds_ci_low'], at['seeds_ci_high'], 4)}; bootstrap over sentences "
        f"{_ci(at['boot_ci_low'], at['boot_ci_high'], 4)}; Hedges' g* over sentences "
        f"{fixed(at['hedges_g_sentences'], 2)}; n = {int(at['n_contrastive'])} vs {int(at['n_and'])} "
        "sentences)"
    )


def write(
    *,
    params: dict[str, str],
    models: list[dict],
    gate_summary: dict[str, list[dict]],
    follow_summary: dict[str, list[dict]],
    conventions: dict[str, str],
    selection: dict,
    figures: list[tuple[str, str]],
    verdict_cell: str,
    timing: dict[str, float],
) -> str:
    """The markdown of the section; `figures` are (file name, caption) beside the report."""
    lines = ['## Probe 1: does the forget gate close at "but"? (SST-2)', ""]
    if verdict_cell in gate_summary and gate_summary[verdict_cell]:
        lines += ["Verdict: " + headline(verdict_cell, gate_summary[verdict_cell]) + ".", ""]
    else:
        lines += [f"Verdict: inconclusive ({verdict_cell} not among the probed cells with a keep gate).", ""]
    lines += [f"Rule: {VERDICT_RULE}. The other cells' verdicts below apply the same rule to them.", ""]
    if params.get("quick") == "true":
        lines += [
            "**Quick size** (a test of the pipeline, not evidence): tiny models, few steps and seeds.",
            "",
        ]
    lines += _method(params, conventions, selection, timing)
    lines += _accuracy(models)
    lines += _gates(gate_summary)
    lines += _follow(follow_summary)
    lines += ["### Figures", ""]
    lines += [f"![{caption}]({name})\n\n{caption}\n" for name, caption in figures]
    return "\n".join(lines) + "\n"


def _method(params: dict, conventions: dict, selection: dict, timing: dict) -> list[str]:
    return [
        "### What was measured",
        "",
        f"- Models: SST-2 train → embedding 32 → one recurrent layer of {params['units']} units → "
        f"dense head; {params['steps']} steps of batch {params['batch_size']}, Adam lr "
        f"{params['learning_rate']}, seeds 0–{int(params['seeds']) - 1}; accuracy on the 872 dev sentences.",
        "- Gate drop of a sentence: its own mean keep gate over its tokens (mean over units) minus "
        "the keep gate at the connective's step ('at'), averaged over it and the next 1 or 2 steps "
        "('at_1', 'at_2'), or at the 1st or 2nd step after it alone ('next_1', 'next_2'); "
        "positive = the gate closes there more than on an average word. The verdict reads 'at' "
        "(the rule fixed before any run); the other windows describe.",
        f"- Sentences: {selection['n_contrastive']} dev sentences whose first contrastive connective "
        f"({', '.join(CONTRASTIVE)}) has a word before it and two after it ({selection['words']}); "
        f"as controls {selection['n_and']} dev sentences with 'and' and no contrastive connective, "
        "matched one to one by the connective's relative position (mean "
        f"{selection['rel_contrastive']:.2f} vs {selection['rel_and']:.2f}), then by length (mean "
        f"{selection['len_contrastive']:.1f} vs {selection['len_and']:.1f} tokens).",
        "- Per seed: Welch's t-test and the Mann–Whitney U test of contrastive vs 'and' drops "
        "(gate_tests.csv); over seeds: the t-interval of the per-seed mean differences; over "
        "sentences: a BCa bootstrap (scipy) of the difference of the seed-averaged drops.",
        "- Does the label follow B: clauses are whole dev/test sentences of 3–12 tokens without a "
        f"connective that the model labels correctly with probability ≥ {params['confidence']}; up "
        f"to {params['n_pairs']} (positive, negative) pairs per model, each in both orders, joined by "
        "'but' and, as the control, by 'and'. Rate = how often the predicted label is the polarity "
        "of the clause after the connective.",
        "- Which gate is read:",
        *[f"  - {cell}: {text}" for cell, text in conventions.items()],
        f"- Time: {timing['wall_s']:.0f} s in all; training ran at {timing['steps_per_s']:.1f} "
        "steps/s on average.",
        "",
    ]


def _accuracy(models: list[dict]) -> list[str]:
    header = ["cell", "seeds", "dev accuracy mean", "min", "max", "test accuracy mean"]
    rows = [
        [
            m["cell"],
            m["n"],
            fixed(m["dev_mean"]),
            fixed(m["dev_min"]),
            fixed(m["dev_max"]),
            fixed(m["test_mean"]),
        ]
        for m in models
    ]
    lines = ["### Dev accuracy", "", markdown_table(header, rows)]
    lines.append("")
    for m in models:
        if m["cell"] == "lstm" and not (m["dev_mean"] >= TARGET):
            lines += [
                f"The LSTM's mean dev accuracy {fixed(m['dev_mean'])} is below the target {TARGET:.2f}.",
                "",
            ]
        elif m["cell"] == "lstm":
            lines += [
                f"The LSTM reaches the target dev accuracy {TARGET:.2f} (mean {fixed(m['dev_mean'])}).",
                "",
            ]
    return lines


def _gates(gate_summary: dict[str, list[dict]]) -> list[str]:
    header = ["cell", "window", "drop, contrastive", "drop, 'and'", "difference", "95 % CI over seeds"]
    header += ["bootstrap CI over sentences", "g*", "verdict"]
    rows = []
    for cell, found in gate_summary.items():
        if not found:
            rows.append([cell, "–", "no keep gate", "", "", "", "", "", "n/a"])
        for r in found:
            rows.append(
                [
                    cell,
                    r["window"],
                    fixed(r["mean_drop_contrastive"], 4),
                    fixed(r["mean_drop_and"], 4),
                    fixed(r["diff"], 4),
                    _ci(r["seeds_ci_low"], r["seeds_ci_high"], 4),
                    _ci(r["boot_ci_low"], r["boot_ci_high"], 4),
                    fixed(r["hedges_g_sentences"], 2),
                    r["verdict"],
                ]
            )
    return ["### Keep gate at the connective", "", markdown_table(header, rows), ""]


def _follow(follow_summary: dict[str, list[dict]]) -> list[str]:
    header = ["cell", "A but B → B", "A and B → B", "but − and (95 % CI over seeds)"]
    header += ["both orders follow B, but", "pairs, all seeds"]
    rows = []
    for cell, found in follow_summary.items():
        by = {r["connective"]: r for r in found}
        but, conj, diff = by["but"], by["and"], by["but − and"]
        rows.append(
            [
                cell,
                f"{fixed(but['rate'])} {_ci(but['low'], but['high'])}",
                f"{fixed(conj['rate'])} {_ci(conj['low'], conj['high'])}",
                f"{fixed(diff['rate'])} {_ci(diff['low'], diff['high'])}",
                fixed(but["both_orders"]),
                but["n"] // 2,
            ]
        )
    lines = ["### Does the label follow the clause after the connective?", "", markdown_table(header, rows)]
    lines += [
        "",
        "Rates pool both orders over seeds (Wilson 95 % intervals); 0.5 is a coin, and a model that "
        "only reads the last clause scores high with 'and' too, so the 'but − and' column is the "
        "connective's own effect.",
        "",
    ]
    return lines

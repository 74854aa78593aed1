"""report.md's text: the method, each study's header and summary table, file names."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from experiments.report import divergence, stats, timing
from experiments.report.claim_evaluation import Options
from experiments.report.load import SweepResults
from experiments.report.metrics import FLOW, FLOW_FINAL, JUDGED, PRIMARY, task_metric


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


def _ci(row, metric: str) -> str:
    mean = row.get(f"{metric}_mean", math.nan)
    if not np.isfinite(mean):
        return "–"
    low, high = row.get(f"{metric}_ci_low"), row.get(f"{metric}_ci_high")
    return f"{fmt(mean)} [{fmt(low)}, {fmt(high)}]" if np.isfinite(low) else fmt(mean)


def table_markdown(table: pd.DataFrame, task: str, refs: set) -> str:
    m, higher = task_metric(task)
    header = [
        "configuration",
        "LR",
        "n",
        f"{PRIMARY}",
        f"best_val_{m} ({'↑' if higher else '↓'})",
        f"final_val_{m}",
        "steps_to_solve (solved)",
        "solved",
        "diverged [95 % CI]",
        "log10 flow init / final",
        "n_params",
        "Δ vs ref [95 % CI]",
        "g",
        "test",
        "p (Holm)",
    ]
    rows = []
    for r in table.to_dict("records"):
        is_ref = r["config_label"] in refs
        rows.append(
            [
                ("**ref** " if is_ref else "") + r["config_label"].replace(f"task={task}", "").strip(),
                fmt(r["learning_rate"]),
                r["n_seeds"],
                _ci(r, PRIMARY),
                _ci(r, f"best_val_{m}"),
                _ci(r, f"final_val_{m}"),
                _ci(r, "steps_to_solve"),
                f"{r['n_solved']}/{r['n_seeds']}",
                divergence.rate_text(r["n_diverged"], r["n_seeds"]),
                f"{fmt(r.get(f'{FLOW}_mean'))} / {fmt(r.get(f'{FLOW_FINAL}_mean'))}",
                fmt(r["n_params"], 6),
                "–"
                if is_ref or not np.isfinite(r.get("diff", math.nan))
                else f"{fmt(r['diff'])} [{fmt(r['diff_ci_low'])}, {fmt(r['diff_ci_high'])}]",
                "–" if is_ref else fmt(r.get("hedges_g"), 2),
                "–" if is_ref else r.get("test") or "–",
                "–" if is_ref else f"{fmt(r.get('p'), 2)} ({fmt(r.get('p_holm'), 2)})",
            ]
        )
    return markdown_table(header, rows)


def jsonable(x):
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


def method_text(opts: Options) -> str:
    return (
        "Per configuration one learning rate is kept: the fewest diverged or non-finite seeds, then the "
        "lowest mean `best_val_loss_over_baseline` (validation split), then the smaller rate, read "
        "from the tuning runs only (`lr_selection.csv`; docs/studies.md, the protocol). The "
        "confirmatory runs at that rate, on fresh seeds without early stopping, are what the tables "
        f"summarise (mean [95 % t-interval]) and the comparisons judge, on `{JUDGED}` (the test "
        "split's loss over the memoryless baseline; for sentiment its error rate over the majority "
        "class's). A diverged run (non-finite, or a loss above "
        "`explode_factor` × max(baseline, initial validation loss)) counts as worst: its losses and task "
        "metric are left out of the means, its divergence rate is shown with a 95 % Wilson interval, "
        "and a comparison with a diverged seed ranks it below every other. `steps_to_solve` is over "
        "solved seeds only; gradient-flow ratios are summarised on log10. Versus the reference "
        "configuration: the ratio of the two (geometric means, paired by seed) with its BCa bootstrap "
        f"95 % CI, Cohen's d_z and the p-value of the test (`--test {opts.test}`: {stats.TEST_RULE}), "
        "Holm-corrected over the configurations of one study and task."
    )


def sweep_header(s: SweepResults, runs: pd.DataFrame) -> list[str]:
    n_fin = int((runs["sweep"] == s.label).sum())
    counts = ", ".join(f"{k} {v}" for k, v in sorted(s.statuses.items())) or "none"
    parent_m = ", ".join(
        f"{k} {s.metrics[k]:.0f}"
        for k in ("trials_total", "trials_finished", "trials_diverged", "trials_failed", "trials_retried")
        if k in s.metrics
    )
    # A worker or node that died mid-trial: Ray re-ran the trial, its dead attempt's run was deleted.
    retried = f" Retried after a lost worker or node: {'; '.join(s.retried)}." if s.retried else ""
    return [
        f"## Study `{s.study}`",
        "",
        f"Parent run `{s.parent_id}` (experiment {s.experiment_id}), profile "
        f"`{s.tags.get('sweep_profile', '?')}`, spec {s.spec_source}. Children by status: {counts}; "
        f"{n_fin} FINISHED trials used. Parent metrics as last logged (an interrupted sweep counts "
        f"the trials it did not finish as failed): {parent_m or 'none (sweep still running?)'}."
        f"{retried}",
        "",
        protocol_note(s, runs),
        "",
        provenance_note(runs[runs["sweep"] == s.label]),
        "",
    ]


def _counted(values: pd.Series, missing: str) -> str:
    counts = values.fillna(missing).astype(str).value_counts()
    return ", ".join(f"{v} ({n})" if len(counts) > 1 else v for v, n in counts.items())


def provenance_note(mine: pd.DataFrame) -> str:
    """Where and from what the trials ran: commit(s), machine, engine, packages, wall time; the run
    ids are in runs.csv."""
    if mine.empty or "git_commit" not in mine:
        return "Provenance: no runs."
    dirty = " (a dirty checkout)" if (mine["git_dirty"] == "true").any() else ""
    cpu = mine["cpu"].fillna("not recorded") + mine["cpu_isa"].map(
        lambda x: f" [{x}]" if isinstance(x, str) else ""
    )
    cpu += mine["cpu_count"].map(lambda x: f", {x} cores" if isinstance(x, str) else "")
    times = ""
    if "end_time" in mine and mine["end_time"].notna().any():
        start, end = pd.to_datetime(mine["start_time"]), pd.to_datetime(mine["end_time"])
        busy = (end - start).dt.total_seconds().sum() / 60
        running, sittings = timing.running_time(start, end)
        last = (
            f"{end.max():%H:%M}" if end.max().date() == start.min().date() else f"{end.max():%Y-%m-%d %H:%M}"
        )
        times = (
            f" Trials ran {start.min():%Y-%m-%d %H:%M}–{last} UTC "
            f"({running:.0f} min with a trial running{f', in {sittings} sittings' if sittings > 1 else ''}, "
            f"{busy:.0f} trial-minutes)."
        )
    engine = mine["engine"].fillna("?") + mine["kernel_flags"].map(
        lambda x: f" {x}" if isinstance(x, str) else ""
    )
    return (
        f"Provenance: git commit {_counted(mine['git_commit'].str[:10], 'unknown')}{dirty}; CPU "
        f"{_counted(cpu, 'not recorded')}; engine {_counted(engine, '?')}; TensorFlow "
        f"{_counted(mine['tensorflow'], '?')}, Keras {_counted(mine['keras'], '?')}.{times} Every run's "
        "id, seed, phase and judged metric: `runs.csv`."
    )


def protocol_note(s: SweepResults, runs: pd.DataFrame) -> str:
    """How the study's learning rates were chosen and on which runs it is judged."""
    mine = runs[runs["sweep"] == s.label]
    phases = mine["phase"].value_counts().to_dict() if "phase" in mine else {}
    if not phases:
        return (
            "Protocol: none (these runs predate it): learning rates were chosen on the seeds that are "
            "judged, so a comparison here may favour whichever configuration the choice fitted."
        )
    counts = ", ".join(f"{n} {phase}" for phase, n in sorted(phases.items()))
    return f"Protocol: {s.tags.get('protocol') or 'tune → confirm'} ({counts} runs)."


def task_section(label: str, task: str, table: pd.DataFrame, refs: set) -> list[str]:
    """One study's task in report.md: its heading, reference and metric direction, summary table."""
    ref_text = ", ".join(sorted(refs)) or "none found (no vs-reference columns)"
    return [
        f"### {label} — {task}",
        "",
        f"Reference: {ref_text}. Metric direction: "
        f"`{task_metric(task)[0]}` {'higher' if task_metric(task)[1] else 'lower'} is better; "
        f"`{PRIMARY}` lower is better.",
        "",
        table_markdown(table, task, refs),
        "",
    ]


def report_markdown(name: str, opts: Options, results: list[dict], sections: list[str]) -> str:
    """report.md: the method, the claims' verdicts, then the studies' `sections`."""
    summary_rows = [[f"({r['id']})", r["verdict"], r["statement"]] for r in results]
    header = [
        f"# Sweep report: {name}",
        "",
        method_text(opts),
        "",
        "## Claims (details: claims.md)",
        "",
        markdown_table(["claim", "verdict", "statement"], summary_rows),
        "",
        "## Studies",
        "",
    ]
    return "\n".join(header + sections) + "\n"

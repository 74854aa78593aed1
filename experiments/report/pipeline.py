"""MLproject `report`: tables, plots and the claims checklist for one or more finished sweeps.

    python -m experiments.report --sweep forget_bias                  # a study name: its latest sweep
    python -m experiments.report --sweep <parent run id> --sweep gate_ablation --out reports/
    mlflow run . -e report -P sweep=forget_bias,gradient_flow

A sweep is a parent run (tag `sweep_role=parent`) and its FINISHED child runs. Per configuration the
learning rate with the best mean `best_val_loss_over_baseline` over seeds is chosen (best-over-LR),
and its seeds are summarised: mean and 95 % t-interval of the summary metrics, solve and divergence
rates, Hedges' g and a two-sided test against the sweep's reference configuration (Holm-corrected
within each study and task). Plots: learning curves with seed bands, final metrics with CIs, the
forget-bias curve, gradient-flow ratios, gate saturation. `claims.md`/`claims.json` judge the claims
of `claim_catalogue.py` by the rules of `claim_evaluation.py`. `report.md` links it all;
`report.html` is the same report in one self-contained file (plots embedded, CSVs as tables, no
external resources). Everything goes to `<out>/<study or combined>/` and is logged as artifacts
(`report/`) on each parent run; no run is started or ended.

The steps, one module each: `load` (runs from MLflow) → `analyse` (selection, summaries,
comparisons) → `write` and `plots` (report.md, PNGs) → `claim_evaluation` and `claims_page`
(claims.json, claims.md) → `html_page` (report.html); this module runs them and logs the folder.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from experiments.report import stats
from experiments.report.analyse import Analysis, analyse, task_summary
from experiments.report.claim_catalogue import CLAIMS
from experiments.report.claim_evaluation import NOT_TESTED, Options, evaluate
from experiments.report.claims_page import claims_markdown
from experiments.report.html_page import report_html
from experiments.report.load import PROVENANCE, ReportError, SweepResults, listed_claims, load_sweep
from experiments.report.metrics import JUDGED
from experiments.report.plots import plot_claim, task_plots
from experiments.report.write import jsonable, report_markdown, slug, sweep_header, task_section

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

__all__ = ["Report", "ReportError", "build", "generate", "load_sweep", "log_report", "main"]
_sweep_header = sweep_header  # the name tests/test_ray_cluster.py reads a study's header by


@dataclass
class Report:
    folder: Path
    files: list[str]
    claims: list[dict]
    summary: pd.DataFrame
    comparisons: pd.DataFrame
    lr_selection: pd.DataFrame


def _clear(out: Path) -> None:
    """Create `out` and remove a previous report's files (e.g. a plot not made this time would be logged)."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.iterdir():
        if old.is_file() and (old.suffix in (".png", ".csv", ".md", ".html") or old.name == "claims.json"):
            old.unlink()


def _write_studies(
    sweeps: list[SweepResults], analysis: Analysis, out: Path, client, plots: bool
) -> tuple[list[str], list[pd.DataFrame], list[str]]:
    """Each study's header and, per task, its summary CSV, table and plots: (sections, tables, files)."""
    runs = analysis.runs
    sections, tables, files = [], [], []
    for s in sweeps:
        sections += sweep_header(s, runs)
        for task in sorted(runs.loc[runs["sweep"] == s.label, "task"].unique()):
            sub, table, refs = task_summary(analysis, s.label, task)
            tables.append(table)
            name = f"{slug(s.label)}_{slug(task)}"
            table.to_csv(out / f"summary_{name}.csv", index=False)
            files.append(f"summary_{name}.csv")
            sections += task_section(s.label, task, table, refs)
            if plots:
                configs = analysis.configs
                mine = configs[(configs["sweep"] == s.label) & (configs["task"] == task)]
                made = task_plots(name, f"{s.label} / {task}", task, sub, table, mine, refs, out, client)
                files += made
                sections += [f"![{f}]({f})" for f in made] + [""]
    return sections, tables, files


def _judge_claims(
    sweeps: list[SweepResults], analysis: Analysis, opts: Options, out: Path, files: list[str], plots: bool
) -> tuple[list[dict], dict[str, set[str]]]:
    """Every claim's result with its plots (its own `claim_<id>.png` and the studies' plots that show
    it, from `files`), and the claims each sweep lists."""
    listed = {s.label: listed_claims(s) for s in sweeps}
    results = evaluate(analysis.configs, analysis.chosen, analysis.runs, opts, listed)
    claim_plots = {c.id: c.plots for c in CLAIMS}
    for r in results:
        r["plots"] = []
        if plots and r["verdict"] != NOT_TESTED:
            name = plot_claim(r, out / f"claim_{r['id']}.png")
            r["plots"] += [name] if name else []
        used = {(c["sweep"], c["task"]) for p in r["parts"] for c in p["contrasts"]}
        r["plots"] += sorted(
            f
            for f in files
            if any(f.startswith(f"{k}_{slug(sw)}_{slug(t)}") for k in claim_plots[r["id"]] for sw, t in used)
        )
    return results, listed


def _write_claims(
    sweeps: list[SweepResults], results: list[dict], listed: dict, opts: Options, out: Path
) -> str:
    """claims.json and claims.md; returns claims.md's text."""
    (out / "claims.json").write_text(
        json.dumps(
            jsonable({"options": asdict(opts), "rules": opts.rules(), "claims": results}),
            indent=2,
            ensure_ascii=False,
        )
    )
    md = claims_markdown(results, opts, {s.label: s.parent_id for s in sweeps}, listed)
    (out / "claims.md").write_text(md)
    return md


RUN_COLUMNS = ["sweep", "task", "config_label", "phase", "learning_rate", "seed", "run_id", JUDGED]


def runs_table(runs: pd.DataFrame) -> pd.DataFrame:
    """runs.csv: every trial the report read, with its run id and what reruns it (commit, data)."""
    extra = ["diverged", "solved", "steps_to_solve", "start_time", "end_time", *PROVENANCE]
    cols = [c for c in RUN_COLUMNS + extra if c in runs]
    return runs[cols].sort_values(["sweep", "task", "config_label", "phase", "learning_rate", "seed"])


def build(
    sweeps: list[SweepResults], out: Path, client=None, opts: Options | None = None, plots: bool = True
) -> Report:
    """Analyse `sweeps` and write every table, plot and the claims checklist into `out` (created)."""
    opts = opts or Options()
    _clear(out)
    runs = pd.concat([s.runs for s in sweeps], ignore_index=True)
    if runs.empty:
        raise ReportError(f"no FINISHED child runs in sweep(s) {', '.join(s.parent_id for s in sweeps)}")
    analysis = analyse(sweeps, runs, opts.test)
    sections, tables, files = _write_studies(sweeps, analysis, out, client, plots)
    analysis.lr_selection.to_csv(out / "lr_selection.csv", index=False)
    analysis.comparisons.to_csv(out / "comparisons.csv", index=False)
    runs_table(runs).to_csv(out / "runs.csv", index=False)
    results, listed = _judge_claims(sweeps, analysis, opts, out, files, plots)
    files += [f"claim_{r['id']}.png" for r in results if f"claim_{r['id']}.png" in r["plots"]]
    claims_md = _write_claims(sweeps, results, listed, opts, out)
    report_md = report_markdown(out.name, opts, results, sections)
    (out / "report.md").write_text(report_md)
    files += ["lr_selection.csv", "comparisons.csv", "runs.csv", "claims.json", "claims.md", "report.md"]
    (out / "report.html").write_text(report_html(out, report_md, claims_md, files))
    files.append("report.html")
    summary = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    return Report(out, files, results, summary, analysis.comparisons, analysis.lr_selection)


def log_report(client, report: Report, sweeps: list[SweepResults]) -> list[str]:
    """Log the folder as artifacts `report` (one sweep) or `report/combined` on every parent run.

    Runs are not started or ended: a FINISHED parent stays FINISHED. Under `mlflow run -e report`
    the launcher's own run gets the folder too and is tagged `sweep_role=report`.
    """
    path = "report" if len(sweeps) == 1 else "report/combined"
    targets = [s.parent_id for s in sweeps]
    for run_id in targets:
        client.log_artifacts(run_id, str(report.folder), path)
    launcher = os.environ.get("MLFLOW_RUN_ID")
    if launcher and launcher not in targets:
        client.log_artifacts(launcher, str(report.folder), "report")
        client.set_tag(launcher, "sweep_role", "report")
        client.set_tag(launcher, "report_of", ",".join(targets))
        targets.append(launcher)
    return targets


def generate(
    refs: list[str],
    out: str | Path = "reports",
    opts: Options | None = None,
    log: bool = True,
    plots: bool = True,
) -> Report:
    """Resolve `refs` (run ids or study names), write the report to <out>/<study|combined>, log it."""
    import mlflow

    client = mlflow.MlflowClient()
    sweeps = [load_sweep(client, ref) for ref in refs]
    seen: dict[str, int] = {}
    for s in sweeps:
        seen[s.study] = seen.get(s.study, 0) + 1
    for s in sweeps:
        if seen[s.study] > 1:
            s.label = f"{s.study}@{s.parent_id[:8]}"
            s.runs["sweep"] = s.label
    folder = Path(out) / (sweeps[0].study if len(sweeps) == 1 else "combined")
    report = build(sweeps, folder, client, opts, plots)
    if log:
        log_report(client, report, sweeps)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sweep",
        action="append",
        required=True,
        help="parent run id or study name (latest sweep); repeat or comma-separate to combine",
    )
    parser.add_argument(
        "--out", default="reports", help="local folder; the report goes to <out>/<study|combined>"
    )
    parser.add_argument("--test", default="auto", choices=stats.TESTS, help=stats.TEST_RULE)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument(
        "--margin",
        type=float,
        default=None,
        help="replace every contrast's own equivalence margin (a ratio band 1/(1+m)..1+m)",
    )
    parser.add_argument("--no_log", action="store_true", help="write the folder only, log no artifacts")
    args = parser.parse_args(argv)
    refs = [r.strip() for arg in args.sweep for r in arg.split(",") if r.strip()]
    try:
        report = generate(
            refs,
            args.out,
            Options(test=args.test, alpha=args.alpha, margin=args.margin),
            log=not args.no_log,
        )
    except ReportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"report: {report.folder}/report.md ({len(report.files)} files)")
    for r in report.claims:
        print(f"  ({r['id']}) {r['verdict']:<13} {r['statement']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

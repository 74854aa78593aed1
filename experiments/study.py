"""MLproject `study`: every study spec's sweep at one profile, then one combined report.

    mlflow run . --env-manager local -e study -P profile=standard
    python -m experiments.study --profile standard --studies forget_bias,gate_ablation

Each sweep runs in its own process (`python -m experiments.sweep`: its own Ray) against one
tracking store kept for the profile (default `sqlite:///studies/<profile>/mlflow.db`, not in
git), so a killed study resumes where it stopped: every sweep reruns only what has not finished,
and its confirmatory phase follows from its finished tuning runs. Each finished study is reported
in `<out>/<study>/` (default out: `docs/studies/<profile>/`) and the claims' verdicts over every
study reported there so far are merged into `<out>/verdicts.md` (experiments/report/verdicts.py).
So a profile too long for one sitting runs a few studies per sitting (`--studies`); the report
folders are what the project commits, never the run store.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "experiments" / "sweeps"
ORDER = ("forget_bias", "gradient_flow", "gate_ablation", "lstm_vs_gru", "activation")


def _studies(text: str) -> list[str]:
    names = [s for s in text.split(",") if s] if text != "all" else list(ORDER)
    unknown = [s for s in names if not (SPECS / f"{s}.yaml").exists()]
    if unknown or not names:
        valid = ", ".join(sorted(p.stem for p in SPECS.glob("*.yaml")))
        raise SystemExit(f"error: Invalid studies={text!r}. Valid choices: all, or a comma list of {valid}.")
    return names


def run_study(profile: str, studies: list[str], out: Path, tracking_uri: str, report: bool = True) -> int:
    """Each study's sweep (resuming), then its report in <out>/<study>/ and the merged verdicts
    (<out>/verdicts.md); the first failing exit code."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "PYTHONPATH": str(ROOT)}
    env.update(MLFLOW_DISABLE_TELEMETRY="true", RAY_USAGE_STATS_ENABLED="0")
    env.pop("MLFLOW_RUN_ID", None)  # each sweep makes its own parent run
    for name in studies:
        spec = SPECS / f"{name}.yaml"
        print(f"== study {name} ({profile})", flush=True)
        steps = [[sys.executable, "-m", "experiments.sweep", "--spec", str(spec), "--profile", profile]]
        if report:
            steps.append([sys.executable, "-m", "experiments.report", "--sweep", name, "--out", str(out)])
        for command in steps:
            code = subprocess.call(command, env=env, cwd=ROOT)
            if code:
                return code
        if report:
            from experiments.report import verdicts

            verdicts.write(out)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="standard")
    parser.add_argument("--studies", default="all", help=f"all ({', '.join(ORDER)}) or a comma list")
    parser.add_argument("--out", default="", help="report folder (default docs/studies/<profile>)")
    parser.add_argument("--tracking_uri", default="", help="default sqlite:///studies/<profile>/mlflow.db")
    parser.add_argument("--report", default="true", choices=("true", "false"))
    args = parser.parse_args(argv)
    studies = _studies(args.studies)
    from experiments.sweep.spec import SpecError, load

    try:  # every spec and profile checked before the first trial
        for name in studies:
            load(SPECS / f"{name}.yaml", args.profile)
    except SpecError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    store = ROOT / "studies" / args.profile
    if not args.tracking_uri:
        store.mkdir(parents=True, exist_ok=True)
    uri = args.tracking_uri or f"sqlite:///{store / 'mlflow.db'}"
    out = Path(args.out) if args.out else ROOT / "docs" / "studies" / args.profile
    return run_study(args.profile, studies, out, uri, args.report == "true")


if __name__ == "__main__":
    sys.exit(main())

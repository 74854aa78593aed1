"""What one trial costs besides its training steps: a fresh process's start and imports, then the
same short trial several times in that process (what a sweep's reused Ray worker pays per trial),
and one evaluation.

    python -m experiments.bench.trial_cost [--trials 3] [--task adding --seq_len 100 --units 64]

The trials are real runs (`experiments.run.train_and_log`, one training step each, the default
evaluation and artifacts, no model logged) in a throwaway sqlite store, in a child process whose
phases are timed with `time.perf_counter` and printed as one JSON line; the parent prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _child(args: argparse.Namespace, spawned: float) -> dict:
    """Runs in the fresh process: each phase's seconds."""
    marks = {"interpreter start": time.time() - spawned}
    clock = time.perf_counter()

    def mark(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        marks[name] = now - clock
        clock = now

    import mlflow

    mark("import mlflow")
    import keras  # noqa: F401
    import tensorflow  # noqa: F401

    import lstm_keras  # noqa: F401
    from experiments.run import train_and_log
    from experiments.training.config import from_strings

    mark("import tensorflow, keras, lstm_keras, experiments")
    with tempfile.TemporaryDirectory() as store:
        mlflow.set_tracking_uri(f"sqlite:///{store}/mlflow.db")
        mlflow.set_experiment("trial_cost")
        mark("tracking store (sqlite, created)")
        params = {**args.params, "steps": "1", "eval_every": "1", "log_model": "false"}
        for k in range(args.trials):
            config = from_strings({**params, "seed": str(k)})
            train_and_log(config, params)
            mark(f"trial {k + 1}: one step, 2 evaluations, test, artifacts")
        from experiments.training.tasks import make_task
        from experiments.training.trainer import Trainer

        trainer = Trainer(config, make_task(config))
        trainer._evaluation(0, [])  # traced once, as at a trial's step 0
        mark("build a trainer, first evaluation")
        for _ in range(args.evaluations):
            trainer._evaluation(1, [])
        marks["one evaluation (mean of later ones)"] = (time.perf_counter() - clock) / args.evaluations
    return marks


def measure(args: argparse.Namespace) -> dict:
    """The phases of a fresh child process (a dict: phase → seconds)."""
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, "-m", "experiments.bench.trial_cost", "--child", json.dumps(vars(args))]
    spawned = time.time()
    env["TRIAL_COST_SPAWNED"] = repr(spawned)
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"the measuring process failed (exit {done.returncode}): {done.stderr[-2000:]}")
    return json.loads(lines[-1])


def format_table(marks: dict) -> str:
    width = max(len(k) for k in marks)
    lines = [f"{'phase':{width}s}  seconds"]
    lines += [f"{name:{width}s}  {seconds:7.2f}" for name, seconds in marks.items()]
    names = list(marks)
    first = next(i for i, name in enumerate(names) if name.startswith("trial 1"))
    fresh = sum(marks[name] for name in names[: first + 1])
    lines.append(f"{'a fresh process to its first trial done':{width}s}  {fresh:7.2f}")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--trials", type=int, default=3, help="trials in the one process (≥ 2: later ones are reused)"
    )
    parser.add_argument("--evaluations", type=int, default=5)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> dict:
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    if args.child:
        child = argparse.Namespace(**json.loads(args.child))
        marks = _child(child, float(os.environ["TRIAL_COST_SPAWNED"]))
        print(json.dumps(marks), flush=True)
        return marks
    from experiments.training.config import ConfigError, build_parser, from_strings

    run_args = {k: v for k, v in vars(build_parser().parse_args(rest)).items() if v is not None}
    defaults = {"task": "adding", "seq_len": "100", "units": "64"}
    params = {**defaults, **{k: str(v) for k, v in run_args.items()}}
    try:
        from_strings(params)
    except ConfigError as error:
        parser.error(str(error))
    marks = measure(argparse.Namespace(trials=args.trials, evaluations=args.evaluations, params=params))
    print(format_table(marks))
    return marks


if __name__ == "__main__":
    main()

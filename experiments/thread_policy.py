"""Which thread policy finishes the most sweep configurations per hour on this machine?

Runs the same sweep spec once per policy — `trials at once × TensorFlow threads per trial` — each
into its own fresh tracking store, through the real sweep entry point, and prints the wall time
and configurations/hour of each against the first policy:

    python -m experiments.thread_policy --spec experiments/sweeps/gradient_flow.yaml \\
        --profile quick --policies 1x2 2x1

A policy `NxM` is `--max_concurrent N --threads_per_trial M`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def parse_policy(text: str) -> tuple[int, int]:
    try:
        trials, threads = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"Invalid policy {text!r}. Valid: NxM, e.g. 2x1") from None
    if trials < 1 or threads < 1:
        raise argparse.ArgumentTypeError(f"Invalid policy {text!r}: both numbers must be >= 1.")
    return trials, threads


def time_policy(spec: str, profile: str, trials: int, threads: int, workdir: Path) -> dict:
    store = workdir / f"{trials}x{threads}" / "mlflow.db"
    store.parent.mkdir(parents=True)
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{store}"}
    env.pop("MLFLOW_RUN_ID", None)
    cmd = [
        sys.executable,
        "-m",
        "experiments.sweep",
        "--spec",
        spec,
        "--profile",
        profile,
        "--max_concurrent",
        str(trials),
        "--threads_per_trial",
        str(threads),
    ]
    start = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    wall = time.perf_counter() - start
    summary = dict(
        item.split("=") for item in out.strip().splitlines()[-1].split() if item.startswith("trials_")
    )
    finished = int(summary["trials_finished"])
    return {
        "policy": f"{trials}x{threads}",
        "wall_s": wall,
        "finished": finished,
        "configs_per_hour": finished / wall * 3600,
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True)
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--policies", nargs="+", type=parse_policy, default=[(1, 2), (2, 1)])
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="thread_policy_") as tmp:
        for trials, threads in args.policies:
            rows.append(time_policy(args.spec, args.profile, trials, threads, Path(tmp)))
            r = rows[-1]
            print(
                f"{r['policy']:>5}: {r['finished']} finished in {r['wall_s']:.0f} s = "
                f"{r['configs_per_hour']:.0f} configurations/hour "
                f"({r['configs_per_hour'] / rows[0]['configs_per_hour']:.2f}x {rows[0]['policy']})",
                flush=True,
            )
    return rows


if __name__ == "__main__":
    main()

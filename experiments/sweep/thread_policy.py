"""Which thread policy finishes the most sweep configurations per hour on this machine?

Runs the same sweep spec once per policy — `trials at once × TensorFlow threads per trial` — each
into its own fresh tracking store, through the sweep's own run_sweep in a fresh process, and
prints the wall time and configurations/hour of each against the first policy:

    python -m experiments.sweep.thread_policy --spec experiments/sweeps/gradient_flow.yaml \\
        --profile quick --policies 1x2 2x1 --rounds 3

With several rounds every policy runs once per round, in an order rotated each round; the
summary gives medians and the median of the per-round ratios (the machine's speed drifts).

A policy `NxM` is `--max_concurrent N --threads_per_trial M`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import multiprocessing
import os
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from experiments.sweep import launch
from experiments.sweep.spec import load


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
    # A fresh process per policy: Ray and TensorFlow's thread settings start from scratch there.
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        start = time.perf_counter()
        finished = pool.submit(_sweep, spec, profile, trials, threads, f"sqlite:///{store}").result()
        wall = time.perf_counter() - start
    return {
        "policy": f"{trials}x{threads}",
        "wall_s": wall,
        "finished": finished,
        "configs_per_hour": finished / wall * 3600,
    }


def _sweep(spec: str, profile: str, trials: int, threads: int, tracking_uri: str) -> int:
    """Run the sweep into `tracking_uri` as `python -m experiments.sweep` would: its finished trials."""
    os.environ.pop("MLFLOW_RUN_ID", None)
    os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
    os.environ.update(launch.ENV)
    with contextlib.redirect_stdout(io.StringIO()):  # the sweep's progress lines: not this report's
        summary = launch.run_sweep(
            load(spec, profile),
            ray_address=None,
            resume=None,
            threads=threads,
            max_retries=2,
            max_concurrent=trials,
        )
    return summary["trials_finished"]


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True)
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--policies", nargs="+", type=parse_policy, default=[(1, 2), (2, 1)])
    parser.add_argument(
        "--rounds", type=int, default=1, help="sweeps per policy, interleaved, order rotated each round"
    )
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"Invalid rounds={args.rounds}. Valid choices: an integer >= 1.")
    by_policy: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="thread_policy_") as tmp:
        for round_ in range(args.rounds):
            # The machine drifts (load, clocks): every round times every policy, in a rotated order.
            shift = round_ % len(args.policies)
            for trials, threads in args.policies[shift:] + args.policies[:shift]:
                r = time_policy(args.spec, args.profile, trials, threads, Path(tmp) / f"round{round_}")
                by_policy.setdefault(r["policy"], []).append(r)
                print(
                    f"round {round_ + 1}  {r['policy']:>5}: {r['finished']} finished in {r['wall_s']:.0f} s"
                    f" = {r['configs_per_hour']:.0f} configurations/hour",
                    flush=True,
                )
    first = by_policy[f"{args.policies[0][0]}x{args.policies[0][1]}"]
    rows = []
    for policy, runs in by_policy.items():
        ratios = [r["configs_per_hour"] / f["configs_per_hour"] for r, f in zip(runs, first)]
        rows.append(
            {
                "policy": policy,
                "wall_s": statistics.median(r["wall_s"] for r in runs),
                "finished": min(r["finished"] for r in runs),
                "configs_per_hour": statistics.median(r["configs_per_hour"] for r in runs),
                "ratio": statistics.median(ratios),
                "ratios": ratios,
            }
        )
        print(
            f"{policy:>5}: median {rows[-1]['configs_per_hour']:.0f} configurations/hour, "
            f"{rows[-1]['ratio']:.2f}x {first[0]['policy']} (per round: "
            + ", ".join(f"{x:.2f}" for x in ratios)
            + ")",
            flush=True,
        )
    return rows


if __name__ == "__main__":
    main()

"""Synthetic sweeps for the report's tests, written straight into an MLflow store with MlflowClient.

A parent run and FINISHED children carrying the tags, params, summary metrics and step curves that
`experiments.sweep` and `experiments.run` log, so the report reads them back like real sweeps.
"""

import time

import numpy as np
from mlflow.entities import Metric, Param, RunTag

from experiments.report.metrics import TASK_METRICS
from experiments.training.config import RunConfig

STEPS = (0, 50, 100, 150)


def child_metrics(task: str, quality: float, rng, flow_init: float, n_params: float, diverged: bool) -> dict:
    """Summary metrics of one run whose best loss ratio is `quality` (lower = better)."""
    m, higher = TASK_METRICS[task]
    metric = 1 - 0.9 * quality if higher else 0.2 * quality
    solved = quality < 0.3
    out = {
        "best_val_loss_over_baseline": quality,
        "best_val_loss": 2.0 * quality,
        f"best_val_{m}": metric,
        f"final_val_{m}": metric - 0.01,
        "final_val_loss": 2.0 * quality + 0.01,
        "val_loss_over_baseline": quality + 0.005,
        "baseline": 2.0,
        f"baseline_{m}": 0.1,
        "solved": float(solved),
        "diverged": float(diverged),
        "n_params": n_params,
        "steps_per_s": 50.0,
        "grad_flow_ratio_init": flow_init,
        "grad_flow_ratio_final": flow_init * 3,
        "test_loss": 2.0 * quality,
        "test_loss_over_baseline": quality,
    }
    if solved:
        out["steps_to_solve"] = float(50 * (1 + int(rng.integers(0, 3))))
    return out


def _create_parent(client, exp_id: str, study: str, start: int, claims: str, reference: dict | None) -> str:
    tags = {
        "sweep_role": "parent",
        "study": study,
        "sweep_spec": f"experiments/sweeps/{study}.yaml",
        "sweep_spec_hash": "0123456789abcdef",
        "sweep_profile": "quick",
        "claims": claims,
        "reference": " ".join(f"{k}={v}" for k, v in (reference or {}).items()),
    }
    return client.create_run(exp_id, start_time=start, tags=tags).info.run_id


def _child_tags(parent: str, study: str, key: int, label: str, params: dict) -> dict:
    """The tags experiments.sweep sets on a trial (`key`: its configuration's index)."""
    cell = params["cell"]
    fb = (
        "n/a"
        if cell == "rnn" or params["variant"] == "lstm1997"
        else (params["forget_bias"] if params["forget_bias"] != "auto" else "1")
    )
    return {
        "mlflow.parentRunId": parent,
        "sweep_role": "child",
        "study": study,
        "config_label": label,
        "config_key": f"k{key}",
        "trial_key": f"{study}-{key}-{params['learning_rate']}-{params['seed']}",
        "task": params["task"],
        "cell": cell,
        "variant": params["variant"],
        "forget_bias_resolved": fb,
        "candidate_activation_resolved": params["candidate_activation"].replace("auto", "tanh"),
    }


def _child_curves(summary: dict, quality: float, cell: str, ts: int) -> list[Metric]:
    """val_loss falling to 2 × quality over STEPS, the flow ratio, and gate statistics (no RNN gates)."""
    metrics = []
    for i, step in enumerate(STEPS):
        frac = (len(STEPS) - 1 - i) / (len(STEPS) - 1)
        metrics += [
            Metric("val_loss", 2.0 * (quality + (1 - quality) * frac), ts + i, step),
            Metric("grad_flow_ratio", summary["grad_flow_ratio_init"], ts + i, step),
        ]
        if cell != "rnn" and step in (0, STEPS[-1]):
            for gate in ("i", "f", "o"):
                metrics += [
                    Metric(f"gate_{gate}_mean", 0.5, ts + i, step),
                    Metric(f"gate_{gate}_sat_low", 0.1 * (1 - frac), ts + i, step),
                    Metric(f"gate_{gate}_sat_high", 0.2 * (1 - frac), ts + i, step),
                ]
    return metrics


def _log_child(client, exp_id: str, ts: int, tags: dict, metrics: list[Metric], params: dict) -> None:
    # What the trainer tags every run with for the report's provenance line (experiments/tracking/records.py).
    tags = {"git_commit": "0123456789abcdef", "machine.cpu": "Test CPU", "machine.cpu_count": "2", **tags}
    run = client.create_run(exp_id, start_time=ts, tags=tags).info.run_id
    client.log_batch(run, metrics=metrics, params=[Param(k, v) for k, v in params.items()])
    client.set_terminated(run, "FINISHED")


def _finish_parent(client, parent: str, n: int, now: int) -> None:
    counts = (("total", n), ("finished", n), ("failed", 0))
    client.log_batch(
        parent, metrics=[Metric(f"trials_{k}", v, now, 0) for k, v in counts], tags=[RunTag("done", "true")]
    )
    client.set_terminated(parent, "FINISHED")


def make_sweep(
    client,
    study,
    configs,
    *,
    seeds=range(5),
    lrs=(0.005,),
    reference=None,
    claims="",
    start=None,
    tag_ref=True,
):
    """A parent + FINISHED children. `configs`: dicts of params plus `_q(lr, seed)` → quality and optional
    `_flow`, `_n_params`, `_diverged(lr, seed)`. Returns (parent id, {(label, lr): [quality per seed]})."""
    exp = client.get_experiment_by_name("sweeps")
    exp_id = exp.experiment_id if exp else client.create_experiment("sweeps")
    now = int(time.time() * 1000) if start is None else start
    parent = _create_parent(client, exp_id, study, now, claims, reference)
    values, n = {}, 0
    for ci, cfg in enumerate(configs):
        point = {k: v for k, v in cfg.items() if not k.startswith("_")}
        params0 = {**RunConfig().as_params(), **point}
        label = " ".join(f"{k}={v}" for k, v in point.items())
        is_ref = bool(reference) and all(params0.get(k) == v for k, v in reference.items())
        for lr in lrs:
            for seed in seeds:
                rng = np.random.default_rng([ci, seed, int(lr * 1e6)])
                quality = float(cfg["_q"](lr, seed))
                values.setdefault((label, lr), []).append(quality)
                params = {**params0, "learning_rate": repr(lr), "seed": str(seed)}
                tags = _child_tags(parent, study, ci, label, params)
                if tag_ref:
                    tags["is_reference"] = str(is_ref).lower()
                diverged = bool(cfg.get("_diverged", lambda lr, s: False)(lr, seed))
                # Gradient flow varies a little by seed and configuration (its own generator, so the
                # other metrics stay as they were): paired differences have a variance to test.
                wobble = 10 ** np.random.default_rng([ci, seed, 7]).normal(0.0, 0.05)
                flow, n_params = cfg.get("_flow", 0.1) * wobble, cfg.get("_n_params", 1000.0)
                summary = child_metrics(params["task"], quality, rng, flow, n_params, diverged)
                ts = now + n
                metrics = [Metric(k, v, ts, 0) for k, v in summary.items()]
                metrics += _child_curves(summary, quality, params["cell"], ts)
                _log_child(client, exp_id, ts, tags, metrics, params)
                n += 1
    _finish_parent(client, parent, n, now)
    return parent, values


def noise(seed: int, scale: float = 0.02) -> float:
    return scale * (seed - 2) / 2  # seeds 0..4 → −1, −0.5, 0, 0.5, 1 (× scale): deterministic spread


def fb_configs(q_fb0: float, q_fb1: float, q_fb2: float, flow0: float = 0.01) -> list[dict]:
    def q(base):
        return lambda lr, seed: base + noise(seed) + (0.3 if lr > 0.005 else 0.0)  # lr 0.02 is worse

    return [
        {"task": "copy", "forget_bias": "0", "_q": q(q_fb0), "_flow": flow0},
        {"task": "copy", "forget_bias": "1", "_q": q(q_fb1), "_flow": 0.1},
        {"task": "copy", "forget_bias": "2", "_q": q(q_fb2), "_flow": 0.2},
    ]


def every_sweep(client, folder) -> dict:
    """Every sweep the report's tests read, {name: (parent id, values)}; `folder` holds a spec file."""
    sweeps = {}
    ref = {"forget_bias": "1"}
    old_start = int(time.time() * 1000) - 3_600_000
    # An older sweep of the same study (must not be picked by name), then the real one.
    sweeps["fb_worse_old"] = make_sweep(
        client, "fb_worse", fb_configs(0.1, 0.9, 0.9)[:1], seeds=[0], start=old_start
    )
    sweeps["fb_worse"] = make_sweep(
        client, "fb_worse", fb_configs(0.9, 0.1, 0.15), lrs=(0.005, 0.02), reference=ref, claims="a,h"
    )
    same = [{"task": "copy", "forget_bias": fb, "_q": lambda lr, s: 0.5 + noise(s)} for fb in ("0", "1")]
    sweeps["fb_same"] = make_sweep(client, "fb_same", same, reference=ref, claims="a")
    sweeps["fb_reversed"] = make_sweep(client, "fb_reversed", fb_configs(0.1, 0.9, 0.85)[:2], reference=ref)
    keras_only = [{"task": "adding", "units": u, "_q": lambda lr, s: 0.4 + noise(s)} for u in ("32", "64")]
    # Children without is_reference tags: the reference comes from the spec logged on the parent.
    sweeps["variants"] = make_sweep(client, "variants", keras_only, seeds=range(3), tag_ref=False)
    spec = folder / "variants.yaml"
    spec.write_text("study: variants\nclaims: [b]\nreference: {units: 64}\n")
    client.log_artifact(sweeps["variants"][0], str(spec))
    cells = [
        {"task": "copy", "cell": "lstm", "_q": lambda lr, s: 0.3 + noise(s), "_n_params": 24832.0},
        # As good as the LSTM within ±0.5 % per seed (claim f2: equivalent at equal units).
        {
            "task": "copy",
            "cell": "gru",
            "_q": lambda lr, s: 0.3 + noise(s) + 0.003 * (s % 2 - 0.5),
            "_n_params": 18816.0,
        },
        {"task": "copy", "cell": "rnn", "_q": lambda lr, s: 0.95 + noise(s), "_flow": 1e-6},
        # The 1997 LSTM, clearly worse than Keras's LSTM (claim i).
        {"task": "copy", "cell": "lstm", "variant": "lstm1997", "_q": lambda lr, s: 0.8 + noise(s)},
    ]
    keras_lstm = {"cell": "lstm", "variant": "keras"}
    sweeps["cells"] = make_sweep(client, "cells", cells, reference=keras_lstm, claims="f,h,i")
    return sweeps

"""A benchmark run in MLflow: its parameters, the kernel's rung, and every ratio as a metric."""

from __future__ import annotations

import argparse

from experiments.bench.tables import format_table, markdown_table


def log_to_mlflow(
    rows: list[dict],
    args: argparse.Namespace,
    memory: list[dict] | None = None,
    torch_note: str | None = None,
) -> str:
    """One run per benchmark: ratios and steps/s as metrics, so performance history shows in the UI;
    `memory`: results of `bench.memory.in_fresh_process`; `torch_note`: why PyTorch is missing."""
    import mlflow

    from experiments.tracking import records as tracking
    from lstm_keras import fused_engine

    with mlflow.start_run(run_name=f"benchmark {' '.join(args.shapes)}") as run:
        logged = mlflow.get_run(run.info.run_id).data.params  # `mlflow run` logged its own
        params = {
            "shapes": ",".join(args.shapes),
            "variants": ",".join(args.variants) or "none",
            "rounds": str(args.rounds),
            "steps": str(args.steps),
            "rungs": ",".join(getattr(args, "rungs", None) or []) or "none",
            "cap_isa": getattr(args, "cap_isa", "none"),
        }
        mlflow.log_params({k: v for k, v in params.items() if k not in logged})
        commit, dirty = tracking.git_commit()
        mlflow.set_tags(
            {
                **fused_engine.record(),  # the default build's rung and flags
                "benchmark": "true",
                "git_commit": commit,
                "git_dirty": str(dirty).lower(),
                "torch": torch_note or "side by side",
                **{f"version.{k}": v for k, v in tracking.package_versions().items()},
            }
        )
        for r in rows:
            key = f"{r['shape']}.{r['layer']}"
            mlflow.log_metrics({f"steps_per_s.{key}": r["steps_per_s"], f"ratio.{key}": r["ratio"]})
            if r.get("gemm_share"):
                mlflow.log_metric(f"gemm_share.{key}", r["gemm_share"])
            for name in ("ratio", "vs_torch"):  # each round's lowest and highest
                if r.get(f"{name}_range"):
                    low, high = r[f"{name}_range"]
                    mlflow.log_metrics({f"{name}_min.{key}": low, f"{name}_max.{key}": high})
            if r.get("vs_torch"):
                mlflow.log_metric(f"vs_torch.{key}", r["vs_torch"])
        for m in memory or []:
            if "error" not in m:
                mlflow.log_metric(f"memory_mb.char_lm_T{m['seq_len']}.{m['layer']}", m["first_step_mb"])
        mlflow.log_text(format_table(rows, torch_note), "benchmark.txt")
        mlflow.log_text(markdown_table(mlflow.get_run(run.info.run_id).data.metrics), "benchmark.md")
    return run.info.run_id

"""The metrics a report reads: each task's own metric and its direction, the summary columns."""

from __future__ import annotations

PRIMARY = "best_val_loss_over_baseline"  # lower is better, 1.0 = the memoryless baseline
# What claims are judged on (never used to select): the test split's score over the memoryless
# baseline's, lower is better, 1 = baseline. For a loss task its loss; for sentiment its error rate
# (1 − accuracy) over the majority class's, since the claims are about classifying, not about
# calibrated probabilities. Computed by the report (load.judged) from what the runs log.
JUDGED = "test_over_baseline"
JUDGED_BY_ERROR = ("sentiment",)  # tasks judged on test_error_over_baseline, the rest on the loss
FLOW = "log10_grad_flow_ratio_init"  # log10 ‖∂L/∂h_1‖/‖∂L/∂h_T‖ at initialisation: lower = faster decay
FLOW_FINAL = "log10_grad_flow_ratio_final"
GROUP = ["sweep", "task", "config_label"]  # one configuration of one study

# Task → (metric, higher is better), as the tasks define them (not imported: that loads TensorFlow).
TASK_METRICS = {
    "copy": ("recall_accuracy", True),
    "adding": ("mse", False),
    "char_lm": ("bpc", False),
    "sentiment": ("accuracy", True),
}


def task_metric(task: str) -> tuple[str, bool]:
    return TASK_METRICS.get(task, ("metric", False))


def summary_metrics(task: str) -> list[str]:
    m, _ = task_metric(task)
    return [
        JUDGED,
        f"test_{m}",
        PRIMARY,
        f"best_val_{m}",
        f"final_val_{m}",
        "steps_to_solve",
        FLOW,
        FLOW_FINAL,
    ]

"""The main job until the full experiment runner lands: an lstm_keras LSTM learns the copy task,
tracked in MLflow. Run it with `mlflow run .` (see MLproject) or `python -m experiments.demo`."""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def parse_args(argv=None) -> argparse.Namespace:
    import lstm_keras as lk

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variant", default="keras", choices=list(lk.LSTM_VARIANTS))
    p.add_argument("--forget_bias", default="1.0", help="a float, 'chrono' or 'none'")
    p.add_argument("--seq_len", type=int, default=20, help="copy delay T")
    p.add_argument("--units", type=int, default=64)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--eval_every", type=int, default=100)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--learning_rate", type=float, default=0.005)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.seq_len < 1 or args.steps < 1 or args.eval_every < 1:
        p.error("seq_len, steps and eval_every must be positive integers")
    try:
        _forget_bias(args.forget_bias)
    except ValueError:
        p.error(f"invalid forget_bias={args.forget_bias!r}; valid choices: a float, 'chrono' or 'none'")
    return args


def _forget_bias(text: str) -> float | str | None:
    if text.lower() == "none":
        return None
    return "chrono" if text == "chrono" else float(text)


def main(argv=None) -> dict:
    args = parse_args(argv)
    import keras
    import mlflow
    import numpy as np

    import lstm_keras as lk
    from experiments.tasks import copy_memory as task

    fb = _forget_bias(args.forget_bias)
    keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    length = args.seq_len + 2 * task.N_COPY
    model = keras.Sequential(
        [
            keras.Input((length,), dtype="int32"),
            keras.layers.Embedding(task.VOCAB, task.VOCAB),
            lk.LSTM(
                args.units,
                variant=args.variant,
                forget_bias=fb,
                chrono_tmax=length if fb == "chrono" else None,
                return_sequences=True,
            ),
            keras.layers.Dense(task.VOCAB),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate, clipnorm=1.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    x_val, y_val = task.copy_batch(np.random.default_rng(10_000 + args.seed), 512, args.seq_len)
    baseline = task.baseline(args.seq_len)
    summary = {}
    with mlflow.start_run(
        run_name=f"copy-T{args.seq_len} lstm/{args.variant} fb={args.forget_bias} s{args.seed}"
    ):
        mlflow.log_params(vars(args))
        mlflow.set_tags({"task": "copy", "cell": "lstm", "variant": args.variant})
        mlflow.log_metric("baseline", baseline)
        start = time.perf_counter()
        for step in range(1, args.steps + 1):
            x, y = task.copy_batch(rng, args.batch_size, args.seq_len)
            loss = float(model.train_on_batch(x, y))
            if step % args.eval_every == 0 or step == args.steps:
                logits = model.predict(x_val, verbose=0, batch_size=512)
                val_loss = float(model.evaluate(x_val, y_val, verbose=0, batch_size=512))
                acc = task.recall_accuracy(y_val, logits.argmax(-1))
                mlflow.log_metrics(
                    {
                        "loss": loss,
                        "val_loss": val_loss,
                        "val_loss_over_baseline": val_loss / baseline,
                        "recall_accuracy": acc,
                    },
                    step=step,
                )
                print(
                    f"step {step:5d}  loss {loss:.4f}  val_loss {val_loss:.4f} "
                    f"(baseline {baseline:.4f})  recall {acc:.3f}",
                    flush=True,
                )
                summary = {"final_val_loss": val_loss, "final_recall_accuracy": acc}
        summary["wall_time_s"] = time.perf_counter() - start
        summary["n_params"] = model.count_params()
        mlflow.log_metrics(summary)
    return summary


if __name__ == "__main__":
    main()

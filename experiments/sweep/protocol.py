"""A study's protocol: which seeds tune, which seeds judge, which seeds were spent on pilots.

    seeds: [0, 1, 2, 3, 4]        # confirmatory: each configuration at its chosen learning rate
    tuning_seeds: [100, 101]      # the learning-rate search (validation split only)
    pilot_seeds: [900]            # spent while designing the study: never tuned or judged on

Two phases. **Tune**: every configuration × learning rate × tuning seed, early stopping as the
spec sets it; each configuration keeps one learning rate by `experiments.report.selection` on the
validation metric of these runs alone. **Confirm**: every configuration at that rate on the
confirmatory seeds, early stopping off (so solved runs' metrics are not flattened and
steps-to-solve is comparable); the report judges these runs on the test split. With one learning
rate there is nothing to tune and the sweep is the confirmatory phase alone. The three seed sets
must be disjoint: a seed that chose a rate, or shaped the design, cannot also judge it.
"""

from __future__ import annotations

from dataclasses import dataclass

TUNE, CONFIRM = "tune", "confirm"
PHASES = (TUNE, CONFIRM)
# Parameters a phase sets whatever the spec says.
CONFIRM_OVERRIDES = {"early_stop": "false"}


class ProtocolError(ValueError):
    """Seeds that break the protocol; the message names the overlap."""


@dataclass(frozen=True)
class Protocol:
    confirm_seeds: tuple[str, ...]
    tuning_seeds: tuple[str, ...] = ()
    pilot_seeds: tuple[str, ...] = ()
    learning_rates: tuple[str, ...] = ()

    @property
    def tunes(self) -> bool:
        """Is there a choice to make (more than one learning rate)?"""
        return len(self.learning_rates) > 1

    def describe(self) -> str:
        """One line for the parent run and the report."""
        tune = (
            f"tune {len(self.learning_rates)} learning rates on seeds {_seeds(self.tuning_seeds)} "
            "(validation split), then confirm"
            if self.tunes
            else f"one learning rate ({self.learning_rates[0]}), nothing tuned; confirm"
        )
        pilots = f"; pilot seeds {_seeds(self.pilot_seeds)} never reused" if self.pilot_seeds else ""
        return f"{tune} on seeds {_seeds(self.confirm_seeds)} (test split, early stopping off){pilots}"


def _seeds(seeds: tuple[str, ...]) -> str:
    return ",".join(seeds) or "-"


def check(protocol: Protocol) -> Protocol:
    """The protocol if its seed sets are disjoint and a choice has tuning seeds; else ProtocolError."""
    sets = {
        "seeds": protocol.confirm_seeds,
        "tuning_seeds": protocol.tuning_seeds,
        "pilot_seeds": protocol.pilot_seeds,
    }
    names = list(sets)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            shared = sorted(set(sets[a]) & set(sets[b]), key=int)
            if shared:
                raise ProtocolError(
                    f"{a} and {b} share seed(s) {', '.join(shared)}: a seed used to tune or to pilot "
                    "cannot judge. Valid choices: disjoint seed lists."
                )
    if protocol.tunes and not protocol.tuning_seeds:
        raise ProtocolError(
            f"{len(protocol.learning_rates)} learning rates need `tuning_seeds` (chosen on them, judged "
            "on `seeds`): choosing on the seeds that are judged biases the comparison. Valid choices: "
            "a non-empty list of integers disjoint from `seeds`, or a single learning rate."
        )
    return protocol


def choose_learning_rates(finished_runs: list) -> dict[str, str]:
    """config_key → the learning rate its tuning runs choose (`experiments.report.selection`).

    `finished_runs`: MLflow runs of the tune phase (tags config_key, params learning_rate,
    metrics). A configuration whose tuning runs all failed has no entry: it is not confirmed.
    """
    import pandas as pd

    from experiments.report.metrics import PRIMARY
    from experiments.report.selection import lr_table

    rows = [
        {
            "config_key": run.data.tags.get("config_key"),
            "learning_rate": float(run.data.params["learning_rate"]),
            PRIMARY: run.data.metrics.get(PRIMARY, float("nan")),
            "diverged": run.data.metrics.get("diverged", 0.0),
            "lr_text": run.data.params["learning_rate"],
        }
        for run in finished_runs
        if run.data.tags.get("phase", TUNE) == TUNE
    ]
    if not rows:
        return {}
    df = pd.DataFrame(rows)
    table = lr_table(df, PRIMARY, False, by=["config_key"])
    chosen = table[table["chosen"]]
    text = df.drop_duplicates("learning_rate").set_index("learning_rate")["lr_text"]
    return {row.config_key: text[row.learning_rate] for row in chosen.itertuples()}

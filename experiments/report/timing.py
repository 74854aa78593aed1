"""How long a study's trials took, from their runs' start and end times.

A long profile may run a study over several sittings (killed, then resumed), so the span from the
first start to the last end can hold hours when nothing ran. The time a study took is the time at
least one of its trials was running: the union of the trials' [start, end] intervals.
"""

from __future__ import annotations

import pandas as pd

# A pause this long with no trial running separates two sittings (within a sitting the next trial
# starts seconds after one ends).
SITTING_GAP = pd.Timedelta(minutes=30)


def running_time(start: pd.Series, end: pd.Series) -> tuple[float, int]:
    """(minutes during which at least one trial ran, number of sittings) of the runs whose
    start and end times are given; runs without an end time are left out."""
    spans = pd.DataFrame({"start": pd.to_datetime(start), "end": pd.to_datetime(end)}).dropna()
    if spans.empty:
        return 0.0, 0
    spans = spans.sort_values("start")
    # A new busy block starts where a run starts after every earlier run has ended.
    ended = spans["end"].cummax().shift()
    block = (spans["start"] > ended).cumsum()
    blocks = spans.groupby(block).agg(start=("start", "min"), end=("end", "max"))
    minutes = (blocks["end"] - blocks["start"]).dt.total_seconds().sum() / 60
    sittings = 1 + int(((blocks["start"] - blocks["end"].shift()) >= SITTING_GAP).sum())
    return float(minutes), sittings

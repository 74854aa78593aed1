"""A study's time: minutes with a trial running, over one or several sittings."""

import pandas as pd

from experiments.report import timing, write


def _times(*spans):
    return pd.Series([s for s, _ in spans]), pd.Series([e for _, e in spans])


def test_overlapping_trials_count_once_and_idle_gaps_not_at_all():
    start, end = _times(
        ("2026-12-03 19:00:00+00:00", "2026-12-03 19:20:00+00:00"),
        ("2026-12-03 19:10:00+00:00", "2026-12-03 19:25:00+00:00"),  # beside the first: 19:00–19:25
        ("2026-12-03 19:30:00+00:00", "2026-12-03 20:30:00+00:00"),  # after 5 idle minutes
    )
    assert timing.running_time(start, end) == (85.0, 1)


def test_a_resumed_study_is_timed_over_its_sittings_without_the_night_between():
    start, end = _times(
        ("2026-12-03 23:00:00+00:00", "2026-12-03 23:50:00+00:00"),
        ("2026-12-04 09:00:00+00:00", "2026-12-04 09:40:00+00:00"),
        ("2026-12-04 09:05:00+00:00", None),  # killed: no end time, left out
    )
    assert timing.running_time(start, end) == (90.0, 2)


def test_the_provenance_line_says_the_running_time_and_the_sittings():
    start, end = _times(
        ("2026-12-03 23:00:00+00:00", "2026-12-03 23:50:00+00:00"),
        ("2026-12-04 09:00:00+00:00", "2026-12-04 09:40:00+00:00"),
    )
    runs = pd.DataFrame(
        {
            "start_time": start,
            "end_time": end,
            "git_commit": "0123456789abc",
            "git_dirty": "false",
            "cpu": "AMD EPYC",
            "cpu_isa": "avx2",
            "cpu_count": "2",
            "engine": "fused",
            "kernel_flags": "-march=native",
            "tensorflow": "2.21.0",
            "keras": "3.15.1",
        }
    )
    note = write.provenance_note(runs)
    assert "Trials ran 2026-12-03 23:00–2026-12-04 09:40 UTC" in note
    assert "(90 min with a trial running, in 2 sittings, 90 trial-minutes)" in note

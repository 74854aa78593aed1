"""The trial-cost measurement runs real trials in a fresh process and reports every phase (no
timing asserted: only that each phase was measured)."""

import pytest

from experiments.bench import trial_cost


@pytest.mark.slow  # a fresh process that imports TensorFlow and trains
def test_a_fresh_process_reports_imports_each_trial_and_an_evaluation(capsys):
    marks = trial_cost.main(["--trials", "2", "--evaluations", "1", "--seq_len", "10", "--units", "8"])
    trials = [k for k in marks if k.startswith("trial ")]
    assert len(trials) == 2 and "import mlflow" in marks and "one evaluation (mean of later ones)" in marks
    assert all(seconds > 0 for seconds in marks.values())
    table = capsys.readouterr().out
    assert "a fresh process to its first trial done" in table and trials[1] in table


def test_a_bad_run_parameter_is_refused_before_a_process_starts(capsys):
    with pytest.raises(SystemExit) as exit_:
        trial_cost.main(["--task", "no_such_task"])
    assert exit_.value.code == 2
    assert "no_such_task" in capsys.readouterr().err

"""`python -m experiments.study` checks every spec at the profile before anything runs."""

import pytest

from experiments import study


def test_an_unknown_study_is_refused_naming_the_valid_ones():
    with pytest.raises(
        SystemExit, match="Invalid studies='bogus'. Valid choices: all, or a comma list of activation"
    ):
        study.main(["--studies", "bogus"])


def test_an_unknown_profile_is_refused_before_any_sweep_runs(tmp_path, capsys, monkeypatch):
    calls = []
    monkeypatch.setattr(study, "run_study", lambda *a, **k: calls.append(a) or 0)
    assert study.main(["--profile", "nope", "--tracking_uri", f"sqlite:///{tmp_path}/m.db"]) == 2
    assert "no profile 'nope'. Valid choices: quick, full, standard" in capsys.readouterr().err
    assert not calls and not (tmp_path / "m.db").exists()


def test_the_standard_profile_of_every_study_loads_with_fresh_confirmatory_seeds():
    from experiments.sweep.spec import load

    for name in study.ORDER:
        sweep = load(study.SPECS / f"{name}.yaml", "standard")
        assert set(sweep.protocol.confirm_seeds).isdisjoint(sweep.protocol.pilot_seeds)
        assert len(sweep.protocol.confirm_seeds) >= 5

"""A run's git_dirty tag: a tracked code file differs from the commit; reports and prose do not count."""

import subprocess

import pytest

from experiments.tracking import records


def _git(repo, *args):
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    (tmp_path / "docs" / "studies").mkdir(parents=True)
    for name in ("code.py", "README.md", "docs/studies/report.md"):
        (tmp_path / name).write_text("first\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    monkeypatch.setattr(records, "PROJECT_ROOT", tmp_path)
    return tmp_path


def test_a_report_written_between_sweeps_leaves_the_checkout_clean(checkout):
    (checkout / "docs" / "studies" / "report.md").write_text("a study's new report\n")
    (checkout / "README.md").write_text("its claims table\n")
    (checkout / "untracked.txt").write_text("a file git does not know\n")
    commit, dirty = records.git_commit()
    assert len(commit) == 40 and not dirty


def test_an_edited_code_file_makes_it_dirty(checkout):
    (checkout / "code.py").write_text("changed\n")
    assert records.git_commit()[1] is True

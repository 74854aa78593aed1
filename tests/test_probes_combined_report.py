"""The combined probe report: one section per probe, figure links pointing into each probe's folder."""

from pathlib import Path

import pytest

from experiments.probes.combined_report import combine, main, relinked


def test_relinked_prefixes_relative_links_only() -> None:
    text = "![a](x.png) [b](y.md) [c](https://e.org/z.png) [d](#anchor) [e](/abs.png)"
    assert relinked(text, "but") == (
        "![a](but/x.png) [b](but/y.md) [c](https://e.org/z.png) [d](#anchor) [e](/abs.png)"
    )


def test_combine_has_one_section_per_probe_in_order(tmp_path: Path) -> None:
    (tmp_path / "but").mkdir()
    (tmp_path / "but" / "but_probe.md").write_text("## Probe 1: but\n\n![curve](curve.png)\n")
    (tmp_path / "agreement").mkdir()
    (tmp_path / "agreement" / "agreement_probe.md").write_text("## Probe 2: agreement\n")
    main([str(tmp_path)])
    text = (tmp_path / "README.md").read_text()
    assert text.index("## Probe 1: but") < text.index("## Probe 2: agreement")
    assert "![curve](but/curve.png)" in text
    assert text.count("\n## ") == 2


def test_a_missing_probe_is_named_and_no_probe_at_all_is_refused(tmp_path: Path) -> None:
    (tmp_path / "but").mkdir()
    (tmp_path / "but" / "but_probe.md").write_text("## Probe 1: but\n")
    assert "`agreement/agreement_probe.md` is missing" in combine(tmp_path)
    with pytest.raises(FileNotFoundError, match="no probe section"):
        combine(tmp_path / "empty")


def test_committed_probe_report_is_current() -> None:
    root = Path(__file__).resolve().parents[1] / "docs" / "probes"
    assert (root / "README.md").read_text(encoding="utf-8") == combine(root)

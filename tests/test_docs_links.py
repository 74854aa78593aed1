"""The README and docs/*.md: every relative link and image resolves, anchors included, and the
README shows the two commands CI relies on."""

import re
from pathlib import Path

import pytest
from markdown_it import MarkdownIt  # markdown-it-py, which keras installs (through rich)

from experiments.report import readme_claims

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _tokens(page: Path):
    def walk(tokens):
        for token in tokens:
            yield token
            yield from walk(token.children or [])

    return list(walk(MarkdownIt().parse(page.read_text(encoding="utf-8"))))


def _targets(page: Path) -> list[str]:
    targets = []
    for token in _tokens(page):
        if token.type == "link_open":
            targets.append(token.attrs["href"])
        elif token.type == "image":
            targets.append(token.attrs["src"])
    return targets


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    tokens = _tokens(page)
    return {_anchor(tokens[i + 1].content) for i, t in enumerate(tokens) if t.type == "heading_open"}


def test_the_pages_exist_and_the_readme_is_a_front_door():
    names = {p.name for p in PAGES}
    assert {"README.md", "engines.md", "studies.md", "benchmarks.md"} <= names
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    # The generated claims table grows with the studies run; the prose around it stays short.
    start, end = text.index(readme_claims.START), text.index(readme_claims.END)
    assert len((text[:start] + text[end:]).splitlines()) <= 135


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_and_image_resolves(page: Path):
    targets = _targets(page)
    assert targets, f"{page.name} links nowhere"
    broken = []
    for target in targets:
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target} (no file {file.relative_to(ROOT)})")
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            broken.append(f"{target} (no heading #{anchor} in {file.name})")
    assert not broken, f"{page.name}: " + "; ".join(broken)


def test_the_readme_shows_the_two_commands_ci_runs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"^make run\b", readme, re.M) and re.search(r"^make test\b", readme, re.M)


def test_the_anchor_rule_matches_githubs():
    assert _anchor("Comparing a sweep's trials in the UI") == "comparing-a-sweeps-trials-in-the-ui"
    assert _anchor("Team tracking server (PostgreSQL)") == "team-tracking-server-postgresql"

"""The claims' verdicts over studies reported one at a time: one page from their claims.json.

    python -m experiments.report.verdicts docs/studies/standard     # reads */claims.json

A long study profile runs one study per sitting (`python -m experiments.study`), each reported on
its own. Holm families are per study, so each study's per-task verdicts stand as they are; this
page merges them: per claim and task, every study that tested it; a task's verdict is supported
(or contradicted) if some study found so and none the opposite, inconclusive when studies
disagree or none decided; the overall verdict is the one rule of `claim_rules.overall_verdict`.
Writes verdicts.md and verdicts.json beside the study folders.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from experiments.report.claim_rules import (
    CONTRADICTED,
    INCONCLUSIVE,
    NOT_TESTED,
    SUPPORTED,
    overall_text,
    overall_verdict,
)


def task_verdict(found: list[str]) -> str:
    """One task's verdict from the studies that tested it (see the module's rule)."""
    decided = {v for v in found if v in (SUPPORTED, CONTRADICTED)}
    if len(decided) == 1:
        return decided.pop()
    return INCONCLUSIVE if any(v != NOT_TESTED for v in found) else NOT_TESTED


def merge(folder: Path) -> list[dict]:
    """Per claim (in catalogue order): statement, by_task {task: verdict}, the studies behind each
    task's verdict, overall verdict and its text."""
    claims: dict[str, dict] = {}
    for path in sorted(folder.glob("*/claims.json")):
        study = path.parent.name
        for claim in json.loads(path.read_text())["claims"]:
            entry = claims.setdefault(
                claim["id"], {"id": claim["id"], "statement": claim["statement"], "found": {}}
            )
            for task, verdict in (claim.get("by_task") or {}).items():
                entry["found"].setdefault(task, []).append((study, verdict))
    merged = []
    for cid in sorted(claims):
        entry = claims[cid]
        by_task = {t: task_verdict([v for _, v in found]) for t, found in entry["found"].items()}
        merged.append(
            {
                "id": cid,
                "statement": entry["statement"],
                "by_task": by_task,
                "studies": {t: [f"{s}: {v}" for s, v in found] for t, found in entry["found"].items()},
                "verdict": overall_verdict(by_task),
                "overall": overall_text(by_task),
            }
        )
    return merged


def markdown(merged: list[dict], studies: list[str]) -> str:
    lines = [
        "# Verdicts over the studies",
        "",
        f"From the claims.json of {', '.join(f'`{s}`' for s in studies) or 'no study yet'}, merged by "
        "`python -m experiments.report.verdicts` (its docstring states the rule). Each study's own "
        "claims.md has the contrasts, p-values, effect sizes and minimum detectable effects.",
        "",
        "| | claim | overall | per task (study: verdict) |",
        "|---|---|---|---|",
    ]
    for c in merged:
        tasks = "; ".join(f"{t}: {', '.join(found)}" for t, found in c["studies"].items()) or "—"
        lines.append(f"| {c['id']} | {c['statement']} | {c['overall']} | {tasks} |")
    return "\n".join(lines) + "\n"


def write(folder: Path) -> list[dict]:
    merged = merge(folder)
    studies = sorted(p.parent.name for p in folder.glob("*/claims.json"))
    (folder / "verdicts.json").write_text(json.dumps({"studies": studies, "claims": merged}, indent=2) + "\n")
    (folder / "verdicts.md").write_text(markdown(merged, studies))
    return merged


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not Path(args[0]).is_dir():
        print(
            f"error: Invalid arguments {args!r}. Valid choices: one folder holding <study>/claims.json.",
            file=sys.stderr,
        )
        return 2
    for c in write(Path(args[0])):
        print(f"({c['id']}) {c['overall']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The claims' verdicts over studies reported one at a time: one page from their claims.json.

    python -m experiments.report.verdicts docs/studies/standard     # reads */claims.json
    python -m experiments.report.verdicts docs/studies/standard --readme README.md

A long study profile runs one study per sitting (`python -m experiments.study`), each reported on
its own. Holm families are per study, so each study's contrasts stand as they are; this page merges
them part by part: per claim part and task, every study that tested it; the part's verdict there is
supported (or contradicted) if some study found so and none the opposite, inconclusive when
studies disagree or none decided; the claim's verdict on the task follows from its parts' by
`claim_rules.claim_verdict` (a contradicted part contradicts it), exactly as inside one study; the
overall verdict is the one rule of `claim_rules.overall_verdict`. Writes verdicts.md and
verdicts.json beside the study folders; with --readme, also the README's claims table
(experiments/report/readme_claims.py).
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
    claim_verdict,
    overall_text,
    overall_verdict,
)


def task_verdict(found: list[str]) -> str:
    """One part's verdict on one task from the studies that tested it (see the module's rule)."""
    decided = {v for v in found if v in (SUPPORTED, CONTRADICTED)}
    if len(decided) == 1:
        return decided.pop()
    return INCONCLUSIVE if any(v != NOT_TESTED for v in found) else NOT_TESTED


def _parts(claim: dict) -> list[dict]:
    """A claim's parts; a claim.json entry without parts is its own single part."""
    return claim.get("parts") or [{"id": claim["id"], "by_task": claim.get("by_task") or {}}]


def merge(folder: Path) -> list[dict]:
    """Per claim (in catalogue order): statement, by_task {task: verdict}, the studies behind each
    task's verdict ("<part> <study>: <verdict>"), the contrasts behind them, overall verdict and its
    text."""
    claims: dict[str, dict] = {}
    for path in sorted(folder.glob("*/claims.json")):
        study = path.parent.name
        for claim in json.loads(path.read_text())["claims"]:
            entry = claims.setdefault(
                claim["id"], {"statement": claim["statement"], "parts": {}, "contrasts": []}
            )
            for part in _parts(claim):
                found = entry["parts"].setdefault(
                    part["id"], {"rule": part.get("rule", "any"), "by_task": {}}
                )
                for task, verdict in (part.get("by_task") or {}).items():
                    found["by_task"].setdefault(task, []).append((study, verdict))
                for row in part.get("contrasts", []):
                    entry["contrasts"].append({**row, "part": part["id"], "study": study})
    merged = []
    for cid in sorted(claims):
        entry = claims[cid]
        tasks = list(dict.fromkeys(t for part in entry["parts"].values() for t in part["by_task"]))
        parts = {
            pid: {t: task_verdict([v for _, v in found]) for t, found in part["by_task"].items()}
            for pid, part in entry["parts"].items()
        }
        by_task = {t: claim_verdict([pv.get(t, NOT_TESTED) for pv in parts.values()]) for t in tasks}
        studies = {
            t: [
                (f"{pid} " if len(parts) > 1 else "") + f"{s}: {v}"
                for pid, part in entry["parts"].items()
                for s, v in part["by_task"].get(t, [])
            ]
            for t in tasks
        }
        merged.append(
            {
                "id": cid,
                "statement": entry["statement"],
                "by_task": by_task,
                "parts": {
                    pid: {"rule": entry["parts"][pid]["rule"], "by_task": pv} for pid, pv in parts.items()
                },
                "studies": studies,
                "contrasts": entry["contrasts"],
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


def wall_times(folder: Path) -> dict[str, float | None]:
    """Minutes during which some trial of each study ran (its runs.csv; experiments/report/timing.py;
    None for a report made before runs.csv had times)."""
    import pandas as pd

    from experiments.report.timing import running_time

    minutes: dict[str, float | None] = {}
    for path in sorted(folder.glob("*/claims.json")):
        runs = path.parent / "runs.csv"
        table = pd.read_csv(runs) if runs.is_file() else pd.DataFrame()
        if {"start_time", "end_time"} <= set(table.columns) and table["end_time"].notna().any():
            minutes[path.parent.name] = running_time(table["start_time"], table["end_time"])[0]
        else:
            minutes[path.parent.name] = None
    return minutes


def timing_line(minutes: dict[str, float | None]) -> str:
    known = {k: v for k, v in minutes.items() if v is not None}
    parts = [f"{k} {v:.0f} min" if v is not None else f"{k} not recorded" for k, v in minutes.items()]
    total = f"; {sum(known.values()) / 60:.1f} h for the {len(known)} timed" if known else ""
    what = "Time each study's trials took (minutes with a trial running, runs.csv)"
    return f"{what}: {', '.join(parts)}{total}."


def write(folder: Path) -> list[dict]:
    merged = merge(folder)
    studies = sorted(p.parent.name for p in folder.glob("*/claims.json"))
    kept = [{k: v for k, v in c.items() if k != "contrasts"} for c in merged]  # claims.json has them
    (folder / "verdicts.json").write_text(json.dumps({"studies": studies, "claims": kept}, indent=2) + "\n")
    (folder / "verdicts.md").write_text(
        markdown(merged, studies) + "\n" + timing_line(wall_times(folder)) + "\n"
    )
    return merged


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    readme = None
    if len(args) == 3 and args[1] == "--readme":
        readme, args = Path(args[2]), args[:1]
    if len(args) != 1 or not Path(args[0]).is_dir() or (readme is not None and not readme.is_file()):
        print(
            f"error: Invalid arguments {(sys.argv[1:] if argv is None else argv)!r}. Valid choices: one "
            "folder holding <study>/claims.json, optionally followed by --readme <README.md>.",
            file=sys.stderr,
        )
        return 2
    merged = write(Path(args[0]))
    for c in merged:
        print(f"({c['id']}) {c['overall']}")
    if readme is not None:
        from experiments.report import readme_claims

        readme_claims.update(readme, merged, Path(args[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

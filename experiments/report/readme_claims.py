"""The README's claims table, generated from the merged verdicts (experiments/report/verdicts.py).

One row per claim and task it was tested on: the claim's verdict there, the contrast that decided
each part's verdict (ratio A/B with its 95 % CI, Holm-adjusted p, metric), the seeds and a link to
the study reports. The deciding contrast of a part is one whose outcome matches the part's
verdict (for → supported, against → contradicted, neutral → inconclusive): the weakest of them
(largest p) when an *all* rule is supported, since every contrast had to hold; else the strongest
(smallest p). Written between two markers in the README, so the README always quotes the
committed reports:

    python -m experiments.report.verdicts docs/studies/standard --readme README.md
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from experiments.report.claim_rules import CONTRADICTED, NOT_TESTED, SUPPORTED
from experiments.report.write import fmt, markdown_table

COMMAND = "python -m experiments.report.verdicts docs/studies/standard --readme README.md"
START = f"<!-- claims-table:start (generated: {COMMAND}) -->"
END = "<!-- claims-table:end -->"
_WANT = {SUPPORTED: "for", CONTRADICTED: "against"}


def _judged_p(row: dict) -> float:
    """The Holm-adjusted p its outcome rests on (equivalence / non-inferiority / difference)."""
    keys = ("p_tost_holm", "p_ni_holm", "p_holm") if row.get("outcome") == "for" else ("p_holm",)
    values = [row.get(k) for k in keys] + [row.get("div_p_holm")]
    finite = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return min(finite) if finite else 1.0


def deciding(rows: list[dict], verdict: str, rule: str) -> dict | None:
    """The contrast that decided a part's verdict on one task (see the module's rule)."""
    if not rows:
        return None
    pool = [r for r in rows if r.get("outcome") == _WANT.get(verdict, "neutral")] or rows
    if verdict == SUPPORTED and rule == "all":
        return max(pool, key=_judged_p)
    return min(pool, key=_judged_p)


def _label(row: dict) -> str:
    """'forget_bias=1 / forget_bias=0': A and B without the key=value tokens both share."""
    a, b = row["a"].split(), row["b"].split()
    shared = set(a) & set(b)
    own_a = " ".join(t for t in a if t not in shared) or row["a"]
    own_b = " ".join(t for t in b if t not in shared) or row["b"]
    return f"{own_a} / {own_b}"


def _effect(part: str, row: dict, several_parts: bool) -> str:
    ci = ""
    low, high = row.get("ratio_ci_low"), row.get("ratio_ci_high")
    if all(isinstance(x, (int, float)) and math.isfinite(x) for x in (low, high)):
        ci = f" [{fmt(low, 2)}, {fmt(high, 2)}]"
    head = f"{part}: " if several_parts else ""
    return (
        f"{head}`{_label(row)}` ×{fmt(row.get('ratio'), 2)}{ci}, p_holm {fmt(_judged_p(row), 2)} "
        f"({row['metric']}, {row['outcome']})"
    )


def _seeds(rows: list[dict]) -> str:
    seeds = sorted({s for r in rows for s in (r.get("seeds_a") or [])})
    if not seeds:
        return "—"
    if seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2:
        return f"{seeds[0]}–{seeds[-1]} ({len(seeds)})"
    return ", ".join(map(str, seeds))


HEADER = ["", "claim", "overall", "task", "verdict", "deciding contrast per part: ratio A/B [95 % CI]"]
HEADER += ["seeds", "reports"]


def table(merged: list[dict], folder: Path, readme_dir: Path) -> str:
    """The markdown table (see the module's docstring); links relative to the README's folder."""
    rows = []
    for claim in merged:
        lead = [claim["id"], claim["statement"], claim["verdict"]]
        tested = [(t, v) for t, v in claim["by_task"].items() if v != NOT_TESTED]
        if not tested:
            rows.append([*lead, "—", "not tested", "—", "—", "—"])
        for n, (task, verdict) in enumerate(tested):
            effects, rows_used, studies = [], [], []
            for pid, part in claim["parts"].items():
                found = [r for r in claim["contrasts"] if r["part"] == pid and r["task"] == task]
                row = deciding(found, part["by_task"].get(task, NOT_TESTED), part["rule"])
                if row is not None:
                    effects.append(_effect(pid, row, len(claim["parts"]) > 1))
                    rows_used += found
                    studies += [r["study"] for r in found]
            links = ", ".join(
                f"[{s}]({os.path.relpath(folder / s / 'claims.md', readme_dir)})"
                for s in dict.fromkeys(studies)
            )
            rows.append([*(lead if n == 0 else ["", "", ""]), task, verdict, "<br>".join(effects)])
            rows[-1] += [_seeds(rows_used), links]
    return markdown_table(HEADER, rows)


def update(readme: Path, merged: list[dict], folder: Path) -> None:
    """Replace the table between the README's START and END markers."""
    text = readme.read_text()
    if START not in text or END not in text:
        raise SystemExit(
            f"error: {readme} has no claims-table markers; expected the lines {START!r} and {END!r}."
        )
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    body = table(merged, folder.resolve(), readme.resolve().parent)
    readme.write_text(f"{head}{START}\n{body}\n{END}{tail}")

"""The rules claims are judged by: `RULES` (quoted verbatim in claims.md and claims.json), the options
they take, and the functions that apply them — a contrast's outcome, a part's and a claim's verdict on
one task, and the overall verdict over tasks. `claim_evaluation` measures; this module decides.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from experiments.report import divergence, stats
from experiments.report.claim_catalogue import TASKS, Contrast

SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_TESTED = "supported", "contradicted", "inconclusive", "not tested"
MIXED = "mixed"
FOR, AGAINST, NEUTRAL = "for", "against", "neutral"
RANK_TESTS = (divergence.WORST_RANK_TEST, divergence.WORST_RANK_PAIRED)

RULES = """\
* **Data.** Per configuration, the runs the report's selection hands over: the confirm seeds at the
  configuration's chosen learning rate. A contrast "A vs B" pairs configurations of one study and one
  task whose parameters are equal except those the contrast varies (and, where stated, a further
  condition such as n_params within 10 %). Metric: `test_over_baseline` (the test split's loss over
  the memoryless baseline's; for sentiment its error rate over the majority class's; lower is
  better, 1 = baseline) unless stated; claim (h) uses log10 of
  `grad_flow_ratio_init` (‖∂L/∂h_1‖/‖∂L/∂h_T‖ at initialisation; lower = faster decay), with
  `_final` as context.
* **Scale.** Loss ratios are compared as logs: per seed d_s = ln A_s − ln B_s, a mean difference Δ
  is a ratio e^Δ (A/B); log10 metrics are differenced as they are (10^Δ is the ratio). A value ≤ 0
  has no log: that contrast is compared on the raw scale (noted).
* **Test.** {test_rule}. Divergence rates (claim d) are compared with Fisher's exact test over *all*
  learning rates of the two configurations.
* **Multiple comparisons.** One Holm family per study: every judged p-value of every contrast the
  study contributes to the claims its spec lists (difference tests, equivalence and non-inferiority
  tests, divergence tests; all parts, all claims), so a contrast's adjusted p is the same in a report
  of that study alone and in any combined report. Context rows form one family per study of their
  own. "p_holm < {alpha}" below means Holm-adjusted.
* **Effect sizes** (descriptive: the decisions use the tests). Paired rows: Δ with its paired
  t-interval, the ratio with a 95 % BCa bootstrap interval (scipy `bootstrap`, {n_boot} resamples,
  generator seeded {boot_seed}) and Cohen's d_z = mean(d)/SD(d) with its BCa interval. Unpaired
  rows: Δ = difference of the sides' means on the scale with its Welch interval (the ratio's
  interval too) and Hedges' g*_s, standardized by sqrt((s_A² + s_B²)/2), Welch's standardizer
  (Delacre et al. 2021). Rank-test rows: Δ is the Hodges–Lehmann shift, no interval.
* **No variance across seeds.** When the differences (paired) or both sides (unpaired) do not vary
  across seeds, no test is made (p is missing, never 0) and the contrast is *neutral*, noted.
* **Diverged runs rank worst.** A run diverged when its loss or gradient became non-finite or its
  loss exceeded `explode_factor` × max(memoryless baseline, initial validation loss). Its loss and
  task metric count as the worst possible value (+∞ for a loss), never as the best score it reached
  before diverging: a pair with a diverged side has d_s = ±∞ and the contrast is a signed-rank test
  (unpaired: Mann–Whitney with every diverged seed ranked below every other), with no CI or effect
  size, so it is never *for* an equivalence or non-inferiority; means are over the seeds that did
  not diverge.
* **Directional contrast** ("A worse/lower than B"): *for* if p_holm < {alpha} with Δ in the claimed
  direction (claim h1 also needs |Δ| ≥ 1 decade); *against* if p_holm < {alpha} in the opposite
  direction; otherwise *neutral*. With a divergence test too, the contrast is *for* if either test
  is for and neither against, *against* if either is against and neither for.
* **Equivalence** ("≈", claims c, f; margin m stated per contrast in the claim): two one-sided
  tests (TOST) of H0 Δ ≤ −log(1+m) and H0 Δ ≥ log(1+m), i.e. a ratio band [1/(1+m), 1+m]; *for* if
  the larger one-sided p, Holm-adjusted, is < {alpha}; *against* if the difference test has
  p_holm < {alpha} and the 95 % CI of Δ (a rank row: its Δ) lies wholly outside the band; otherwise
  neutral.
* **Non-inferiority** ("costs little", claim g): one one-sided test of H0 Δ ≥ log(1+m); *for* if its
  p_holm < {alpha}; *against* if the difference test has p_holm < {alpha} and the 95 % CI of Δ lies
  wholly above log(1+m) (A worse by more than the margin); otherwise neutral.
* **"Differs" contrast** (claim e2): *for* if p_holm < {alpha}; *against* if the TOST shows
  equivalence within its margin (p_holm < {alpha}); otherwise neutral.
* **Neutral for want of data.** A contrast with < 2 values on a side is neutral. A loss contrast
  where neither side's mean loss ratio is below {learned:g} (neither left the memoryless baseline)
  is neutral: a difference between two untrained networks says nothing about the claim.
* **Minimum detectable effect.** Beside every neutral contrast and inconclusive part: the smallest
  |Δ| its test would detect with power {power:g} at α = {alpha} (before the Holm correction, so a
  lower bound) with its n: statsmodels `TTestPower` (paired; `TTestIndPower` unpaired) × the
  observed SD of the differences (unpaired: sqrt((s_A² + s_B²)/2)), shown as a ratio. None for rank
  tests.
* **Facts.** What holds by construction (n_params of two configurations, e.g. a removed gate owns
  no weights, a GRU has fewer parameters than an LSTM of equal units) is printed, not judged.
* **Verdict on one task.** Part, from its contrasts on that task: *any* rule (directional,
  "differs") — *supported* if ≥ 1 contrast is for and none against, *contradicted* if ≥ 1 against
  and none for, else inconclusive; *all* rule (equivalence, non-inferiority, claim a) — *supported*
  if every contrast is for, *contradicted* if any is against, else inconclusive. Claim on that task:
  *contradicted* if a part is contradicted, *supported* if every tested part is supported (untested
  parts listed), else inconclusive; *not tested* if no part has a contrast there.
* **Overall verdict** (of a claim over its tasks, and of each part over its tasks), one rule:
  *supported* if supported on ≥ 2 tasks and contradicted on none; *contradicted* if contradicted on
  ≥ 2 and supported on none; *mixed* if supported on some tasks and contradicted on others;
  *not tested* if tested on none; otherwise *inconclusive* (e.g. tested on one task only). The
  overall text names the tasks behind it, e.g. "inconclusive overall: supported on adding (1 task);
  not tested on copy".
"""


@dataclass(frozen=True)
class Options:
    test: str = "auto"  # `stats.TEST_RULE`; welch | mannwhitney force that unpaired test
    alpha: float = 0.05
    margin: float | None = None  # when set, replaces every contrast's own margin (sensitivity runs)
    learned: float = 0.9  # a loss ratio below this: the configuration learned

    def rules(self) -> str:
        override = (
            f"* **Margins replaced.** This report uses m = {self.margin:g} for every contrast that has one.\n"
            if self.margin is not None
            else ""
        )
        return override + RULES.format(
            test_rule=stats.TEST_RULE,
            alpha=self.alpha,
            learned=self.learned,
            power=stats.POWER,
            n_boot=stats.BOOT_RESAMPLES,
            boot_seed=stats.BOOT_SEED,
        )

    def margin_of(self, contrast: Contrast) -> float | None:
        return self.margin if self.margin is not None and contrast.margin is not None else contrast.margin


def _note(row: dict, text: str) -> None:
    row["note"] = "; ".join(t for t in (row.get("note", ""), text) if t)


def _below(row: dict, key: str, alpha: float) -> bool:
    return bool(row.get(key, math.nan) < alpha)  # NaN (no test) is never significant


def _banded(row: dict, contrast: Contrast, opts: Options) -> str:
    """Outcome of an equivalence, non-inferiority or "differs" contrast."""
    significant = _below(row, "p_holm", opts.alpha)
    low, high, bound = row["diff_ci_low"], row["diff_ci_high"], row["bound"]
    if row["test"] in RANK_TESTS:
        low = high = row["diff"]  # no interval: the Hodges–Lehmann shift stands for it
    if contrast.expect == "equal":
        if _below(row, "p_tost_holm", opts.alpha):
            return FOR
        return AGAINST if significant and (low > bound or high < -bound) else NEUTRAL
    if contrast.expect == "not_higher":
        if _below(row, "p_ni_holm", opts.alpha):
            return FOR
        return AGAINST if significant and low > bound else NEUTRAL
    if significant:  # differs
        return FOR
    return AGAINST if _below(row, "p_tost_holm", opts.alpha) else NEUTRAL


def _directional(row: dict, contrast: Contrast, opts: Options) -> str:
    sign = -1 if contrast.expect == "lower" else 1
    votes = []
    if _below(row, "p_holm", opts.alpha) and np.sign(row["diff"]) == sign:
        big = abs(row["diff"]) >= contrast.min_effect
        votes.append(FOR if big else NEUTRAL)
        if not big:
            _note(row, f"|Δ| below the required {contrast.min_effect:g}")
    elif _below(row, "p_holm", opts.alpha) and np.sign(row["diff"]) == -sign:
        votes.append(AGAINST)
    if contrast.divergence and _below(row, "div_p_holm", opts.alpha):
        rate_a, rate_b = row["diverged_a"] / row["runs_a"], row["diverged_b"] / row["runs_b"]
        votes.append(FOR if np.sign(rate_a - rate_b) == sign else AGAINST)
    if FOR in votes and AGAINST not in votes:
        return FOR
    if AGAINST in votes and FOR not in votes:
        return AGAINST
    return NEUTRAL


def outcome(row: dict, contrast: Contrast, opts: Options) -> str:
    """for | against | neutral, from the Holm-adjusted p-values already in `row` (see RULES)."""
    if min(row["n_a"], row["n_b"]) < 2:
        _note(row, "fewer than 2 values on a side")
        return NEUTRAL
    # fmin: a side whose every seed diverged has no mean, and learned nothing either.
    if contrast.metric in divergence.LOSSES and np.fmin(row["mean_a"], row["mean_b"]) >= opts.learned:
        _note(row, "neither side learned")
        return NEUTRAL
    if contrast.expect in ("equal", "not_higher", "differs"):
        return _banded(row, contrast, opts)
    return _directional(row, contrast, opts)


def part_verdict(outcomes: list[str], rule: str) -> str:
    """A part's verdict on one task from its contrasts' outcomes there (see RULES)."""
    if not outcomes:
        return NOT_TESTED
    n_for, n_against = outcomes.count(FOR), outcomes.count(AGAINST)
    if rule == "all":
        if n_against:
            return CONTRADICTED
        return SUPPORTED if n_for == len(outcomes) else INCONCLUSIVE
    if n_for and not n_against:
        return SUPPORTED
    if n_against and not n_for:
        return CONTRADICTED
    return INCONCLUSIVE


def claim_verdict(part_verdicts: list[str]) -> str:
    """A claim's verdict on one task from its parts' verdicts there (see RULES)."""
    tested = [v for v in part_verdicts if v != NOT_TESTED]
    if not tested:
        return NOT_TESTED
    if CONTRADICTED in tested:
        return CONTRADICTED
    return SUPPORTED if all(v == SUPPORTED for v in tested) else INCONCLUSIVE


def overall_verdict(by_task: dict[str, str]) -> str:
    """The one rule over tasks (see RULES): supported/contradicted need ≥ 2 tasks, none opposed."""
    verdicts = [v for v in by_task.values() if v != NOT_TESTED]
    if not verdicts:
        return NOT_TESTED
    n_sup, n_con = verdicts.count(SUPPORTED), verdicts.count(CONTRADICTED)
    if n_sup and n_con:
        return MIXED
    if n_sup >= 2:
        return SUPPORTED
    if n_con >= 2:
        return CONTRADICTED
    return INCONCLUSIVE


def overall_text(by_task: dict[str, str], eligible: tuple[str, ...] = TASKS) -> str:
    """'<overall> overall: supported on a, b (2 tasks); …; not tested on c' — every task named."""
    groups = []
    for verdict in (SUPPORTED, CONTRADICTED, INCONCLUSIVE):
        tasks = [t for t, v in by_task.items() if v == verdict]
        if tasks:
            groups.append(f"{verdict} on {', '.join(tasks)} ({len(tasks)} task{'s' * (len(tasks) > 1)})")
    untested = [t for t in eligible if by_task.get(t, NOT_TESTED) == NOT_TESTED]
    untested += [t for t, v in by_task.items() if v == NOT_TESTED and t not in eligible]
    if untested:
        groups.append(f"not tested on {', '.join(untested)}")
    return f"{overall_verdict(by_task)} overall: " + "; ".join(groups)

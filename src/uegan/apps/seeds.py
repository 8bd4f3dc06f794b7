"""Statistics over random seeds: mean and spread per variant, and each variant against a baseline.

A single training run per variant cannot tell a change in the model from run-to-run variance.
Both ``uegan report`` (over any run folders) and ``uegan study`` (over the runs it trains) use
this module, so a report holds one seed table, computed one way.

Per variant, over its runs: the mean and the sample standard deviation of each metric at the
run's last validation. Comparison rule (:func:`compare_to_baseline`): a variant's difference to
the baseline *exceeds the random-seed spread* when ``|mean - mean_baseline| > 2 * pooled std``, the
pooled std being ``sqrt((s_a^2 + s_b^2) / 2)``. With 3 random seeds per variant this is about a
Welch t of 2.4 or more (two-sided p of roughly 0.07); the table shows Welch's t as well. It is a
screening rule, not a significance test, and with 3 random seeds the std itself is uncertain by
about +-50 %. The rule looks at the size of the difference only; its direction depends on the
metric: higher PSNR, SSIM and NIMA are better, lower CIEDE2000 (colour difference to the labels)
is better, so there a negative difference is the improvement. Runs that did not log a metric
simply have no value for it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from uegan.apps.tables import finite, md_table
from uegan.errors import UserError
from uegan.metrics import DIGITS, FULL_REFERENCE, LOWER_IS_BETTER

METRICS: tuple[str, ...] = (*FULL_REFERENCE, "nima")
"""The validation figures of a run, in table order."""
SPREAD_FACTOR = 2.0           # |delta mean| > SPREAD_FACTOR * pooled std: exceeds the random-seed spread


class SeededRun(Protocol):
    """What this module needs of a run (:class:`uegan.apps.report.Run` has it)."""

    variant: str
    seed: Any

    def last(self) -> dict[str, Any] | None: ...


@dataclass
class VariantSummary:
    variant: str
    values: dict[str, list[float]]      # metric -> one value per random seed (last validation)
    seeds: list[Any] = field(default_factory=list)

    def n(self, metric: str) -> int:
        return len(self.values.get(metric, []))

    def mean(self, metric: str) -> float | None:
        values = self.values.get(metric, [])
        return statistics.fmean(values) if values else None

    def std(self, metric: str) -> float | None:
        values = self.values.get(metric, [])
        return statistics.stdev(values) if len(values) >= 2 else None

    def mean_std_cell(self, metric: str) -> str:
        """``mean ± std`` (just the mean for one run, a dash for none)."""
        mean, std, digits = self.mean(metric), self.std(metric), DIGITS[metric]
        if mean is None:
            return "—"
        return f"{mean:.{digits}f} ± {std:.{digits}f}" if std is not None else f"{mean:.{digits}f}"


@dataclass
class Comparison:
    variant: str
    baseline: str
    metric: str
    delta: float
    pooled_std: float
    welch_t: float | None
    exceeds: bool
    lower_is_better: bool = False   # for this metric a negative delta is the improvement

    @property
    def ratio(self) -> float | None:
        """|delta| / pooled std; None when every run of both variants gave the same figure."""
        if self.pooled_std > 0:
            return abs(self.delta) / self.pooled_std
        return None if self.delta == 0 else math.inf


def summarize_runs(runs: Sequence[SeededRun]) -> list[VariantSummary]:
    """Per variant (in first-seen order): the last validation figures of each of its runs."""
    summaries: dict[str, VariantSummary] = {}
    for run in runs:
        summary = summaries.setdefault(run.variant, VariantSummary(run.variant, {}))
        last = run.last() or {}
        summary.seeds.append(run.seed)
        for metric in METRICS:
            value = finite(last.get(metric))
            if value is not None:
                summary.values.setdefault(metric, []).append(value)
    return list(summaries.values())


def compare_to_baseline(summaries: Sequence[VariantSummary], baseline: str | None = None,
                        metric: str = "psnr") -> list[Comparison]:
    """Each variant against ``baseline`` (default: the first), by the rule in the module docstring."""
    by_name = {s.variant: s for s in summaries}
    if not summaries:
        return []
    base = by_name.get(baseline or summaries[0].variant)
    if base is None:
        raise UserError(f"baseline {baseline!r} is not among the variants "
                        f"({', '.join(by_name)})")
    result = []
    for summary in summaries:
        if summary is base or summary.n(metric) < 2 or base.n(metric) < 2:
            continue
        s_a, s_b = summary.std(metric), base.std(metric)
        delta = summary.mean(metric) - base.mean(metric)
        pooled = math.sqrt((s_a ** 2 + s_b ** 2) / 2)
        standard_error = math.sqrt(s_a ** 2 / summary.n(metric) + s_b ** 2 / base.n(metric))
        welch = delta / standard_error if standard_error > 0 else None
        result.append(Comparison(summary.variant, base.variant, metric, delta, pooled, welch,
                                 abs(delta) > SPREAD_FACTOR * pooled, metric in LOWER_IS_BETTER))
    return result


def seed_comparison_lines(runs: Sequence[SeededRun], baseline: str | None = None) -> list[str]:
    """Markdown: mean ± std per variant and, per metric, each variant's difference to the
    baseline against the random-seed spread. [] unless some variant has at least two random seeds."""
    summaries = summarize_runs(runs)
    if not any(s.n("psnr") >= 2 for s in summaries):
        return []
    metrics = [m for m in METRICS if any(s.n(m) for s in summaries)]
    base = baseline or summaries[0].variant
    lines = ["### Variants against the random-seed spread (last validation of each run)", "",
             f"Mean ± sample standard deviation over random seeds. A difference to the baseline "
             f"(`{base}`) *exceeds the random-seed spread* when |Δ mean| > {SPREAD_FACTOR:g} × pooled "
             f"std, pooled std = sqrt((s₁² + s₂²) / 2); Welch's t is shown too (with 3 random "
             f"seeds each, the rule is about |t| > 2.4). A screening rule, not a significance test."
             + (" CIEDE2000 is the colour difference to the labels: lower is better, so for it a "
                "negative Δ is the improvement (for the other metrics, a positive one)."
                if "ciede2000" in metrics else ""), ""]
    header = ["variant", "seeds", *(m.upper() for m in metrics)]
    lines += md_table(header, [[s.variant, str(len(s.seeds)), *(s.mean_std_cell(m) for m in metrics)]
                               for s in summaries])
    rows = []
    for metric in metrics:
        for c in compare_to_baseline(summaries, base, metric):
            digits = DIGITS[metric]
            rows.append([c.variant, metric.upper(), f"{c.delta:+.{digits}f}",
                         f"{c.pooled_std:.{digits}f}", "—" if c.ratio is None else f"{c.ratio:.2f}",
                         "—" if c.welch_t is None else f"{c.welch_t:+.2f}",
                         "**yes**" if c.exceeds else "no"])
    if rows:
        lines += ["", *md_table(["variant", "metric", f"Δ vs {base}", "pooled std",
                                 "|Δ| / pooled std", "Welch t", "exceeds random-seed spread"], rows)]
    return lines + [""]


def statistics_dict(summaries: Sequence[VariantSummary], baseline: str | None) -> dict[str, Any]:
    """The rule, the per-variant figures and the comparisons, for a JSON file."""
    return {
        "rule": f"|delta mean| > {SPREAD_FACTOR:g} x pooled std (sample std over random seeds)",
        "summary": [{"variant": s.variant, "seeds": s.seeds,
                     **{m: {"values": s.values[m], "mean": s.mean(m), "std": s.std(m)}
                        for m in METRICS if s.n(m)}} for s in summaries],
        "comparisons": [vars(c) | {"ratio": c.ratio if c.ratio is not None and math.isfinite(c.ratio)
                                   else None}
                        for m in METRICS for c in compare_to_baseline(summaries, baseline, m)],
    }

"""Seed studies: train every variant with several seeds, and compare variants against the spread
between seeds.

A single training run per variant cannot tell a change in the model from run-to-run variance
(spec, "Findings": the seed's +1 dB for SE came from one run each). :func:`run_study` trains each
variant with N seeds, one after another in this process or each as a ``torchrun`` job, into
``ROOT/<variant>/seed<k>/`` (ordinary ``uegan train`` run folders), then writes the report of
``uegan report`` over all of them. Each run is validated on the paired validation set after its
last step; the study uses that last validation (not the best epoch, which is selected on the same
images).

Comparison rule (:func:`compare_to_baseline`): per variant the mean and the sample standard
deviation over seeds; a variant's difference to the baseline *exceeds the seed spread* when
``|mean - mean_baseline| > 2 * pooled std``, the pooled std being ``sqrt((s_a^2 + s_b^2) / 2)``.
With 3 seeds per variant this is about a Welch t of 2.4 or more (two-sided p of roughly 0.07);
the table shows Welch's t as well. It is a screening rule, not a significance test, and with 3
seeds the std itself is uncertain by about +-50 %. The rule looks at the size of the difference
only; its direction depends on the metric: higher PSNR, SSIM and NIMA are better, lower CIEDE2000
(colour difference to the labels) is better, so there a negative difference is the improvement.
Runs written before CIEDE2000 was measured simply have no value for it.

A study can be re-run with the same arguments: finished runs are kept, interrupted ones resumed.
"""

from __future__ import annotations

import json
import logging
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from uegan.errors import UserError
from uegan.io.files import atomic_path, atomic_write_text
from uegan.metrics import LOWER_IS_BETTER
from uegan.training.run_folder import RunFolder

log = logging.getLogger(__name__)

SPREAD_FACTOR = 2.0           # |delta mean| > SPREAD_FACTOR * pooled std: exceeds the seed spread
METRICS = ("psnr", "ssim", "ciede2000", "nima")
DIGITS = {"psnr": 2, "ssim": 4, "ciede2000": 2, "nima": 2}
STUDY_FILE = "study.json"
SEEDS_FIGURE = "seeds.png"
# uegan train flags a study passes on (command-line name -> TrainConfig field)
TRAIN_FLAGS = ("low", "high", "val_low", "val_label", "epochs", "steps", "batch_size", "device",
               "precision", "vgg_weights", "num_workers", "nima_weights")


# ------------------------------------------------------------------------------- statistics


@dataclass
class VariantSummary:
    variant: str
    values: dict[str, list[float]]      # metric -> one value per seed (last validation)
    seeds: list[Any] = field(default_factory=list)

    def n(self, metric: str) -> int:
        return len(self.values.get(metric, []))

    def mean(self, metric: str) -> float | None:
        values = self.values.get(metric, [])
        return statistics.fmean(values) if values else None

    def std(self, metric: str) -> float | None:
        values = self.values.get(metric, [])
        return statistics.stdev(values) if len(values) >= 2 else None


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


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def summarize_runs(runs: Sequence[Any]) -> list[VariantSummary]:
    """Per variant (in first-seen order): the last validation figures of each of its runs.

    ``runs``: objects with ``variant``, ``seed`` and ``last()`` (the last validation row), as
    :func:`uegan.apps.report.load_run` returns them.
    """
    summaries: dict[str, VariantSummary] = {}
    for run in runs:
        summary = summaries.setdefault(run.variant, VariantSummary(run.variant, {}))
        last = run.last() or {}
        summary.seeds.append(run.seed)
        for metric in METRICS:
            value = _finite(last.get(metric))
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


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|",
            *("| " + " | ".join(row) + " |" for row in rows)]


def _mean_std(summary: VariantSummary, metric: str) -> str:
    mean, std, digits = summary.mean(metric), summary.std(metric), DIGITS[metric]
    if mean is None:
        return "—"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if std is not None else f"{mean:.{digits}f}"


def seed_comparison_lines(runs: Sequence[Any], baseline: str | None = None) -> list[str]:
    """Markdown: mean ± std per variant and, per metric, each variant's difference to the
    baseline against the seed spread. [] unless some variant has at least two seeds."""
    summaries = summarize_runs(runs)
    if not any(s.n("psnr") >= 2 for s in summaries):
        return []
    metrics = [m for m in METRICS if any(s.n(m) for s in summaries)]
    base = baseline or summaries[0].variant
    lines = ["### Variants against the seed spread (last validation of each run)", "",
             f"Mean ± sample standard deviation over seeds. A difference to the baseline "
             f"(`{base}`) *exceeds the seed spread* when |Δ mean| > {SPREAD_FACTOR:g} × pooled "
             f"std, pooled std = sqrt((s₁² + s₂²) / 2); Welch's t is shown too (with 3 seeds "
             f"each, the rule is about |t| > 2.4). A screening rule, not a significance test."
             + (" CIEDE2000 is the colour difference to the labels: lower is better, so for it a "
                "negative Δ is the improvement (for the other metrics, a positive one)."
                if "ciede2000" in metrics else ""), ""]
    header = ["variant", "seeds", *(m.upper() for m in metrics)]
    lines += _md_table(header, [[s.variant, str(len(s.seeds)), *(_mean_std(s, m) for m in metrics)]
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
        lines += ["", *_md_table(["variant", "metric", f"Δ vs {base}", "pooled std",
                                  "|Δ| / pooled std", "Welch t", "exceeds seed spread"], rows)]
    return lines + [""]


# ------------------------------------------------------------------------------- the figure


def seeds_figure(summaries: Sequence[VariantSummary], metric: str = "psnr") -> bytes | None:
    """A small PNG: one dot per seed, mean ± std bar, one row per variant (Pillow only)."""
    from io import BytesIO

    from PIL import Image, ImageDraw, ImageFont

    rows = [s for s in summaries if s.n(metric)]
    if not rows:
        return None
    values = [v for s in rows for v in s.values[metric]]
    low, high = min(values), max(values)
    span = max(high - low, 1e-6)
    low, high = low - 0.1 * span, high + 0.1 * span
    try:
        font = ImageFont.load_default(size=13)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    left = int(max(measure.textlength(s.variant, font=font) for s in rows)) + 16
    width, plot_w, row_h, top = left + 460, 420, 28, 30
    image = Image.new("RGB", (width, top + row_h * len(rows) + 40), "white")
    draw = ImageDraw.Draw(image)

    def x_of(value: float) -> float:
        return left + (value - low) / (high - low) * plot_w

    draw.text((left, 6), f"{metric.upper()} of the last validation, one dot per seed; bar: mean ± std",
              fill="black", font=font)
    for i, summary in enumerate(rows):
        y = top + i * row_h + row_h // 2
        draw.text((8, y - 7), summary.variant, fill="black", font=font)
        draw.line([(left, y), (left + plot_w, y)], fill=(225, 225, 225))
        mean, std = summary.mean(metric), summary.std(metric) or 0.0
        draw.line([(x_of(mean - std), y), (x_of(mean + std), y)], fill=(200, 60, 60), width=3)
        draw.line([(x_of(mean), y - 8), (x_of(mean), y + 8)], fill=(200, 60, 60), width=2)
        for value in summary.values[metric]:
            x = x_of(value)
            draw.ellipse([x - 4, y - 4, x + 4, y + 4], outline=(30, 30, 160), width=2)
    axis_y = top + row_h * len(rows) + 6
    draw.line([(left, axis_y), (left + plot_w, axis_y)], fill="black")
    for k in range(5):
        value = low + k * (high - low) / 4
        x = x_of(value)
        draw.line([(x, axis_y), (x, axis_y + 4)], fill="black")
        draw.text((x - 18, axis_y + 7), f"{value:.{DIGITS[metric]}f}", fill="black", font=font)
    buffer = BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


# ------------------------------------------------------------------------------- running


@dataclass(frozen=True)
class StudyPlan:
    variants: tuple[str, ...]
    seeds: tuple[int, ...]
    root: Path
    preset: str | None = None                            # --config FILE of uegan train
    train_options: dict[str, Any] = field(default_factory=dict)   # TRAIN_FLAGS given
    set_values: tuple[str, ...] = ()                     # --set KEY=VALUE of uegan train
    torchrun: int = 0                                    # processes per run; 0: in this process
    threads: int | None = None                           # torch threads (per process)
    report_dir: Path | None = None
    baseline: str | None = None
    overwrite: bool = False

    def run_dir(self, variant: str, seed: int) -> Path:
        return self.root / variant / f"seed{seed}"

    @property
    def report_out(self) -> Path:
        return self.report_dir if self.report_dir is not None else self.root / "report"


@dataclass
class StudyResult:
    runs: list[dict[str, Any]]
    report_files: list[Path]
    comparison: list[str]


def parse_variants(text: str) -> tuple[str, ...]:
    from uegan.variants import get_variant

    names = tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    if not names:
        raise UserError("--variants: give at least one variant name (comma-separated)")
    for name in names:
        get_variant(name)
    return names


def run_status(run_dir: Path) -> str:
    """"done" (validated after its last step), "partial" (started) or "new"."""
    return RunFolder(run_dir).status()


def _check_plan(plan: StudyPlan) -> None:
    from uegan.apps.report import OUTPUT_FILES

    if plan.threads is not None and plan.threads < 1:
        raise UserError("--threads must be at least 1")
    if plan.torchrun < 0:
        raise UserError("--torchrun must be a number of processes (>= 1)")
    if not plan.seeds:
        raise UserError("--seeds must be at least 1")
    options = plan.train_options
    if options.get("val_low") is None and "val_low=" not in " ".join(plan.set_values) and plan.preset is None:
        raise UserError("a study compares validation figures: give --val-low and --val-label")
    if plan.baseline is not None and plan.baseline not in plan.variants:
        raise UserError(f"--baseline {plan.baseline} is not one of --variants")
    if not plan.overwrite:
        existing = [name for name in (*OUTPUT_FILES, SEEDS_FIGURE, STUDY_FILE)
                    if (plan.report_out / name).exists()]
        if existing:
            raise UserError(f"{plan.report_out} already holds {', '.join(existing)} (pass "
                            f"--overwrite to replace the report; finished runs are kept either way)")


def _train_in_process(plan: StudyPlan, variant: str, seed: int, resume: bool, vgg: Any) -> None:
    from uegan.training.config import parse_set_options, resolve_train_config
    from uegan.training.trainer import Trainer

    overrides = {k: v for k, v in plan.train_options.items() if v is not None}
    overrides.update(variant=variant, seed=seed, out=str(plan.run_dir(variant, seed)),
                     progress=False, resume=resume)
    config = resolve_train_config(plan.preset, overrides, parse_set_options(list(plan.set_values)))
    config.require_paths()
    result = Trainer(config, vgg=vgg).fit()
    if result.interrupted:
        raise KeyboardInterrupt


def torchrun_command(plan: StudyPlan, variant: str, seed: int, resume: bool) -> list[str]:
    """The ``torchrun ... -m uegan train`` command line of one run."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={plan.torchrun}", "-m", "uegan", "train",
               "--variant", variant, "--seed", str(seed), "--out", str(plan.run_dir(variant, seed)),
               "--no-progress"]
    if plan.preset is not None:
        command += ["--config", plan.preset]
    for name, value in plan.train_options.items():
        if value is not None:
            command += [f"--{name.replace('_', '-')}", str(value)]
    for item in plan.set_values:
        command += ["--set", item]
    if resume:
        command.append("--resume")
    return command


def _shared_vgg(plan: StudyPlan) -> Any:
    """One VGG19 for every in-process run: loaded once, and, for ``random``, the same random
    network for every seed (a trainer that builds it itself seeds it with the run's seed)."""
    import torch

    from uegan.training.config import parse_set_options, resolve_train_config
    from uegan.weights import build_vgg19

    config = resolve_train_config(plan.preset, {k: v for k, v in plan.train_options.items()
                                                if v is not None},
                                  parse_set_options(list(plan.set_values)))
    if config.fidelity_weight == 0:
        return None
    state = torch.random.get_rng_state()
    torch.manual_seed(0)
    try:
        return build_vgg19(config.vgg_weights)
    finally:
        torch.random.set_rng_state(state)


def run_study(plan: StudyPlan) -> StudyResult:
    """Train (or resume, or keep) every run of the plan, then write the report."""
    from uegan.apps.report import ReportConfig, build_report, load_run

    _check_plan(plan)
    if plan.threads is not None and not plan.torchrun:
        import torch

        torch.set_num_threads(plan.threads)
    vgg = _shared_vgg(plan) if not plan.torchrun else None
    records = []
    total = len(plan.variants) * len(plan.seeds)
    for index, (variant, seed) in enumerate(((v, s) for v in plan.variants for s in plan.seeds), 1):
        run_dir = plan.run_dir(variant, seed)
        status = run_status(run_dir)
        record = {"variant": variant, "seed": seed, "run_dir": str(run_dir), "status_before": status}
        if status == "done":
            log.info("[%d/%d] %s seed %d: already done (%s)", index, total, variant, seed, run_dir)
        else:
            log.info("[%d/%d] %s seed %d: %s in %s", index, total, variant, seed,
                     "resuming" if status == "partial" else "training", run_dir)
            start = time.perf_counter()
            if plan.torchrun:
                command = torchrun_command(plan, variant, seed, status == "partial")
                log.info("running %s", " ".join(command))
                env = None
                if plan.threads is not None:
                    env = dict(os.environ, OMP_NUM_THREADS=str(plan.threads))
                completed = subprocess.run(command, check=False, env=env)
                if completed.returncode != 0:
                    raise UserError(f"{variant} seed {seed}: torchrun exited with code "
                                    f"{completed.returncode}; see {RunFolder(run_dir).log_file}, then "
                                    f"run the same study command again to resume")
            else:
                _train_in_process(plan, variant, seed, status == "partial", vgg)
            record["seconds"] = round(time.perf_counter() - start, 1)
        records.append(record)

    run_dirs = [Path(r["run_dir"]) for r in records]
    val_low = plan.train_options.get("val_low")
    val_label = plan.train_options.get("val_label")
    report = build_report(ReportConfig(
        run_dirs=tuple(run_dirs), out_dir=plan.report_out,
        val_low=Path(val_low) if val_low else None, val_label=Path(val_label) if val_label else None,
        overwrite=plan.overwrite))
    runs = [load_run(path) for path in run_dirs]
    summaries = summarize_runs(runs)
    written = list(report.written)
    figure = seeds_figure(summaries)
    if figure is not None:
        with atomic_path(plan.report_out / SEEDS_FIGURE, overwrite=plan.overwrite) as temporary:
            temporary.write_bytes(figure)
        written.append(plan.report_out / SEEDS_FIGURE)
    for record, run in zip(records, runs):
        last = run.last() or {}
        record.update({m: last.get(m) for m in METRICS if m in last}, step=last.get("step"))
    summary = {
        "variants": list(plan.variants), "seeds": list(plan.seeds), "root": str(plan.root),
        "train_options": plan.train_options, "set": list(plan.set_values), "preset": plan.preset,
        "threads": plan.threads, "torchrun": plan.torchrun,
        "rule": f"|delta mean| > {SPREAD_FACTOR:g} x pooled std (sample std over seeds)",
        "runs": records,
        "summary": [{"variant": s.variant, "seeds": s.seeds,
                     **{m: {"values": s.values[m], "mean": s.mean(m), "std": s.std(m)}
                        for m in METRICS if s.n(m)}} for s in summaries],
        "comparisons": [vars(c) | {"ratio": c.ratio if c.ratio is not None and math.isfinite(c.ratio)
                                   else None}
                        for m in METRICS
                        for c in compare_to_baseline(summaries, plan.baseline, m)],
    }
    atomic_write_text(plan.report_out / STUDY_FILE, json.dumps(summary, indent=1) + "\n",
                      overwrite=plan.overwrite)
    written.append(plan.report_out / STUDY_FILE)
    return StudyResult(records, written, seed_comparison_lines(runs, plan.baseline))

"""Seed studies: train every variant with several random seeds, and compare variants against
the spread between random seeds.

:func:`run_study` trains each variant with N random seeds, one after another in this process or
each as a ``torchrun`` job, into ``ROOT/<variant>/seed<k>/`` (ordinary ``uegan train`` run
folders), then writes the report of ``uegan report`` over all of them, the figure of the random
seeds and ``study.json``. Each run is validated on the paired validation set after its last step; the
study uses that last validation (not the best epoch, which is selected on the same images). The
statistics and the comparison rule are those of :mod:`uegan.apps.seeds`.

A study can be re-run with the same arguments: finished runs are kept, interrupted ones resumed.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from uegan.apps.report import OUTPUT_FILES, ReportConfig, build_report
from uegan.apps.report_figures import seeds_figure
from uegan.apps.seeds import METRICS, seed_comparison_lines, statistics_dict, summarize_runs
from uegan.errors import UserError
from uegan.io.files import atomic_path, atomic_write_text
from uegan.progress import Progress
from uegan.training.config import parse_set_options, resolve_train_config
from uegan.training.run_folder import RunFolder
from uegan.training.trainer import Trainer
from uegan.variants import get_variant
from uegan.weights import build_vgg19

log = logging.getLogger(__name__)

STUDY_FILE = "study.json"
SEEDS_FIGURE = "seeds.png"
# uegan train flags a study passes on (command-line name -> TrainConfig field)
TRAIN_FLAGS = ("low", "high", "val_low", "val_label", "epochs", "steps", "batch_size", "device",
               "precision", "vgg_weights", "num_workers", "nima_weights", "init_from")


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
    progress: bool = True          # bars on a terminal, else a line per run with the study's ETA
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
    overrides = {k: v for k, v in plan.train_options.items() if v is not None}
    overrides.update(variant=variant, seed=seed, out=str(plan.run_dir(variant, seed)),
                     progress=plan.progress, resume=resume)
    config = resolve_train_config(plan.preset, overrides, parse_set_options(list(plan.set_values)))
    config.require_paths()
    result = Trainer(config, vgg=vgg).fit()
    if result.interrupted:
        raise KeyboardInterrupt


def torchrun_command(plan: StudyPlan, variant: str, seed: int, resume: bool) -> list[str]:
    """The ``torchrun ... -m uegan train`` command line of one run."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={plan.torchrun}", "-m", "uegan", "train",
               "--variant", variant, "--seed", str(seed), "--out", str(plan.run_dir(variant, seed))]
    if not plan.progress:
        command.append("--no-progress")
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
    network for every random seed (a trainer that builds it itself seeds it with the run's own)."""
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
    _check_plan(plan)
    if plan.threads is not None and not plan.torchrun:
        torch.set_num_threads(plan.threads)
    vgg = _shared_vgg(plan) if not plan.torchrun else None
    records = []
    pairs = [(v, s) for v in plan.variants for s in plan.seeds]
    statuses = [run_status(plan.run_dir(variant, seed)) for variant, seed in pairs]
    total = len(pairs)
    # the study's progress counts the runs left to train: finished ones would flatter the rate
    progress = Progress(sum(status != "done" for status in statuses), "study", unit="run",
                        enabled=plan.progress, every=0.0)
    for index, ((variant, seed), status) in enumerate(zip(pairs, statuses), 1):
        run_dir = plan.run_dir(variant, seed)
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
            progress.update()
        records.append(record)
    progress.close()

    run_dirs = [Path(r["run_dir"]) for r in records]
    val_low = plan.train_options.get("val_low")
    val_label = plan.train_options.get("val_label")
    report = build_report(ReportConfig(
        run_dirs=tuple(run_dirs), out_dir=plan.report_out,
        val_low=Path(val_low) if val_low else None, val_label=Path(val_label) if val_label else None,
        overwrite=plan.overwrite))
    runs = report.runs
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
        "runs": records,
        **statistics_dict(summaries, plan.baseline),
    }
    atomic_write_text(plan.report_out / STUDY_FILE, json.dumps(summary, indent=1) + "\n",
                      overwrite=plan.overwrite)
    written.append(plan.report_out / STUDY_FILE)
    return StudyResult(records, written, seed_comparison_lines(runs, plan.baseline))

"""The study's report from training run folders: a Markdown table, curves and an image grid.

A run folder (written by ``uegan train``) holds:

- ``config.json``: the resolved training configuration, with at least ``variant`` and ``seed``;
- ``metrics.jsonl``: one JSON object per line; ``{"kind": "train", "step", "epoch", "d_loss",
  "g_loss", "g_adv_loss", "g_fidelity_loss", "g_identity_loss", ...}`` and ``{"kind": "val",
  "step", "epoch", "psnr", "ssim", "ciede2000"?, "nima"?}`` (a run that did not log
  ``ciede2000`` shows "—" for it);
- optionally ``val_images/epoch_XXXX/<stem>.png``: validation outputs of that epoch.

:func:`build_report` writes ``report.md`` (variant | PSNR | SSIM | CIEDE2000 | NIMA at the best and
at the last validated epoch; CIEDE2000 is a colour difference, lower is better, and the best epoch
by it is the lowest; with several random seeds of a variant, the one seed table of
:mod:`uegan.apps.seeds`), ``validation_curves.png`` and ``loss_curves.png`` (with matplotlib, the
optional extra ``uegan[plot]``; without it they are skipped and the report says so) and
``grid.png`` (input | each run | label for a few validation images; needs the validation input
and label folders). The pictures are drawn by :mod:`uegan.apps.report_figures`.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from uegan.apps.report_figures import grid_columns, image_grid, loss_figure, validation_figure
from uegan.apps.seeds import METRICS, seed_comparison_lines
from uegan.apps.tables import figure_cell, finite, md_table
from uegan.errors import UserError
from uegan.io.files import atomic_write_bytes
from uegan.metrics import LOWER_IS_BETTER
from uegan.training.run_folder import CONFIG_FILE, METRICS_FILE, RunFolder
from uegan.variants import VARIANTS

log = logging.getLogger(__name__)

VAL_METRICS: tuple[str, ...] = METRICS
REPORT_FILE = "report.md"
VAL_CURVES_FILE = "validation_curves.png"
LOSS_CURVES_FILE = "loss_curves.png"
GRID_FILE = "grid.png"
OUTPUT_FILES: tuple[str, ...] = (REPORT_FILE, VAL_CURVES_FILE, LOSS_CURVES_FILE, GRID_FILE)
BestBy = Literal["psnr", "ssim", "ciede2000", "nima"]


@dataclass(frozen=True)
class ReportConfig:
    run_dirs: tuple[Path, ...]
    out_dir: Path
    val_low: Path | None = None
    val_label: Path | None = None
    grid_images: int = 4
    cell_height: int = 256
    best_by: BestBy = "psnr"
    overwrite: bool = False
    plots: bool = True


@dataclass
class Run:
    path: Path
    variant: str
    seed: Any
    config: dict[str, Any]
    train: list[dict[str, Any]] = field(default_factory=list)
    val: list[dict[str, Any]] = field(default_factory=list)
    label: str = ""

    def val_by_epoch(self) -> list[dict[str, Any]]:
        """One validation row per epoch (the last one logged for it), in epoch order."""
        rows: dict[int, dict[str, Any]] = {}
        for row in self.val:
            rows[int(row["epoch"])] = row
        return [rows[e] for e in sorted(rows)]

    def best(self, by: BestBy = "psnr") -> dict[str, Any] | None:
        """The validation row with the best ``by``: the highest, or the lowest for a metric of
        :data:`LOWER_IS_BETTER` (the earliest epoch among equals)."""
        rows = [r for r in self.val_by_epoch() if finite(r.get(by)) is not None]
        if not rows:
            return None
        pick = min if by in LOWER_IS_BETTER else max  # both keep the first of equals
        return pick(rows, key=lambda r: r[by])

    def last(self) -> dict[str, Any] | None:
        rows = self.val_by_epoch()
        return rows[-1] if rows else None


@dataclass
class ReportResult:
    written: list[Path]
    notes: list[str]
    runs: list[Run]


def load_run(run_dir: str | Path) -> Run:
    """Read a run folder's ``config.json`` and ``metrics.jsonl`` (see the module docstring)."""
    path = Path(run_dir)
    if not path.is_dir():
        raise UserError(f"{path}: not a run folder")
    folder = RunFolder(path)
    config_path = folder.config_file
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: no {CONFIG_FILE} (is this a folder written by 'uegan train'?)") from None
    except (OSError, json.JSONDecodeError) as error:
        raise UserError(f"{config_path}: cannot read ({error})") from error
    if not isinstance(config, dict) or "variant" not in config:
        raise UserError(f"{config_path}: no 'variant' entry")
    run = Run(path=path, variant=str(config["variant"]), seed=config.get("seed"), config=config)
    metrics_path = folder.metrics_file
    if not metrics_path.is_file():
        log.warning("%s: no %s; the run has no curves or figures yet", path, METRICS_FILE)
        return run
    lines = metrics_path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            if number == len(lines):  # a run still writing: its last line may be incomplete
                log.warning("%s:%d: incomplete last line skipped", metrics_path, number)
                continue
            raise UserError(f"{metrics_path}:{number}: not JSON ({error})") from error
        if not isinstance(row, dict):
            raise UserError(f"{metrics_path}:{number}: expected a JSON object")
        kind = row.get("kind")
        if kind == "val":
            if "epoch" not in row:
                raise UserError(f"{metrics_path}:{number}: validation row without 'epoch'")
            run.val.append(row)
        elif kind == "train":
            run.train.append(row)
    return run


def _label_runs(runs: Sequence[Run]) -> None:
    for run in runs:
        run.label = run.variant if run.seed is None else f"{run.variant} (seed {run.seed})"
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.label] = counts.get(run.label, 0) + 1
    for run in runs:
        if counts[run.label] > 1:
            run.label = f"{run.label} [{run.path.name}]"


# ---------------------------------------------------------------------------------------- table

def _best_word(metric: str) -> str:
    """"lowest" for a metric where lower is better, else "highest"."""
    return "lowest" if metric in LOWER_IS_BETTER else "highest"


def _metric_cells(row: dict[str, Any] | None) -> list[str]:
    if row is None:
        return ["—"] * (1 + len(VAL_METRICS))
    return [str(row["epoch"])] + [figure_cell(row.get(k), k) for k in VAL_METRICS]


def results_table(runs: Sequence[Run], best_by: BestBy = "psnr") -> list[str]:
    """Markdown lines: one row per run, best and last validated epoch."""
    names = [key.upper() for key in VAL_METRICS]
    header = ["variant", "seed", "run", f"best epoch (by {best_by.upper()})", *names, "last epoch", *names]
    rows = [[run.variant, "—" if run.seed is None else str(run.seed), f"`{run.path.name}`",
             *_metric_cells(run.best(best_by)), *_metric_cells(run.last())] for run in runs]
    return md_table(header, rows)


def published_table(variants: Sequence[str]) -> list[str]:
    """The paper's FiveK figures for the variants in the report."""
    rows = []
    for name in dict.fromkeys(variants):
        variant = VARIANTS.get(name)
        if variant is not None and variant.published is not None:
            psnr, ssim, nima = variant.published
            rows.append([name, f"{psnr:.2f}", f"{ssim:.4f}", f"{nima:.2f}"])
    return md_table(["variant", "PSNR", "SSIM", "NIMA"], rows) if rows else []


# --------------------------------------------------------------------------------------- report

def _load_matplotlib() -> Any | None:
    """``matplotlib.figure`` if matplotlib is installed, else None."""
    try:
        return importlib.import_module("matplotlib.figure")
    except ImportError:
        return None


def _check_outputs(config: ReportConfig) -> None:
    if config.out_dir.exists() and not config.out_dir.is_dir():
        raise UserError(f"{config.out_dir} exists and is not a folder")
    if config.overwrite:
        return
    existing = [name for name in OUTPUT_FILES if (config.out_dir / name).exists()]
    if existing:
        raise UserError(f"{config.out_dir} already holds {', '.join(existing)} (pass --overwrite to replace)")


def build_report(config: ReportConfig) -> ReportResult:
    """Write the report files into ``config.out_dir``; see the module docstring."""
    if not config.run_dirs:
        raise UserError("no run folders given")
    if (config.val_low is None) != (config.val_label is None):
        raise UserError("the image grid needs both --val-low and --val-label")
    if config.grid_images < 1 or config.cell_height < 16:
        raise UserError("--grid-images must be >= 1 and the cell height >= 16")
    _check_outputs(config)
    runs = [load_run(path) for path in config.run_dirs]
    _label_runs(runs)
    notes: list[str] = []
    written: list[Path] = []
    out = config.out_dir

    def emit(name: str, data: bytes) -> None:
        atomic_write_bytes(out / name, data, overwrite=config.overwrite)
        written.append(out / name)

    md = ["# UEGAN study report", ""]
    md += [f"Runs: {len(runs)}. Figures are true means over the validation images, as logged by "
           f"training; the best epoch is the one with the {_best_word(config.best_by)} "
           f"{config.best_by.upper()}. CIEDE2000 is the mean colour difference to the labels "
           "(lower is better). A dash (—) marks a figure the run did not log (NIMA without its "
           "weights, CIEDE2000 in runs that did not log it).", ""]
    md += ["## Validation metrics", "", *results_table(runs, config.best_by), ""]
    if any(not run.val for run in runs):
        empty = ", ".join(f"`{run.path}`" for run in runs if not run.val)
        md += [f"No validation rows yet in: {empty}.", ""]
    md += seed_comparison_lines(runs)
    published = published_table([run.variant for run in runs])
    if published:
        md += ["### Published figures (FiveK test set, 500 images)", "", *published, "",
               "The published evaluation scripts divide the sum over N images by N - 1, so figures "
               "computed with them are N/(N-1) = 500/499 times the true means (+0.2 %). The "
               "validation set of the runs above may also differ from the FiveK test set.", ""]

    md += ["## Curves", ""]
    figure_module = _load_matplotlib() if config.plots else None
    if figure_module is None:
        reason = ("plots not asked for" if not config.plots else
                  "matplotlib is not installed (pip install 'uegan[plot]')")
        notes.append(f"curves skipped: {reason}")
        md += [f"Curves skipped: {reason}.", ""]
    else:
        for name, title, make in ((VAL_CURVES_FILE, "Validation", validation_figure),
                                  (LOSS_CURVES_FILE, "Training losses", loss_figure)):
            data = make(figure_module, runs)
            if data is None:
                notes.append(f"{name} skipped: no data")
                md += [f"{title}: no data yet.", ""]
            else:
                emit(name, data)
                md += [f"![{title}]({name})", ""]

    md += ["## Validation images", ""]
    if config.val_low is None or config.val_label is None:
        notes.append("image grid skipped: give --val-low and --val-label for it")
        md += ["Grid skipped: no validation input and label folders given (--val-low, --val-label).", ""]
    else:
        columns, described = grid_columns(runs, config.best_by)
        grid = image_grid(config.val_low, config.val_label, columns, config.grid_images, config.cell_height)
        if grid is None:
            notes.append("image grid skipped: no run saved an output for any validation image")
            md += ["Grid skipped: no run saved an output for an image found in both validation folders.", ""]
        else:
            data, stems = grid
            emit(GRID_FILE, data)
            md += [f"![input, each run, label]({GRID_FILE})", "",
                   "Columns: input | " + " | ".join(name for name, _ in columns) + " | label. "
                   f"Images: {', '.join(stems)}. Epochs shown: " + "; ".join(described) + ".", ""]

    emit(REPORT_FILE, ("\n".join(md).rstrip() + "\n").encode("utf-8"))
    for note in notes:
        log.info("%s", note)
    return ReportResult(written, notes, runs)

"""The study's report from training run folders: a Markdown table, curves and an image grid.

A run folder (written by ``uegan train``) holds:

- ``config.json``: the resolved training configuration, with at least ``variant`` and ``seed``;
- ``metrics.jsonl``: one JSON object per line; ``{"kind": "train", "step", "epoch", "d_loss",
  "g_loss", "g_adv_loss", "g_fidelity_loss", "g_identity_loss", ...}`` and ``{"kind": "val",
  "step", "epoch", "psnr", "ssim", "ciede2000"?, "nima"?}`` (runs written before CIEDE2000 was
  measured have no ``ciede2000``: the report shows "—" for it);
- optionally ``val_images/epoch_XXXX/<stem>.png``: validation outputs of that epoch.

:func:`build_report` writes ``report.md`` (variant | PSNR | SSIM | CIEDE2000 | NIMA at the best and
at the last validated epoch; CIEDE2000 is a colour difference, lower is better, and the best epoch
by it is the lowest), ``validation_curves.png`` and ``loss_curves.png`` (with matplotlib, the
optional extra ``uegan[plot]``; without it they are skipped and the report says so) and
``grid.png`` (input | each run | label for a few validation images; needs the validation input
and label folders).
"""

from __future__ import annotations

import importlib
import io
import json
import logging
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from PIL import Image, ImageDraw, ImageFont

from uegan.errors import UserError
from uegan.io.files import atomic_write_bytes
from uegan.io.images import find_images, images_by_stem, is_image_path
from uegan.metrics import LOWER_IS_BETTER
from uegan.training.run_folder import CONFIG_FILE, METRICS_FILE, RunFolder

log = logging.getLogger(__name__)

VAL_METRICS: tuple[str, ...] = ("psnr", "ssim", "ciede2000", "nima")
LOSS_KEYS: tuple[str, ...] = ("d_loss", "g_loss", "g_adv_loss", "g_fidelity_loss", "g_identity_loss")
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
        rows = [r for r in self.val_by_epoch() if _number(r.get(by)) is not None]
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


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


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

def _fmt(value: Any, digits: int) -> str:
    number = _number(value)
    return "—" if number is None else f"{number:.{digits}f}"


DIGITS = {"psnr": 2, "ssim": 4, "ciede2000": 2, "nima": 2}


def _best_word(metric: str) -> str:
    """"lowest" for a metric where lower is better, else "highest"."""
    return "lowest" if metric in LOWER_IS_BETTER else "highest"


def _metric_cells(row: dict[str, Any] | None) -> list[str]:
    if row is None:
        return ["—"] * (1 + len(VAL_METRICS))
    return [str(row["epoch"])] + [_fmt(row.get(k), DIGITS[k]) for k in VAL_METRICS]


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def results_table(runs: Sequence[Run], best_by: BestBy = "psnr") -> list[str]:
    """Markdown lines: one row per run, best and last validated epoch."""
    names = [key.upper() for key in VAL_METRICS]
    header = ["variant", "seed", "run", f"best epoch (by {best_by.upper()})", *names, "last epoch", *names]
    rows = [[run.variant, "—" if run.seed is None else str(run.seed), f"`{run.path.name}`",
             *_metric_cells(run.best(best_by)), *_metric_cells(run.last())] for run in runs]
    return _md_table(header, rows)


def seed_summary_table(runs: Sequence[Run]) -> list[str]:
    """Mean ± sample standard deviation over the runs of each variant (last epoch); [] if none repeats."""
    by_variant: dict[str, list[Run]] = {}
    for run in runs:
        by_variant.setdefault(run.variant, []).append(run)
    rows = []
    for variant, group in by_variant.items():
        if len(group) < 2:
            continue
        cells = [variant, str(len(group))]
        for key in VAL_METRICS:
            values = [v for v in (_number((r.last() or {}).get(key)) for r in group) if v is not None]
            if len(values) >= 2:
                cells.append(f"{statistics.fmean(values):.{DIGITS[key]}f} ± {statistics.stdev(values):.{DIGITS[key]}f}")
            elif values:
                cells.append(f"{values[0]:.{DIGITS[key]}f}")
            else:
                cells.append("—")
        rows.append(cells)
    return _md_table(["variant", "runs", *(key.upper() for key in VAL_METRICS)], rows) if rows else []


def published_table(variants: Sequence[str]) -> list[str]:
    """The paper's FiveK figures for the variants in the report."""
    try:
        from uegan.variants import VARIANTS
    except ImportError:  # pragma: no cover - the variants module is part of the package
        return []
    rows = []
    for name in dict.fromkeys(variants):
        variant = VARIANTS.get(name)
        if variant is not None and variant.published is not None:
            psnr, ssim, nima = variant.published
            rows.append([name, f"{psnr:.2f}", f"{ssim:.4f}", f"{nima:.2f}"])
    return _md_table(["variant", "PSNR", "SSIM", "NIMA"], rows) if rows else []


# ---------------------------------------------------------------------------------------- plots

def _load_matplotlib() -> Any | None:
    """``matplotlib.figure`` if matplotlib is installed, else None."""
    try:
        return importlib.import_module("matplotlib.figure")
    except ImportError:
        return None


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def _smooth(values: list[float], window: int) -> list[float]:
    if window <= 1:
        return values
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def validation_figure(figure_module: Any, runs: Sequence[Run]) -> bytes | None:
    keys = [k for k in VAL_METRICS if any(_number(r.get(k)) is not None for run in runs for r in run.val)]
    if not keys:
        return None
    figure = figure_module.Figure(figsize=(5 * len(keys), 4), layout="constrained")
    axes = figure.subplots(1, len(keys), squeeze=False)[0]
    for ax, key in zip(axes, keys):
        for run in runs:
            points = [(int(r["epoch"]), _number(r.get(key))) for r in run.val_by_epoch()]
            points = [(e, v) for e, v in points if v is not None]
            if points:
                ax.plot(*zip(*points), marker="o", markersize=3, label=run.label)
        ax.set_xlabel("epoch")
        ax.set_title(key.upper() + (" (dB)" if key == "psnr" else "")
                     + (" (lower is better)" if key in LOWER_IS_BETTER else ""))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    return _png(figure)


def loss_figure(figure_module: Any, runs: Sequence[Run]) -> bytes | None:
    keys = [k for k in LOSS_KEYS if any(_number(r.get(k)) is not None for run in runs for r in run.train)]
    if not keys:
        return None
    columns = min(3, len(keys))
    rows_n = math.ceil(len(keys) / columns)
    figure = figure_module.Figure(figsize=(5 * columns, 3.6 * rows_n), layout="constrained")
    axes = figure.subplots(rows_n, columns, squeeze=False).ravel()
    for ax, key in zip(axes, keys):
        smoothed = False
        for run in runs:
            points = [(int(r.get("step", i)), _number(r.get(key))) for i, r in enumerate(run.train)]
            points = [(s, v) for s, v in points if v is not None]
            if not points:
                continue
            steps, values = zip(*points)
            window = max(1, len(values) // 50)
            smoothed = smoothed or window > 1
            ax.plot(steps, _smooth(list(values), window), label=run.label, linewidth=1)
        ax.set_xlabel("step")
        ax.set_title(key + (" (moving average)" if smoothed else ""))
        ax.grid(alpha=0.3)
    for ax in axes[len(keys):]:
        ax.set_visible(False)
    axes[0].legend(fontsize="small")
    return _png(figure)


# ----------------------------------------------------------------------------------------- grid

def _epoch_dirs(run: Run) -> dict[int, Path]:
    return RunFolder(run.path).epoch_image_dirs()


def grid_epoch_dir(run: Run, best_by: BestBy) -> tuple[int, Path] | None:
    """The validation image folder of the best epoch if saved, else of the latest saved epoch."""
    dirs = _epoch_dirs(run)
    if not dirs:
        return None
    best = run.best(best_by)
    if best is not None and int(best["epoch"]) in dirs:
        epoch = int(best["epoch"])
    else:
        epoch = max(dirs)
    return epoch, dirs[epoch]


def _images_in(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and is_image_path(p)}


def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _cell(path: Path | None, height: int) -> Image.Image:
    if path is None:
        cell = Image.new("RGB", (height, height), (96, 96, 96))
        ImageDraw.Draw(cell).text((8, height // 2 - 8), "missing", fill=(230, 230, 230), font=_font(16))
        return cell
    with Image.open(path) as image:
        image = image.convert("RGB")
        width = max(1, round(image.width * height / image.height))
        return image.resize((width, height), Image.BICUBIC)


def image_grid(val_low: Path, val_label: Path, columns: Sequence[tuple[str, dict[str, Path]]],
               count: int, cell_height: int) -> tuple[bytes, list[str]] | None:
    """PNG bytes of the grid (input | columns... | label) and the stems shown; None if no image fits."""
    lows = images_by_stem(find_images(val_low))
    labels = images_by_stem(find_images(val_label))
    candidates = sorted(lows.keys() & labels.keys())
    with_outputs = [s for s in candidates if any(s in images for _, images in columns)]
    stems = with_outputs[:count]
    if not stems:
        return None
    headers = ["input", *(name for name, _ in columns), "label"]
    grid_rows = [[_cell(lows[s], cell_height), *(_cell(images.get(s), cell_height) for _, images in columns),
                  _cell(labels[s], cell_height)] for s in stems]
    font = _font(14)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    widths = [max(max(row[c].width for row in grid_rows), int(measure.textlength(headers[c], font=font)) + 6)
              for c in range(len(headers))]
    pad, header_h = 4, 28
    canvas = Image.new("RGB", (sum(widths) + pad * (len(widths) + 1),
                               header_h + len(stems) * (cell_height + pad) + pad), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    x = pad
    for c, header in enumerate(headers):
        draw.text((x, 6), header, fill=(0, 0, 0), font=font)
        for r, row in enumerate(grid_rows):
            canvas.paste(row[c], (x, header_h + r * (cell_height + pad)))
        x += widths[c] + pad
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return buffer.getvalue(), stems


# --------------------------------------------------------------------------------------- report

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
           "weights, CIEDE2000 in runs from before it was measured).", ""]
    md += ["## Validation metrics", "", *results_table(runs, config.best_by), ""]
    if any(not run.val for run in runs):
        empty = ", ".join(f"`{run.path}`" for run in runs if not run.val)
        md += [f"No validation rows yet in: {empty}.", ""]
    seeds = seed_summary_table(runs)
    if seeds:
        md += ["### Over seeds (last epoch, mean ± standard deviation)", "", *seeds, ""]
    from uegan.apps.study import seed_comparison_lines  # differences against the seed spread

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
        columns: list[tuple[str, dict[str, Path]]] = []
        described = []
        for run in runs:
            chosen = grid_epoch_dir(run, config.best_by)
            if chosen is None:
                described.append(f"{run.label}: no saved validation images")
                columns.append((run.label, {}))
                continue
            epoch, folder = chosen
            columns.append((f"{run.label} ep {epoch}", _images_in(folder)))
            described.append(f"{run.label}: epoch {epoch}")
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

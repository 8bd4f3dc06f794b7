"""The pictures of a report: validation and loss curves (matplotlib), the image grid and the
figure of the random seeds (Pillow).

The curves take ``matplotlib.figure`` as an argument (it is an optional extra; ``uegan report``
decides whether it is there). Runs are anything shaped like :class:`uegan.apps.report.Run`.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from PIL import Image, ImageDraw, ImageFont

from uegan.apps.seeds import METRICS, VariantSummary
from uegan.apps.tables import finite
from uegan.io.images import find_images, images_by_stem, is_image_path
from uegan.metrics import DIGITS, LOWER_IS_BETTER
from uegan.training.run_folder import RunFolder

LOSS_KEYS: tuple[str, ...] = ("d_loss", "g_loss", "g_adv_loss", "g_fidelity_loss", "g_identity_loss")
VAL_METRICS = METRICS


class RunLike(Protocol):
    """What the pictures need of a run."""

    path: Path
    label: str
    train: list[dict[str, Any]]
    val: list[dict[str, Any]]

    def val_by_epoch(self) -> list[dict[str, Any]]: ...

    def best(self, by: Any = "psnr") -> dict[str, Any] | None: ...


# ---------------------------------------------------------------------------------------- curves

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


def validation_figure(figure_module: Any, runs: Sequence[RunLike]) -> bytes | None:
    keys = [k for k in VAL_METRICS if any(finite(r.get(k)) is not None for run in runs for r in run.val)]
    if not keys:
        return None
    figure = figure_module.Figure(figsize=(5 * len(keys), 4), layout="constrained")
    axes = figure.subplots(1, len(keys), squeeze=False)[0]
    for ax, key in zip(axes, keys):
        for run in runs:
            points = [(int(r["epoch"]), finite(r.get(key))) for r in run.val_by_epoch()]
            points = [(e, v) for e, v in points if v is not None]
            if points:
                ax.plot(*zip(*points), marker="o", markersize=3, label=run.label)
        ax.set_xlabel("epoch")
        ax.set_title(key.upper() + (" (dB)" if key == "psnr" else "")
                     + (" (lower is better)" if key in LOWER_IS_BETTER else ""))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    return _png(figure)


def loss_figure(figure_module: Any, runs: Sequence[RunLike]) -> bytes | None:
    keys = [k for k in LOSS_KEYS if any(finite(r.get(k)) is not None for run in runs for r in run.train)]
    if not keys:
        return None
    columns = min(3, len(keys))
    rows_n = math.ceil(len(keys) / columns)
    figure = figure_module.Figure(figsize=(5 * columns, 3.6 * rows_n), layout="constrained")
    axes = figure.subplots(rows_n, columns, squeeze=False).ravel()
    for ax, key in zip(axes, keys):
        smoothed = False
        for run in runs:
            points = [(int(r.get("step", i)), finite(r.get(key))) for i, r in enumerate(run.train)]
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

def _epoch_dirs(run: RunLike) -> dict[int, Path]:
    return RunFolder(run.path).epoch_image_dirs()


def grid_epoch_dir(run: RunLike, best_by: str) -> tuple[int, Path] | None:
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


def images_in(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and is_image_path(p)}


def default_font(size: int) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _cell(path: Path | None, height: int) -> Image.Image:
    if path is None:
        cell = Image.new("RGB", (height, height), (96, 96, 96))
        ImageDraw.Draw(cell).text((8, height // 2 - 8), "missing", fill=(230, 230, 230), font=default_font(16))
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
    font = default_font(14)
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


def grid_columns(runs: Sequence[RunLike], best_by: str) -> tuple[list[tuple[str, dict[str, Path]]], list[str]]:
    """One grid column per run (its label and images, by stem), and which epoch each shows."""
    columns: list[tuple[str, dict[str, Path]]] = []
    described = []
    for run in runs:
        chosen = grid_epoch_dir(run, best_by)
        if chosen is None:
            described.append(f"{run.label}: no saved validation images")
            columns.append((run.label, {}))
            continue
        epoch, folder = chosen
        columns.append((f"{run.label} ep {epoch}", images_in(folder)))
        described.append(f"{run.label}: epoch {epoch}")
    return columns, described


# ------------------------------------------------------------------------------ random seeds

def seeds_figure(summaries: Sequence[VariantSummary], metric: str = "psnr") -> bytes | None:
    """A small PNG: one dot per random seed, mean ± std bar, one row per variant (Pillow only)."""
    rows = [s for s in summaries if s.n(metric)]
    if not rows:
        return None
    values = [v for s in rows for v in s.values[metric]]
    low, high = min(values), max(values)
    span = max(high - low, 1e-6)
    low, high = low - 0.1 * span, high + 0.1 * span
    font = default_font(13)
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
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()

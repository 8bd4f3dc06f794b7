"""``uegan demo``: UEGAN end to end on a fresh machine, with nothing downloaded.

:func:`run_demo` builds the data set of :mod:`uegan.apps.demo_data` (scikit-image's sample
photos, degraded at random; held-out pairs never trained on), trains each model of
:class:`~uegan.apps.demo_results.DemoSettings` with :class:`uegan.training.trainer.Trainer`,
enhances the held-out photos with :class:`uegan.inference.Enhancer`, scores input and outputs
against the originals with :func:`uegan.evaluation.score_pair` (published protocol), and writes
before/after images, ``results.json`` and the HTML page of :mod:`uegan.apps.demo_page`.

The names other code takes from here (the data set's photos, degradations and settings) are
importable from this module as well as from their own.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from uegan.apps.demo_data import (HELD_OUT_PHOTOS, TRAINING_PHOTOS, DemoData, Degradation, build_dataset,
                                  load_photo, random_degradation, save_png, skimage_data_folder, to_uint8)
from uegan.apps.demo_page import format_table, render_html
from uegan.apps.demo_results import (COMPARE_WITH, DEFAULT_OUT, DEMO_SCHEDULE, DEMO_STEPS, METRICS, RANDOM_VGG_NOTE,
                                     DemoResult, DemoSettings, ImageRow, ModelRun, demo_schedule,
                                     result_dict)
from uegan.errors import UserError
from uegan.evaluation import score_pair
from uegan.inference import Enhancer
from uegan.io.images import load_rgb8
from uegan.models.vgg import VGG19Features
from uegan.training.config import TrainConfig
from uegan.training.step import train_step
from uegan.training.run_folder import RunFolder
from uegan.training.trainer import Trainer
from uegan.variants import get_variant
from uegan.weights import build_vgg19, vgg19_cache_path

__all__ = [  # the demo's own names, and those other code takes from here
    "COMPARE_WITH", "DEFAULT_OUT", "DEMO_SCHEDULE", "DEMO_STEPS", "HELD_OUT_PHOTOS", "METRICS",
    "RANDOM_VGG_NOTE", "TRAINING_PHOTOS", "DemoData", "DemoResult", "DemoSettings", "Degradation",
    "build_dataset", "choose_threads", "default_out_dir", "demo_schedule", "find_vgg", "format_table",
    "load_photo", "prepare_out_dir", "random_degradation", "render_html", "run_demo",
    "skimage_data_folder", "to_uint8", "train_config",
]

log = logging.getLogger(__name__)

OUR_NAMES = ("index.html", "results.json", "images", "data", "run")


def default_out_dir(base: str | Path = DEFAULT_OUT) -> Path:
    """``./uegan-demo``, or ``./uegan-demo-2``, ``-3``, ... when that one is taken and not empty."""
    base = Path(base)
    candidate, number = base, 1
    while candidate.exists() and (not candidate.is_dir() or any(candidate.iterdir())):
        number += 1
        candidate = base.with_name(f"{base.name}-{number}")
    return candidate


def prepare_out_dir(out: Path, overwrite: bool) -> None:
    """Refuse a non-empty folder unless ``overwrite``; then remove only the demo's own outputs."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder: choose another --out")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise UserError(f"{out} is not empty: pass --overwrite to replace the demo's outputs "
                            f"there, or choose another --out")
        for name in OUR_NAMES:
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    out.mkdir(parents=True, exist_ok=True)


def find_vgg(vgg_weights: str | None) -> tuple[VGG19Features, str]:
    """(VGG19 feature extractor, description): ImageNet weights when present, else random."""
    if vgg_weights is not None:
        return build_vgg19(vgg_weights, download=False), f"imagenet: {vgg_weights}"
    cached = vgg19_cache_path()
    if cached.is_file():
        return build_vgg19(cached, download=False), f"imagenet: {cached}"
    log.warning("%s", RANDOM_VGG_NOTE)
    return VGG19Features(), "random"


def train_config(settings: DemoSettings, data: DemoData, run_dir: Path, variant: str, steps: int,
                 lr_scale: float = 1.0, epochs: int = 1) -> TrainConfig:
    """The demo's TrainConfig for ``variant``: published losses and weights, reduced size, the
    published learning rates times ``lr_scale``, ``steps`` in all, and linear decay over the
    second half of ``epochs`` (:func:`run_demo` takes as many epochs as the steps fill)."""
    return TrainConfig(
        low=str(data.low), high=str(data.high), out=str(run_dir), variant=variant,
        conv_dim=settings.conv_dim, d_conv_dim=settings.d_conv_dim,
        crop_size=settings.crop_size, image_size=settings.image_size,
        batch_size=settings.batch_size, steps=steps, epochs=epochs, decay_epochs=epochs // 2,
        g_lr=1e-4 * lr_scale, d_lr=4e-4 * lr_scale,
        save_every=steps, keep_last=1, val_save_images=0, num_workers=0, seed=settings.seed,
        progress=settings.progress, log_every=max(1, steps // 20), device="cpu",
    ).validate()


def _time_step(trainer: Trainer, low: torch.Tensor, high: torch.Tensor, threads: int) -> float:
    """Seconds of one training step of ``trainer``'s networks with ``threads`` torch threads."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        start = time.perf_counter()
        train_step(trainer.generator, trainer.discriminator, trainer.fidelity, trainer.pool,
                   trainer.opt_g, trainer.opt_d, low, high)
        return time.perf_counter() - start
    finally:
        torch.set_num_threads(previous)


def choose_threads(trainer: Trainer, settings: DemoSettings) -> tuple[int, float]:
    """(threads, seconds per step): 1 or all threads, whichever runs a training step faster (on
    a busy machine one thread can be several times faster than two that wait on each other).

    Timed on the networks of ``trainer`` (one built for this and never fitted) with random
    images of the demo's batch shape."""
    if settings.threads:
        return settings.threads, float("nan")
    shape = (settings.batch_size, 3, settings.image_size, settings.image_size)
    rng = torch.Generator().manual_seed(0)
    low = torch.rand(shape, generator=rng) * 2 - 1
    high = torch.rand(shape, generator=rng) * 2 - 1
    candidates = sorted({1, torch.get_num_threads(), os.cpu_count() or 1})
    _time_step(trainer, low, high, candidates[0])  # warm-up
    timed: dict[int, float] = {}
    for threads in candidates:
        first = _time_step(trainer, low, high, threads)
        best = min(timed.values(), default=float("inf"))
        timed[threads] = first if first > 1.5 * best else min(first, _time_step(trainer, low, high, threads))
    threads = min(timed, key=timed.get)
    log.info("one training step takes %.2f s with %d thread(s) (%s)", timed[threads], threads,
             ", ".join(f"{t} thread(s): {s:.2f} s" for t, s in timed.items()))
    return threads, timed[threads]


@dataclass(frozen=True)
class HeldOut:
    """A held-out photo: degraded input and original, 8-bit."""

    name: str
    degradation: str
    degraded: np.ndarray
    original: np.ndarray


def read_held_out(data: DemoData) -> list[HeldOut]:
    """The held-out pairs as written to disk (the figures are those of the files)."""
    return [HeldOut(label.stem, Degradation(**data.degradations[f"test/low/{label.name}"]).describe(),
                    load_rgb8(data.test_low / label.name), load_rgb8(label))
            for label in sorted(data.test_label.glob("*.png"))]


def _check_models(models: list[tuple[str, int, float]]) -> None:
    for variant, steps, _ in models:
        get_variant(variant)  # an unknown name fails here, before any work
        if steps < 1:
            raise UserError(f"the demo needs at least 1 training step (got {steps} for {variant})")


def _train_and_enhance(settings: DemoSettings, data: DemoData, out: Path, vgg: VGG19Features,
                       model: tuple[str, int, float], steps_per_epoch: int,
                       held_out: list[HeldOut], rows: list[ImageRow]) -> ModelRun:
    """Train one model, enhance every held-out photo with it, and add its scores to ``rows``."""
    variant, steps, lr_scale = model
    run_dir = out / "run" / variant
    epochs = max(1, -(-steps // steps_per_epoch))
    config = train_config(settings, data, run_dir, variant, steps, lr_scale, epochs)
    log.info("training %s (conv_dim %d, %dx%d crops, batch %d, learning rates x%g) for %d steps",
             variant, settings.conv_dim, settings.image_size, settings.image_size,
             settings.batch_size, lr_scale, steps)
    start = time.perf_counter()
    Trainer(config, vgg=vgg).fit()
    seconds = time.perf_counter() - start
    enhancer = Enhancer.load(RunFolder(run_dir).generator_file, "cpu", precision="fp32")
    for row, photo in zip(rows, held_out):
        enhanced = enhancer(photo.degraded)
        save_png(out / "images" / f"{photo.name}-{variant}.png", enhanced)
        row.outputs[variant] = score_pair(enhanced, photo.original)
    return ModelRun(variant, steps, lr_scale, seconds)


def run_demo(out: str | Path, settings: DemoSettings = DemoSettings(), overwrite: bool = False) -> DemoResult:
    """Build the data set, train each model, enhance the held-out photos, measure, write the page."""
    started = time.perf_counter()
    models = settings.models()
    _check_models(models)
    out = Path(out)
    prepare_out_dir(out, overwrite)
    log.info("building the demo data set from scikit-image's sample photos in %s", out / "data")
    data = build_dataset(out / "data", settings.seed, settings.low_copies, settings.held_out_copies)
    vgg, vgg_description = find_vgg(settings.vgg_weights)
    # a trainer built and never fitted: its steps per epoch size the schedules (the same data
    # for every model), and its networks time the thread counts
    probe = Trainer(train_config(settings, data, out / "run" / settings.variant, settings.variant, 1), vgg=vgg)
    steps_per_epoch = probe.steps_per_epoch
    threads, _ = choose_threads(probe, settings)
    del probe

    held_out = read_held_out(data)
    rows = [ImageRow(photo.name, photo.degradation, score_pair(photo.degraded, photo.original), {})
            for photo in held_out]
    for photo in held_out:
        save_png(out / "images" / f"{photo.name}-input.png", photo.degraded)
        save_png(out / "images" / f"{photo.name}-original.png", photo.original)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        runs = [_train_and_enhance(settings, data, out, vgg, model, steps_per_epoch, held_out, rows)
                for model in models]
    finally:
        torch.set_num_threads(previous_threads)
    result = DemoResult(out, rows, runs, threads, time.perf_counter() - started, vgg_description,
                        settings)
    (out / "results.json").write_text(json.dumps(result_dict(result), indent=1) + "\n", encoding="utf-8")
    (out / "index.html").write_text(render_html(result), encoding="utf-8")
    return result

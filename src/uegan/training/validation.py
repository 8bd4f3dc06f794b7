"""Validation during training: the generator on the paired validation photos, scored as
``uegan evaluate`` scores them (:func:`uegan.evaluation.score_pair`).

Photos run at their native resolution (padded to multiples of 16, run, cropped; rounded to
8 bits as published). The per-image figures go to ``validation/epoch_XXXX.json`` of the run
folder, the first few outputs to ``val_images/epoch_XXXX/`` and to TensorBoard; the true means
are returned (the trainer logs them and keeps the best).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from uegan.evaluation import score_pair
from uegan.inference import Enhancer
from uegan.io.files import atomic_path, atomic_write_text
from uegan.io.images import load_rgb8
from uegan.metrics import FULL_REFERENCE, true_mean
from uegan.nima import NimaScorer, load_nima
from uegan.progress import Progress
from uegan.models.generator import Generator
from uegan.training.data import ValidationPair
from uegan.training.run_folder import RunFolder
from uegan.training.run_log import RunLogger

SCORES = FULL_REFERENCE


@dataclass(frozen=True)
class ValidationSet:
    """The paired photos, how many outputs to save, and the NIMA weights (None: no NIMA)."""

    pairs: list[ValidationPair]
    save_images: int = 4
    nima_weights: str | None = None
    progress: bool = False  # a bar on a terminal, else a line every 10 s (uegan.progress)


def _nima_scorer(weights: str | None, device: torch.device) -> Any:
    if not weights:
        return None
    return NimaScorer(load_nima(weights, device))


def validate_generator(generator: Generator, device: torch.device, data: ValidationSet,
                       folder: RunFolder, logger: RunLogger | None, step: int,
                       epoch: int) -> dict[str, float]:
    """Enhance and score every validation pair; write the figures and saved outputs of 1-based
    ``epoch``; the true means of each metric."""
    enhancer = Enhancer(generator, device, max_side=None, precision="fp32")  # the exact model
    generator.train()  # (G has no mode-dependent layers; keep the trainer's mode)
    scorer = _nima_scorer(data.nima_weights, device)
    per_image, saved = [], []
    with Progress(len(data.pairs), "validating", enabled=data.progress) as progress:
        for index, pair in enumerate(data.pairs):
            low, label = load_rgb8(pair.low), load_rgb8(pair.label)
            output = enhancer.enhance_array(low)
            row: dict[str, Any] = {"image": pair.stem, **score_pair(output, label)}
            if scorer is not None:
                row["nima"] = scorer.score_images([output])[0].mean
            per_image.append(row)
            if index < data.save_images:
                saved.append((pair.stem, low, output, label))
            progress.update()
    keys = SCORES + (("nima",) if scorer is not None else ())
    result = {key: true_mean([r[key] for r in per_image]) for key in keys}
    atomic_write_text(folder.validation_file(epoch),
                      json.dumps({"step": step, "epoch": epoch, **result, "images": per_image},
                                 indent=2) + "\n", overwrite=True)
    for stem, low, output, label in saved:
        with atomic_path(folder.val_images(epoch) / f"{stem}.png", overwrite=True) as temporary:
            Image.fromarray(output).save(temporary, format="PNG")
        if logger is not None:
            logger.add_image(f"val_images/{stem}", np.concatenate([low, output, label], axis=1), step)
    return result

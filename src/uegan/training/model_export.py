"""The generator a training run exports (``generator.safetensors``, and
``generator_best.safetensors`` at the best validation), each with its model card beside it
(``generator.safetensors.md``, ``generator_best.safetensors.md``: :mod:`uegan.model_card`) and
the card's facts in the file's metadata. ``uegan export RUN_DIR/generator.safetensors --folder
DIR`` turns one into a pretrained folder that keeps them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from uegan import __version__
from uegan.checkpoints import save_generator
from uegan.model_card import VALIDATION_KEYS, ModelCard
from uegan.models.generator import Generator
from uegan.pretrained import write_card
from uegan.training.config import TrainConfig


@dataclass
class RunFacts:
    """What a run knows about the generator it exports."""

    config: TrainConfig
    variant: str
    step: int
    epochs: int                       # completed
    sizes: tuple[int, int]            # low- and high-quality training images
    val_pairs: int
    best: dict[str, Any]              # the best validation so far (empty: none yet)


def run_card(facts: RunFacts, run_dir: Path) -> ModelCard:
    config = facts.config
    data: dict[str, Any] = {"low": config.low, "high": config.high, "low_images": facts.sizes[0],
                            "high_images": facts.sizes[1]}
    if config.val_low is not None:
        data.update(val_low=config.val_low, val_label=config.val_label, val_pairs=facts.val_pairs)
    return ModelCard(variant=facts.variant, source=f"training run {run_dir} at step {facts.step}",
                     steps=facts.step, epochs=facts.epochs, init_from=config.init_from,
                     data=data, validation={k: v for k, v in facts.best.items()
                                            if k in VALIDATION_KEYS},
                     uegan_version=__version__)


def export_generator(path: Path, generator: Generator, facts: RunFacts) -> Path:
    """Write ``generator`` to ``path`` (replacing the run's previous export) and its card."""
    card = run_card(facts, path.parent)
    save_generator(path, generator, facts.variant, overwrite=True, card=card)
    write_card(path, card, overwrite=True)
    return path

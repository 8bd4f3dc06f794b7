"""The run folder of ``uegan train``: the one place that names its files and reads them back.

A run folder holds ``config.json`` (the resolved configuration), ``versions.json`` (software,
machine, data sizes and ``total_steps``), ``metrics.jsonl`` (one JSON object per line: train
and validation rows), ``train.log``, ``checkpoints/``, ``validation/epoch_XXXX.json``
(per-image metrics), ``val_images/epoch_XXXX/`` (validation outputs), ``tensorboard/`` (when
TensorBoard is installed), ``generator.safetensors`` (the final generator) and
``generator_best.safetensors`` (the best by validation PSNR), each with its model card beside it
(``generator.safetensors.md``, ``generator_best.safetensors.md``).

The trainer writes these files, ``uegan report`` and ``uegan study`` read them: all through
:class:`RunFolder`, so a name is spelled once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from uegan.errors import UserError

CONFIG_FILE = "config.json"
VERSIONS_FILE = "versions.json"
METRICS_FILE = "metrics.jsonl"
LOG_FILE = "train.log"
CHECKPOINT_DIR = "checkpoints"
VALIDATION_DIR = "validation"
VAL_IMAGES_DIR = "val_images"
TENSORBOARD_DIR = "tensorboard"
GENERATOR_FILE = "generator.safetensors"
BEST_GENERATOR_FILE = "generator_best.safetensors"
EPOCH_PREFIX = "epoch_"

RunStatus = Literal["done", "partial", "new"]


def epoch_name(epoch: int) -> str:
    """``epoch_0007`` for 1-based epoch 7."""
    return f"{EPOCH_PREFIX}{epoch:04d}"


@dataclass(frozen=True)
class RunFolder:
    """The files of one run folder (nothing is read or created until asked)."""

    path: Path

    def __init__(self, path: str | Path):
        object.__setattr__(self, "path", Path(path).expanduser())

    # ----------------------------------------------------------------- names

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def versions_file(self) -> Path:
        return self.path / VERSIONS_FILE

    @property
    def metrics_file(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def log_file(self) -> Path:
        return self.path / LOG_FILE

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / CHECKPOINT_DIR

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / TENSORBOARD_DIR

    @property
    def generator_file(self) -> Path:
        return self.path / GENERATOR_FILE

    @property
    def best_generator_file(self) -> Path:
        return self.path / BEST_GENERATOR_FILE

    @property
    def val_images_dir(self) -> Path:
        return self.path / VAL_IMAGES_DIR

    def validation_file(self, epoch: int) -> Path:
        """The per-image validation metrics after 1-based ``epoch``."""
        return self.path / VALIDATION_DIR / f"{epoch_name(epoch)}.json"

    def val_images(self, epoch: int) -> Path:
        """The folder of the validation outputs saved after 1-based ``epoch``."""
        return self.val_images_dir / epoch_name(epoch)

    # ----------------------------------------------------------------- reading back

    def is_started(self) -> bool:
        """True once a run wrote its configuration or a checkpoint folder here."""
        return self.config_file.exists() or self.checkpoint_dir.exists()

    def epoch_image_dirs(self) -> dict[int, Path]:
        """1-based epoch -> its folder of saved validation outputs."""
        found: dict[int, Path] = {}
        if self.val_images_dir.is_dir():
            for child in self.val_images_dir.iterdir():
                number = child.name[len(EPOCH_PREFIX):]
                if child.is_dir() and child.name.startswith(EPOCH_PREFIX) and number.isdigit():
                    found[int(number)] = child
        return found

    def read_config(self) -> dict[str, Any]:
        """``config.json`` as a dict; a UserError naming the file otherwise."""
        try:
            data = json.loads(self.config_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"{self.path}: no {CONFIG_FILE} (is this a folder written by "
                            f"'uegan train'?)") from None
        except (OSError, ValueError) as error:
            raise UserError(f"{self.config_file}: cannot read ({error})") from error
        if not isinstance(data, dict):
            raise UserError(f"{self.config_file}: expected a JSON object")
        return data

    def metrics_lines(self) -> list[str]:
        """The lines of ``metrics.jsonl`` (none when it does not exist)."""
        if not self.metrics_file.is_file():
            return []
        return self.metrics_file.read_text(encoding="utf-8").splitlines()

    def read_metrics(self) -> list[dict[str, Any]]:
        """The rows of ``metrics.jsonl`` that parse as JSON objects; a line a crash cut short
        (or a run still writing) is left out."""
        rows = []
        for line in self.metrics_lines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict):
                rows.append(row)
        return rows

    def total_steps(self) -> int | None:
        """The run's planned number of steps (``versions.json``), None if unknown."""
        try:
            return int(json.loads(self.versions_file.read_text(encoding="utf-8"))["total_steps"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def status(self) -> RunStatus:
        """``done`` (validated after its last step), ``partial`` (started) or ``new``."""
        if not self.path.exists():
            return "new"
        total = self.total_steps()
        if total is not None and any(row.get("kind") == "val" and row.get("step") == total
                                     for row in self.read_metrics()):
            return "done"
        return "partial" if self.is_started() else "new"

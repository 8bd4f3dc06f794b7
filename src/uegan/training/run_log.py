"""The logs of a training run (rank 0): ``train.log``, ``metrics.jsonl``, TensorBoard, and the
run's description files (``config.json``, ``versions.json``).

    with RunLogger(RunFolder(out), tensorboard=True, resume_step=None) as logger:
        logger.write_description(config_dict, {"device": "cpu", ...})
        logger.write_row({"kind": "train", "step": 10, "epoch": 1, "d_loss": 0.5, ...})

Every row goes to ``metrics.jsonl`` (flushed at once: a crash loses no row) and its numbers to
TensorBoard as ``train/<key>`` or ``val/<key>``. On resume the rows an interrupted run logged
after the checkpoint it resumes from are dropped first, so the file tells one history.
"""

from __future__ import annotations

import json
import logging
import platform
import sys
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TextIO

import numpy as np
import PIL
import torch

from uegan import __version__
from uegan.io.files import atomic_write_text
from uegan.progress import format_seconds
from uegan.training.config import TrainConfig
from uegan.training.run_folder import METRICS_FILE, RunFolder

log = logging.getLogger(__name__)

PACKAGE_LOGGER = "uegan"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_OPTIONAL_MODULES = ("safetensors", "yaml", "tqdm", "tensorboard")
_IN_FILE = "uegan_in_train_log"  # a record already written to train.log (not again)


def software_versions() -> dict[str, Any]:
    """The versions of Python, torch and the other libraries a run used."""
    versions: dict[str, Any] = {
        "uegan": __version__, "python": sys.version.split()[0], "platform": platform.platform(),
        "torch": torch.__version__, "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "numpy": np.__version__, "pillow": PIL.__version__,
    }
    for module in _OPTIONAL_MODULES:
        try:
            versions[module] = getattr(__import__(module), "__version__", "unknown")
        except ImportError:
            versions[module] = None
    return versions


def open_tensorboard(folder: RunFolder, purge_step: int | None) -> Any:
    """A TensorBoard ``SummaryWriter`` on the run folder, or None when tensorboard is not
    installed (an optional dependency: imported here, only when asked for)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.info("TensorBoard logging is off (the tensorboard package is not installed: "
                 "pip install 'uegan[tensorboard]'); the same scalars go to %s", METRICS_FILE)
        return None
    return SummaryWriter(str(folder.tensorboard_dir), purge_step=purge_step)


def trim_metrics(folder: RunFolder, step: int) -> int:
    """Drop the rows logged after ``step`` (and lines cut short); how many were dropped."""
    lines = folder.metrics_lines()
    kept = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:  # a line cut short by a crash
            continue
        if int(row.get("step", 0)) <= step:
            kept.append(line)
    dropped = len(lines) - len(kept)
    if dropped:
        atomic_write_text(folder.metrics_file, "".join(f"{line}\n" for line in kept), overwrite=True)
        log.info("%s: dropped %d row(s) logged after step %d", METRICS_FILE, dropped, step)
    return dropped


@dataclass(frozen=True)
class RunPlan:
    """What a run is about to do, for the log."""

    variant: str
    config: TrainConfig
    sizes: tuple[int, int]          # low- and high-quality images
    validation_pairs: int
    steps_per_epoch: int
    total_steps: int
    device: torch.device
    world_size: int

    def facts(self) -> dict[str, Any]:
        """The plan's entries of ``versions.json``."""
        facts: dict[str, Any] = {
            "device": str(self.device), "world_size": self.world_size,
            "images": {"low": self.sizes[0], "high": self.sizes[1],
                       "validation": self.validation_pairs},
            "steps_per_epoch": self.steps_per_epoch, "total_steps": self.total_steps}
        if self.device.type == "cuda":
            facts["gpu"] = torch.cuda.get_device_name(self.device)
        return facts


def log_plan(plan: RunPlan) -> None:
    """One line on what the run trains, with warnings for plans that surprise."""
    config, per_step = plan.config, plan.config.batch_size * plan.world_size
    log.info("training %s (conv_dim %d) on %d low-quality and %d high-quality images%s; "
             "%d step(s) per epoch, %d in total; %s, %d process(es), %s", plan.variant,
             config.conv_dim, plan.sizes[0], plan.sizes[1],
             f", {plan.validation_pairs} validation pairs" if plan.validation_pairs else "",
             plan.steps_per_epoch, plan.total_steps, plan.device, plan.world_size,
             config.precision)
    if min(plan.sizes) < per_step:
        log.warning("the smaller set has %d images, less than one batch of %d: images repeat "
                    "within a step", min(plan.sizes), per_step)
    if plan.total_steps > config.epochs * plan.steps_per_epoch:
        log.warning("%d steps run past the %d-epoch schedule: the learning rate is zero after "
                    "epoch %d", plan.total_steps, config.epochs, config.epochs)


def train_row_line(row: dict[str, Any], total_steps: int, elapsed: float,
                   eta: float | None) -> str:
    """A train row of ``metrics.jsonl`` as a log line, with the time since this process started
    training and the estimated time to the last step (BasicSR-like ``eta``)."""
    eta_text = format_seconds(eta) if eta is not None else "unknown"
    return (f"step {row['step']}/{total_steps} epoch {row['epoch']}: d {row['d_loss']:.4f} "
            f"g {row['g_loss']:.4f} (adv {row['g_adv_loss']:.4f} fid {row['g_fidelity_loss']:.4f} "
            f"idt {row['g_identity_loss']:.4f}) {row['steps_per_s']:.2f} steps/s, "
            f"elapsed {format_seconds(elapsed)}, eta {eta_text}")


def remaining_seconds(done: int, remaining: int, elapsed: float) -> float | None:
    """The time ``remaining`` steps take at the mean rate of the ``done`` ones (validation and
    checkpoints included); None before the first step."""
    if done <= 0 or elapsed <= 0:
        return None
    return remaining * elapsed / done


class LossMeter:
    """The loss terms summed over a logging interval, and the interval's speed in steps per
    second, not counting the time spent in validation and checkpoints (:meth:`pause`)."""

    def __init__(self, size: int):
        self.sums = torch.zeros(size, dtype=torch.float64)
        self.steps = 0
        self.paused = 0.0
        self.start = time.perf_counter()

    def add(self, values: torch.Tensor) -> None:
        self.sums += values
        self.steps += 1

    def pause(self, seconds: float) -> None:
        self.paused += seconds

    def take(self) -> tuple[torch.Tensor, float]:
        """The mean losses and steps per second since the last call; starts a new interval."""
        elapsed = time.perf_counter() - self.start - self.paused
        result = (self.sums / max(self.steps, 1), self.steps / max(elapsed, 1e-9))
        self.sums = torch.zeros_like(self.sums)
        self.steps = 0
        self.paused = 0.0
        self.start = time.perf_counter()
        return result


class RunLogger:
    """The open log outputs of a run (a context manager; closes them on exit).

    ``resume_step``: the step the run resumes from (rows after it are dropped, TensorBoard
    events after it purged); None for a new run.
    """

    def __init__(self, folder: RunFolder, tensorboard: bool, resume_step: int | None):
        self.folder = folder
        self._tensorboard = tensorboard
        self._resume_step = resume_step
        self._handler: logging.Handler | None = None
        self._metrics: TextIO | None = None
        self.writer: Any = None

    def __enter__(self) -> "RunLogger":
        self.folder.path.mkdir(parents=True, exist_ok=True)
        self._handler = logging.FileHandler(self.folder.log_file, encoding="utf-8")
        self._handler.setFormatter(logging.Formatter(LOG_FORMAT))
        self._handler.addFilter(lambda record: not getattr(record, _IN_FILE, False))
        logging.getLogger(PACKAGE_LOGGER).addHandler(self._handler)
        try:
            if self._resume_step is not None:
                trim_metrics(self.folder, self._resume_step)
            self._metrics = open(self.folder.metrics_file, "a", encoding="utf-8")
            if self._tensorboard:
                purge = self._resume_step + 1 if self._resume_step is not None else None
                self.writer = open_tensorboard(self.folder, purge)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self._metrics is not None:
            self._metrics.close()
            self._metrics = None
        if self._handler is not None:
            logging.getLogger(PACKAGE_LOGGER).removeHandler(self._handler)
            self._handler.close()
            self._handler = None

    def write_description(self, config: dict[str, Any], run_facts: dict[str, Any]) -> None:
        """``config.json`` (the resolved configuration) and ``versions.json`` (the software
        versions and ``run_facts``: device, data sizes, ``total_steps``, ...)."""
        atomic_write_text(self.folder.config_file, json.dumps(config, indent=2) + "\n",
                          overwrite=True)
        versions = software_versions()
        versions.update({"argv": sys.argv, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        versions.update(run_facts)
        atomic_write_text(self.folder.versions_file, json.dumps(versions, indent=2) + "\n",
                          overwrite=True)

    def write_row(self, row: dict[str, Any]) -> None:
        """One row of ``metrics.jsonl`` (``kind`` train or val, ``step``, ``epoch``, numbers)."""
        if self._metrics is not None:
            self._metrics.write(json.dumps(row) + "\n")
            self._metrics.flush()
        if self.writer is not None:
            prefix = "train" if row["kind"] == "train" else "val"
            for key, value in row.items():
                if key not in ("kind", "step", "epoch") and isinstance(value, (int, float)):
                    self.writer.add_scalar(f"{prefix}/{key}", value, row["step"])
            self.writer.flush()

    def log_to_file(self, message: str, level: int = logging.INFO) -> None:
        """``message`` in ``train.log`` only (the terminal shows a progress bar instead)."""
        if self._handler is not None:
            record = log.makeRecord(log.name, level, __file__, 0, message, None, None)
            self._handler.handle(record)

    def log_train_row(self, row: dict[str, Any], total_steps: int, done: int, elapsed: float,
                      to_terminal: bool) -> None:
        """A train row as a line with elapsed time and ETA (``done`` steps in ``elapsed``
        seconds): in ``train.log`` always, on the terminal too when no progress bar shows it."""
        eta = remaining_seconds(done, total_steps - row["step"], elapsed)
        line = train_row_line(row, total_steps, elapsed, eta)
        self.log_to_file(line)  # whatever the log level of the terminal (--quiet too)
        if to_terminal:
            log.info("%s", line, extra={_IN_FILE: True})

    def add_image(self, tag: str, image_hwc: np.ndarray, step: int) -> None:
        """An 8-bit RGB image to TensorBoard (nothing without it)."""
        if self.writer is not None:
            self.writer.add_image(tag, image_hwc, step, dataformats="HWC")


def divergence_message(names: tuple[str, ...], values: torch.Tensor, step: int,
                       last_checkpoint: object) -> str:
    """Why training stopped at a non-finite loss, and what is intact."""
    described = ", ".join(f"{name}={float(v):.4g}" for name, v in zip(names, values))
    last = (f"the last good checkpoint is {last_checkpoint}; continue from it with "
            f"--resume (perhaps with a lower learning rate or --precision fp32)"
            if last_checkpoint is not None else "no checkpoint was written yet")
    return (f"non-finite loss at step {step} ({described}): training stopped without saving; "
            f"{last}")

"""The UEGAN trainer: set-up, the training loop and the collectives between processes.

What it leans on: the step and its speed-ups (:mod:`uegan.training.step`), the checkpoint
schema (:mod:`uegan.training.checkpoint`), the run folder's files
(:mod:`uegan.training.run_folder`), the logs (:mod:`uegan.training.run_log`) and validation
(:mod:`uegan.training.validation`). Under ``torchrun`` every process trains on its own share of
each batch (DistributedDataParallel); only rank 0 writes files, validates and logs.
"""

from __future__ import annotations

import contextlib
import logging
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from uegan.errors import UserError
from uegan.models.vgg import VGG19Features
from uegan.runtime import run_eagerly
from uegan.training.checkpoint import (Progress, TrainingState, best_path, capture_rng_state,
                                       check_resumable, load_checkpoint, make_checkpoint, prune,
                                       rank_entry, read_progress, restore_rng_state,
                                       restore_training_state, resume_point, step_path,
                                       stream_sizes)
from uegan.training.checkpoint import save_checkpoint as write_checkpoint
from uegan.training.config import TrainConfig
from uegan.training.data import (HIGH, LOW, Augmentation, StepSampler, UnpairedBatches,
                                 ValidationPair, scan_run_data, step_loader)
from uegan.training.distributed import DistContext, init_distributed, wrap_ddp
from uegan.training.init_from import initial_weights_for
from uegan.training.model_export import RunFacts, export_generator
from uegan.training.networks import build_networks
from uegan.training.run_folder import RunFolder
from uegan.training.run_log import (LossMeter, RunLogger, RunPlan, divergence_message,
                                   log_plan)
from uegan.training.signals import StopRequest
from uegan.training.step import schedule_factor, set_learning_rates, train_step
from uegan.training.validation import ValidationSet, validate_generator
from uegan.variants import get_variant

log = logging.getLogger(__name__)

LOSS_NAMES = ("d_loss", "g_loss", "g_adv_loss", "g_fidelity_loss", "g_identity_loss")


class TrainingError(Exception):
    """Training cannot go on (a non-finite loss); the message says why and what is intact."""


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` did."""

    run_dir: Path
    step: int
    epoch: int                     # epochs completed
    interrupted: bool
    checkpoint: Path | None        # the newest checkpoint written
    generator: Path | None         # the exported generator (rank 0)
    best_psnr: float | None
    best_epoch: int | None
    stop_signal: int | None = None  # SIGINT or SIGTERM when a signal asked for the stop


class Trainer:
    """Trains one UEGAN variant from a :class:`TrainConfig`; :meth:`fit` runs the training.

        from uegan import TrainConfig, Trainer
        config = TrainConfig(low="lq/", high="hq/", out="runs/a", vgg_weights="vgg19.pth")
        result = Trainer(config).fit()   # result.generator: the exported generator file

    ``vgg``: a ready VGG19 feature extractor for the fidelity loss (else one is built from
    ``config.vgg_weights``). Under torchrun the constructor joins the process group.
    """

    def __init__(self, config: TrainConfig, vgg: VGG19Features | None = None):
        config.validate()
        config.require_paths()
        self.config = config
        self.folder = RunFolder(config.out)
        self.run_dir = self.folder.path
        self.dist: DistContext = init_distributed(config.device)
        self.device = self.dist.device
        try:
            self._setup(vgg)
        except BaseException:
            self.dist.close()
            raise

    # ------------------------------------------------------------------ set-up

    def _find_resume_point(self) -> Path | None:
        """Rank 0: the newest intact checkpoint to resume from (kept in ``_loaded``), if any."""
        if not self.config.resume:
            if self.folder.is_started():
                raise UserError(f"{self.run_dir} already holds a training run: pass --resume to "
                                f"continue it, or choose another --out")
            return None
        found = resume_point(self.run_dir)
        if found is None:
            return None
        self._loaded = found[1]
        return found[0]

    def _setup(self, vgg: VGG19Features | None) -> None:
        config, dist = self.config, self.dist
        self.variant = get_variant(config.variant)
        self._loaded: dict[str, Any] | None = None
        resume_from = self.dist.on_main(self._find_resume_point)
        checkpoint = None
        if resume_from is not None:
            checkpoint = self._loaded if self._loaded is not None else load_checkpoint(resume_from)
            check_resumable(checkpoint, resume_from, config, dist.world_size)
        self._loaded = None
        initial = initial_weights_for(config, self.variant, resume_from)  # before the seeding

        # random numbers: the same initial weights on every rank, the rest per rank
        random.seed(config.seed + dist.rank)
        np.random.seed(config.seed + dist.rank)
        torch.manual_seed(config.seed)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = not config.deterministic
        if config.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)

        # data (checked on rank 0, shared with the others)
        low, high, pairs = self.dist.on_main(lambda: scan_run_data(self.config, self.run_dir))
        augmentation = Augmentation(config.crop_size, config.image_size, config.hflip, config.vflip)
        self.dataset = UnpairedBatches(low, high, config.batch_size, augmentation, config.seed)
        self.validation_pairs: list[ValidationPair] = pairs
        self.sizes = (len(low), len(high))
        self.steps_per_epoch = max(1, min(self.sizes) // (config.batch_size * dist.world_size))
        self.total_steps = config.steps if config.steps is not None else config.epochs * self.steps_per_epoch

        nets = build_networks(config, self.variant, dist, vgg, initial)
        self.generator, self.discriminator, self.fidelity = nets.generator, nets.discriminator, nets.fidelity
        self.options, self.opt_g, self.opt_d = nets.options, nets.opt_g, nets.opt_d
        self.weights, self.precision, self.pool = nets.weights, nets.precision, nets.pool
        self.step, self.epoch, self.step_in_epoch = 0, 0, 0   # epoch: 0-based, in progress
        self.positions = {LOW: 0, HIGH: 0}
        self.best: dict[str, Any] = {}
        self.last_val_step = -1
        self.resumed_from = resume_from
        self.last_checkpoint: Path | None = resume_from
        if checkpoint is not None:
            self._restore(checkpoint)
        del checkpoint

        self.ddp_generator: torch.nn.Module = self.generator
        self.ddp_discriminator: torch.nn.Module = self.discriminator
        if dist.enabled:
            self.ddp_generator = wrap_ddp(self.generator, self.device)
            self.ddp_discriminator = wrap_ddp(self.discriminator, self.device)
        self.stop = StopRequest()
        self.meter = LossMeter(len(LOSS_NAMES))
        self.logger: RunLogger | None = None

    # ------------------------------------------------------------------ checkpoints

    def _state(self) -> TrainingState:
        streams = {name: self.dataset.streams[sid].describe(self.positions[sid])
                   for sid, name in ((LOW, "low"), (HIGH, "high"))}
        progress = Progress(self.step, self.epoch, self.step_in_epoch,
                            (self.positions[LOW], self.positions[HIGH]), self.best,
                            self.last_val_step)
        schedule = {"epoch": self.epoch, "lr_factor": self._lr_factor(),
                    "g_lr": self.config.g_lr, "d_lr": self.config.d_lr}
        return TrainingState(self.variant.name, self.generator, self.discriminator, self.opt_g,
                             self.opt_d, self.precision.scaler, progress, self.steps_per_epoch,
                             streams, schedule, self.config.to_dict(), self.dist.world_size)

    def _restore(self, checkpoint: dict[str, Any]) -> None:
        restore_training_state(checkpoint, self._state())
        mine = rank_entry(checkpoint, self.dist.rank)
        self.pool.load_state_dict(mine["pool"], self.device)
        restore_rng_state(mine["rng"])
        progress = read_progress(checkpoint)
        self.step, self.epoch, self.step_in_epoch = progress.step, progress.epoch, progress.step_in_epoch
        if self.step_in_epoch >= self.steps_per_epoch:  # world size or batch size changed
            self.epoch += 1
            self.step_in_epoch = 0
        self.positions = {LOW: progress.positions[0], HIGH: progress.positions[1]}
        saved_sizes = stream_sizes(checkpoint)
        if saved_sizes != self.sizes:
            log.warning("the image folders changed since the checkpoint (%d/%d low/high images, now "
                        "%d/%d): the data streams are reshuffled from here", *saved_sizes, *self.sizes)
        self.best = progress.best
        self.last_val_step = progress.last_val_step
        log.info("resuming from %s: step %d, epoch %d", self.resumed_from, self.step, self.epoch + 1)

    def save_checkpoint(self, best: bool = False) -> Path:
        """Write a checkpoint of the current state (collective: every rank must call it)."""
        per_rank = self.dist.gather({"pool": self.pool.state_dict(), "rng": capture_rng_state()})

        def write() -> str:
            path = best_path(self.run_dir, self.step) if best else step_path(self.run_dir, self.step)
            write_checkpoint(make_checkpoint(self._state(), per_rank), path)
            prune(self.run_dir, 1 if best else self.config.keep_last, "best_step" if best else "step")
            log.info("saved checkpoint %s", path)
            return str(path)

        self.last_checkpoint = Path(self.dist.on_main(write))
        return self.last_checkpoint

    def _lr_factor(self) -> float:
        return schedule_factor(self.epoch, self.config.epochs, self.config.decay_length)

    # ------------------------------------------------------------------ logs and validation

    @contextlib.contextmanager
    def _outputs(self) -> Iterator[None]:
        """Rank 0: the run's logs (log file, metrics file, TensorBoard) and description files."""
        if not self.dist.is_main:
            yield
            return
        # on --resume also when no checkpoint was found (a fresh start): rows after it dropped
        resume_step = self.step if self.config.resume else None
        with RunLogger(self.folder, self.config.tensorboard, resume_step) as logger:
            logger.write_description(self.config.to_dict(), self._plan().facts())
            self.logger = logger
            try:
                yield
            finally:
                self.logger = None

    def _plan(self) -> RunPlan:
        return RunPlan(self.variant.name, self.config, self.sizes, len(self.validation_pairs),
                       self.steps_per_epoch, self.total_steps, self.device, self.dist.world_size)

    def _write_row(self, row: dict[str, Any]) -> None:
        if self.logger is not None:
            self.logger.write_row(row)

    def _epoch_label(self) -> int:
        """1-based epoch of the latest step."""
        return self.epoch if self.step_in_epoch == 0 else self.epoch + 1

    @torch.inference_mode()
    def _run_validation(self, epoch_label: int) -> dict[str, Any]:
        # photos of every size: a compiled G would compile again for each new shape
        data = ValidationSet(self.validation_pairs, self.config.val_save_images,
                             self.config.nima_weights, progress=self.config.progress)
        with run_eagerly(self.options.compile):
            return validate_generator(self.generator, self.device, data, self.folder, self.logger,
                                      self.step, epoch_label)

    def validate(self) -> dict[str, Any] | None:
        """Validate on the paired set (rank 0), log, keep the best (collective)."""
        if not self.validation_pairs:
            return None
        epoch_label = self._epoch_label()
        start = time.perf_counter()
        result = self._run_validation(epoch_label) if self.dist.is_main else None
        result = self.dist.broadcast(result)
        self.last_val_step = self.step
        self._write_row({"kind": "val", "step": self.step, "epoch": epoch_label, **result,
                         "images": len(self.validation_pairs)})
        improved = not self.best or result["psnr"] > self.best["psnr"]
        log.info("validation after epoch %d (step %d): PSNR %.3f dB, SSIM %.4f, CIEDE2000 %.3f%s%s",
                 epoch_label, self.step, result["psnr"], result["ssim"], result["ciede2000"],
                 f", NIMA {result['nima']:.3f}" if "nima" in result else "",
                 " (best so far)" if improved else "")
        if improved:
            self.best = {"psnr": result["psnr"], "ssim": result["ssim"],
                         "ciede2000": result["ciede2000"], "epoch": epoch_label, "step": self.step}
            self.save_checkpoint(best=True)
            if self.dist.is_main:
                self._export(self.folder.best_generator_file)
        self.meter.pause(time.perf_counter() - start)
        return result

    def _export(self, path: Path) -> Path:
        """Write G and its model card (rank 0)."""
        return export_generator(path, self.generator, RunFacts(
            self.config, self.variant.name, self.step, self.epoch, self.sizes,
            len(self.validation_pairs), self.best))

    def _validation_due(self, completed_epochs: int) -> bool:
        start, every = self.config.val_start_epoch, self.config.val_every
        return completed_epochs >= start and (completed_epochs - start) % every == 0

    # ------------------------------------------------------------------ the loop

    def _loader(self) -> DataLoader:
        sampler = StepSampler(self.positions[LOW], self.positions[HIGH], self.total_steps - self.step,
                              self.config.batch_size, self.dist.rank, self.dist.world_size)
        return step_loader(self.dataset, sampler, self.config.num_workers, self.device)

    def fit(self) -> TrainResult:
        """Train until ``total_steps`` (or an interrupt); returns what was done."""
        interrupted = False
        generator_file = None
        try:
            with self._outputs(), self.stop:
                log_plan(self._plan())
                interrupted = self._loop()
                if self.dist.is_main:
                    generator_file = self._export(self.folder.generator_file)
            if interrupted:
                log.warning("stopped at step %d; continue with --resume (checkpoint %s)",
                            self.step, self.last_checkpoint)
        finally:
            self.dist.close()
        return TrainResult(self.run_dir, self.step, self.epoch, interrupted, self.last_checkpoint,
                           generator_file, self.best.get("psnr"), self.best.get("epoch"),
                           self.stop.signal if interrupted else None)

    def _one_step(self, low: torch.Tensor, high: torch.Tensor, reduce_device: torch.device
                  ) -> tuple[torch.Tensor, bool]:
        """One training step; the mean losses over the ranks and whether any rank asked to stop
        (one collective per step)."""
        low = low.to(self.device, non_blocking=True)
        high = high.to(self.device, non_blocking=True)
        set_learning_rates(self._lr_factor(), (self.opt_g, self.config.g_lr),
                           (self.opt_d, self.config.d_lr))
        losses = train_step(self.ddp_generator, self.ddp_discriminator, self.fidelity, self.pool,
                            self.opt_g, self.opt_d, low, high, self.variant.identity_criterion,
                            self.weights, self.config.adversarial_input, self.precision,
                            options=self.options)
        self.step += 1
        self.step_in_epoch += 1
        per_step = self.config.batch_size * self.dist.world_size
        self.positions[LOW] += per_step
        self.positions[HIGH] += per_step
        packed = torch.stack([getattr(losses, name).float() for name in LOSS_NAMES]
                             + [torch.tensor(float(self.stop.requested), device=low.device)])
        packed = self.dist.all_reduce_mean(packed.to(reduce_device)).cpu().double()
        values, stop = packed[:-1], bool(packed[-1] > 0)
        if not torch.isfinite(values).all():
            raise TrainingError(divergence_message(LOSS_NAMES, values, self.step,
                                                   self.last_checkpoint))
        return values, stop

    def _loop(self) -> bool:
        """The training loop; True if it stopped on a signal."""
        config, dist = self.config, self.dist
        self.meter = LossMeter(len(LOSS_NAMES))
        self._loop_start, self._loop_first_step = time.perf_counter(), self.step
        reduce_device = self.device if (dist.enabled and self.device.type == "cuda") else torch.device("cpu")
        if self.step >= self.total_steps:
            log.info("nothing to do: the run is already at step %d of %d", self.step, self.total_steps)
            return False
        bar = tqdm(total=self.total_steps, initial=self.step, unit="step", dynamic_ncols=True,
                   disable=not (dist.is_main and config.progress and sys.stderr.isatty()),
                   smoothing=0.05)
        with bar, (logging_redirect_tqdm() if not bar.disable else contextlib.nullcontext()):
            for low, high in self._loader():
                values, stop = self._one_step(low, high, reduce_device)
                self.meter.add(values)
                if not bar.disable:
                    bar.set_postfix_str(f"epoch {self._epoch_label()} d {values[0]:.3f} "
                                        f"g {values[1]:.3f}", refresh=False)
                bar.update(1)

                finished = self.step >= self.total_steps
                if self.step % config.log_every == 0 or finished or stop:
                    self._log_train(*self.meter.take(), bar.disable)
                if self.step_in_epoch >= self.steps_per_epoch:
                    self.epoch += 1
                    self.step_in_epoch = 0
                    if self._validation_due(self.epoch):
                        self.validate()
                if finished and self.last_val_step != self.step:
                    self.validate()
                if stop or finished or self.step % config.save_every == 0:
                    start = time.perf_counter()
                    self.save_checkpoint()
                    self.meter.pause(time.perf_counter() - start)
                if stop:
                    return True
        return False

    def _log_train(self, means: torch.Tensor, steps_per_s: float, bar_off: bool) -> None:
        row: dict[str, Any] = {"kind": "train", "step": self.step, "epoch": self._epoch_label()}
        row.update({name: float(value) for name, value in zip(LOSS_NAMES, means)})
        row.update({"lr_g": self.opt_g.param_groups[0]["lr"], "lr_d": self.opt_d.param_groups[0]["lr"],
                    "steps_per_s": steps_per_s})
        self._write_row(row)
        if self.logger is not None:  # rank 0
            self.logger.log_train_row(row, self.total_steps, self.step - self._loop_first_step,
                                      time.perf_counter() - self._loop_start, to_terminal=bar_off)

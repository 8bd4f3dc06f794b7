"""The UEGAN trainer: unpaired data, the published step, exact resume, validation, logging, DDP.

    trainer = Trainer(TrainConfig(low="lq/", high="hq/", out="runs/a", vgg_weights="vgg19.pth"))
    result = trainer.fit()

A run directory holds ``config.json`` (the resolved configuration), ``versions.json``,
``metrics.jsonl`` (train and validation rows), ``train.log``, ``checkpoints/``,
``validation/epoch_XXXX.json`` (per-image metrics), ``val_images/epoch_XXXX/``,
``tensorboard/`` (when TensorBoard is installed), ``generator.safetensors`` (the final
generator) and ``generator_best.safetensors`` (the best by validation PSNR).

Under ``torchrun`` every process trains on its own share of each batch (DistributedDataParallel);
only rank 0 writes files, validates and logs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import platform
import random
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.contrib.logging import logging_redirect_tqdm

from uegan import __version__
from uegan.training.acceleration import TrainingAcceleration, accelerate_training
from uegan.runtime import run_eagerly
from uegan.checkpoints import TRAIN_FORMAT, save_generator
from uegan.errors import UserError
from uegan.io.files import atomic_path, atomic_write_text
from uegan.io.images import load_rgb8
from uegan.losses import FidelityLoss
from uegan.metrics import ciede2000, psnr, ssim, true_mean
from uegan.models.discriminator import Discriminator, DiscriminatorConfig
from uegan.models.generator import Generator
from uegan.models.init import init_orthogonal
from uegan.models.vgg import VGG19Features
from uegan.training.checkpoint import (TRAIN_FORMAT_VERSION, CheckpointWriteError, best_path,
                                       capture_rng_state, checkpoint_dir, load_checkpoint,
                                       newest_checkpoint, prune, remove_temporaries,
                                       restore_rng_state, step_path)
from uegan.training.checkpoint import save_checkpoint as write_checkpoint
from uegan.training.config import ARCHITECTURE_FIELDS, CONFIG_FILE, TrainConfig, apply_values
from uegan.training.data import (HIGH, LOW, Augmentation, StepSampler, UnpairedBatches,
                                 ValidationPair, count_upscaled, ignore_sigint, scan_images,
                                 scan_validation)
from uegan.training.distributed import DistContext, init_distributed
from uegan.training.step import (ImagePool, LossWeights, MixedPrecision, OptimizerSettings,
                                 lr_factor, make_optimizers, train_step)
from uegan.variants import get_variant

log = logging.getLogger(__name__)

LOSS_NAMES = ("d_loss", "g_loss", "g_adv_loss", "g_fidelity_loss", "g_identity_loss")
PRECISION_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
VERSIONS_FILE = "versions.json"
METRICS_FILE = "metrics.jsonl"
LOG_FILE = "train.log"
GENERATOR_FILE = "generator.safetensors"
BEST_GENERATOR_FILE = "generator_best.safetensors"


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


def _software_versions() -> dict[str, Any]:
    import PIL

    versions: dict[str, Any] = {
        "uegan": __version__, "python": sys.version.split()[0], "platform": platform.platform(),
        "torch": torch.__version__, "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "numpy": np.__version__, "pillow": PIL.__version__,
    }
    for module in ("safetensors", "yaml", "tqdm", "tensorboard"):
        try:
            versions[module] = getattr(__import__(module), "__version__", "unknown")
        except ImportError:
            versions[module] = None
    return versions


class NoFidelity(torch.nn.Module):
    """Stands in for the fidelity loss when its weight is 0 (an ablation): zero, no VGG19."""

    def forward(self, x01: torch.Tensor, _y01: torch.Tensor) -> torch.Tensor:
        return x01.new_zeros(())


class Trainer:
    """Trains one UEGAN variant from a :class:`TrainConfig`; :meth:`fit` runs the training.

    ``vgg``: a ready VGG19 feature extractor for the fidelity loss (else one is built from
    ``config.vgg_weights``). Under torchrun the constructor joins the process group.
    """

    def __init__(self, config: TrainConfig, vgg: VGG19Features | None = None):
        config.validate()
        config.require_paths()
        self.config = config
        self.run_dir = Path(config.out).expanduser()
        self.dist: DistContext = init_distributed(config.device)
        self.device = self.dist.device
        try:
            self._setup(vgg)
        except BaseException:
            self.dist.close()
            raise

    # ------------------------------------------------------------------ set-up

    def _on_main(self, function, *args):
        """Run ``function`` on rank 0 and hand its result (or its UserError) to every rank."""
        outcome: tuple[str, Any] = ("ok", None)
        if self.dist.is_main:
            try:
                outcome = ("ok", function(*args))
            except UserError as error:
                outcome = ("error", str(error))
        outcome = self.dist.broadcast(outcome)
        if outcome[0] == "error":
            raise UserError(outcome[1])
        return outcome[1]

    def _find_resume_point(self) -> Path | None:
        config = self.config
        existing = (self.run_dir / CONFIG_FILE).exists() or checkpoint_dir(self.run_dir).exists()
        if not config.resume:
            if existing:
                raise UserError(f"{self.run_dir} already holds a training run: pass --resume to "
                                f"continue it, or choose another --out")
            return None
        removed = remove_temporaries(self.run_dir)
        if removed:
            log.info("removed %d unfinished checkpoint file(s) of an interrupted save", removed)
        found = newest_checkpoint(self.run_dir)
        if found is None:
            log.warning("--resume: no checkpoint in %s yet; starting a new run there",
                        checkpoint_dir(self.run_dir))
        return found

    def _setup(self, vgg: VGG19Features | None) -> None:
        config, dist = self.config, self.dist
        self.variant = get_variant(config.variant)
        resume_from = self._on_main(self._find_resume_point)
        checkpoint = load_checkpoint(resume_from) if resume_from is not None else None
        if checkpoint is not None:
            self._check_resumable(checkpoint, resume_from)

        # random numbers: the same initial weights on every rank, the rest per rank
        random.seed(config.seed + dist.rank)
        np.random.seed(config.seed + dist.rank)
        torch.manual_seed(config.seed)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = not config.deterministic
        if config.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)

        # data (checked on rank 0, shared with the others)
        low, high, pairs = self._on_main(self._scan_data)
        self.augmentation = Augmentation(config.crop_size, config.image_size, config.hflip, config.vflip)
        self.dataset = UnpairedBatches(low, high, config.batch_size, self.augmentation, config.seed)
        self.validation_pairs: list[ValidationPair] = pairs
        self.sizes = (len(low), len(high))
        global_batch = config.batch_size * dist.world_size
        self.steps_per_epoch = max(1, min(self.sizes) // global_batch)
        self.total_steps = config.steps if config.steps is not None else config.epochs * self.steps_per_epoch

        # networks, loss, optimisers
        self.generator = Generator(self.variant.generator_config(config.conv_dim))
        self.discriminator = Discriminator(DiscriminatorConfig(config.d_conv_dim))
        init_orthogonal(self.generator, config.init_gain)
        init_orthogonal(self.discriminator, config.init_gain)
        self.generator.to(self.device)
        self.discriminator.to(self.device)
        if config.fidelity_weight == 0 and vgg is None:
            log.info("fidelity_weight is 0: no fidelity loss, no VGG19")
            self.fidelity: torch.nn.Module = NoFidelity()
        else:
            self.fidelity = FidelityLoss(vgg if vgg is not None else self._build_vgg()).to(self.device)
        self.acceleration = self._acceleration()
        accelerate_training(self.generator, self.discriminator, self.fidelity, self.acceleration)
        self.opt_g, self.opt_d = make_optimizers(self.generator, self.discriminator, OptimizerSettings(
            config.g_lr, config.d_lr, config.beta1, config.beta2, config.weight_decay),
            **self.acceleration.optimizer_kwargs())
        self.weights = LossWeights(config.adv_weight, config.fidelity_weight, config.identity_weight)
        dtype = PRECISION_DTYPES[config.precision]
        scaler = torch.amp.GradScaler(self.device.type) if config.precision == "fp16" else None
        self.precision = MixedPrecision(self.device.type, dtype, scaler)
        pool_seed = int(np.random.SeedSequence([config.seed, dist.rank, 2]).generate_state(1)[0])
        self.pool = ImagePool(config.pool_size, seed=pool_seed)

        # counters
        self.step = 0
        self.epoch = 0               # 0-based epoch in progress
        self.step_in_epoch = 0
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
            self.ddp_generator = self._wrap_ddp(self.generator)
            self.ddp_discriminator = self._wrap_ddp(self.discriminator)
        self._stop_requested = False
        self._paused = 0.0
        self._metrics = None
        self._writer = None

    def _wrap_ddp(self, module: torch.nn.Module) -> torch.nn.Module:
        """DistributedDataParallel that syncs the buffers once, at the start, not on every call.

        The spectral-norm vectors u, v of D change on every call; each rank runs the same power
        iterations on the same (all-reduced) weights, so they stay equal without broadcasts.
        """
        import inspect

        from torch.nn.parallel import DistributedDataParallel as DDP

        options: dict[str, Any] = {"device_ids": [self.device] if self.device.type == "cuda" else None}
        if "forward_sync_buffers" in inspect.signature(DDP.__init__).parameters:
            options["forward_sync_buffers"] = False
        else:
            options["broadcast_buffers"] = False
        return DDP(module, **options)

    def _scan_data(self) -> tuple[list, list, list[ValidationPair]]:
        config = self.config
        own = [self.run_dir]  # a run folder inside a data folder: its images are never data
        low = scan_images(config.low, "low-quality", config.skip_bad_images, exclude=own)
        high = scan_images(config.high, "high-quality", config.skip_bad_images, exclude=own)
        for what, images in (("low-quality", low), ("high-quality", high)):
            upscaled = count_upscaled(images, config.crop_size)
            if upscaled:
                log.info("%d of %d %s images are smaller than the %d px crop and are upscaled first",
                         upscaled, len(images), what, config.crop_size)
        pairs: list[ValidationPair] = []
        if config.val_low is not None:
            pairs = scan_validation(config.val_low, config.val_label, config.skip_bad_images,
                                    exclude=own)
        return low, high, pairs

    def _acceleration(self) -> TrainingAcceleration:
        config = self.config
        if config.fast_step:
            return TrainingAcceleration.fast(compile=config.compile, precision=config.precision)
        return TrainingAcceleration(compile=config.compile, precision=config.precision)

    def _build_vgg(self) -> VGG19Features:
        from uegan.weights import build_vgg19

        built: list[VGG19Features] = []
        # rank 0 first (it may download the weights into the shared cache); its error reaches all
        self._on_main(lambda: built.append(build_vgg19(self.config.vgg_weights)))
        return built[0] if built else build_vgg19(self.config.vgg_weights, download=False)

    def _check_resumable(self, checkpoint: dict[str, Any], path: Path) -> None:
        saved = apply_values(TrainConfig(), checkpoint["config"], str(path))
        for name in ARCHITECTURE_FIELDS:
            if getattr(saved, name) != getattr(self.config, name):
                raise UserError(f"{path} was trained with {name}={getattr(saved, name)!r}; a resumed "
                                f"run cannot change it (got {getattr(self.config, name)!r})")
        if checkpoint.get("world_size", 1) != self.dist.world_size:
            log.warning("%s was written by %d process(es), this run has %d: the data streams "
                        "continue, but the image pools and random states are reassigned, so the "
                        "run is not bit-identical to an uninterrupted one",
                        path, checkpoint.get("world_size", 1), self.dist.world_size)

    def _restore(self, checkpoint: dict[str, Any]) -> None:
        self.generator.load_state_dict(checkpoint["G"])
        self.discriminator.load_state_dict(checkpoint["D"])
        self.opt_g.load_state_dict(checkpoint["opt_g"])
        self.opt_d.load_state_dict(checkpoint["opt_d"])
        if self.precision.scaler is not None and checkpoint.get("scaler"):
            self.precision.scaler.load_state_dict(checkpoint["scaler"])
        ranks = checkpoint["ranks"]
        mine = ranks[self.dist.rank % len(ranks)]
        self.pool.load_state_dict(mine["pool"], self.device)
        restore_rng_state(mine["rng"])
        self.step = int(checkpoint["step"])
        self.epoch = int(checkpoint["epoch"])
        self.step_in_epoch = int(checkpoint["step_in_epoch"])
        if self.step_in_epoch >= self.steps_per_epoch:  # world size or batch size changed
            self.epoch += 1
            self.step_in_epoch = 0
        streams = checkpoint["streams"]
        self.positions = {LOW: int(streams["low"]["position"]), HIGH: int(streams["high"]["position"])}
        if (int(streams["low"]["size"]), int(streams["high"]["size"])) != self.sizes:
            log.warning("the image folders changed since the checkpoint (%d/%d low/high images, now "
                        "%d/%d): the data streams are reshuffled from here", streams["low"]["size"],
                        streams["high"]["size"], *self.sizes)
        self.best = dict(checkpoint.get("best") or {})
        self.last_val_step = int(checkpoint.get("last_val_step", -1))
        log.info("resuming from %s: step %d, epoch %d", self.resumed_from, self.step, self.epoch + 1)

    # ------------------------------------------------------------------ state

    def _checkpoint_state(self, per_rank: list[dict[str, Any]]) -> dict[str, Any]:
        streams = {name: self.dataset.streams[sid].describe(self.positions[sid])
                   for sid, name in ((LOW, "low"), (HIGH, "high"))}
        return {
            "format": TRAIN_FORMAT,
            "format_version": TRAIN_FORMAT_VERSION,
            "variant": self.variant.name,
            "generator_config": self.generator.config.to_dict(),
            "discriminator_config": self.discriminator.config.to_dict(),
            "G": self.generator.state_dict(),
            "D": self.discriminator.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "scaler": self.precision.scaler.state_dict() if self.precision.scaler is not None else None,
            "schedule": {"epoch": self.epoch, "lr_factor": self._lr_factor(),
                         "g_lr": self.config.g_lr, "d_lr": self.config.d_lr},
            "step": self.step,
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "steps_per_epoch": self.steps_per_epoch,
            "streams": streams,
            "best": dict(self.best),
            "last_val_step": self.last_val_step,
            "config": self.config.to_dict(),
            "world_size": self.dist.world_size,
            "ranks": per_rank,
            "uegan_version": __version__,
        }

    def save_checkpoint(self, best: bool = False) -> Path:
        """Write a checkpoint of the current state (collective: every rank must call it)."""
        mine = {"pool": self.pool.state_dict(), "rng": capture_rng_state()}
        per_rank = self.dist.gather(mine)
        outcome: tuple[str, Any] = ("ok", None)
        if self.dist.is_main:
            path = best_path(self.run_dir, self.step) if best else step_path(self.run_dir, self.step)
            try:
                write_checkpoint(self._checkpoint_state(per_rank), path)
                if best:
                    prune(self.run_dir, 1, "best_step")
                else:
                    prune(self.run_dir, self.config.keep_last, "step")
                outcome = ("ok", str(path))
                log.info("saved checkpoint %s", path)
            except CheckpointWriteError as error:
                outcome = ("error", str(error))
        outcome = self.dist.broadcast(outcome)
        if outcome[0] == "error":
            raise CheckpointWriteError(outcome[1])
        self.last_checkpoint = Path(outcome[1])
        return self.last_checkpoint

    def _lr_factor(self) -> float:
        decay = self.config.decay_length
        return 1.0 if decay == 0 else max(0.0, lr_factor(self.epoch, self.config.epochs, decay))

    def _set_learning_rates(self) -> None:
        factor = self._lr_factor()
        for optimizer, base in ((self.opt_g, self.config.g_lr), (self.opt_d, self.config.d_lr)):
            for group in optimizer.param_groups:
                group["lr"] = base * factor

    # ------------------------------------------------------------------ outputs

    def _write_run_files(self) -> None:
        atomic_write_text(self.run_dir / CONFIG_FILE,
                          json.dumps(self.config.to_dict(), indent=2) + "\n",
                          overwrite=True)
        versions = _software_versions()
        versions.update({"device": str(self.device), "world_size": self.dist.world_size,
                         "argv": sys.argv, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                         "images": {"low": self.sizes[0], "high": self.sizes[1],
                                    "validation": len(self.validation_pairs)},
                         "steps_per_epoch": self.steps_per_epoch, "total_steps": self.total_steps})
        if self.device.type == "cuda":
            versions["gpu"] = torch.cuda.get_device_name(self.device)
        atomic_write_text(self.run_dir / VERSIONS_FILE, json.dumps(versions, indent=2) + "\n",
                          overwrite=True)

    def _trim_metrics(self) -> None:
        """On resume: drop the rows an interrupted run logged after the checkpoint's step."""
        path = self.run_dir / METRICS_FILE
        if not path.exists():
            return
        kept, dropped = [], 0
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except ValueError:  # a line cut short by a crash
                dropped += 1
                continue
            if int(row.get("step", 0)) <= self.step:
                kept.append(line)
            else:
                dropped += 1
        if dropped:
            atomic_write_text(path, "".join(f"{line}\n" for line in kept), overwrite=True)
            log.info("metrics.jsonl: dropped %d row(s) logged after step %d", dropped, self.step)

    @contextlib.contextmanager
    def _outputs(self) -> Iterator[None]:
        """Run files, metrics file, log file and TensorBoard writer of rank 0."""
        self._metrics = None
        self._writer = None
        handler = None
        if not self.dist.is_main:
            yield
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(self.run_dir / LOG_FILE, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        package_logger = logging.getLogger("uegan")
        package_logger.addHandler(handler)
        try:
            if self.config.resume:  # also when no checkpoint was found: a fresh start
                self._trim_metrics()
            self._write_run_files()
            self._metrics = open(self.run_dir / METRICS_FILE, "a", encoding="utf-8")
            self._writer = self._open_tensorboard()
            yield
        finally:
            if self._writer is not None:
                self._writer.close()
            if self._metrics is not None:
                self._metrics.close()
            package_logger.removeHandler(handler)
            handler.close()

    def _open_tensorboard(self):
        if not self.config.tensorboard:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            log.info("TensorBoard logging is off (the tensorboard package is not installed: "
                     "pip install 'uegan[tensorboard]'); the same scalars go to %s", METRICS_FILE)
            return None
        purge = self.step + 1 if self.config.resume else None
        return SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=purge)

    def _write_row(self, row: dict[str, Any]) -> None:
        if self._metrics is not None:
            self._metrics.write(json.dumps(row) + "\n")
            self._metrics.flush()
        if self._writer is not None:
            prefix = "train" if row["kind"] == "train" else "val"
            for key, value in row.items():
                if key not in ("kind", "step", "epoch") and isinstance(value, (int, float)):
                    self._writer.add_scalar(f"{prefix}/{key}", value, row["step"])
            self._writer.flush()

    # ------------------------------------------------------------------ validation

    def _epoch_label(self) -> int:
        """1-based epoch of the latest step."""
        return self.epoch if self.step_in_epoch == 0 else self.epoch + 1

    @torch.inference_mode()
    def _run_validation(self, epoch_label: int) -> dict[str, Any]:
        # photos of every size: a compiled G would compile again for each new shape
        with run_eagerly(self.acceleration.compile):
            return self._validate(epoch_label)

    def _validate(self, epoch_label: int) -> dict[str, Any]:
        from uegan.inference import Enhancer

        # native resolution: padded to multiples of 16, run, cropped; rounded as published
        enhancer = Enhancer(self.generator, self.device, max_side=None)
        self.generator.train()  # (G has no mode-dependent layers; keep the trainer's mode)
        scorer = None
        if self.config.nima_weights:
            from uegan.nima import NimaScorer, load_nima

            scorer = NimaScorer(load_nima(self.config.nima_weights, self.device))
        per_image, outputs = [], []
        image_dir = self.run_dir / "val_images" / f"epoch_{epoch_label:04d}"
        for index, pair in enumerate(self.validation_pairs):
            low, label = load_rgb8(pair.low), load_rgb8(pair.label)
            output = enhancer.enhance_array(low)
            row = {"image": pair.stem, "psnr": psnr(output, label), "ssim": ssim(output, label),
                   "ciede2000": ciede2000(output, label)}
            if scorer is not None:
                row["nima"] = scorer.score_images([output])[0].mean
            per_image.append(row)
            if index < self.config.val_save_images:
                outputs.append((pair.stem, low, output, label))
        result: dict[str, Any] = {key: true_mean([r[key] for r in per_image])
                                  for key in ("psnr", "ssim", "ciede2000")}
        if scorer is not None:
            result["nima"] = true_mean([r["nima"] for r in per_image])
        atomic_write_text(self.run_dir / "validation" / f"epoch_{epoch_label:04d}.json",
                          json.dumps({"step": self.step, "epoch": epoch_label, **result,
                                      "images": per_image}, indent=2) + "\n", overwrite=True)
        from PIL import Image

        for stem, low, output, label in outputs:
            with atomic_path(image_dir / f"{stem}.png", overwrite=True) as temporary:
                Image.fromarray(output).save(temporary, format="PNG")
            if self._writer is not None:
                row_image = np.concatenate([low, output, label], axis=1)
                self._writer.add_image(f"val_images/{stem}", row_image, self.step, dataformats="HWC")
        return result

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
            self.best = {"psnr": result["psnr"], "ssim": result["ssim"], "epoch": epoch_label,
                         "step": self.step}
            self.save_checkpoint(best=True)
            if self.dist.is_main:
                save_generator(self.run_dir / BEST_GENERATOR_FILE, self.generator,
                               self.variant.name, overwrite=True)
        self._paused += time.perf_counter() - start
        return result

    def _validation_due(self, completed_epochs: int) -> bool:
        start, every = self.config.val_start_epoch, self.config.val_every
        return completed_epochs >= start and (completed_epochs - start) % every == 0

    # ------------------------------------------------------------------ the loop

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        """First Ctrl-C (or SIGTERM): save a checkpoint after this step, then stop."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def request_stop(signum, _frame):
            if self._stop_requested and signum == signal.SIGINT:
                signal.signal(signal.SIGINT, signal.default_int_handler)
                raise KeyboardInterrupt
            self._stop_requested = True
            log.warning("%s: saving a checkpoint after this step, then stopping (Ctrl-C again to "
                        "quit at once)", signal.Signals(signum).name)

        previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _loader(self) -> DataLoader:
        config = self.config
        sampler = StepSampler(self.positions[LOW], self.positions[HIGH], self.total_steps - self.step,
                              config.batch_size, self.dist.rank, self.dist.world_size)
        workers = config.num_workers
        return DataLoader(self.dataset, batch_size=None, sampler=sampler, num_workers=workers,
                          pin_memory=self.device.type == "cuda",
                          worker_init_fn=ignore_sigint if workers else None,
                          prefetch_factor=2 if workers else None,
                          generator=torch.Generator())  # leaves the global RNG alone

    def _progress(self):
        from tqdm import tqdm

        return tqdm(total=self.total_steps, initial=self.step, unit="step", dynamic_ncols=True,
                    disable=not (self.dist.is_main and self.config.progress), smoothing=0.05)

    def fit(self) -> TrainResult:
        """Train until ``total_steps`` (or an interrupt); returns what was done."""
        interrupted = False
        generator_file = None
        try:
            with self._outputs(), self._signals():
                self._log_start()
                interrupted = self._loop()
                if self.dist.is_main:
                    generator_file = save_generator(self.run_dir / GENERATOR_FILE, self.generator,
                                                    self.variant.name, overwrite=True)
            if interrupted:
                log.warning("stopped at step %d; continue with --resume (checkpoint %s)",
                            self.step, self.last_checkpoint)
        finally:
            self.dist.close()
        return TrainResult(self.run_dir, self.step, self.epoch, interrupted, self.last_checkpoint,
                           generator_file, self.best.get("psnr"), self.best.get("epoch"))

    def _log_start(self) -> None:
        config = self.config
        log.info("training %s (conv_dim %d) on %d low-quality and %d high-quality images%s; "
                 "%d step(s) per epoch, %d in total; %s, %d process(es), %s", self.variant.name,
                 config.conv_dim, self.sizes[0], self.sizes[1],
                 f", {len(self.validation_pairs)} validation pairs" if self.validation_pairs else "",
                 self.steps_per_epoch, self.total_steps, self.device, self.dist.world_size,
                 config.precision)
        if min(self.sizes) < config.batch_size * self.dist.world_size:
            log.warning("the smaller set has %d images, less than one batch of %d: images repeat "
                        "within a step", min(self.sizes), config.batch_size * self.dist.world_size)
        if self.total_steps > config.epochs * self.steps_per_epoch:
            log.warning("%d steps run past the %d-epoch schedule: the learning rate is zero after "
                        "epoch %d", self.total_steps, config.epochs, config.epochs)

    def _loop(self) -> bool:
        """The training loop; True if it stopped on a signal."""
        config, dist = self.config, self.dist
        per_step = config.batch_size * dist.world_size
        sums = torch.zeros(len(LOSS_NAMES), dtype=torch.float64)
        interval_steps = 0
        self._paused = 0.0
        interval_start = time.perf_counter()
        reduce_device = self.device if (dist.enabled and self.device.type == "cuda") else torch.device("cpu")
        if self.step >= self.total_steps:
            log.info("nothing to do: the run is already at step %d of %d", self.step, self.total_steps)
            return False
        with self._progress() as bar, (logging_redirect_tqdm() if not bar.disable
                                       else contextlib.nullcontext()):
            for low, high in self._loader():
                low = low.to(self.device, non_blocking=True)
                high = high.to(self.device, non_blocking=True)
                self._set_learning_rates()
                losses = train_step(self.ddp_generator, self.ddp_discriminator, self.fidelity,
                                    self.pool, self.opt_g, self.opt_d, low, high,
                                    self.variant.identity_criterion, self.weights,
                                    config.adversarial_input, self.precision,
                                    **self.acceleration.step_kwargs())
                self.step += 1
                self.step_in_epoch += 1
                self.positions[LOW] += per_step
                self.positions[HIGH] += per_step

                # one collective per step: the mean losses over ranks and the stop flag
                packed = torch.stack([getattr(losses, name).float() for name in LOSS_NAMES]
                                     + [torch.tensor(float(self._stop_requested), device=low.device)])
                packed = dist.all_reduce_mean(packed.to(reduce_device)).cpu().double()
                values, stop = packed[:-1], bool(packed[-1] > 0)
                if not torch.isfinite(values).all():
                    self._diverged(values)
                sums += values
                interval_steps += 1
                if not bar.disable:
                    bar.set_postfix_str(f"epoch {self._epoch_label()} d {values[0]:.3f} "
                                        f"g {values[1]:.3f}", refresh=False)
                bar.update(1)

                finished = self.step >= self.total_steps
                if interval_steps and (self.step % config.log_every == 0 or finished or stop):
                    elapsed = time.perf_counter() - interval_start - self._paused
                    self._log_train(sums / interval_steps, interval_steps / max(elapsed, 1e-9),
                                    bar.disable)
                    sums.zero_()
                    interval_steps = 0
                    self._paused = 0.0
                    interval_start = time.perf_counter()

                if self.step_in_epoch >= self.steps_per_epoch:
                    completed = self.epoch + 1
                    self.epoch += 1
                    self.step_in_epoch = 0
                    if self._validation_due(completed):
                        self.validate()
                if finished and self.last_val_step != self.step:
                    self.validate()
                if stop or finished or self.step % config.save_every == 0:
                    start = time.perf_counter()
                    self.save_checkpoint()
                    self._paused += time.perf_counter() - start
                if stop:
                    return True
        return False

    def _log_train(self, means: torch.Tensor, steps_per_s: float, bar_off: bool) -> None:
        row: dict[str, Any] = {"kind": "train", "step": self.step, "epoch": self._epoch_label()}
        row.update({name: float(value) for name, value in zip(LOSS_NAMES, means)})
        row.update({"lr_g": self.opt_g.param_groups[0]["lr"], "lr_d": self.opt_d.param_groups[0]["lr"],
                    "steps_per_s": steps_per_s})
        self._write_row(row)
        if bar_off and self.dist.is_main:
            log.info("step %d/%d epoch %d: d %.4f g %.4f (adv %.4f fid %.4f idt %.4f) %.2f steps/s",
                     self.step, self.total_steps, row["epoch"], row["d_loss"], row["g_loss"],
                     row["g_adv_loss"], row["g_fidelity_loss"], row["g_identity_loss"], steps_per_s)

    def _diverged(self, values: torch.Tensor) -> None:
        described = ", ".join(f"{name}={float(v):.4g}" for name, v in zip(LOSS_NAMES, values))
        last = (f"the last good checkpoint is {self.last_checkpoint}; continue from it with "
                f"--resume (perhaps with a lower learning rate or --precision fp32)"
                if self.last_checkpoint is not None else "no checkpoint was written yet")
        raise TrainingError(f"non-finite loss at step {self.step} ({described}): training stopped "
                            f"without saving; {last}")

"""Training checkpoints: the schema (keys, format version), writing and reading them, which
ones are kept, and which one a resumed run starts from.

A training checkpoint is a ``torch.save`` dict readable with ``weights_only=True``:

- ``format`` ``"uegan-train"``, ``format_version``, ``variant``, ``generator_config`` and ``G``
  (what :func:`uegan.checkpoints.load_generator` reads), ``discriminator_config``, ``D``;
- ``opt_g``, ``opt_d`` (Adam states), ``scaler`` (fp16 loss scaling, or None), ``schedule``;
- ``step``, ``epoch`` (0-based, the epoch in progress), ``step_in_epoch``, ``streams`` (the
  position of both data streams), ``best`` (best validation so far), ``config``;
- ``ranks``: per training process, its image pool and its random-number states (python, numpy,
  torch, CUDA).

Files are ``checkpoints/step_XXXXXXXX.pt`` (the newest ``keep_last`` are kept) and
``checkpoints/best_step_XXXXXXXX.pt`` (the best by validation PSNR, one file). Each is written to
a temporary file beside it and renamed, so a crash or a full disk never damages an existing one.
A resumed run starts from the newest checkpoint that reads back; a damaged newer one is named in
a warning and kept, renamed ``<name>.damaged`` (so the resumed run neither prunes nor overwrites
it). The trainer hands its live objects over as a :class:`TrainingState`; :func:`make_checkpoint`
writes the dict above from it, :func:`restore_training_state` and :func:`read_progress` read it.
"""

from __future__ import annotations

import logging
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from uegan import __version__
from uegan.checkpoints import TRAIN_FORMAT, read_torch_file
from uegan.errors import UserError
from uegan.io.files import atomic_path
from uegan.training.config import ARCHITECTURE_FIELDS, TrainConfig, apply_values
from uegan.training.run_folder import CHECKPOINT_DIR

log = logging.getLogger(__name__)

TRAIN_FORMAT_VERSION = 1
REQUIRED_KEYS = ("variant", "generator_config", "G", "D", "opt_g", "opt_d", "step", "epoch",
                 "step_in_epoch", "streams", "config", "ranks")
_NAME = re.compile(r"^(step|best_step)_(\d{8,})\.pt$")


class CheckpointWriteError(UserError):
    """A checkpoint could not be written (full disk, permissions); older ones are intact."""


class CorruptCheckpointError(UserError):
    """A file named like a training checkpoint does not read back as one (cut short, damaged)."""


@dataclass
class Progress:
    """Where a run stands: the counters a checkpoint saves besides the networks' states."""

    step: int = 0
    epoch: int = 0                  # 0-based epoch in progress
    step_in_epoch: int = 0
    positions: tuple[int, int] = (0, 0)   # low, high data streams
    best: dict[str, Any] = field(default_factory=dict)
    last_val_step: int = -1


@dataclass
class TrainingState:
    """What a checkpoint holds, as live objects: :func:`make_checkpoint` turns it into the
    saved dict."""

    variant: str
    generator: nn.Module
    discriminator: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None
    progress: Progress
    steps_per_epoch: int
    streams: dict[str, dict[str, Any]]     # "low"/"high": the streams' own description
    schedule: dict[str, Any]
    config: dict[str, Any]
    world_size: int


def make_checkpoint(state: TrainingState, ranks: list[dict[str, Any]]) -> dict[str, Any]:
    """The saved dict of ``state`` (see the module docstring); ``ranks``: per process, its image
    pool and random states."""
    progress = state.progress
    return {
        "format": TRAIN_FORMAT,
        "format_version": TRAIN_FORMAT_VERSION,
        "variant": state.variant,
        "generator_config": state.generator.config.to_dict(),
        "discriminator_config": state.discriminator.config.to_dict(),
        "G": state.generator.state_dict(),
        "D": state.discriminator.state_dict(),
        "opt_g": state.opt_g.state_dict(),
        "opt_d": state.opt_d.state_dict(),
        "scaler": state.scaler.state_dict() if state.scaler is not None else None,
        "schedule": state.schedule,
        "step": progress.step,
        "epoch": progress.epoch,
        "step_in_epoch": progress.step_in_epoch,
        "steps_per_epoch": state.steps_per_epoch,
        "streams": state.streams,
        "best": dict(progress.best),
        "last_val_step": progress.last_val_step,
        "config": state.config,
        "world_size": state.world_size,
        "ranks": ranks,
        "uegan_version": __version__,
    }


def restore_training_state(checkpoint: dict[str, Any], state: TrainingState) -> None:
    """Load the networks, optimisers and loss scaler of ``state`` from ``checkpoint``."""
    state.generator.load_state_dict(checkpoint["G"])
    state.discriminator.load_state_dict(checkpoint["D"])
    state.opt_g.load_state_dict(checkpoint["opt_g"])
    state.opt_d.load_state_dict(checkpoint["opt_d"])
    if state.scaler is not None and checkpoint.get("scaler"):
        state.scaler.load_state_dict(checkpoint["scaler"])


def read_progress(checkpoint: dict[str, Any]) -> Progress:
    streams = checkpoint["streams"]
    return Progress(int(checkpoint["step"]), int(checkpoint["epoch"]),
                    int(checkpoint["step_in_epoch"]),
                    (int(streams["low"]["position"]), int(streams["high"]["position"])),
                    dict(checkpoint.get("best") or {}), int(checkpoint.get("last_val_step", -1)))


def stream_sizes(checkpoint: dict[str, Any]) -> tuple[int, int]:
    """The number of low- and high-quality images the checkpointed run trained on."""
    streams = checkpoint["streams"]
    return int(streams["low"]["size"]), int(streams["high"]["size"])


def check_resumable(checkpoint: dict[str, Any], path: Path, config: TrainConfig,
                    world_size: int) -> None:
    """A UserError if ``config`` changes what fixes the networks' shapes; a warning if the
    number of processes changed (the run goes on, not bit-identical to an uninterrupted one)."""
    saved = apply_values(TrainConfig(), checkpoint["config"], str(path))
    for name in ARCHITECTURE_FIELDS:
        if getattr(saved, name) != getattr(config, name):
            raise UserError(f"{path} was trained with {name}={getattr(saved, name)!r}; a resumed "
                            f"run cannot change it (got {getattr(config, name)!r})")
    if checkpoint.get("world_size", 1) != world_size:
        log.warning("%s was written by %d process(es), this run has %d: the data streams "
                    "continue, but the image pools and random states are reassigned, so the "
                    "run is not bit-identical to an uninterrupted one",
                    path, checkpoint.get("world_size", 1), world_size)


def rank_entry(checkpoint: dict[str, Any], rank: int) -> dict[str, Any]:
    """The image pool and random states saved for process ``rank`` (wrapping around when the
    run now has more processes than the checkpointed one)."""
    ranks = checkpoint["ranks"]
    return ranks[rank % len(ranks)]


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR


def step_path(run_dir: str | Path, step: int) -> Path:
    return checkpoint_dir(run_dir) / f"step_{step:08d}.pt"


def best_path(run_dir: str | Path, step: int) -> Path:
    return checkpoint_dir(run_dir) / f"best_step_{step:08d}.pt"


def list_checkpoints(run_dir: str | Path, kind: str = "step") -> list[tuple[int, Path]]:
    """``(step, path)`` of the complete checkpoints of ``kind`` (``step`` or ``best_step``), oldest first."""
    folder = checkpoint_dir(run_dir)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = _NAME.match(path.name)
        if match and match.group(1) == kind and path.is_file():
            found.append((int(match.group(2)), path))
    return sorted(found)


def _newest_first(run_dir: str | Path) -> list[Path]:
    """Every checkpoint, the highest step first (a best one before a periodic one of its step)."""
    candidates = [(step, 0, path) for step, path in list_checkpoints(run_dir, "step")]
    candidates += [(step, 1, path) for step, path in list_checkpoints(run_dir, "best_step")]
    return [path for _, _, path in sorted(candidates, reverse=True)]


def newest_checkpoint(run_dir: str | Path) -> Path | None:
    """The checkpoint with the highest step, periodic or best (a best one wins a tie)."""
    found = _newest_first(run_dir)
    return found[0] if found else None


def _set_aside(path: Path) -> Path:
    """Rename a damaged checkpoint to ``<name>.damaged`` (never deleted: it is the user's file;
    renamed, it is neither pruned nor overwritten by the resumed run's save of the same step)."""
    target = path.with_name(path.name + ".damaged")
    number = 1
    while target.exists():
        number += 1
        target = path.with_name(f"{path.name}.damaged{number}")
    path.rename(target)
    return target


def newest_intact_checkpoint(run_dir: str | Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint that reads back, and its contents; None if there is no checkpoint.

    A damaged newer one (cut short by a crash, a bad disk) is named in a warning and renamed to
    ``<name>.damaged``, kept. If every checkpoint is damaged: a UserError naming them (a new run
    would overwrite them). A checkpoint of a newer format is an error, not skipped.
    """
    damaged: list[tuple[Path, CorruptCheckpointError]] = []
    for path in _newest_first(run_dir):
        try:
            data = load_checkpoint(path)
        except CorruptCheckpointError as error:
            damaged.append((path, error))
            continue
        for bad, error in damaged:
            kept = _set_aside(bad)
            log.warning("resuming from %s, the newest intact checkpoint: %s does not read back "
                        "(%s); kept as %s", path, bad, error, kept.name)
        return path, data
    if damaged:
        raise CorruptCheckpointError(
            f"no checkpoint in {checkpoint_dir(run_dir)} reads back ({damaged[0][1]}; "
            f"{len(damaged)} damaged in all): start a new run with another --out")
    return None


def resume_point(run_dir: str | Path) -> tuple[Path, dict[str, Any]] | None:
    """Where ``--resume`` starts in ``run_dir``: the temporary files of a save a crash cut short
    removed, then :func:`newest_intact_checkpoint` (None, with a warning: no checkpoint yet)."""
    removed = remove_temporaries(run_dir)
    if removed:
        log.info("removed %d unfinished checkpoint file(s) of an interrupted save", removed)
    found = newest_intact_checkpoint(run_dir)
    if found is None:
        log.warning("--resume: no checkpoint in %s yet; starting a new run there",
                    checkpoint_dir(run_dir))
    return found


def _first_line(error: BaseException) -> str:
    text = getattr(error, "strerror", None) or str(error) or error.__class__.__name__
    return text.strip().splitlines()[0] if text.strip() else error.__class__.__name__


def save_checkpoint(state: dict[str, Any], path: Path) -> Path:
    """Write ``state`` atomically to ``path`` (replacing a file of the same name).

    torch reports a failed write (a full disk) as a RuntimeError of its zip writer, the file
    system as an OSError: both become a :class:`CheckpointWriteError` naming the file and cause.
    """
    try:
        with atomic_path(path, overwrite=True) as temporary:
            torch.save(state, temporary)
    except (OSError, RuntimeError) as error:
        raise CheckpointWriteError(
            f"could not write the checkpoint {path} ({_first_line(error)}); the checkpoints "
            f"already in {path.parent} are intact. Free some space (or fix the folder's "
            f"permissions) and continue with --resume") from error
    return path


def prune(run_dir: str | Path, keep_last: int, kind: str = "step") -> list[Path]:
    """Delete all but the newest ``keep_last`` checkpoints of ``kind``; returns what was deleted."""
    existing = list_checkpoints(run_dir, kind)
    doomed = [path for _, path in existing[:max(0, len(existing) - keep_last)]]
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


def remove_temporaries(run_dir: str | Path) -> int:
    """Delete the temporary files of saves that a crash (or SIGKILL) cut short; how many."""
    folder = checkpoint_dir(run_dir)
    if not folder.is_dir():
        return 0
    stale = [path for path in folder.glob(".*.pt.*.tmp") if path.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A training checkpoint's dict, read with ``weights_only=True``; a CorruptCheckpointError
    when it does not read back or lacks a key, a UserError when its format is newer."""
    try:
        data = read_torch_file(path)
    except UserError as error:
        raise CorruptCheckpointError(str(error)) from error
    if not isinstance(data, dict) or data.get("format") != TRAIN_FORMAT:
        raise CorruptCheckpointError(f"{path}: not a uegan training checkpoint")
    version = int(data.get("format_version", 0))
    if version > TRAIN_FORMAT_VERSION:
        raise UserError(f"{path}: training checkpoint version {version} is newer than this uegan "
                        f"understands ({TRAIN_FORMAT_VERSION}); upgrade uegan")
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise CorruptCheckpointError(f"{path}: training checkpoint without {', '.join(missing)}")
    return data


def capture_rng_state() -> dict[str, Any]:
    """Every random-number state of this process, in types ``weights_only`` loading accepts."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    version, internal, python_gauss = random.getstate()
    state: dict[str, Any] = {
        "python": {"version": version, "state": torch.tensor(internal, dtype=torch.int64),
                   "gauss": python_gauss},
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "torch": torch.get_rng_state(),
        "cuda": [],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    python = state["python"]
    random.setstate((python["version"], tuple(int(v) for v in python["state"].tolist()),
                     python["gauss"]))
    numpy_state = state["numpy"]
    np.random.set_state((numpy_state["kind"], numpy_state["keys"].numpy().astype(np.uint32),
                         numpy_state["pos"], numpy_state["has_gauss"], numpy_state["gauss"]))
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available():
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
        else:
            log.warning("the checkpoint holds CUDA random states of %d device(s), this machine has "
                        "%d: CUDA random numbers are not restored", len(cuda), torch.cuda.device_count())

"""Training checkpoints: what they hold, how they are written, which ones are kept.

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
"""

from __future__ import annotations

import logging
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from uegan.checkpoints import TRAIN_FORMAT, read_torch_file
from uegan.errors import UserError
from uegan.io.files import atomic_path

log = logging.getLogger(__name__)

TRAIN_FORMAT_VERSION = 1
CHECKPOINT_DIR = "checkpoints"
_NAME = re.compile(r"^(step|best_step)_(\d{8,})\.pt$")


class CheckpointWriteError(UserError):
    """A checkpoint could not be written (full disk, permissions); older ones are intact."""


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


def newest_checkpoint(run_dir: str | Path) -> Path | None:
    """The checkpoint with the highest step, periodic or best (a best one wins a tie)."""
    candidates = [(step, 0, path) for step, path in list_checkpoints(run_dir, "step")]
    candidates += [(step, 1, path) for step, path in list_checkpoints(run_dir, "best_step")]
    return max(candidates)[2] if candidates else None


def save_checkpoint(state: dict[str, Any], path: Path) -> Path:
    """Write ``state`` atomically to ``path`` (replacing a file of the same name)."""
    try:
        with atomic_path(path, overwrite=True) as temporary:
            torch.save(state, temporary)
    except OSError as error:
        raise CheckpointWriteError(
            f"could not write the checkpoint {path} ({error.strerror or error}); the checkpoints "
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
    data = read_torch_file(path)
    if not isinstance(data, dict) or data.get("format") != TRAIN_FORMAT:
        raise UserError(f"{path}: not a uegan training checkpoint")
    version = int(data.get("format_version", 0))
    if version > TRAIN_FORMAT_VERSION:
        raise UserError(f"{path}: training checkpoint version {version} is newer than this uegan "
                        f"understands ({TRAIN_FORMAT_VERSION}); upgrade uegan")
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

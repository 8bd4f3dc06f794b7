"""What ``uegan serve`` is told: the checkpoints, where to listen, and the limits on uploads.

Safe by default: it listens on the loopback interface only (``127.0.0.1``); any other address
is allowed when asked for, with a warning (:func:`exposure_warning`), because the page has no
password. Uploads are bounded twice: by ``max_upload_bytes`` before their body is read, and by
the project's reader limits (``uegan.io.budget``: ``max_pixels`` and the decoded-size limit)
before their pixels are decoded.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from uegan.errors import UserError
from uegan.inference import DEFAULT_MAX_SIDE
from uegan.io.budget import DEFAULT_MAX_PIXELS

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
DEFAULT_MAX_UPLOAD_MB = 256
MAX_CHECKPOINTS = 4
PREVIEW_SIDE = 1600  # long side of the pictures the page shows (the downloads are full size)


@dataclass(frozen=True)
class ServeConfig:
    """Everything the server needs; checked by :meth:`check` before any model is loaded."""

    checkpoints: tuple[Path, ...]
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT  # 0: a free port chosen by the system
    device: str = "cpu"
    max_side: int | None = DEFAULT_MAX_SIDE
    full_res: bool = False
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_MB * 1024 * 1024
    max_pixels: int = DEFAULT_MAX_PIXELS
    preview_side: int = PREVIEW_SIDE
    labels: tuple[str, ...] = field(default=())  # filled by check(): one short name a checkpoint

    def check(self) -> "ServeConfig":
        """The configuration with its labels, or a UserError naming the option to fix."""
        if not self.checkpoints:
            raise UserError("give at least one --checkpoint")
        if len(self.checkpoints) > MAX_CHECKPOINTS:
            raise UserError(f"{len(self.checkpoints)} checkpoints: the page compares at most "
                            f"{MAX_CHECKPOINTS}")
        for path in self.checkpoints:
            if not path.is_file():
                raise UserError(f"--checkpoint {path}: no such file")
        if not 0 <= self.port <= 65535:
            raise UserError(f"--port {self.port}: expected 0 to 65535 (0: any free port)")
        if self.max_upload_bytes < 1:
            raise UserError("--max-upload-mb must be positive")
        if self.max_pixels < 1:
            raise UserError("--max-pixels must be positive")
        return ServeConfig(**{**self.__dict__, "labels": checkpoint_labels(self.checkpoints)})


def checkpoint_labels(paths: tuple[Path, ...]) -> tuple[str, ...]:
    """The shortest name of each checkpoint that tells it from the others: the file name without
    its extension, with as many parent folders as needed (``uegan/generator`` and
    ``uegan-curve/generator`` for two run folders' ``generator.safetensors``)."""
    parts = [path.resolve().with_suffix("").parts for path in paths]
    for depth in range(1, max(len(p) for p in parts) + 1):
        labels = ["/".join(p[-depth:]) for p in parts]
        if len(set(labels)) == len(labels):
            return tuple(labels)
    return tuple(f"{label} ({index + 1})" for index, label in enumerate(labels))


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and the loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str) -> str | None:
    """What to tell the user when the page is reachable from other machines, else None."""
    if is_loopback(host):
        return None
    return (f"listening on {host}, not only on this machine: anyone who can reach it can upload "
            f"photos, use its processor and download the results (the page has no password); "
            f"use --host {DEFAULT_HOST} to keep it local")

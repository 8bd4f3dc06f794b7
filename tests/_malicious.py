"""Malicious ``.pth`` files: unpickling them would run code (create a marker file).

Every loader of a ``.pth`` must read it with ``torch.load(..., weights_only=True)``, which
refuses the payload; with ``weights_only=False`` the marker file appears.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Callable

import torch

FORMATS = ("zip", "legacy")  # torch.save's archive, and a bare pickle (the pre-1.6 layout)


class Payload:
    """Unpickling this calls ``open(marker, "w")``: the file appears if a loader unpickles."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def write_malicious(path: Path, marker: Path, wrap: Callable[[Payload], Any] = lambda p: p,
                    fmt: str = "zip") -> Path:
    """Write ``wrap(Payload(marker))`` to ``path`` as a torch archive or a bare pickle."""
    obj = wrap(Payload(marker))
    if fmt == "zip":
        torch.save(obj, path)
    else:
        with open(path, "wb") as handle:
            pickle.dump(obj, handle, protocol=2)  # what torch.save used to write
    assert not marker.exists()
    return path

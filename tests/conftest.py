"""Shared test fixtures: where the reference tensors and the FiveK sample live."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def _find_shared() -> Path:
    """The project's shared folder: $UEGAN_SHARED, else ``../shared`` beside the checkout."""
    if "UEGAN_SHARED" in os.environ:
        return Path(os.environ["UEGAN_SHARED"])
    candidates = [REPO.parent / "shared", Path("/work/shared")]
    return next((c for c in candidates if c.is_dir()), candidates[0])


SHARED = _find_shared()
GOLDEN = SHARED / "golden"
FIVEK_SAMPLE = SHARED / "data" / "fivek-sample"


def load_golden(name: str):
    path = GOLDEN / name
    if not path.exists():
        raise FileNotFoundError(f"reference file {path} is missing: set UEGAN_SHARED to the shared folder")
    return torch.load(path, weights_only=True)


@pytest.fixture(scope="session")
def golden_vgg_state() -> dict[str, torch.Tensor]:
    """The random VGG19 of the reference files, as float32."""
    return {k: v.float() for k, v in load_golden("vgg19_random_to_relu5_1.pt").items()}


@pytest.fixture(autouse=True)
def _isolated_torch_home(tmp_path_factory, monkeypatch):
    """No test sees (or writes) the user's torch hub cache."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.getbasetemp() / "torch_home"))

"""Fuzzing the checkpoint loader: every damaged file ends in a generator or a one-line UserError.

Small valid files (``conv_dim`` 8) are written by the test in each format the loader reads, then
truncated at random lengths and given random byte flips (fixed random seeds). Each damaged file
must either load (a flip inside tensor data only changes numbers) or raise :class:`UserError`
naming the file in one line; any other exception is a bug in the loader.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from uegan.checkpoints import TRAIN_FORMAT, load_generator, save_generator
from uegan.errors import UserError
from uegan.models import Generator, GeneratorConfig
from uegan.models.published import generator_to_published

CASES_PER_FORMAT = 200
HEAD_BYTES = 2048  # most flips go where the structure is: headers, pickles, zip directories


def _generator() -> Generator:
    torch.manual_seed(0)
    return Generator(GeneratorConfig(conv_dim=8)).eval()


def _write_valid(fmt: str, folder: Path) -> Path:
    generator = _generator()
    if fmt == "safetensors":
        return save_generator(folder / "valid.safetensors", generator, "uegan")
    path = folder / "valid.pth"
    if fmt == "train":
        torch.save({"format": TRAIN_FORMAT, "variant": "uegan",
                    "generator_config": generator.config.to_dict(),
                    "G": generator.state_dict(), "step": 1}, path)
    else:
        torch.save({"G_net": generator_to_published(generator.state_dict()), "epoch": 1}, path)
    return path


def _damage(data: bytes, rng: random.Random) -> bytes:
    """A random truncation, or one to eight byte flips (most near the start or the end)."""
    if rng.random() < 0.35:
        return data[:rng.randrange(len(data))]
    damaged = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        region = rng.random()
        if region < 0.45:
            position = rng.randrange(min(HEAD_BYTES, len(data)))
        elif region < 0.8:
            position = len(data) - 1 - rng.randrange(min(HEAD_BYTES, len(data)))
        else:
            position = rng.randrange(len(data))
        damaged[position] = rng.randrange(256) if rng.random() < 0.5 \
            else damaged[position] ^ (1 << rng.randrange(8))
    return bytes(damaged)


@pytest.mark.parametrize("fmt", ["safetensors", "train", "published"])
def test_damaged_checkpoints_load_or_raise_a_one_line_user_error(tmp_path, fmt):
    valid = _write_valid(fmt, tmp_path)
    assert load_generator(valid).generator.config.conv_dim == 8
    data = valid.read_bytes()
    rng = random.Random(f"fuzz-{fmt}")
    outcomes = {"loaded": 0, "user error": 0}
    for case in range(CASES_PER_FORMAT):
        path = tmp_path / f"damaged-{case}{valid.suffix}"
        path.write_bytes(_damage(data, rng))
        try:
            loaded = load_generator(path)
        except UserError as error:
            message = str(error)
            assert path.name in message and "\n" not in message, (case, message)
            outcomes["user error"] += 1
        else:
            assert isinstance(loaded.generator, Generator)
            outcomes["loaded"] += 1
        path.unlink()
    # the damage reached the structure often enough to exercise the error paths
    assert outcomes["user error"] >= CASES_PER_FORMAT // 4, outcomes

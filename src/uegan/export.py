"""Exporting a generator to ONNX (dynamic batch, height and width), checked with onnxruntime.

Needs the optional packages of the ``export`` extra: ``pip install 'uegan[export]'``.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import torch

from uegan.errors import UserError
from uegan.io.files import atomic_path
from uegan.models.generator import Generator

log = logging.getLogger(__name__)

DEFAULT_OPSET = 17
CHECK_TOLERANCE = 1e-4
# sizes the exported graph is checked at: the trace size and two others, odd multiples of 16
CHECK_SIZES = ((1, 64, 96), (2, 48, 80), (1, 112, 48))


def _require_onnx():
    try:
        import onnx
        import onnxruntime
    except ImportError as error:
        raise UserError(f"ONNX export needs the optional packages onnx and onnxruntime "
                        f"({error}); install them with: pip install 'uegan[export]'") from None
    return onnx, onnxruntime


def export_onnx(generator: Generator, path: str | Path, opset: int = DEFAULT_OPSET,
                overwrite: bool = False, check: bool = True) -> float:
    """Write ``generator`` as ONNX with input ``input`` (N x 3 x H x W in [-1, 1], H and W
    multiples of 16) and output ``output``; returns the largest difference to PyTorch found by
    the check (0.0 when ``check`` is False)."""
    onnx, onnxruntime = _require_onnx()
    generator = generator.cpu().eval()
    sample = torch.rand(1, 3, 64, 96) * 2 - 1
    axes = {0: "batch", 2: "height", 3: "width"}
    with atomic_path(path, overwrite=overwrite) as temporary:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(generator, (sample,), str(temporary), input_names=["input"],
                              output_names=["output"], opset_version=opset,
                              dynamic_axes={"input": axes, "output": axes}, dynamo=False)
        onnx.checker.check_model(str(temporary))
        worst = check_onnx(generator, temporary) if check else 0.0
        if worst > CHECK_TOLERANCE:
            raise UserError(f"{path}: the exported graph differs from PyTorch by {worst:.2e} "
                            f"(more than {CHECK_TOLERANCE}); not written")
    log.info("wrote %s (opset %d; largest difference to PyTorch %.2e)", path, opset, worst)
    return worst


def check_onnx(generator: Generator, path: str | Path, sizes=CHECK_SIZES, seed: int = 0) -> float:
    """Largest absolute difference between onnxruntime and PyTorch on random inputs."""
    _, onnxruntime = _require_onnx()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    generator = generator.cpu().eval()
    rng = torch.Generator().manual_seed(seed)
    worst = 0.0
    for batch, height, width in sizes:
        x = torch.rand(batch, 3, height, width, generator=rng) * 2 - 1
        with torch.no_grad():
            expected = generator(x).numpy()
        (got,) = session.run(["output"], {"input": x.numpy()})
        worst = max(worst, float(np.abs(got - expected).max()))
    return worst

"""ONNX export: dynamic batch, height and width; onnxruntime agrees with PyTorch (1e-4)."""

from __future__ import annotations

import numpy as np
import onnx  # noqa: F401  (the test extra: missing, these tests fail, not skip)
import onnxruntime
import pytest
import torch

from conftest import load_golden
from uegan.cli import main
from uegan.export import export_onnx
from uegan.models.generator import Generator
from uegan.models.published import generator_from_published


@pytest.fixture(scope="module")
def golden():
    data = load_golden("generator_forward.pt")
    config, state = generator_from_published(data["state_dict"])
    generator = Generator(config).eval()
    generator.load_state_dict(state)
    return generator, data


def test_onnx_matches_pytorch_at_other_sizes(golden, tmp_path):
    generator, data = golden
    path = tmp_path / "g.onnx"
    assert export_onnx(generator, path) <= 1e-4
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    # the published reference input and output, then sizes never traced (odd multiples of 16)
    (output,) = session.run(None, {"input": data["input"].numpy()})
    assert np.abs(output - data["output"].numpy()).max() <= 1e-4
    torch.manual_seed(0)
    for shape in ((1, 3, 80, 48), (3, 3, 144, 112), (1, 3, 16, 208)):
        x = torch.rand(shape) * 2 - 1
        with torch.no_grad():
            expected = generator(x).numpy()
        (output,) = session.run(None, {"input": x.numpy()})
        assert output.shape == expected.shape
        assert np.abs(output - expected).max() <= 1e-4


def test_export_command(golden, tmp_path, capsys):
    checkpoint = tmp_path / "published.pth"
    torch.save({"G_net": golden[1]["state_dict"]}, checkpoint)
    target = tmp_path / "g.onnx"
    assert main(["export", "-c", str(checkpoint), "--onnx", str(target),
                 "--safetensors", str(tmp_path / "g.safetensors")]) == 0
    assert target.stat().st_size > 0 and (tmp_path / "g.safetensors").exists()
    assert main(["export", "-c", str(checkpoint), "--onnx", str(target)]) == 2  # exists
    assert "already exists" in capsys.readouterr().err
    assert main(["export", "-c", str(checkpoint)]) == 2  # nothing asked
    assert main(["export", "--onnx", str(tmp_path / "new.onnx")]) == 2  # no checkpoint
    assert "give the generator checkpoint with -c" in capsys.readouterr().err
    # the positional form of earlier versions still works, with a warning
    assert main(["export", str(checkpoint), "--safetensors", str(tmp_path / "old.safetensors")]) == 0
    assert "give the checkpoint with -c/--checkpoint" in capsys.readouterr().err
    assert (tmp_path / "old.safetensors").is_file()

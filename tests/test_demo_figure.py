"""docs/make_demo_figure.py: the README's picture, made from a demo folder's own files."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "make_demo_figure.py"


def _fake_demo(folder: Path) -> None:
    images = folder / "images"
    images.mkdir(parents=True)
    colours = {"input": (40, 40, 60), "uegan": (200, 150, 30), "uegan-curve": (120, 110, 100),
               "original": (140, 120, 110)}
    for name in ("chelsea-1", "coffee-2"):
        for kind, colour in colours.items():
            Image.new("RGB", (96, 64), colour).save(images / f"{name}-{kind}.png")
    scores = {"psnr": 12.0, "ssim": 0.5, "ciede2000": 20.0}
    (folder / "results.json").write_text(json.dumps({
        "models": [{"variant": "uegan"}, {"variant": "uegan-curve"}],
        "settings": {"compare_with": "uegan"},
        "held_out": [{"name": name, "input": scores,
                      "outputs": {"uegan": scores, "uegan-curve": scores}}
                     for name in ("chelsea-1", "coffee-2")]}))


def test_figure_has_four_columns_in_order(tmp_path):
    spec = importlib.util.spec_from_file_location("make_demo_figure", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _fake_demo(tmp_path / "demo")
    figure = module.make_figure(tmp_path / "demo", ("chelsea-1", "coffee-2"))
    width = module.CELL  # 96 x 64 pictures scaled to a long side of CELL
    assert figure.size[0] == 4 * width
    pixels = np.asarray(figure)
    top = module.HEADER + 5
    # input | published | recommended | original, left to right
    expected = [(40, 40, 60), (200, 150, 30), (120, 110, 100), (140, 120, 110)]
    for column, colour in enumerate(expected):
        assert tuple(pixels[top, column * width + width // 2]) == colour


def test_existing_output_is_refused(tmp_path):
    _fake_demo(tmp_path / "demo")
    out = tmp_path / "figure.png"
    out.write_bytes(b"keep")
    result = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "demo"), str(out)],
                            capture_output=True, text=True)
    assert result.returncode != 0 and "exists" in result.stderr
    assert out.read_bytes() == b"keep"
    subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "demo"), str(out), "--overwrite",
                    "--rows", "chelsea-1"], check=True, capture_output=True)
    assert Image.open(out).size[0] == 4 * 180

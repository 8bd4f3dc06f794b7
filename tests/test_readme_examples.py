"""The README's Python API example runs as written (random weights, made-up photos)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from conftest import load_golden
from PIL import Image

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(section: str) -> list[str]:
    text = README.read_text(encoding="utf-8")
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", body, re.S)


def _photo(path: Path, seed: int) -> None:
    pixels = np.random.default_rng(seed).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def test_the_python_api_example_runs(tmp_path, monkeypatch, capsys):
    torch.save({"G_net": load_golden("generator_forward.pt")["state_dict"]},
               tmp_path / "UEGAN_FiveK.pth")
    _photo(tmp_path / "photo.jpg", 0)
    _photo(tmp_path / "photos" / "a.png", 1)
    _photo(tmp_path / "photos" / "b.png", 2)
    (tmp_path / "photos" / "c.png").write_text("not a photo")   # fails alone
    for name, seed in (("photo.jpg", 3), ("a.png", 4), ("b.png", 5)):
        _photo(tmp_path / "labels" / name, seed)
    monkeypatch.chdir(tmp_path)
    example = python_blocks("Python API")[0]
    exec(compile(example, "README.md (Python API)", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    outcomes = sorted(lines[:3])   # a file that cannot be read is reported first
    assert outcomes[0] == "photos/a.png -> enhanced/a.png ok"
    assert outcomes[1] == "photos/b.png -> enhanced/b.png ok"
    assert outcomes[2].startswith("photos/c.png -> enhanced/c.png") and "not an image" in outcomes[2]
    psnr, ssim = map(float, lines[3].split())
    assert 0 < psnr < 60 and -1 <= ssim <= 1
    assert sorted(p.name for p in (tmp_path / "enhanced").iterdir()) == ["a.png", "b.png", "photo.jpg"]

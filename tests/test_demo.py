"""``uegan demo``: the data set it builds, its output folder rules, and a shortened run that must
bring the held-out photos closer to their originals."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("skimage")

from uegan import demo  # noqa: E402
from uegan.cli import main  # noqa: E402
from uegan.errors import UserError  # noqa: E402

# the demo's own default: 120 steps, about 80 s of CPU time on one idle core
CI_STEPS = demo.DEFAULT_STEPS


def srgb_to_linear(v):
    return ((v + 0.055) / 1.055) ** 2.4 if v > 0.04045 else v / 12.92


def linear_to_srgb(v):
    return 1.055 * v ** (1 / 2.4) - 0.055 if v > 0.0031308 else 12.92 * v


def test_degradation_arithmetic():
    pixel = np.array([[[0.6, 0.5, 0.4]]])
    # one stop down in linear light, gains on red and blue, then gamma, on a single pixel (the
    # contrast step pulls towards the image mean, which is the pixel itself)
    degraded = demo.Degradation(exposure_ev=-1.0, red_gain=0.8, blue_gain=1.2, gamma=1.25,
                                contrast=0.5).apply(pixel)[0, 0]
    expected = [linear_to_srgb(srgb_to_linear(v) * 0.5 * gain) ** 1.25
                for v, gain in zip((0.6, 0.5, 0.4), (0.8, 1.0, 1.2))]
    mean = np.mean(expected)
    expected = [mean + 0.5 * (v - mean) for v in expected]
    assert np.allclose(degraded, expected, atol=1e-6)
    identity = demo.Degradation(0.0, 1.0, 1.0, 1.0, 1.0)
    image = np.random.default_rng(0).uniform(0, 1, (8, 8, 3))
    assert np.allclose(identity.apply(image), image, atol=1e-6)


def test_dataset(tmp_path):
    data = demo.build_dataset(tmp_path, seed=3, low_copies=2, held_out_copies=2)
    high = sorted(p.name for p in data.high.iterdir())
    low = sorted(p.name for p in data.low.iterdir())
    assert high == ["astronaut.png", "motorcycle_left.png", "rocket.png"]
    assert low == [f"{stem}-{i}.png" for stem in ("astronaut", "motorcycle_left", "rocket") for i in (1, 2)]
    assert sorted(p.name for p in data.test_low.iterdir()) == sorted(p.name for p in data.test_label.iterdir())
    assert len(list(data.test_low.iterdir())) == 4
    for path in list(data.test_low.iterdir()) + list(data.test_label.iterdir()):
        width, height = Image.open(path).size
        assert width % 16 == 0 and height % 16 == 0 and min(width, height) == 256
    # the held-out originals are scikit-image's photos (resized): compare mean colours
    from skimage import data as skdata

    label = np.asarray(Image.open(data.test_label / "coffee-1.png"), dtype=float)
    assert np.abs(label.mean(axis=(0, 1)) - skdata.coffee().mean(axis=(0, 1))).max() < 3
    degraded = np.asarray(Image.open(data.test_low / "coffee-1.png"), dtype=float)
    assert degraded.mean() < label.mean()                      # under-exposed on the whole
    # the two halves of a training photo are disjoint: no low image holds the high half
    high_half = np.asarray(Image.open(data.high / "astronaut.png"))
    assert high_half.shape == (288, 144, 3)
    # same seed, same data set
    again = demo.build_dataset(tmp_path / "again", seed=3, low_copies=2, held_out_copies=2)
    assert (again.test_low / "chelsea-2.png").read_bytes() == (data.test_low / "chelsea-2.png").read_bytes()


def test_output_folder_rules(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert demo.default_out_dir().resolve() == tmp_path / "uegan-demo"
    (tmp_path / "uegan-demo").mkdir()
    (tmp_path / "uegan-demo" / "mine.txt").write_text("keep me")
    assert demo.default_out_dir().name == "uegan-demo-2"
    with pytest.raises(UserError, match="not empty"):
        demo.prepare_out_dir(tmp_path / "uegan-demo", overwrite=False)
    (tmp_path / "uegan-demo" / "images").mkdir()
    (tmp_path / "uegan-demo" / "index.html").write_text("old")
    demo.prepare_out_dir(tmp_path / "uegan-demo", overwrite=True)
    assert sorted(p.name for p in (tmp_path / "uegan-demo").iterdir()) == ["mine.txt"]
    assert main(["demo", "--out", str(tmp_path / "uegan-demo"), "--steps", "1"]) == 2


def test_demo_improves_held_out_psnr(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--steps", str(CI_STEPS), "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    # no VGG19 ImageNet weights here (TORCH_HOME is an empty folder in tests): said clearly
    assert "RANDOM VGG19" in printed
    html = (out / "index.html").read_text()
    assert "RANDOM VGG19" in html
    results = json.loads((out / "results.json").read_text())
    rows = results["held_out"]
    assert len(rows) == 6 and results["steps"] == CI_STEPS and results["vgg"] == "random"
    for row in rows:
        for kind in ("input", "output", "original"):
            image = out / "images" / f"{row['name']}-{kind}.png"
            assert image.is_file() and f'src="images/{row["name"]}-{kind}.png"' in html
    # the metrics in the table are those of the files written (uegan.metrics is tested elsewhere
    # against scikit-image; here: PSNR written out)
    first = rows[0]
    output = np.asarray(Image.open(out / "images" / f"{first['name']}-output.png"), dtype=np.float64)[4:-4, 4:-4]
    original = np.asarray(Image.open(out / "images" / f"{first['name']}-original.png"), dtype=np.float64)[4:-4, 4:-4]
    assert first["output_psnr"] == pytest.approx(10 * np.log10(255 ** 2 / np.mean((output - original) ** 2)), abs=1e-9)
    mean_input = np.mean([row["input_psnr"] for row in rows])
    mean_output = np.mean([row["output_psnr"] for row in rows])
    assert f"{mean_input:.2f}" in printed and f"{mean_output:.2f}" in printed
    assert mean_output > mean_input + 0.25, (mean_input, mean_output)

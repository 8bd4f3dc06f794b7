"""``uegan demo``: the data set it builds, its output folder rules, and a shortened run that must
bring the held-out photos closer to their originals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import skimage  # noqa: F401  (the test extra: missing, these tests fail, not skip)
from PIL import Image

from uegan.apps import demo
from uegan.cli import main
from uegan.errors import UserError

RECOMMENDED = "uegan-curve"


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


def test_unknown_variant_is_one_line(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--variant", "uegan-nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "uegan-nope" in err[0] and "uegan-curve" in err[0]
    assert main(["demo", "--out", str(out), "--compare-with", "nope"]) == 2
    assert not out.exists()  # nothing was built


def test_settings_train_the_comparison_first():
    settings = demo.DemoSettings()
    assert settings.variant == RECOMMENDED
    steps, lr = demo.DEMO_SCHEDULE[RECOMMENDED]
    assert settings.models() == [("uegan", 120, 1.0), (RECOMMENDED, steps, lr)]
    assert demo.DemoSettings(compare_with=None, steps=7).models() == [(RECOMMENDED, 7, lr)]
    assert demo.DemoSettings(variant="uegan", lr_scale=0.5).models() == [("uegan", 120, 0.5)]
    # a variant without a measured schedule: 120 steps at the published rates
    assert demo.DemoSettings(variant="uegan-charbonnier-se", compare_with=None).models() == [
        ("uegan-charbonnier-se", 120, 1.0)]


def _srgb_to_lab(rgb8: np.ndarray) -> np.ndarray:
    from skimage.color import rgb2lab

    return rgb2lab(rgb8)


def test_demo_enhances_every_measure(tmp_path, capsys):
    """The whole demo as shipped (seed 0): the recommended variant beats the inputs on PSNR,
    SSIM and CIEDE2000; the page shows input | published | recommended | original."""
    from skimage.color import deltaE_ciede2000
    from skimage.metrics import structural_similarity

    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    # no VGG19 ImageNet weights here (TORCH_HOME is an empty folder in tests): said clearly
    assert "RANDOM VGG19" in printed
    html = (out / "index.html").read_text()
    assert "RANDOM VGG19" in html
    results = json.loads((out / "results.json").read_text())
    rows = results["held_out"]
    assert len(rows) == 6 and results["vgg"] == "random"
    assert [(m["variant"], m["steps"], m["lr_scale"]) for m in results["models"]] == [
        ("uegan", 120, 1.0), (RECOMMENDED, *demo.DEMO_SCHEDULE[RECOMMENDED])]
    for row in rows:
        sources = [f'src="images/{row["name"]}-{kind}.png"'
                   for kind in ("input", "uegan", RECOMMENDED, "original")]
        positions = [html.index(source) for source in sources]
        assert positions == sorted(positions)  # input | published | recommended | original
        for kind in ("input", "uegan", RECOMMENDED, "original"):
            assert (out / "images" / f"{row['name']}-{kind}.png").is_file()
    # the figures are those of the files written, recomputed here (scikit-image, numpy)
    first = rows[0]

    def read(kind):
        return np.asarray(Image.open(out / "images" / f"{first['name']}-{kind}.png"))

    output, original = read(RECOMMENDED), read("original")
    a, b = output[4:-4, 4:-4].astype(np.float64), original[4:-4, 4:-4].astype(np.float64)
    scores = first["outputs"][RECOMMENDED]
    assert scores["psnr"] == pytest.approx(10 * np.log10(255 ** 2 / np.mean((a - b) ** 2)), abs=1e-9)
    assert scores["ssim"] == pytest.approx(
        structural_similarity(a, b, channel_axis=-1, data_range=255), abs=1e-9)
    assert scores["ciede2000"] == pytest.approx(
        deltaE_ciede2000(_srgb_to_lab(output), _srgb_to_lab(original))[4:-4, 4:-4].mean(), abs=1e-9)
    means = results["mean"]
    for metric in ("psnr", "ssim", "ciede2000"):
        values = [row["outputs"][RECOMMENDED][metric] for row in rows]
        assert means[RECOMMENDED][metric] == pytest.approx(np.mean(values), abs=1e-12)
    assert f"{means['input']['psnr']:.2f}" in printed and f"{means[RECOMMENDED]['psnr']:.2f}" in printed
    ours, before = means[RECOMMENDED], means["input"]
    assert ours["psnr"] > before["psnr"] + 0.25, (before, ours)
    assert ours["ssim"] > before["ssim"], (before, ours)
    assert ours["ciede2000"] < before["ciede2000"] - 0.5, (before, ours)
    assert results["improves"][RECOMMENDED] == {"psnr": True, "ssim": True, "ciede2000": True}


def test_threads_are_timed_on_a_trainer_that_is_never_fitted(tmp_path):
    """Without --threads the demo times a training step of the trainer's own networks (built from
    the demo's settings and data, never fitted: nothing is written to its run folder)."""
    import os

    import torch

    from uegan.training.trainer import Trainer

    settings = demo.DemoSettings(compare_with=None, low_copies=1, held_out_copies=1, progress=False)
    data = demo.build_dataset(tmp_path / "data", low_copies=1, held_out_copies=1)
    vgg, _ = demo.find_vgg(None)
    probe = Trainer(demo.train_config(settings, data, tmp_path / "run", settings.variant, 1), vgg=vgg)
    before = [p.detach().clone() for p in probe.generator.parameters()]
    threads, seconds = demo.choose_threads(probe, settings)
    assert threads in {1, torch.get_num_threads(), os.cpu_count()} and seconds > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, probe.generator.parameters()))
    assert not (tmp_path / "run").exists()
    # --threads given: nothing is timed
    given = demo.DemoSettings(threads=3)
    assert demo.choose_threads(probe, given)[0] == 3

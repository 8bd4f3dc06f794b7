"""``uegan prepare-fivek``: the split, the ProPhoto-to-sRGB conversion, the report, idempotence.

References are independent of the code under test: the colour matrices published by
B. Lindbloom (brucelindbloom.com: ProPhoto RGB and sRGB RGB/XYZ matrices, Bradford D50->D65),
written out below, and littlecms (through Pillow's ImageCms) with a ProPhoto RGB ICC profile
built byte by byte in this file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile  # a dependency of uegan: missing, these tests fail, not skip
from PIL import Image, ImageCms, ImageOps

import uegan
from uegan.apps import fivek, fivek_prepare
from uegan.cli import main
from uegan.errors import UserError
from uegan.io.exif import apply_orientation
from _icc import gamma_curve, matrix_shaper_profile

# Lindbloom: linear ProPhoto RGB -> XYZ (D50), Bradford D50 -> D65, XYZ (D65) -> linear sRGB
PROPHOTO_TO_XYZ = np.array([[0.7976749, 0.1351917, 0.0313534],
                            [0.2880402, 0.7118741, 0.0000857],
                            [0.0000000, 0.0000000, 0.8252100]])
BRADFORD_D50_D65 = np.array([[0.9555766, -0.0230393, 0.0631636],
                             [-0.0282895, 1.0099416, 0.0210077],
                             [0.0122982, -0.0204830, 1.3299098]])
XYZ_TO_SRGB = np.array([[3.2404542, -1.5371385, -0.4985314],
                        [-0.9692660, 1.8760108, 0.0415560],
                        [0.0556434, -0.2040259, 1.0572252]])


def reference_prophoto_to_srgb(rgb) -> np.ndarray:
    """Written out from the standards: gamma 1.8 decode, matrices, clip, sRGB curve."""
    linear = np.asarray(rgb, dtype=np.float64) ** 1.8
    srgb_linear = np.clip(linear @ (XYZ_TO_SRGB @ BRADFORD_D50_D65 @ PROPHOTO_TO_XYZ).T, 0, 1)
    return np.where(srgb_linear <= 0.0031308, 12.92 * srgb_linear,
                    1.055 * srgb_linear ** (1 / 2.4) - 0.055)


def prophoto_icc(description: str = "ProPhoto RGB (uegan test)", colorants=PROPHOTO_TO_XYZ,
                 gamma: float | None = 1.8) -> bytes:
    """A version 2 matrix/shaper ICC profile of ProPhoto RGB: D50 colorants, gamma 1.8 curves
    (other colorants and gamma when given; ``gamma=None`` leaves the curves out)."""
    return matrix_shaper_profile(description, colorants, None if gamma is None else gamma_curve(gamma),
                                 white=colorants.sum(axis=1))


def srgb_linear_icc() -> bytes:
    """sRGB's colorants (Lindbloom's D50-adapted sRGB matrix) with linear curves."""
    srgb_d50 = np.array([[0.4360747, 0.3850649, 0.1430804],
                         [0.2225045, 0.7168786, 0.0606169],
                         [0.0139322, 0.0971045, 0.7141733]])
    return prophoto_icc("sRGB linear", colorants=srgb_d50, gamma=1.0)


# ---------------------------------------------------------------------------------------------
# colour
# ---------------------------------------------------------------------------------------------

def test_known_colours():
    # white and black are kept exactly; ProPhoto's primaries lie outside sRGB and clip to sRGB's
    assert np.allclose(fivek.prophoto_to_srgb([1.0, 1.0, 1.0]), 1.0, atol=1e-12)
    assert np.allclose(fivek.prophoto_to_srgb([0.0, 0.0, 0.0]), 0.0, atol=1e-12)
    assert np.allclose(fivek.prophoto_to_srgb(np.eye(3)), np.eye(3), atol=1e-12)
    # a neutral grey stays neutral: 0.5 -> linear 0.5^1.8 -> sRGB curve
    grey = 1.055 * (0.5 ** 1.8) ** (1 / 2.4) - 0.055
    assert grey == pytest.approx(0.5723068, abs=1e-6)
    assert np.allclose(fivek.prophoto_to_srgb([0.5, 0.5, 0.5]), grey, atol=1e-9)


def test_matches_the_published_matrices():
    # Lindbloom's matrices use rounded white points (D50 0.96422/0.82521, D65 0.95047/1.08883),
    # so they differ from the chromaticity-derived ones in the fourth decimal: within half an
    # 8-bit level everywhere (the worst case is a channel clipped near 0, where sRGB is steepest)
    colours = np.random.default_rng(0).uniform(0, 1, (2000, 3))
    assert np.abs(fivek.prophoto_to_srgb(colours) - reference_prophoto_to_srgb(colours)).max() < 0.5 / 255
    composed = XYZ_TO_SRGB @ BRADFORD_D50_D65 @ PROPHOTO_TO_XYZ
    assert np.abs(fivek.PROPHOTO_TO_LINEAR_SRGB - composed).max() < 1e-3


def test_matches_littlecms_with_a_prophoto_icc_profile():
    values = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    values[0, :6] = [[255, 255, 255], [0, 0, 0], [128, 128, 128], [200, 60, 40], [40, 160, 90], [30, 50, 200]]
    prophoto = ImageCms.ImageCmsProfile(io.BytesIO(prophoto_icc()))
    srgb = ImageCms.createProfile("sRGB")
    converted = ImageCms.profileToProfile(Image.fromarray(values), prophoto, srgb,
                                          renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC)
    lcms = np.asarray(converted, dtype=np.float64)
    ours = fivek.prophoto_to_srgb(values / 255.0) * 255
    assert np.abs(ours - lcms).max() <= 1.5
    assert np.abs(ours - lcms).mean() < 0.3


def test_icc_profiles_are_recognised():
    assert fivek.classify_icc(prophoto_icc()) == "prophoto"
    assert fivek.classify_icc(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()) == "srgb"
    # judged by content, not by name: a ProPhoto profile called "Adobe RGB" is ProPhoto, and a
    # linear profile called "sRGB linear" (sRGB primaries, gamma 1.0) is not sRGB
    assert fivek.classify_icc(prophoto_icc("Adobe RGB (1998)")) == "prophoto"
    assert fivek.classify_icc(srgb_linear_icc()) == "sRGB linear"
    assert fivek.classify_icc(None) is None


@pytest.mark.parametrize("orientation", range(1, 9))
def test_tiff_orientation_matches_pillow(orientation):
    array = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(buffer.getvalue()))))
    assert np.array_equal(apply_orientation(array, orientation), expected)


def test_resize_and_crop():
    image = np.random.default_rng(2).uniform(0, 1, (300, 400, 3)).astype(np.float32)
    assert fivek.resize_short_edge(image).shape == (512, 683, 3)   # 400 * 512 / 300 = 682.67
    assert fivek.resize_short_edge(image.transpose(1, 0, 2)).shape == (683, 512, 3)
    flat = np.full((700, 1000, 3), 0.25, np.float32)
    assert np.allclose(fivek.resize_short_edge(flat), 0.25, atol=1e-6)
    already = np.random.default_rng(3).uniform(0, 1, (512, 600, 3)).astype(np.float32)
    assert fivek.resize_short_edge(already) is already
    columns = np.broadcast_to(np.arange(700, dtype=np.float32)[None, :, None], (512, 700, 3))
    assert fivek.center_crop(columns)[0, 0, 0] == (700 - 512) // 2
    assert fivek.val_ids(50)[:3] == [4501, 4511, 4521] and len(set(fivek.val_ids(50))) == 50
    assert fivek.val_ids(500) == list(range(4501, 5001))


# ---------------------------------------------------------------------------------------------
# a fake FiveK tree
# ---------------------------------------------------------------------------------------------

RED_16 = (40000, 20000, 10000)    # the two halves of every 16-bit ProPhoto TIFF
BLUE_16 = (8000, 15000, 50000)


def two_halves(height: int, width: int, left, right, dtype) -> np.ndarray:
    array = np.empty((height, width, 3), dtype=dtype)
    array[:, : width // 2] = left
    array[:, width // 2:] = right
    return array


def write_tiff16(path: Path, height: int, width: int, icc: bytes | None) -> None:
    extratags = [(34675, "B", len(icc), icc, True)] if icc else []
    tifffile.imwrite(path, two_halves(height, width, RED_16, BLUE_16, np.uint16),
                     photometric="rgb", extratags=extratags)


def write_8bit(path: Path, height: int, width: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    colour = rng.integers(30, 220, 3)
    array = np.clip(colour + rng.integers(-20, 20, (height, width, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(array).save(path, quality=95) if path.suffix == ".jpg" else Image.fromarray(array).save(path)


@pytest.fixture
def fake_fivek(tmp_path):
    """A few files per range: 16-bit ProPhoto TIFFs (tagged and untagged), 8-bit PNG and JPEG."""
    inputs, expert = tmp_path / "inputs", tmp_path / "expertC"
    inputs.mkdir()
    (expert / "sub").mkdir(parents=True)
    icc = prophoto_icc()
    # Expert C, high-quality range: one tagged 16-bit TIFF, one PNG, one JPEG (in a subfolder)
    write_tiff16(expert / "a0001-first.tif", 540, 720, icc)
    write_8bit(expert / "a0002-second.png", 600, 520, 1)
    write_8bit(expert / "sub" / "a2250-last.jpg", 520, 600, 2)
    # Expert C of a training input: not part of the split
    write_8bit(expert / "a3000-unused.png", 520, 520, 3)
    # inputs: an unused high-range input, two low-range ones (16-bit untagged TIFF and PNG)
    write_8bit(inputs / "a0001-first.png", 520, 520, 4)
    write_tiff16(inputs / "a2251-low.tiff", 768, 1024, None)
    write_8bit(inputs / "a4500-low.png", 512, 640, 5)
    # test pairs: a4501 and a4511 (both in the default validation subset), a5000 without Expert C
    for number, seed in ((4501, 6), (4511, 7), (5000, 8)):
        write_8bit(inputs / f"a{number}-pair.png", 512, 700, seed)
    write_tiff16(expert / "a4501-pair.tif", 600, 800, icc)
    write_8bit(expert / "a4511-pair.jpg", 512, 700, 9)
    # files that are not FiveK images
    (inputs / "notes.txt").write_text("hello")
    write_8bit(inputs / "IMG_0001.png", 520, 520, 10)
    return inputs, expert, tmp_path / "out"


def tree_state(root: Path) -> dict[str, tuple[int, str]]:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_prepare_fivek_split(fake_fivek, capsys):
    inputs, expert, out = fake_fivek
    code = main(["prepare-fivek", "--inputs", str(inputs), "--expert-c", str(expert), "--out", str(out),
                 "--workers", "1"])
    printed, err = capsys.readouterr()
    assert code == 1  # incomplete: most of the 5000 files are missing
    # off a terminal the conversion's progress is a log line (the last one says it is done)
    assert [line for line in err.splitlines() if line.startswith("converting: ")][-1].split(",")[0] \
        == "converting: 10/10 images"
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*.png"))
    assert files == [
        "test/label/a4501-pair.png", "test/label/a4511-pair.png",
        "test/low/a4501-pair.png", "test/low/a4511-pair.png", "test/low/a5000-pair.png",
        "train/high/a0001-first.png", "train/high/a0002-second.png", "train/high/a2250-last.png",
        "train/low/a2251-low.png", "train/low/a4500-low.png",
        "val/label/a4501-pair.png", "val/label/a4511-pair.png",
        "val/low/a4501-pair.png", "val/low/a4511-pair.png"]

    def load(name: str) -> np.ndarray:
        return np.asarray(Image.open(out / name))

    # sizes: short edge 512 for training, 512x512 for test pairs
    assert load("train/high/a0001-first.png").shape == (512, 683, 3)
    assert load("train/high/a0002-second.png").shape == (591, 512, 3)   # 600 * 512 / 520 = 590.8
    assert load("train/low/a2251-low.png").shape == (512, 683, 3)
    assert load("train/low/a4500-low.png").shape == (512, 640, 3)
    for name in ("test/low/a4501-pair.png", "test/label/a4501-pair.png", "test/low/a5000-pair.png"):
        assert load(name).shape == (512, 512, 3)
    # a file already at short edge 512 is only cropped, never resampled
    source = np.asarray(Image.open(inputs / "a4501-pair.png"))
    assert np.array_equal(load("test/low/a4501-pair.png"), source[:, 94:606])
    assert np.array_equal(load("train/low/a4500-low.png"), np.asarray(Image.open(inputs / "a4500-low.png")))
    # 16-bit ProPhoto TIFFs (with and without ICC profile) come out as the reference sRGB colours
    red = np.floor(reference_prophoto_to_srgb(np.array(RED_16) / 65535) * 255 + 0.5)
    blue = np.floor(reference_prophoto_to_srgb(np.array(BLUE_16) / 65535) * 255 + 0.5)
    for name in ("train/high/a0001-first.png", "train/low/a2251-low.png"):
        image = load(name).astype(int)
        assert np.abs(image[256, 100] - red).max() <= 1 and np.abs(image[256, -100] - blue).max() <= 1
    label = load("test/label/a4501-pair.png").astype(int)  # 800x600 -> 683x512, crop from column 85
    assert np.abs(label[256, 100] - red).max() <= 1 and np.abs(label[256, 400] - blue).max() <= 1
    # validation pairs are byte copies of test pairs
    assert (out / "val/low/a4501-pair.png").read_bytes() == (out / "test/low/a4501-pair.png").read_bytes()

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {"train/high": 3, "train/low": 2, "test/low": 3, "test/label": 2,
                                  "val/low": 2, "val/label": 2}
    assert manifest["expected_counts"]["train/high"] == 2250 and manifest["expected_counts"]["val/low"] == 50
    assert manifest["complete"] is False
    assert manifest["missing"]["expert-c"][:2] == ["a0003", "a0004"] and "a5000" in manifest["missing"]["expert-c"]
    assert len(manifest["missing"]["expert-c"]) == 2250 - 3 + 500 - 2
    assert len(manifest["missing"]["inputs"]) == 2250 - 2 + 500 - 3
    for name, entry in manifest["files"].items():
        assert entry["sha256"] == hashlib.sha256((out / name).read_bytes()).hexdigest()
    source_entry = manifest["files"]["train/low/a2251-low.png"]["source"]
    assert source_entry["sha256"] == hashlib.sha256((inputs / "a2251-low.tiff").read_bytes()).hexdigest()
    assert "ProPhoto" in manifest["files"]["train/high/a0001-first.png"]["colour"]

    assert "missing in --inputs: 2745 (a2252-a4499, a4502-a4510, a4512-a4999)" in printed
    assert "ignored in --inputs (not named aNNNN-*.png/.jpg/.tif): 2 (IMG_0001.png, notes.txt)" in printed
    assert "not part of the split in --expert-c (as intended): 1 files" in printed
    assert "not part of the split in --inputs (as intended): 1 files" in printed

    # a second run changes nothing, not even the manifest, and says so
    before = tree_state(out)
    code = main(["prepare-fivek", "--inputs", str(inputs), "--expert-c", str(expert), "--out", str(out),
                 "--workers", "1", "--allow-missing"])
    assert code == 0
    assert "up to date: nothing to do (14 files checked)" in capsys.readouterr().out
    assert tree_state(out) == before


def test_prepare_fivek_conflicts_changes_and_val_count(fake_fivek):
    inputs, expert, out = fake_fivek
    fivek_prepare.prepare_fivek(inputs, expert, out)
    # an output edited by hand is reported and kept, unless --overwrite
    edited = out / "train/low/a4500-low.png"
    edited.write_bytes(b"not a png")
    report = fivek_prepare.prepare_fivek(inputs, expert, out)
    assert report.conflicts == ["train/low/a4500-low.png"] and not report.written and not report.ok
    assert edited.read_bytes() == b"not a png"
    report = fivek_prepare.prepare_fivek(inputs, expert, out, overwrite=True)
    assert report.written == ["train/low/a4500-low.png"] and report.ok
    # a changed source is redone; a merely touched one is not
    write_8bit(inputs / "a4500-low.png", 512, 640, 99)
    report = fivek_prepare.prepare_fivek(inputs, expert, out, overwrite=True)
    assert report.written == ["train/low/a4500-low.png"]
    touched = inputs / "a2251-low.tiff"
    touched.touch()
    assert fivek_prepare.prepare_fivek(inputs, expert, out).written == []
    # a smaller validation subset removes our own copies that are no longer part of it
    report = fivek_prepare.prepare_fivek(inputs, expert, out, val_count=10)   # a4501, a4551, ...
    assert report.removed == ["val/label/a4511-pair.png", "val/low/a4511-pair.png"]
    assert sorted(p.name for p in (out / "val/low").iterdir()) == ["a4501-pair.png"]
    # a stranger's file in an output folder is reported
    (out / "train/high/holiday.png").write_bytes(b"x")
    assert fivek_prepare.prepare_fivek(inputs, expert, out, val_count=10).stale == ["train/high/holiday.png"]


def test_prepare_fivek_refuses_other_profiles_and_duplicates(fake_fivek):
    inputs, expert, out = fake_fivek
    # a profile that cannot be applied (no tone curves) is refused, named in the message
    tifffile.imwrite(inputs / "a2252-adobe.tif", two_halves(520, 520, RED_16, BLUE_16, np.uint16),
                     photometric="rgb",
                     extratags=[(34675, "B", 0, prophoto_icc("Adobe RGB (1998)", gamma=None), True)])
    write_8bit(expert / "a0002-second-copy.jpg", 520, 520, 11)
    report = fivek_prepare.prepare_fivek(inputs, expert, out)
    assert "train/low/a2252-adobe.png" in report.failed
    assert "Adobe RGB (1998)" in report.failed["train/low/a2252-adobe.png"]
    assert report.duplicates["expert-c"] == {"a0002": ["a0002-second-copy.jpg", "a0002-second.png"]}
    assert not (out / "train/high/a0002-second.png").exists()
    with pytest.raises(UserError, match="does not exist"):
        fivek_prepare.prepare_fivek(inputs / "nope", expert, out)
    with pytest.raises(UserError, match="must not lie inside"):
        fivek_prepare.prepare_fivek(inputs, expert, inputs / "out")


def test_prepare_fivek_in_parallel_gives_the_same_files(fake_fivek, tmp_path):
    inputs, expert, out = fake_fivek
    fivek_prepare.prepare_fivek(inputs, expert, out, workers=1)
    fivek_prepare.prepare_fivek(inputs, expert, tmp_path / "parallel", workers=2)
    assert (json.loads((out / "manifest.json").read_text())["files"]
            == json.loads((tmp_path / "parallel" / "manifest.json").read_text())["files"])


# ---------------------------------------------------------------------------------------------
# earlier outputs are never removed because their source went away
# ---------------------------------------------------------------------------------------------

def prepare(capsys, inputs, expert, out, *extra) -> tuple[int, str]:
    code = main(["--quiet", "prepare-fivek", "--inputs", str(inputs), "--expert-c", str(expert),
                 "--out", str(out), "--workers", "1", "--allow-missing", *map(str, extra)])
    return code, capsys.readouterr().out


def outputs(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.png"))}


def test_a_missing_source_keeps_its_earlier_outputs(fake_fivek, tmp_path, capsys):
    inputs, expert, out = fake_fivek
    # a test pair whose Expert C file is named differently from its input: the pair is named
    # after the input, and keeps that name while the input is away
    (expert / "a4511-pair.jpg").rename(expert / "a4511-retouched.jpg")
    assert prepare(capsys, inputs, expert, out)[0] == 0
    before = outputs(out)
    assert {"train/low/a4500-low.png", "test/low/a4511-pair.png", "test/label/a4511-pair.png",
            "val/low/a4511-pair.png", "val/label/a4511-pair.png"} <= set(before)
    # a file moved away and one deleted (the drive holding it not mounted)
    (tmp_path / "elsewhere").mkdir()
    (inputs / "a4500-low.png").rename(tmp_path / "elsewhere" / "a4500-low.png")
    (inputs / "a4511-pair.png").rename(tmp_path / "elsewhere" / "a4511-pair.png")
    code, printed = prepare(capsys, inputs, expert, out)
    assert code == 1
    assert outputs(out) == before   # every earlier output is still there, unchanged
    assert "removed" not in printed
    kept = [line for line in printed.splitlines() if line.startswith("KEPT")]
    assert len(kept) == 2
    assert ("source a4500 is missing: a4500-low.png not found in --inputs" in kept[0]
            and "kept the earlier train/low/a4500-low.png" in kept[0])
    assert ("source a4511 is missing: a4511-pair.png not found in --inputs" in kept[1]
            and "kept the earlier test/low/a4511-pair.png;" in kept[1])
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(manifest["kept_without_source"]) == ["test/low/a4511-pair.png", "train/low/a4500-low.png"]
    assert {"test/low/a4511-pair.png", "val/low/a4511-pair.png"} <= set(manifest["files"])
    # the sources are back: nothing to redo, nothing replaced, nothing removed
    (tmp_path / "elsewhere" / "a4500-low.png").rename(inputs / "a4500-low.png")
    (tmp_path / "elsewhere" / "a4511-pair.png").rename(inputs / "a4511-pair.png")
    code, printed = prepare(capsys, inputs, expert, out)
    assert code == 0 and "up to date: nothing to do" in printed
    assert outputs(out) == before
    assert "kept_without_source" not in printed
    assert json.loads((out / "manifest.json").read_text())["kept_without_source"] == {}


def test_an_ambiguous_source_keeps_its_earlier_outputs(fake_fivek, capsys):
    inputs, expert, out = fake_fivek
    assert prepare(capsys, inputs, expert, out)[0] == 0
    before = outputs(out)
    # a second file with the same FiveK number appears (a copy in a subfolder, another export)
    write_8bit(expert / "sub" / "a0002-copy.png", 600, 520, 12)
    write_8bit(inputs / "a4501-pair-v2.jpg", 512, 700, 13)
    code, printed = prepare(capsys, inputs, expert, out)
    assert code == 1
    assert outputs(out) == before
    assert "removed" not in printed
    kept = [line for line in printed.splitlines() if line.startswith("KEPT")]
    assert len(kept) == 2
    assert "source a0002 is ambiguous in --expert-c" in kept[0]
    assert "a0002-second.png, sub/a0002-copy.png" in kept[0] and "train/high/a0002-second.png" in kept[0]
    assert "source a4501 is ambiguous in --inputs" in kept[1]
    assert "a4501-pair-v2.jpg, a4501-pair.png" in kept[1]
    assert "kept the earlier test/low/a4501-pair.png;" in kept[1]
    # once the user has chosen, everything is up to date again
    (expert / "sub" / "a0002-copy.png").unlink()
    (inputs / "a4501-pair-v2.jpg").unlink()
    code, printed = prepare(capsys, inputs, expert, out)
    assert code == 0 and "up to date: nothing to do" in printed
    assert outputs(out) == before


def test_outputs_that_left_the_split_are_removed_and_the_others_kept(fake_fivek, capsys):
    inputs, expert, out = fake_fivek
    assert prepare(capsys, inputs, expert, out)[0] == 0
    before = outputs(out)
    # in one run: a smaller validation subset (a4501, a4551, ...: a4511 leaves it), a renamed
    # source (its output is replaced by one under the new name) and a missing one
    (expert / "a0002-second.png").rename(expert / "a0002-renamed.png")
    (inputs / "a4511-pair.png").unlink()
    code, printed = prepare(capsys, inputs, expert, out, "--val-count", 10)
    assert code == 1
    after = outputs(out)
    assert sorted(set(before) - set(after)) == [
        "train/high/a0002-second.png", "val/label/a4511-pair.png", "val/low/a4511-pair.png"]
    assert sorted(set(after) - set(before)) == ["train/high/a0002-renamed.png"]
    assert after["train/high/a0002-renamed.png"] == before["train/high/a0002-second.png"]
    assert "removed 3 earlier outputs no longer in the split" in printed
    assert all(after[name] == before[name] for name in after if name in before)
    kept = [line for line in printed.splitlines() if line.startswith("KEPT")]
    assert len(kept) == 1 and "source a4511 is missing" in kept[0]
    assert "kept the earlier test/low/a4511-pair.png;" in kept[0]


# ---------------------------------------------------------------------------------------------
# folders and sources that would give a wrong or a huge split
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["same", "expert inside inputs", "inputs inside expert",
                                    "out inside inputs", "out inside expert"])
def test_overlapping_folders_are_refused(fake_fivek, capsys, layout):
    inputs, expert, out = fake_fivek
    if layout == "same":
        expert = inputs                      # labels would be built from the inputs
    elif layout == "expert inside inputs":
        expert = inputs / "expertC"
        expert.mkdir()
        write_8bit(expert / "a0001-x.png", 520, 520, 1)
    elif layout == "inputs inside expert":
        inputs = expert / "sub"
    elif layout == "out inside inputs":
        out = inputs / "split"
    else:
        out = expert / "split"
    code = main(["prepare-fivek", "--inputs", str(inputs), "--expert-c", str(expert), "--out", str(out),
                 "--workers", "1", "--allow-missing"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and ("--out" if layout.startswith("out") else "--expert-c") in err[0]
    assert not out.exists()


MEMORY_LIMIT = 1536 << 20   # bytes of address space: enough for the command, far too little
                            # for a 3000 x 1 source resized to a short edge of 512


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def test_a_source_of_absurd_shape_fails_alone_before_resizing(fake_fivek):
    inputs, expert, out = fake_fivek
    Image.fromarray(np.zeros((1, 3000, 3), np.uint8)).save(inputs / "a2252-thin.png")
    src = str(Path(uegan.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run(
        [sys.executable, "-m", "uegan", "--quiet", "prepare-fivek", "--inputs", str(inputs),
         "--expert-c", str(expert), "--out", str(out), "--workers", "1", "--allow-missing"],
        capture_output=True, text=True, env=env, preexec_fn=_limit_memory, timeout=300)
    assert result.returncode == 1, result.stderr
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and failed[0].startswith("FAILED train/low/a2252-thin.png: ")
    # the file and its shape named (the check came before any resizing), not a failed allocation
    assert re.search(r"a2252-thin\.png: 3000 ?x ?1 pixels", failed[0]) and "MemoryError" not in failed[0]
    # the other sources were converted
    assert (out / "train/low/a2251-low.png").is_file() and (out / "test/label/a4501-pair.png").is_file()
    assert not (out / "train/low/a2252-thin.png").exists()


# ---------------------------------------------------------------------------------------------
# FiveK's DNG originals: named with the export they need, never read
# ---------------------------------------------------------------------------------------------

def test_dng_originals_are_named_with_the_export_they_need(fake_fivek, capsys):
    inputs, expert, out = fake_fivek
    (inputs / "raw_photos").mkdir()
    for name in ("a2252-kme_0001.dng", "a4502-_DSC0002.DNG"):
        (inputs / "raw_photos" / name).write_bytes(b"II*\0not read")  # never opened
    (expert / "a0003-jmac_0003.dng").write_bytes(b"II*\0not read")
    (inputs / "IMG_0002.dng").write_bytes(b"II*\0not read")  # no FiveK number: ignored
    code, printed = prepare(capsys, inputs, expert, out)
    assert code == 0
    lines = printed.splitlines()
    index = lines.index("FiveK DNG originals in --inputs, not used: 2 "
                        "(a2252-kme_0001.dng, a4502-_DSC0002.DNG)")
    step = lines[index + 1]
    assert '"InputAsShotZeroed"' in step and "16-bit ProPhoto RGB TIFF" in step
    assert "raw extra does not replace this export" in step
    index = lines.index("FiveK DNG originals in --expert-c, not used: 1 (a0003-jmac_0003.dng)")
    assert "Expert C" in lines[index + 1] and "16-bit ProPhoto RGB TIFFs" in lines[index + 1]
    assert ("ignored in --inputs (not named aNNNN-*.png/.jpg/.tif): 3 "
            "(IMG_0001.png, IMG_0002.dng, notes.txt)") in printed
    assert not any("a2252" in name or "a0003" in name for name in outputs(out))
    manifest = json.loads((out / "manifest.json").read_text())
    assert "a2252" in manifest["missing"]["inputs"] and "a0003" in manifest["missing"]["expert-c"]


def test_a_folder_of_dng_originals_only_is_a_usage_error_naming_the_export(fake_fivek, tmp_path,
                                                                            capsys):
    _, expert, out = fake_fivek
    originals = tmp_path / "raw_photos"
    originals.mkdir()
    (originals / "a2251-first.dng").write_bytes(b"II*\0not read")
    code = main(["prepare-fivek", "--inputs", str(originals), "--expert-c", str(expert),
                 "--out", str(out), "--workers", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "holds 1 FiveK DNG originals and no exported images" in err[0]
    assert '"InputAsShotZeroed"' in err[0]
    assert not out.exists()

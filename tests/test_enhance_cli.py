"""``uegan enhance``: batches with bad inputs, exit codes, resuming, sharding, photo metadata."""

from __future__ import annotations

import errno
import importlib.util
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from _formats import dng_bytes, heic_bytes
from conftest import load_golden
from uegan.cli import main
from uegan.cli.enhance import effective_shard, parse_shard
from uegan.errors import UserError


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "published.pth"
    torch.save({"G_net": load_golden("generator_forward.pt")["state_dict"]}, path)
    return path


def photo(height=40, width=56, seed=0, mode="RGB"):
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    pixels = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
    return Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode)


def run(capsys, *args):
    code = main(["enhance", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.err


def bomb_png() -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 50000, 50000, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(bytes(1 << 16))) + chunk(b"IEND", b""))


def test_bad_inputs_never_stop_the_batch(checkpoint, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    photo(seed=1).save(folder / "good1.png")
    photo(seed=2).save(folder / "good2.jpg", quality=95)
    (folder / "empty.png").write_bytes(b"")
    (folder / "words.jpg").write_text("this is not a photo")
    (folder / "cut.jpg").write_bytes((folder / "good2.jpg").read_bytes()[:300])
    (folder / "bomb.png").write_bytes(bomb_png())
    (folder / "dangling.png").symlink_to(tmp_path / "gone.png")
    code, err = run(capsys, folder, tmp_path / "missing.png", "--checkpoint", checkpoint,
                    "--out", tmp_path / "out")
    assert code == 1
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("uegan enhance:")]
    for name, reason in (("empty.png", "empty file"), ("words.jpg", "not an image"),
                         ("cut.jpg", "truncated or corrupt"), ("bomb.png", "over the limit"),
                         ("dangling.png", "cannot read"), ("missing.png", "no such file")):
        matching = [line for line in lines if name in line]
        assert len(matching) == 1 and reason in matching[0], (name, lines)
    assert len(lines) == 6
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good1.png", "good2.jpg"]


def test_output_folder_under_a_file_is_a_usage_error(checkpoint, tmp_path, capsys):
    photo(seed=1).save(tmp_path / "a.png")
    photo(seed=2).save(tmp_path / "b.png")
    blocker = tmp_path / "file"
    blocker.write_text("a file where the output folder should be")
    code, err = run(capsys, tmp_path / "a.png", tmp_path / "b.png", "--checkpoint", checkpoint,
                    "--out", blocker / "out")
    assert code == 2 and "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("uegan enhance:")]
    assert len(lines) == 1 and str(blocker) in lines[0] and "not a folder" in lines[0]


def test_unreadable_file_and_folder(checkpoint, tmp_path, capsys, monkeypatch):
    # permission errors are simulated (a test run as root reads every file whatever its mode):
    # opening secret.png and listing locked/ raise PermissionError as they would for a user
    folder = tmp_path / "in"
    (folder / "locked").mkdir(parents=True)
    photo().save(folder / "good.png")
    photo().save(folder / "secret.png")
    photo().save(folder / "locked" / "hidden.png")
    real_open, real_scandir = Image.open, os.scandir

    def denied(path):
        return PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    def image_open(fp, *args, **kwargs):
        if str(fp).endswith("secret.png"):
            raise denied(fp)
        return real_open(fp, *args, **kwargs)

    def scandir(path="."):
        if str(path).endswith("locked"):
            raise denied(path)
        return real_scandir(path)

    monkeypatch.setattr(Image, "open", image_open)
    monkeypatch.setattr(os, "scandir", scandir)
    code, err = run(capsys, folder, "--checkpoint", checkpoint, "--out", tmp_path / "out")
    assert code == 1 and "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("uegan enhance:")]
    secret = [line for line in lines if "secret.png" in line]
    locked = [line for line in lines if "locked" in line]
    assert len(secret) == 1 and "permission denied" in secret[0], lines
    assert len(locked) == 1 and "cannot list folder" in locked[0], lines
    assert len(lines) == 2
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.png"]


def test_debug_shows_the_traceback(checkpoint, tmp_path, capsys):
    (tmp_path / "empty.png").write_bytes(b"")
    code = main(["--debug", "enhance", str(tmp_path / "empty.png"), "--checkpoint",
                 str(checkpoint), "--out", str(tmp_path / "out")])
    assert code == 1
    assert "Traceback" in capsys.readouterr().err


def test_usage_errors_exit_2(checkpoint, tmp_path, capsys):
    photo().save(tmp_path / "a.png")
    for extra in (["--shard", "3/2"], ["--shard", "x"], ["--bit-depth", "16", "--format", "jpeg"],
                  ["--quality", "0"]):
        code, err = run(capsys, tmp_path / "a.png", "--checkpoint", checkpoint, "--out",
                        tmp_path / "out", *extra)
        assert code == 2 and "Traceback" not in err, extra
    if not torch.cuda.is_available():
        code, err = run(capsys, tmp_path / "a.png", "--checkpoint", checkpoint, "--out",
                        tmp_path / "out", "--device", "cuda")
        assert code == 2 and "CUDA" in err
    code, err = run(capsys, tmp_path / "a.png", "--checkpoint", tmp_path / "nope.pth", "--out",
                    tmp_path / "out")
    assert code == 2 and "nope.pth" in err
    (tmp_path / "junk.pth").write_bytes(b"junk")
    code, err = run(capsys, tmp_path / "a.png", "--checkpoint", tmp_path / "junk.pth", "--out",
                    tmp_path / "out")
    assert code == 2 and "junk.pth" in err


def test_subprocess_exit_codes_and_no_traceback(checkpoint, tmp_path):
    photo().save(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(b"")
    base = [sys.executable, "-m", "uegan", "enhance", "--checkpoint", str(checkpoint), "--out",
            str(tmp_path / "out")]
    ok = subprocess.run(base + [str(tmp_path / "a.png")], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(base + [str(tmp_path / "a.png"), str(tmp_path / "b.png")],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "b.png" in bad.stderr and "Traceback" not in bad.stderr


def test_resume_skips_existing_and_overwrite_replaces(checkpoint, tmp_path, capsys):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    for k, name in enumerate(["a.png", "b.png", "sub/c.png"]):
        photo(seed=k).save(folder / name)
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "sub" / "c.png").write_bytes(b"left by an interrupted run")  # an existing output
    assert run(capsys, folder, "--checkpoint", checkpoint, "--out", out)[0] == 0
    assert (out / "sub" / "c.png").read_bytes() == b"left by an interrupted run"
    assert (out / "a.png").exists() and (out / "b.png").exists()
    with Image.open(out / "a.png") as image:
        first = np.asarray(image)
    (out / "a.png").write_bytes(b"stale")  # an earlier output that --overwrite must replace
    assert run(capsys, folder, "--checkpoint", checkpoint, "--out", out, "--overwrite")[0] == 0
    assert (out / "sub" / "c.png").read_bytes() != b"left by an interrupted run"
    with Image.open(out / "a.png") as image:  # rewritten, with the same pixels as before
        assert np.array_equal(np.asarray(image), first)
    with Image.open(out / "sub" / "c.png") as image:
        assert image.size == (56, 40)
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_inputs_are_never_overwritten(checkpoint, tmp_path, capsys):
    photo().save(tmp_path / "a.png")
    before = (tmp_path / "a.png").read_bytes()
    code, err = run(capsys, tmp_path / "a.png", "--checkpoint", checkpoint, "--out", tmp_path,
                    "--overwrite")
    assert code == 1 and "would replace an input" in err
    assert (tmp_path / "a.png").read_bytes() == before


def test_globs_formats_and_collisions(checkpoint, tmp_path, capsys):
    photo(seed=1).save(tmp_path / "x.png")
    photo(seed=2).save(tmp_path / "x.jpg")
    photo(seed=3).save(tmp_path / "y.bmp")
    code, err = run(capsys, str(tmp_path / "*.*"), "--checkpoint", checkpoint, "--out",
                    tmp_path / "out", "--format", "webp", "--quality", "80")
    assert code == 1 and "would also be written" in err  # x.png and x.jpg both -> x.webp
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x.webp", "y.webp"]
    with Image.open(tmp_path / "out" / "y.webp") as image:
        assert image.format == "WEBP" and image.size == (56, 40)


def test_shards_partition_the_inputs(checkpoint, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "in"
    folder.mkdir()
    for k in range(7):
        photo(24, 24, seed=k).save(folder / f"p{k}.png")
    seen = []
    for index in range(3):
        out = tmp_path / f"out{index}"
        assert run(capsys, folder, "--checkpoint", checkpoint, "--out", out, "--shard",
                   f"{index}/3")[0] == 0
        seen.append({p.name for p in out.iterdir()})
    assert sum(len(s) for s in seen) == 7 and set.union(*seen) == {f"p{k}.png" for k in range(7)}
    # torchrun's environment splits the same way, within a shard
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "1")
    assert run(capsys, folder, "--checkpoint", checkpoint, "--out", tmp_path / "rank1")[0] == 0
    assert {p.name for p in (tmp_path / "rank1").iterdir()} == seen[1]


def test_shard_arithmetic():
    assert parse_shard(None) == (0, 1) and parse_shard("2/5") == (2, 5)
    for bad in ("5/5", "-1/2", "1", "a/b", "1/0"):
        with pytest.raises(UserError):
            parse_shard(bad)
    assert effective_shard((1, 2), {"WORLD_SIZE": "4", "RANK": "3"}) == (7, 8)
    assert effective_shard((0, 1), {}) == (0, 1)


def test_photo_metadata_alpha_gray_and_16bit(checkpoint, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    # EXIF orientation 6 (rotate 90 clockwise) and a camera name, on a 40 x 56 JPEG
    image = photo(seed=4)
    exif = image.getexif()
    exif[0x0112] = 6
    exif[0x010F] = "TestCam"
    image.save(folder / "rotated.jpg", exif=exif, quality=95)
    rgba = photo(seed=5, mode="RGBA")
    rgba.save(folder / "alpha.png")
    photo(seed=6, mode="L").save(folder / "gray.png")
    wide = np.random.default_rng(7).integers(0, 65536, (32, 48, 3)).astype(np.uint16)
    tifffile.imwrite(folder / "deep.tif", wide, photometric="rgb")
    out8, out16 = tmp_path / "out8", tmp_path / "out16"
    assert run(capsys, folder, "--checkpoint", checkpoint, "--out", out8)[0] == 0
    assert run(capsys, folder, "--checkpoint", checkpoint, "--out", out16, "--bit-depth", "16")[0] == 0
    with Image.open(out8 / "rotated.jpg") as result:
        assert result.size == (40, 56)  # rotated: the pixels are upright now
        assert result.getexif().get(0x0112, 1) == 1 and result.getexif().get(0x010F) == "TestCam"
    with Image.open(out8 / "alpha.png") as result:
        assert result.mode == "RGBA"
        assert np.array_equal(np.asarray(result)[..., 3], np.asarray(rgba)[..., 3])
    with Image.open(out8 / "gray.png") as result:
        assert result.mode == "RGB" and result.size == (56, 40)
    with Image.open(out8 / "deep.tif") as result:
        assert result.mode == "RGB" and result.size == (48, 32)
        eight = np.asarray(result)
    sixteen = tifffile.imread(out16 / "deep.tif")
    assert sixteen.dtype == np.uint16 and sixteen.shape == (32, 48, 3)
    assert np.abs(sixteen / 257.0 - eight).max() <= 0.51
    assert len(np.unique(sixteen % 257)) > 1  # really 16-bit, not 8-bit scaled up
    with Image.open(out16 / "rotated.jpg") as result:  # JPEG stays 8-bit
        assert result.format == "JPEG"


@pytest.mark.skipif(importlib.util.find_spec("rawpy") is None
                    or importlib.util.find_spec("pillow_heif") is None,
                    reason="the raw and heif extras are not installed: pip install -e '.[raw,heif]'")
def test_raw_and_heic_inputs_are_written_as_tiff_and_jpeg(checkpoint, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    linear = np.random.default_rng(8).uniform(0.05, 0.6, (32, 48, 3))
    (folder / "shot.NEF").write_bytes(dng_bytes(linear, orientation=6))  # by extension: LibRaw
    (folder / "IMG_0002.HEIC").write_bytes(heic_bytes(np.asarray(photo(seed=9)), exif_orientation=6))
    out = tmp_path / "out"
    assert run(capsys, folder, "--checkpoint", checkpoint, "--out", out, "--bit-depth", "16")[0] == 0
    assert sorted(p.name for p in out.iterdir()) == ["IMG_0002.jpg", "shot.tif"]
    developed = tifffile.imread(out / "shot.tif")
    assert developed.dtype == np.uint16 and developed.shape == (48, 32, 3)  # upright
    assert len(np.unique(developed % 257)) > 1  # RAW keeps 16 bits where asked
    with Image.open(out / "IMG_0002.jpg") as result:
        assert result.format == "JPEG" and result.size == (40, 56)  # upright, 8-bit
        assert result.getexif().get(0x0112, 1) == 1
    code, _ = run(capsys, folder, "--checkpoint", checkpoint, "--out", tmp_path / "png",
                  "--format", "png")
    assert code == 0 and sorted(p.name for p in (tmp_path / "png").iterdir()) == [
        "IMG_0002.png", "shot.png"]


def test_a_raw_file_without_the_raw_extra_fails_alone(checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "rawpy", None)  # as if the raw extra were not installed
    folder = tmp_path / "in"
    folder.mkdir()
    photo(seed=10).save(folder / "a.png")
    (folder / "b.dng").write_bytes(b"II*\0" + bytes(64))
    code, err = run(capsys, folder, "--checkpoint", checkpoint, "--out", tmp_path / "out")
    lines = [line for line in err.splitlines() if line.startswith("uegan enhance:")]
    assert code == 1 and "Traceback" not in err
    assert len(lines) == 1 and "b.dng" in lines[0] and "pip install 'uegan[raw]'" in lines[0]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png"]


def test_torchrun_splits_the_inputs(checkpoint, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for k in range(5):
        photo(24, 24, seed=k).save(folder / f"p{k}.png")
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "uegan", "enhance", str(folder), "--checkpoint", str(checkpoint), "--out",
         str(out), "--device", "cpu"],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == [f"p{k}.png" for k in range(5)]
    assert "enhanced 3" in result.stderr and "enhanced 2" in result.stderr  # 3 + 2, no overlap


def test_precision_flag_runs_the_generator_in_bf16(checkpoint, tmp_path, capsys):
    # bf16 autocast: every convolution of the generator computes in bfloat16 (fp32: float32),
    # and the output is close to the fp32 one (README: within 3e-3, under one 8-bit level)
    # without being the same file
    photo(height=48, width=64, seed=3).save(tmp_path / "p.png")
    outputs, dtypes = {}, {}
    for precision in ("fp32", "bf16"):
        seen = []

        def hook(module, _inputs, output, seen=seen):
            if isinstance(module, torch.nn.Conv2d):
                seen.append(output.dtype)

        handle = torch.nn.modules.module.register_module_forward_hook(hook)
        try:
            code, err = run(capsys, tmp_path / "p.png", "--checkpoint", checkpoint,
                            "--out", tmp_path / precision, "--precision", precision)
        finally:
            handle.remove()
        assert code == 0, err
        dtypes[precision] = set(seen)
        outputs[precision] = np.asarray(Image.open(tmp_path / precision / "p.png"), dtype=np.int16)
    assert dtypes == {"fp32": {torch.float32}, "bf16": {torch.bfloat16}}
    difference = np.abs(outputs["fp32"] - outputs["bf16"])
    assert outputs["fp32"].shape == (48, 64, 3)
    assert difference.max() <= 1, difference.max()
    assert (tmp_path / "fp32" / "p.png").read_bytes() != (tmp_path / "bf16" / "p.png").read_bytes()


def test_batch_size_gives_the_same_outputs_and_bad_files_fail_alone(checkpoint, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    for seed in range(3):  # one size: one forward pass of 3 when batched
        photo(48, 64, seed=seed).save(folder / f"same{seed}.png")
    photo(40, 56, seed=7).save(folder / "other.png")            # a size of its own
    photo(200, 120, seed=8).save(folder / "large.png")          # over --max-side: transfer
    photo(40, 56, seed=9).save(folder / "gray16.tif")
    (folder / "words.png").write_text("this is not a photo")    # fails alone, inside a batch
    outputs = {}
    for batch in (1, 3, 8):
        out = tmp_path / f"out{batch}"
        code, err = run(capsys, folder, "-c", checkpoint, "-o", out, "--batch-size", batch,
                        "--max-side", 96, "--no-progress")
        assert code == 1 and err.count("uegan enhance:") == 1 and "words.png" in err
        outputs[batch] = {p.name: np.asarray(Image.open(p)).astype(int) for p in out.iterdir()}
    assert sorted(outputs[1]) == ["gray16.tif", "large.png", "other.png", "same0.png",
                                  "same1.png", "same2.png"]
    for batch in (3, 8):
        assert sorted(outputs[batch]) == sorted(outputs[1])
        for name, pixels in outputs[batch].items():
            difference = np.abs(pixels - outputs[1][name])
            # a batched convolution may round differently on some CPUs: at most 1 level, rarely
            assert difference.max() <= 1 and (difference > 0).mean() <= 1e-3, name
    code, err = run(capsys, folder, "-c", checkpoint, "-o", tmp_path / "x", "--batch-size", 0)
    assert code == 2 and "--batch-size 0" in err

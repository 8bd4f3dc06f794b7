"""Fast enhancement by default: bf16 where the device computes it natively (AVX512-BF16 or AMX,
CUDA), fp32 elsewhere; ``--exact`` gives the published computation; ``--fast`` compiles only for
enough images; the bf16 output stays within one 8-bit level of fp32 on real photos."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from conftest import SHARED, load_golden
from PIL import Image

from uegan.cli import main
from uegan.inference import Enhancer
from uegan.inference import acceleration as acceleration_module
from uegan.io.reader import load_rgb8
from uegan import runtime
from uegan.runtime import bf16_is_native, cpu_flags, inference_precision

CPU = torch.device("cpu")
NATIVE = bf16_is_native(CPU)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "published.pth"
    torch.save({"G_net": load_golden("generator_forward.pt")["state_dict"]}, path)
    return path


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 amx_bf16 amx_tile\n"
                       "processor\t: 1\nflags\t\t: other\n")
    assert cpu_flags(cpuinfo) == {"fpu", "sse2", "avx2", "amx_bf16", "amx_tile"}
    assert cpu_flags(tmp_path / "missing") == frozenset()


@pytest.mark.parametrize("flags, native", [
    ({"avx2", "fma"}, False), ({"avx512f", "avx512bw"}, False),  # bf16 emulated: slower
    ({"avx512f", "avx512_bf16"}, True), ({"amx_bf16", "amx_tile"}, True)])
def test_bf16_is_native_only_with_avx512_bf16_or_amx(flags, native):
    assert bf16_is_native(CPU, frozenset(flags)) is native


def test_auto_precision_follows_the_hardware(monkeypatch):
    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset({"amx_bf16"}))
    assert inference_precision("auto", CPU) == "bf16"
    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset({"avx2"}))
    assert inference_precision("auto", CPU) == "fp32"
    assert inference_precision("bf16", CPU) == "bf16"
    with pytest.raises(ValueError):
        inference_precision("fp8", CPU)


def _photo(path, seed=0, size=(72, 96)):
    pixels = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _enhance(capsys, checkpoint, source, out, *flags):
    code = main(["enhance", str(source), "-c", str(checkpoint), "-o", str(out), "--no-progress",
                 *flags])
    return code, capsys.readouterr().err, np.asarray(Image.open(out / source.name)).astype(int)


def test_the_default_is_fp32_where_bf16_is_emulated_and_bf16_where_native(
        checkpoint, tmp_path, capsys, monkeypatch):
    source = _photo(tmp_path / "p.png")
    code, _, exact = _enhance(capsys, checkpoint, source, tmp_path / "exact", "--exact")
    assert code == 0
    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset({"avx2"}))
    code, err, default = _enhance(capsys, checkpoint, source, tmp_path / "emulated")
    assert code == 0 and "in fp32" in err
    assert np.array_equal(default, exact)
    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset({"amx_bf16"}))
    code, err, default = _enhance(capsys, checkpoint, source, tmp_path / "native")
    assert code == 0 and "in bf16" in err
    difference = np.abs(default - exact)
    assert difference.max() <= 1 and (difference > 0).any()  # bf16 did run, within one level


def test_the_python_api_has_the_same_default(checkpoint, monkeypatch):
    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset({"amx_bf16"}))
    assert Enhancer.load(checkpoint).precision == "bf16"
    assert Enhancer.load(checkpoint, precision="fp32").precision == "fp32"
    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset())
    assert Enhancer.load(checkpoint).precision == "fp32"


def test_exact_refuses_fast_and_reduced_precision(checkpoint, tmp_path, capsys):
    source = _photo(tmp_path / "p.png")
    for flags in (["--exact", "--fast"], ["--exact", "--precision", "bf16"]):
        code = main(["enhance", str(source), "-c", str(checkpoint), "-o", str(tmp_path / "o"),
                     *flags])
        assert code == 2 and "--exact" in capsys.readouterr().err


@pytest.mark.parametrize("images, compile_min, compiled", [(1, 32, False), (3, 3, True)])
def test_fast_compiles_only_when_enough_images_repay_it(checkpoint, tmp_path, capsys, monkeypatch,
                                                        images, compile_min, compiled):
    calls = []
    monkeypatch.setattr(acceleration_module, "compile_module",
                        lambda module, **options: calls.append(options))  # no real compile
    folder = tmp_path / "in"
    folder.mkdir()
    for seed in range(images):
        _photo(folder / f"p{seed}.png", seed)
    code = main(["enhance", str(folder), "-c", str(checkpoint), "-o", str(tmp_path / "out"),
                 "--fast", "--compile-min", str(compile_min), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 0 and len(list((tmp_path / "out").iterdir())) == images
    assert (len(calls) == 1) is compiled
    assert ("the exact rewrites without compiling" in err) is not compiled


def _fivek_photos():
    folder = SHARED / "data" / "fivek-sample"
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".png", ".tif", ".tiff"))


@pytest.mark.skipif(not NATIVE, reason="bf16 is not native on this CPU (no AVX512-BF16 / AMX): "
                                       "the default stays fp32 here, so there is no bound to hold")
@pytest.mark.parametrize("full_res", [False, True], ids=["working-size", "full-size"])
def test_bf16_default_within_one_level_of_fp32_on_the_fivek_sample(checkpoint, full_res, caplog):
    caplog.set_level(logging.INFO)
    fp32 = Enhancer.load(checkpoint, precision="fp32", full_res=full_res)
    bf16 = Enhancer.load(checkpoint, full_res=full_res)
    assert bf16.precision == "bf16"
    over, total = 0, 0
    photos = _fivek_photos()
    assert len(photos) >= 12
    for path in photos:
        image = load_rgb8(path)
        if full_res:  # twice the size: full resolution differs from the working size
            image = np.asarray(Image.fromarray(image).resize((image.shape[1] * 2, image.shape[0] * 2)))
        difference = np.abs(fp32.enhance_array(image).astype(int) - bf16.enhance_array(image))
        over += int((difference > 1).sum())
        total += difference.size
    assert over / total <= 1e-3, f"{over} of {total} values differ by more than one level"

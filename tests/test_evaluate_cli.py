"""``uegan evaluate``: the golden FiveK figures, pairing, problems, outputs, NIMA weights."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import skimage.color as skc  # the test extra: missing, these tests fail, not skip
import skimage.metrics as skm
import torch
from PIL import Image

import uegan.cli as cli
from conftest import FIVEK_SAMPLE, GOLDEN, load_golden
from uegan import nima

VAL = FIVEK_SAMPLE / "val"


@pytest.fixture(autouse=True)
def _only_these_commands(monkeypatch):
    """Test this command through ``uegan.cli.main`` without depending on other sub-commands."""
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("evaluate",))
    monkeypatch.delenv(nima.ENV_VAR, raising=False)


def uegan(*argv) -> int:
    return cli.main([str(a) for a in argv])


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    state = {k: (v.float() if v.is_floating_point() else v)
             for k, v in load_golden("nima_forward.pt")["state_dict_fp16"].items()}
    path = tmp_path_factory.mktemp("nima") / "pretrain-model.pth"
    torch.save(state, path)
    return path


def save(path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def rand_image(seed: int, height: int = 40, width: int = 48) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def sk_ciede2000(pred: np.ndarray, label: np.ndarray) -> float:
    """scikit-image's CIEDE2000 map of the pair, averaged over the pixels left by the 4-pixel crop."""
    return float(skc.deltaE_ciede2000(skc.rgb2lab(pred), skc.rgb2lab(label))[4:-4, 4:-4].mean())


def read_rgb(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_fivek_sample_reproduces_the_golden_figures(tmp_path, capsys):
    golden = json.loads((GOLDEN / "fivek_sample_val_input_metrics.json").read_text())
    out_json, out_csv = tmp_path / "m.json", tmp_path / "m.csv"
    assert uegan("evaluate", "--pred", VAL / "raw", "--label", VAL / "label",
                 "--json", out_json, "--csv", out_csv) == 0
    result = json.loads(out_json.read_text())
    rows = {row["image"]: row for row in result["per_image"]}
    assert len(rows) == len(golden["per_image"]) == result["summary"]["count"]
    ref_ciede2000 = []
    for ref in golden["per_image"]:
        assert rows[ref["image"]]["psnr"] == pytest.approx(ref["psnr"], abs=1e-6)
        assert rows[ref["image"]]["ssim"] == pytest.approx(ref["ssim"], abs=1e-6)
        ref_ciede2000.append(sk_ciede2000(read_rgb(VAL / "raw" / ref["image"]),
                                          read_rgb(VAL / "label" / ref["image"])))
        assert rows[ref["image"]]["ciede2000"] == pytest.approx(ref_ciede2000[-1], abs=1e-9)
    assert result["summary"]["psnr"] == pytest.approx(golden["mean_psnr"], abs=1e-6)
    assert result["summary"]["ssim"] == pytest.approx(golden["mean_ssim"], abs=1e-6)
    mean_ciede2000 = sum(ref_ciede2000) / len(ref_ciede2000)
    assert result["summary"]["ciede2000"] == pytest.approx(mean_ciede2000, abs=1e-9)
    assert "nima" not in result["summary"]  # no weights anywhere
    published = result["published_script_average"]
    assert published["psnr"] == pytest.approx(golden["published_script_average_psnr_sum_over_n_minus_1"], abs=1e-6)
    assert published["ssim"] == pytest.approx(golden["published_script_average_ssim_sum_over_n_minus_1"], abs=1e-6)
    assert "ciede2000" not in published  # the published scripts never computed it
    assert "lower is better" in result["protocol"]["ciede2000"]
    with out_csv.open(newline="") as stream:
        csv_rows = list(csv.DictReader(stream))
    assert list(csv_rows[0]) == ["image", "psnr", "ssim", "ciede2000", "nima", "nima_std", "pred", "label"]
    assert [r["image"] for r in csv_rows] == [r["image"] for r in result["per_image"]]
    for row in csv_rows:
        assert float(row["psnr"]) == rows[row["image"]]["psnr"]
        assert float(row["ssim"]) == rows[row["image"]]["ssim"]
        assert float(row["ciede2000"]) == rows[row["image"]]["ciede2000"]
        assert row["nima"] == ""
    printed = capsys.readouterr().out
    assert f"{golden['mean_psnr']:.4f}" in printed
    assert f"CIEDE2000  {mean_ciede2000:.4f}" in printed


def test_pairing_by_stem_names_every_problem(tmp_path, capsys):
    pred, label = tmp_path / "pred", tmp_path / "label"
    a, b = rand_image(1), rand_image(2)
    save(pred / "a.png", a)
    save(label / "a.png", rand_image(3))
    save(pred / "b.bmp", b)  # another extension, same stem
    save(label / "b.png", rand_image(4))
    save(pred / "c.png", rand_image(5))
    save(label / "c.png", rand_image(6, height=44))  # size mismatch
    save(pred / "d_no_label.png", rand_image(7))
    save(label / "e_no_output.png", rand_image(8))
    (pred / "f.png").write_bytes(b"this is not a png")
    save(label / "f.png", rand_image(9))
    out_json = tmp_path / "m.json"
    assert uegan("evaluate", "--pred", pred, "--label", label, "--json", out_json) == 1
    err = capsys.readouterr().err
    for name in ("c.png", "d_no_label.png", "e_no_output.png", "f.png"):
        assert name in err
    result = json.loads(out_json.read_text())
    assert [row["stem"] for row in result["per_image"]] == ["a", "b"]
    assert result["summary"]["count"] == 2
    problems = {p["file"].rsplit("/", 1)[-1] for p in result["problems"]}
    assert problems == {"c.png", "d_no_label.png", "e_no_output.png", "f.png"}
    # true means of scikit-image's figures on the cropped pairs
    ref_psnr, ref_ssim, ref_ciede2000 = [], [], []
    for stem in ("a", "b"):
        p_full, t_full = read_rgb(next(pred.glob(f"{stem}.*"))), read_rgb(label / f"{stem}.png")
        p, t = p_full[4:-4, 4:-4], t_full[4:-4, 4:-4]
        ref_psnr.append(skm.peak_signal_noise_ratio(t, p, data_range=255))
        ref_ssim.append(skm.structural_similarity(p, t, channel_axis=-1, data_range=255))
        ref_ciede2000.append(sk_ciede2000(p_full, t_full))
    assert result["summary"]["psnr"] == pytest.approx(sum(ref_psnr) / 2, abs=1e-9)
    assert result["summary"]["ssim"] == pytest.approx(sum(ref_ssim) / 2, abs=1e-9)
    assert result["summary"]["ciede2000"] == pytest.approx(sum(ref_ciede2000) / 2, abs=1e-9)
    assert [row["ciede2000"] for row in result["per_image"]] == pytest.approx(ref_ciede2000, abs=1e-9)


def test_gaussian_protocol(tmp_path):
    pred, label = tmp_path / "pred", tmp_path / "label"
    p, t = rand_image(10, 50, 60), rand_image(11, 50, 60)
    save(pred / "x.png", p)
    save(label / "x.png", t)
    out_json = tmp_path / "m.json"
    assert uegan("evaluate", "--pred", pred, "--label", label, "--ssim", "gaussian", "--json", out_json) == 0
    result = json.loads(out_json.read_text())
    expected = skm.structural_similarity(p[4:-4, 4:-4], t[4:-4, 4:-4], channel_axis=-1, data_range=255,
                                         gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert result["summary"]["ssim"] == pytest.approx(expected, abs=1e-9)
    assert result["protocol"]["ssim"] == "gaussian"
    assert "published_script_average" not in result  # N = 1


def test_identical_images_write_valid_json(tmp_path):
    pred, label = tmp_path / "pred", tmp_path / "label"
    image = rand_image(12)
    save(pred / "x.png", image)
    save(label / "x.png", image)
    out_json = tmp_path / "m.json"
    assert uegan("evaluate", "--pred", pred, "--label", label, "--json", out_json) == 0
    result = json.loads(out_json.read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert float(result["summary"]["psnr"]) == math.inf
    assert result["summary"]["ciede2000"] == 0.0


def test_existing_outputs_are_kept_without_overwrite(tmp_path, capsys):
    out_json = tmp_path / "m.json"
    out_json.write_text("keep me")
    assert uegan("evaluate", "--pred", VAL / "raw", "--label", VAL / "label", "--json", out_json) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert out_json.read_text() == "keep me"
    assert uegan("evaluate", "--pred", VAL / "raw", "--label", VAL / "label", "--json", out_json,
                 "--overwrite") == 0
    assert json.loads(out_json.read_text())["summary"]["count"] == 3
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_no_pairs_is_a_usage_error(tmp_path, capsys):
    save(tmp_path / "pred" / "a.png", rand_image(13))
    save(tmp_path / "label" / "b.png", rand_image(14))
    assert uegan("evaluate", "--pred", tmp_path / "pred", "--label", tmp_path / "label") == 2
    assert "paired by name" in capsys.readouterr().err


def test_no_reference_without_weights_explains_where_they_go(tmp_path, capsys):
    save(tmp_path / "pred" / "a.png", rand_image(15, 240, 240))
    assert uegan("evaluate", "--pred", tmp_path / "pred") == 2
    err = capsys.readouterr().err
    assert "metrics/NIMA/pretrain-model.pth" in err and str(nima.nima_cache_path()) in err


def test_no_reference_with_weights_gives_nima_only(tmp_path, weights_file):
    images = {"a": rand_image(16, 240, 300), "b": rand_image(17, 256, 256)}
    for stem, image in images.items():
        save(tmp_path / "pred" / f"{stem}.png", image)
    out_json = tmp_path / "m.json"
    assert uegan("evaluate", "--pred", tmp_path / "pred", "--nima-weights", weights_file, "--json", out_json) == 0
    result = json.loads(out_json.read_text())
    assert set(result["summary"]) == {"nima", "nima_std", "count"}
    scorer = nima.NimaScorer(nima.load_nima(weights_file))
    for row in result["per_image"]:
        [score] = scorer.score_images([images[row["stem"]]])
        assert row["nima"] == pytest.approx(score.mean, abs=1e-9)
        assert "psnr" not in row and "ciede2000" not in row
    assert result["summary"]["nima"] == pytest.approx(sum(r["nima"] for r in result["per_image"]) / 2, abs=1e-12)


def test_nima_weights_from_the_environment_are_used_with_labels(tmp_path, weights_file, monkeypatch):
    monkeypatch.setenv(nima.ENV_VAR, str(weights_file))
    pred, label = tmp_path / "pred", tmp_path / "label"
    save(pred / "x.png", rand_image(18, 224, 232))
    save(label / "x.png", rand_image(19, 224, 232))
    out_json = tmp_path / "m.json"
    assert uegan("evaluate", "--pred", pred, "--label", label, "--json", out_json) == 0
    summary = json.loads(out_json.read_text())["summary"]
    assert {"psnr", "ssim", "ciede2000", "nima", "count"} <= set(summary)
    assert uegan("evaluate", "--pred", pred, "--label", label, "--json", out_json,
                 "--overwrite", "--no-nima") == 0
    assert "nima" not in json.loads(out_json.read_text())["summary"]


@pytest.mark.parametrize("overwrite", [False, True], ids=["keep", "overwrite"])
@pytest.mark.parametrize("spelling", ["plain", "dotdot", "symlink"])
@pytest.mark.parametrize("folder", ["pred", "label"])
@pytest.mark.parametrize("option", ["--json", "--csv"])
def test_an_output_that_is_an_evaluated_image_is_refused(tmp_path, monkeypatch, capsys,
                                                        option, folder, spelling, overwrite):
    monkeypatch.chdir(tmp_path)
    save(tmp_path / "pred" / "a.png", rand_image(20))
    save(tmp_path / "label" / "a.png", rand_image(21))
    target = tmp_path / folder / "a.png"
    original = target.read_bytes()
    if spelling == "plain":
        output = target
    elif spelling == "dotdot":
        output = f"./{folder}/../{folder}/a.png"
    else:
        (tmp_path / "elsewhere").mkdir()
        output = tmp_path / "elsewhere" / "link.png"
        output.symlink_to(target)
    argv = ["evaluate", "--pred", "pred", "--label", "label", option, output, "--no-nima"]
    code = uegan(*argv, *(["--overwrite"] if overwrite else []))
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "one of the images being evaluated" in err and str(Path(output)) in err
    assert target.read_bytes() == original
    if spelling == "symlink":
        assert output.is_symlink()
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    expected = ["label", "label/a.png", "pred", "pred/a.png"]
    if spelling == "symlink":
        expected = ["elsewhere", "elsewhere/link.png"] + expected
    assert files == expected  # nothing written, no temporary file left
    if spelling == "plain":
        # the check is about the images read, not their folders: a new file beside them is fine
        beside = tmp_path / folder / "metrics.out"
        assert uegan(*argv[:5], option, beside, "--no-nima") == 0
        assert beside.read_text().startswith("{" if option == "--json" else "image,")


"""``uegan study``: the random-seed statistics (arithmetic written out here) and a tiny end-to-end study."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from uegan.cli import main
from uegan.apps.report import Run
from uegan.apps.seeds import compare_to_baseline, seed_comparison_lines, summarize_runs
from uegan.apps.study import run_status


def _run(variant: str, seed: int, psnr: float, ssim: float, ciede2000: float | None = None) -> Run:
    """A run whose last validation has these figures (no ``ciede2000``: a run from before it was logged)."""
    last = {"kind": "val", "epoch": 2, "step": 10, "psnr": psnr, "ssim": ssim}
    if ciede2000 is not None:
        last["ciede2000"] = ciede2000
    return Run(path=Path(f"/runs/{variant}/seed{seed}"), variant=variant, seed=seed, config={},
               val=[{"kind": "val", "epoch": 1, "step": 5, "psnr": psnr - 5, "ssim": 0.1, "ciede2000": 30.0},
                    last])


def test_mean_std_and_the_spread_rule():
    runs = [_run("a", 0, 20.0, 0.80), _run("a", 1, 21.0, 0.81), _run("a", 2, 22.0, 0.82),
            _run("b", 0, 21.5, 0.80), _run("b", 1, 22.0, 0.80), _run("b", 2, 22.5, 0.80),
            _run("c", 0, 25.0, 0.90), _run("c", 1, 25.5, 0.90), _run("c", 2, 26.0, 0.90)]
    summaries = summarize_runs(runs)
    assert [s.variant for s in summaries] == ["a", "b", "c"]
    assert summaries[0].values["psnr"] == [20.0, 21.0, 22.0]  # the last validation, not the best
    assert summaries[0].mean("psnr") == pytest.approx(21.0)
    assert summaries[0].std("psnr") == pytest.approx(1.0)  # sample std: sqrt(2 / 2)
    assert summaries[1].std("psnr") == pytest.approx(0.5)
    b, c = compare_to_baseline(summaries, "a", "psnr")
    pooled = math.sqrt((1.0 ** 2 + 0.5 ** 2) / 2)
    assert b.delta == pytest.approx(1.0) and b.pooled_std == pytest.approx(pooled)
    assert not b.exceeds  # 1.0 < 2 x 0.79
    assert b.welch_t == pytest.approx(1.0 / math.sqrt(1 / 3 + 0.25 / 3))
    assert c.delta == pytest.approx(4.5) and c.exceeds  # 4.5 > 2 x 0.79
    lines = "\n".join(seed_comparison_lines(runs))
    assert "| a | 3 | 21.00 ± 1.00 | 0.8100 ± 0.0100 |" in lines
    assert "| b | PSNR | +1.00 |" in lines and "| c | PSNR | +4.50 |" in lines
    assert lines.count("**yes**") == 2  # c's PSNR; c's SSIM (+0.09 against a pooled 0.0071)
    assert "CIEDE2000" not in lines  # runs from before it was logged: no column, no note


def test_ciede2000_is_compared_with_lower_is_better():
    runs = [_run("a", 0, 20.0, 0.80, 10.0), _run("a", 1, 21.0, 0.81, 11.0), _run("a", 2, 22.0, 0.82, 12.0),
            _run("b", 0, 21.5, 0.80, 10.0), _run("b", 1, 22.0, 0.80, 10.5), _run("b", 2, 22.5, 0.80, 11.0),
            _run("c", 0, 25.0, 0.90, 6.0), _run("c", 1, 25.5, 0.90, 6.5), _run("c", 2, 26.0, 0.90, 7.0),
            _run("d", 0, 25.0, 0.90), _run("d", 1, 25.5, 0.90)]  # from before CIEDE2000 was logged
    summaries = summarize_runs(runs)
    assert summaries[0].values["ciede2000"] == [10.0, 11.0, 12.0]  # the last validation
    assert summaries[0].std("ciede2000") == pytest.approx(1.0)
    assert summaries[3].n("ciede2000") == 0
    b, c = compare_to_baseline(summaries, "a", "ciede2000")  # d has no figures to compare
    assert b.lower_is_better and c.lower_is_better
    assert not compare_to_baseline(summaries, "a", "psnr")[0].lower_is_better
    assert b.delta == pytest.approx(-0.5) and not b.exceeds  # 0.5 < 2 x sqrt((1 + 0.25) / 2)
    assert c.delta == pytest.approx(-4.5) and c.exceeds
    assert c.welch_t == pytest.approx(-4.5 / math.sqrt(1 / 3 + 0.25 / 3))
    lines = "\n".join(seed_comparison_lines(runs))
    assert "| variant | seeds | PSNR | SSIM | CIEDE2000 |" in lines
    assert "| a | 3 | 21.00 ± 1.00 | 0.8100 ± 0.0100 | 11.00 ± 1.00 |" in lines
    assert "| d | 2 | 25.25 ± 0.35 | 0.9000 ± 0.0000 | — |" in lines
    assert "| b | CIEDE2000 | -0.50 |" in lines and "| c | CIEDE2000 | -4.50 |" in lines
    assert "lower is better, so for it a negative Δ is the improvement" in lines
    assert lines.count("**yes**") == 5  # c: PSNR, SSIM, CIEDE2000; d: PSNR, SSIM


def test_single_runs_give_no_comparison():
    assert seed_comparison_lines([_run("a", 0, 20.0, 0.8), _run("b", 0, 21.0, 0.8)]) == []


def _images(folder: Path, names, seed: int) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for name in names:
        base = rng.integers(40, 200, size=(1, 1, 3))
        noise = rng.integers(-30, 30, size=(112, 112, 3))
        Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)).save(folder / f"{name}.png")


def test_tiny_study_end_to_end_and_resume(tmp_path, capsys):
    _images(tmp_path / "low", ["l1", "l2"], 0)
    _images(tmp_path / "high", ["h1", "h2"], 1)
    _images(tmp_path / "val_low", ["v1"], 2)
    _images(tmp_path / "val_label", ["v1"], 3)
    root = tmp_path / "study"
    argv = ["study", "--variants", "uegan-charbonnier-se,uegan-charbonnier-half", "--seeds", "2",
            "--out", str(root), "--low", str(tmp_path / "low"), "--high", str(tmp_path / "high"),
            "--val-low", str(tmp_path / "val_low"), "--val-label", str(tmp_path / "val_label"),
            "--steps", "2", "--batch-size", "1", "--num-workers", "0", "--vgg-weights", "random",
            "--set", "conv_dim=8", "--set", "d_conv_dim=8", "--set", "image_size=96",
            "--set", "crop_size=96", "--set", "pool_size=2", "--set", "fidelity_weight=0",
            "--set", "val_save_images=0", "--set", "tensorboard=false"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "exceeds random-seed spread" in out
    # off a terminal: a line after each run with the study's count and ETA, then the total time
    study_lines = [m for m in err.splitlines() if m.startswith("study: ")]
    assert [line.split(",")[0] for line in study_lines] == [
        "study: 1/4 runs", "study: 2/4 runs", "study: 3/4 runs", "study: 4/4 runs"]
    assert all("ETA " in line for line in study_lines[:3]) and "done in" in study_lines[3]
    assert any(m.startswith("validating: 1/1 images") for m in err.splitlines())
    for variant in ("uegan-charbonnier-se", "uegan-charbonnier-half"):
        for seed in (0, 1):
            run_dir = root / variant / f"seed{seed}"
            config = json.loads((run_dir / "config.json").read_text())
            assert config["variant"] == variant and config["seed"] == seed
            assert run_status(run_dir) == "done"
    report = (root / "report" / "report.md").read_text()
    assert "Variants against the random-seed spread" in report
    assert (root / "report" / "seeds.png").is_file()
    study = json.loads((root / "report" / "study.json").read_text())
    assert [r["status_before"] for r in study["runs"]] == ["new"] * 4
    assert all(isinstance(r["psnr"], float) and r["step"] == 2 for r in study["runs"])
    assert all(isinstance(r["ciede2000"], float) and r["ciede2000"] > 0 for r in study["runs"])
    for variant in study["summary"]:
        values = variant["ciede2000"]["values"]
        assert variant["ciede2000"]["mean"] == pytest.approx(sum(values) / len(values))
    ciede = [c for c in study["comparisons"] if c["metric"] == "ciede2000"]
    assert len(ciede) == 1 and ciede[0]["lower_is_better"] is True
    assert "| CIEDE2000 |" in report

    # again: the report exists -> refused before any training; with --overwrite nothing retrains
    assert main(argv) == 2
    assert "already holds" in capsys.readouterr().err
    assert main(argv + ["--overwrite", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert not [m for m in err.splitlines() if m.startswith(("study: ", "validating: "))]
    study = json.loads((root / "report" / "study.json").read_text())
    assert [r["status_before"] for r in study["runs"]] == ["done"] * 4

"""``uegan report`` on small fake run folders written to the run-directory contract."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from PIL import Image

import uegan.cli as cli
from uegan.apps import report, report_figures
from uegan.errors import UserError

COLORS = {"input": (255, 0, 0), "label": (255, 255, 0)}
RUN_COLORS = [(0, 160, 0), (0, 0, 200), (120, 0, 120)]


@pytest.fixture(autouse=True)
def _only_these_commands(monkeypatch):
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("report",))


def uegan(*argv) -> int:
    return cli.main([str(a) for a in argv])


def make_run(root, name, variant, seed, epochs, *, images_color=None, stems=(), rng=None, ciede2000=True):
    """A run folder: config.json, metrics.jsonl with train and val rows, optional val_images.

    ``ciede2000=False``: validation rows as runs from before CIEDE2000 was measured wrote them.
    """
    rng = rng or random.Random(name)
    run = root / name
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"variant": variant, "seed": seed, "epochs": max(epochs)}))
    rows, val = [], []
    step = 0
    for epoch in epochs:
        for _ in range(3):
            step += 10
            rows.append({"kind": "train", "step": step, "epoch": epoch, "d_loss": rng.random(),
                         "g_loss": rng.random(), "g_adv_loss": rng.random(),
                         "g_fidelity_loss": rng.random(), "g_identity_loss": rng.random()})
        row = {"kind": "val", "step": step, "epoch": epoch, "psnr": rng.uniform(15, 25),
               "ssim": rng.uniform(0.7, 0.9), "nima": rng.uniform(4, 5.5)}
        if ciede2000:
            row["ciede2000"] = rng.uniform(5, 15)
        rows.append(row)
        val.append(row)
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if images_color is not None:
        for epoch in (epochs[0], epochs[-1]):
            folder = run / "val_images" / f"epoch_{epoch:04d}"
            folder.mkdir(parents=True)
            for stem in stems:
                Image.new("RGB", (40, 30), images_color).save(folder / f"{stem}.png")
    return run, val


def table_rows(markdown: str) -> list[list[str]]:
    lines = markdown.split("## Validation metrics", 1)[1].splitlines()
    rows = [line for line in lines if line.startswith("| ")]
    table = []
    for line in rows[1:]:
        if line.startswith("| variant"):
            break
        table.append([cell.strip() for cell in line.strip("|").split("|")])
    return table


def test_table_holds_best_and_last_epoch_per_run(tmp_path):
    runs = [make_run(tmp_path, "r1", "uegan", 1, [2, 4, 6, 8]),
            make_run(tmp_path, "r2", "uegan-charbonnier", 1, [2, 4, 6]),
            make_run(tmp_path, "r3", "uegan-charbonnier", 2, [2, 4, 6])]
    out = tmp_path / "out"
    result = report.build_report(report.ReportConfig(tuple(r for r, _ in runs), out, plots=False))
    markdown = (out / "report.md").read_text()
    assert out / "report.md" in result.written
    rows = table_rows(markdown)
    assert len(rows) == 3
    for (run, val), row in zip(runs, rows):
        best = max(val, key=lambda r: r["psnr"])
        last = val[-1]
        assert row[0] == json.loads((run / "config.json").read_text())["variant"]
        assert row[3] == str(best["epoch"])
        assert row[4:8] == [f"{best['psnr']:.2f}", f"{best['ssim']:.4f}", f"{best['ciede2000']:.2f}",
                            f"{best['nima']:.2f}"]
        assert row[8] == str(last["epoch"])
        assert row[9:13] == [f"{last['psnr']:.2f}", f"{last['ssim']:.4f}", f"{last['ciede2000']:.2f}",
                             f"{last['nima']:.2f}"]
    header = next(line for line in markdown.splitlines() if line.startswith("| variant | seed"))
    assert [c.strip() for c in header.strip("|").split("|")][4:] == [
        "PSNR", "SSIM", "CIEDE2000", "NIMA", "last epoch", "PSNR", "SSIM", "CIEDE2000", "NIMA"]
    # two seeds of uegan-charbonnier: mean and standard deviation of the last epochs
    for key in ("psnr", "ciede2000"):
        last_values = [runs[1][1][-1][key], runs[2][1][-1][key]]
        mean = sum(last_values) / 2
        sd = abs(last_values[0] - last_values[1]) / 2 ** 0.5
        assert f"{mean:.2f} ± {sd:.2f}" in markdown
    # one seed table (mean ± std per variant, every run counted), not one per module
    assert markdown.count("| variant | seeds | PSNR | SSIM | CIEDE2000 | NIMA |") == 1
    assert "| variant | runs |" not in markdown
    assert "Curves skipped" in markdown and "Grid skipped" in markdown


def test_best_by_another_metric(tmp_path):
    run, val = make_run(tmp_path, "r1", "uegan", 0, [1, 2, 3, 4, 5])
    out = tmp_path / "out"
    report.build_report(report.ReportConfig((run,), out, plots=False, best_by="ssim"))
    [row] = table_rows((out / "report.md").read_text())
    assert row[3] == str(max(val, key=lambda r: r["ssim"])["epoch"])


def test_best_by_ciede2000_is_the_lowest(tmp_path):
    run, val = make_run(tmp_path, "r1", "uegan", 0, [1, 2, 3, 4, 5])
    lowest = min(val, key=lambda r: r["ciede2000"])
    assert lowest is not max(val, key=lambda r: r["ciede2000"])
    out = tmp_path / "out"
    assert uegan("report", run, "--out", out, "--no-plots", "--best-by", "ciede2000") == 0
    markdown = (out / "report.md").read_text()
    [row] = table_rows(markdown)
    assert row[3] == str(lowest["epoch"])
    assert row[6] == f"{lowest['ciede2000']:.2f}"
    assert "the best epoch is the one with the lowest CIEDE2000" in markdown
    assert "best epoch (by CIEDE2000)" in markdown


def test_runs_without_ciede2000_show_a_dash(tmp_path):
    """Run folders from before CIEDE2000 was measured sit in the same report."""
    old1, old_val = make_run(tmp_path, "old1", "uegan", 0, [2, 4], ciede2000=False)
    old2, _ = make_run(tmp_path, "old2", "uegan", 1, [2, 4], ciede2000=False)
    new1, new_val = make_run(tmp_path, "new1", "uegan-charbonnier", 0, [2, 4])
    new2, _ = make_run(tmp_path, "new2", "uegan-charbonnier", 1, [2, 4])
    out = tmp_path / "out"
    report.build_report(report.ReportConfig((old1, old2, new1, new2), out, plots=False))
    markdown = (out / "report.md").read_text()
    rows = table_rows(markdown)
    assert rows[0][6] == rows[0][11] == "—"                       # best and last CIEDE2000
    assert rows[0][4] == f"{max(old_val, key=lambda r: r['psnr'])['psnr']:.2f}"  # the rest as before
    assert rows[2][11] == f"{new_val[-1]['ciede2000']:.2f}"
    # mean ± std over random seeds, in the one seed table: a dash for the old variant
    seeds = [line for line in markdown.splitlines() if line.startswith("| uegan | 2 |")]
    assert len(seeds) == 1 and seeds[0].split("|")[5].strip() == "—"
    assert "| uegan-charbonnier | CIEDE2000 |" not in markdown  # no baseline figures to compare with
    # --best-by ciede2000 with old runs: their best epoch cannot be chosen by it
    out2 = tmp_path / "out2"
    report.build_report(report.ReportConfig((old1, new1), out2, plots=False, best_by="ciede2000"))
    old_row, new_row = table_rows((out2 / "report.md").read_text())
    assert old_row[3:8] == ["—"] * 5 and old_row[8] == "4"
    assert new_row[3] == str(min(new_val, key=lambda r: r["ciede2000"])["epoch"])


def test_validation_curves_include_ciede2000(tmp_path, monkeypatch):
    titles = []

    class Axes:
        def set_title(self, title):
            titles.append(title)

        def plot(self, *args, **kwargs):
            pass

        set_xlabel = grid = legend = plot

    class Figure:
        def __init__(self, *args, **kwargs):
            pass

        def subplots(self, rows, columns, squeeze=False):
            return [[Axes() for _ in range(columns)] for _ in range(rows)]

        def savefig(self, buffer, **kwargs):
            buffer.write(b"png")

    class FigureModule:
        pass

    FigureModule.Figure = Figure
    run, _ = make_run(tmp_path, "r1", "uegan", 0, [2, 4])
    assert report_figures.validation_figure(FigureModule, [report.load_run(run)]) == b"png"
    assert titles == ["PSNR (dB)", "SSIM", "CIEDE2000 (lower is better)", "NIMA"]


def test_plots_with_matplotlib(tmp_path):
    import matplotlib  # noqa: F401  (the test extra: missing, the test fails)

    run1, _ = make_run(tmp_path, "r1", "uegan", 0, [2, 4])
    run2, _ = make_run(tmp_path, "r2", "uegan-charbonnier-se", 0, [2, 4])
    out = tmp_path / "out"
    assert uegan("report", run1, run2, "--out", out) == 0
    for name in (report.VAL_CURVES_FILE, report.LOSS_CURVES_FILE):
        with Image.open(out / name) as image:
            assert image.format == "PNG" and image.width > 200
        assert f"({name})" in (out / "report.md").read_text()


def test_without_matplotlib_the_table_is_written_and_plots_are_skipped(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(report, "_load_matplotlib", lambda: None)
    run, _ = make_run(tmp_path, "r1", "uegan", 0, [2, 4])
    out = tmp_path / "out"
    assert uegan("report", run, "--out", out) == 0
    markdown = (out / "report.md").read_text()
    assert "matplotlib is not installed" in markdown
    assert "uegan[plot]" in capsys.readouterr().err
    assert not (out / report.VAL_CURVES_FILE).exists() and not (out / report.LOSS_CURVES_FILE).exists()
    assert table_rows(markdown)


def test_image_grid_shows_input_each_run_and_label(tmp_path):
    stems = ["img1", "img2", "img3"]
    low, label = tmp_path / "low", tmp_path / "label"
    low.mkdir()
    label.mkdir()
    for stem in stems:
        Image.new("RGB", (40, 30), COLORS["input"]).save(low / f"{stem}.png")
        Image.new("RGB", (40, 30), COLORS["label"]).save(label / f"{stem}.png")
    runs = [make_run(tmp_path, f"r{i}", "uegan", i, [2, 4], images_color=color, stems=stems)[0]
            for i, color in enumerate(RUN_COLORS[:2])]
    out = tmp_path / "out"
    report.build_report(report.ReportConfig(tuple(runs), out, val_low=low, val_label=label,
                                            grid_images=2, cell_height=60, plots=False))
    grid = np.asarray(Image.open(out / report.GRID_FILE).convert("RGB"))
    # Walk along a line through each of the two image rows: the colours appear in column order.
    expected = [COLORS["input"], *RUN_COLORS[:2], COLORS["label"]]
    height = grid.shape[0]
    found_rows = 0
    for y in range(height):
        line = [tuple(int(c) for c in px) for px in grid[y]]
        sequence = [c for i, c in enumerate(line) if c != (255, 255, 255) and (i == 0 or line[i - 1] != c)]
        if sequence == expected:
            found_rows += 1
    assert found_rows >= 2 * 50  # two image rows of (about) 60 pixels each
    markdown = (out / "report.md").read_text()
    assert "img1" in markdown and "img2" in markdown and "img3" not in markdown


def test_grid_uses_the_best_epoch_when_saved(tmp_path):
    run, val = make_run(tmp_path, "r1", "uegan", 0, [2, 4, 6, 8], images_color=(0, 0, 0), stems=["a"])
    loaded = report.load_run(run)
    saved = {val[0]["epoch"], val[-1]["epoch"]}
    best = max(val, key=lambda r: r["psnr"])["epoch"]
    epoch, folder = report_figures.grid_epoch_dir(loaded, "psnr")
    assert epoch == (best if best in saved else max(saved))
    assert folder == run / "val_images" / f"epoch_{epoch:04d}"


def test_incomplete_last_line_is_skipped_but_bad_lines_are_errors(tmp_path):
    run, val = make_run(tmp_path, "r1", "uegan", 0, [2, 4])
    with (run / "metrics.jsonl").open("a") as stream:
        stream.write('{"kind": "val", "epoch": 6, "ps')
    assert len(report.load_run(run).val) == len(val)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    lines.insert(1, "garbage")
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match="metrics.jsonl:2"):
        report.load_run(run)


def test_missing_config_and_existing_report_are_usage_errors(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "out"
    assert uegan("report", tmp_path / "empty", "--out", out) == 2
    assert "config.json" in capsys.readouterr().err
    run, _ = make_run(tmp_path, "r1", "uegan", 0, [2])
    out.mkdir()
    (out / "report.md").write_text("keep")
    assert uegan("report", run, "--out", out, "--no-plots") == 2
    assert (out / "report.md").read_text() == "keep"
    assert uegan("report", run, "--out", out, "--no-plots", "--overwrite") == 0
    assert (out / "report.md").read_text() != "keep"


def test_run_without_validation_rows(tmp_path):
    run = tmp_path / "fresh"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"variant": "uegan", "seed": 3}))
    out = tmp_path / "out"
    report.build_report(report.ReportConfig((run,), out, plots=False))
    [row] = table_rows((out / "report.md").read_text())
    assert row[3:] == ["—"] * 10


def test_the_report_does_not_import_the_study():
    """uegan study builds on uegan report (and both on uegan.apps.seeds), never the other way."""
    import ast
    from pathlib import Path

    import uegan.apps

    apps = Path(uegan.apps.__file__).parent
    for name in ("report.py", "report_figures.py", "seeds.py", "tables.py"):
        tree = ast.parse((apps / name).read_text(encoding="utf-8"))
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                     for alias in node.names}
        assert "uegan.apps.study" not in imported, name

"""The run folder object reads back what the trainer wrote (report and study read through it),
and validation during training scores exactly as ``uegan evaluate`` does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _training_utils import one_thread  # noqa: F401  (a fixture)
from _training_utils import TinyFeatures, make_pairs, tiny_config

from uegan.apps.report import load_run
from uegan.apps.study import run_status
from uegan.evaluation import EvaluationConfig, evaluate
from uegan.training.run_folder import RunFolder
from uegan.training.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def validated_run(tmp_path) -> tuple[Path, Path]:
    make_pairs(tmp_path / "val_low", tmp_path / "val_label", 2, seed=7)
    config = tiny_config(tmp_path, steps=2, save_every=2, val_low=str(tmp_path / "val_low"),
                         val_label=str(tmp_path / "val_label"), val_save_images=2)
    Trainer(config, vgg=TinyFeatures()).fit()
    return Path(config.out), tmp_path / "val_label"


def test_run_folder_reads_back_what_the_trainer_wrote(validated_run):
    run, _ = validated_run
    folder = RunFolder(run)
    assert folder.read_config()["variant"] == "uegan"
    assert folder.total_steps() == 2
    rows = folder.read_metrics()
    assert [r["step"] for r in rows if r["kind"] == "train"] == [1, 2]
    assert [r["step"] for r in rows if r["kind"] == "val"] == [2]
    assert folder.status() == run_status(run) == "done"
    assert set(folder.epoch_image_dirs()) == {1}
    assert sorted(p.name for p in folder.val_images(1).iterdir()) == ["pair0.png", "pair1.png"]
    assert folder.validation_file(1).is_file() and folder.log_file.is_file()
    assert folder.generator_file.is_file() and folder.best_generator_file.is_file()
    loaded = load_run(run)
    assert loaded.variant == "uegan" and [r["step"] for r in loaded.val] == [2]


def test_run_status_of_started_and_new_folders(tmp_path):
    assert RunFolder(tmp_path / "absent").status() == "new"
    started = RunFolder(tmp_path / "started")
    started.checkpoint_dir.mkdir(parents=True)
    assert started.status() == "partial"
    started.versions_file.write_text(json.dumps({"total_steps": 4}))
    started.metrics_file.write_text('{"kind": "val", "step": 2}\n{"kind": "val", "st')
    assert started.status() == "partial"  # validated, but not after its last step
    started.metrics_file.write_text('{"kind": "val", "step": 4}\n{"kind": "train", "st')
    assert started.status() == "done"     # a last line cut short does not hide the rows


def test_validation_scores_as_uegan_evaluate_does(validated_run):
    run, labels = validated_run
    logged = json.loads(RunFolder(run).validation_file(1).read_text())
    result = evaluate(EvaluationConfig(pred_dir=RunFolder(run).val_images(1), label_dir=labels,
                                       nima="off"))
    evaluated = {r.stem: r for r in result.results}
    assert sorted(evaluated) == sorted(row["image"] for row in logged["images"])
    for row in logged["images"]:
        for key in ("psnr", "ssim", "ciede2000"):
            assert row[key] == getattr(evaluated[row["image"]], key), (row["image"], key)

"""A training run end to end: run-directory outputs, validation, schedule, failures."""

from __future__ import annotations

import errno
import hashlib
import json
import os
from dataclasses import replace

import numpy as np
import pytest
import skimage.color as skc
import skimage.metrics as skm
import torch
from _training_utils import one_thread  # noqa: F401  (a fixture)
from _training_utils import (TinyFeatures, make_images, make_pairs, save_fails_after_the_first,
                             tiny_config)
from conftest import load_golden
from PIL import Image

from uegan import nima as nima_module
from uegan.checkpoints import load_generator
from uegan.cli import main
from uegan.errors import UserError
from uegan.training import run_log
from uegan.training import trainer as trainer_module
from uegan.training.checkpoint import CheckpointWriteError, list_checkpoints, load_checkpoint
from uegan.training.config import config_from_json
from uegan.training.trainer import Trainer, TrainingError

pytestmark = pytest.mark.usefixtures("one_thread")


def _rows(run_dir, kind):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [row for row in rows if row["kind"] == kind]


def _psnr_8bit(a: np.ndarray, b: np.ndarray) -> float:
    a = a[4:-4, 4:-4].astype(np.float64)
    b = b[4:-4, 4:-4].astype(np.float64)
    return float(10 * np.log10(255.0 ** 2 / np.mean((a - b) ** 2)))


def _sk_ciede2000(output: np.ndarray, label: np.ndarray) -> float:
    """scikit-image's CIEDE2000 of the pair, averaged over the pixels left by the 4-pixel crop."""
    return float(skc.deltaE_ciede2000(skc.rgb2lab(output), skc.rgb2lab(label))[4:-4, 4:-4].mean())


def test_run_directory(tmp_path, caplog):
    caplog.set_level("INFO", logger="uegan")
    make_pairs(tmp_path / "val_low", tmp_path / "val_label", 3, seed=4)  # 112 x 100: padded to 16
    nima = tmp_path / "nima.pth"  # the reference NIMA's random weights stand in for published ones
    torch.save(load_golden("nima_forward.pt")["state_dict_fp16"], nima)
    config = tiny_config(tmp_path, steps=4, val_low=str(tmp_path / "val_low"),
                         val_label=str(tmp_path / "val_label"), val_start_epoch=1, val_every=1,
                         val_save_images=2, tensorboard=True, nima_weights=str(nima))
    result = Trainer(config, vgg=TinyFeatures()).fit()
    run = tmp_path / "run"
    assert (result.step, result.epoch, result.interrupted) == (4, 1, False)  # 4 steps per epoch

    saved = json.loads((run / "config.json").read_text())
    assert saved["variant"] == "uegan" and saved["seed"] == 3
    assert config_from_json(run / "config.json") == config
    versions = json.loads((run / "versions.json").read_text())
    assert versions["torch"] == torch.__version__ and versions["world_size"] == 1
    assert "training uegan" in (run / "train.log").read_text()

    train = _rows(run, "train")
    assert [row["step"] for row in train] == [1, 2, 3, 4]
    for row in train:
        assert set(row) >= {"step", "epoch", "d_loss", "g_loss", "g_adv_loss", "g_fidelity_loss",
                            "g_identity_loss", "lr_g", "lr_d", "steps_per_s"}
        assert row["g_loss"] == pytest.approx(row["g_adv_loss"] + row["g_fidelity_loss"]
                                              + row["g_identity_loss"], rel=1e-5)
        assert row["g_fidelity_loss"] >= 0 and row["epoch"] == 1
    val = _rows(run, "val")
    assert len(val) == 1 and val[0]["step"] == 4 and val[0]["epoch"] == 1

    # the validation figures, recomputed from the saved outputs and the labels: PSNR and SSIM
    # (scikit-image, published protocol: 4-pixel crop, 7x7 window, data range 255), CIEDE2000,
    # and NIMA: the same weights on the saved output, score = sum_i i p_i over the 10 bins
    per_image = json.loads((run / "validation" / "epoch_0001.json").read_text())["images"]
    assert [row["image"] for row in per_image] == ["pair0", "pair1", "pair2"]
    nima_model = nima_module.load_nima(nima)
    for row in per_image[:2]:
        output = np.asarray(Image.open(run / "val_images" / "epoch_0001" / f"{row['image']}.png"))
        label = np.asarray(Image.open(tmp_path / "val_label" / f"{row['image']}.png"))
        assert output.shape == label.shape == (100, 112, 3)
        assert row["psnr"] == pytest.approx(_psnr_8bit(output, label), abs=1e-9)
        assert row["ssim"] == pytest.approx(skm.structural_similarity(
            output[4:-4, 4:-4], label[4:-4, 4:-4], channel_axis=-1, data_range=255), abs=1e-9)
        assert row["ciede2000"] == pytest.approx(_sk_ciede2000(output, label), abs=1e-9)
        with torch.no_grad():
            probs = nima_model(nima_module.preprocess(output)[None])[0].double().numpy()
        assert row["nima"] == pytest.approx(float((probs * np.arange(1, 11)).sum()), abs=1e-6)
    assert not (run / "val_images" / "epoch_0001" / "pair2.png").exists()  # val_save_images=2
    for key in ("psnr", "ssim", "ciede2000", "nima"):
        assert val[0][key] == pytest.approx(np.mean([row[key] for row in per_image]), abs=1e-9)

    # exports: the final generator equals the final checkpoint's; the best one was written
    final = load_checkpoint(run / "checkpoints" / "step_00000004.pt")
    exported = load_generator(run / "generator.safetensors")
    assert exported.variant == "uegan"
    for key, value in exported.generator.state_dict().items():
        assert torch.equal(value, final["G"][key])
    from_checkpoint = load_generator(run / "checkpoints" / "step_00000004.pt")
    assert from_checkpoint.source_format == "train"
    assert (run / "generator_best.safetensors").exists()
    assert [s for s, _ in list_checkpoints(run, "best_step")] == [4]
    assert final["best"]["epoch"] == 1

    try:
        import tensorboard  # noqa: F401
    except ImportError:
        assert not (run / "tensorboard").exists()
    else:
        assert list((run / "tensorboard").glob("events.out.tfevents.*"))


class _RecordingWriter:
    """Stands in for TensorBoard's SummaryWriter: keeps the scalars."""

    def __init__(self) -> None:
        self.scalars: dict[str, list[tuple[int, float]]] = {}

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.scalars.setdefault(tag, []).append((step, value))

    def add_image(self, *args, **kwargs) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_validation_metrics_reach_metrics_jsonl_and_tensorboard(tmp_path, monkeypatch):
    make_pairs(tmp_path / "val_low", tmp_path / "val_label", 2, seed=5)
    writer = _RecordingWriter()
    monkeypatch.setattr(run_log, "open_tensorboard", lambda folder, purge_step: writer)
    config = tiny_config(tmp_path, steps=2, val_low=str(tmp_path / "val_low"),
                         val_label=str(tmp_path / "val_label"), val_save_images=2, tensorboard=True)
    Trainer(config, vgg=TinyFeatures()).fit()
    run = tmp_path / "run"
    [val] = _rows(run, "val")  # after the last step
    assert {"psnr", "ssim", "ciede2000"} <= set(val)
    for key in ("psnr", "ssim", "ciede2000"):
        assert writer.scalars[f"val/{key}"] == [(2, val[key])]
    outputs = [np.asarray(Image.open(run / "val_images" / "epoch_0001" / f"pair{i}.png")) for i in range(2)]
    labels = [np.asarray(Image.open(tmp_path / "val_label" / f"pair{i}.png")) for i in range(2)]
    assert val["ciede2000"] == pytest.approx(np.mean([_sk_ciede2000(o, t) for o, t in zip(outputs, labels)]),
                                             abs=1e-9)


def test_best_validation_is_chosen_by_psnr_not_by_ciede2000(tmp_path, monkeypatch):
    make_pairs(tmp_path / "val_low", tmp_path / "val_label", 1, seed=6)
    config = tiny_config(tmp_path, steps=2, val_low=str(tmp_path / "val_low"),
                         val_label=str(tmp_path / "val_label"))
    trainer = Trainer(config, vgg=TinyFeatures())
    results = iter([{"psnr": 20.0, "ssim": 0.5, "ciede2000": 9.0},   # first: best so far
                    {"psnr": 19.0, "ssim": 0.6, "ciede2000": 1.0},   # better colour, lower PSNR
                    {"psnr": 21.0, "ssim": 0.4, "ciede2000": 12.0}])  # higher PSNR: the new best
    monkeypatch.setattr(trainer, "_run_validation", lambda epoch_label: next(results))
    bests = []
    for step in (1, 2, 3):
        trainer.step = step
        trainer.validate()
        bests.append((trainer.best["step"], trainer.best["psnr"]))
    assert bests == [(1, 20.0), (1, 20.0), (3, 21.0)]
    assert [s for s, _ in list_checkpoints(config.out, "best_step")] == [3]


def test_learning_rate_schedule(tmp_path):
    # one image per set and batch 1: one step per epoch; 3 epochs, the last 2 decaying
    make_images(tmp_path / "low", 1, seed=1)
    make_images(tmp_path / "high", 1, seed=2)
    config = tiny_config(tmp_path, steps=None, epochs=3, decay_epochs=2, save_every=100)
    Trainer(config, vgg=TinyFeatures()).fit()
    rows = _rows(tmp_path / "run", "train")
    assert [row["epoch"] for row in rows] == [1, 2, 3]
    # factor of 0-based epoch e: 1 - max(0, e + 1 - (3 - 2)) / 2  ->  1, 0.5, 0
    assert [row["lr_g"] for row in rows] == pytest.approx([1e-4, 0.5e-4, 0.0])
    assert [row["lr_d"] for row in rows] == pytest.approx([4e-4, 2e-4, 0.0])


def test_non_finite_loss_stops_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    real_step = trainer_module.train_step
    calls = []

    def poisoned(*args, **kwargs):
        losses = real_step(*args, **kwargs)
        calls.append(1)
        if len(calls) == 3:
            losses.g_loss = torch.tensor(float("nan"))
        return losses

    monkeypatch.setattr(trainer_module, "train_step", poisoned)
    config = tiny_config(tmp_path, steps=6, save_every=2)
    with pytest.raises(TrainingError, match=r"non-finite loss at step 3 .*g_loss=nan.*step_00000002\.pt"):
        Trainer(config, vgg=TinyFeatures()).fit()
    assert [s for s, _ in list_checkpoints(config.out)] == [2]
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "step_00000002.pt")["step"] == 2
    assert not (tmp_path / "run" / "generator.safetensors").exists()


def test_full_disk_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    real_save = torch.save
    monkeypatch.setattr(torch, "save",
                        save_fails_after_the_first(OSError(errno.ENOSPC, "No space left on device")))
    config = tiny_config(tmp_path, steps=6, save_every=2)
    trainer = Trainer(config, vgg=TinyFeatures())
    with pytest.raises(CheckpointWriteError, match="No space left on device.*intact"):
        trainer.fit()
    folder = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["step_00000002.pt"]  # no partial files
    monkeypatch.setattr(torch, "save", real_save)
    digest = hashlib.sha256((folder / "step_00000002.pt").read_bytes()).hexdigest()
    assert load_checkpoint(folder / "step_00000002.pt")["step"] == 2
    # and the run continues from it, clearing what a save killed half-way leaves behind
    (folder / ".step_00000004.pt.x1y2.tmp").write_bytes(b"half a checkpoint")
    result = Trainer(replace(config, resume=True), vgg=TinyFeatures()).fit()
    assert not (folder / ".step_00000004.pt.x1y2.tmp").exists()
    assert result.step == 6
    assert hashlib.sha256((folder / "step_00000002.pt").read_bytes()).hexdigest() == digest


def test_loader_processes_change_nothing(tmp_path):
    # every random choice of the data is a function of (seed, set, position), not of the process
    # that loads it; the progress bar is on here (it writes to stderr)
    one = Trainer(tiny_config(tmp_path, out="a", steps=2, num_workers=0), vgg=TinyFeatures())
    one.fit()
    two = Trainer(tiny_config(tmp_path, out="b", steps=2, num_workers=2, progress=True),
                  vgg=TinyFeatures())
    two.fit()
    for key, value in one.generator.state_dict().items():
        assert torch.equal(value, two.generator.state_dict()[key])


def test_a_run_directory_is_not_reused_without_resume(tmp_path):
    config = tiny_config(tmp_path, steps=1)
    Trainer(config, vgg=TinyFeatures()).fit()
    with pytest.raises(UserError, match="already holds a training run.*--resume"):
        Trainer(config, vgg=TinyFeatures())


def test_bad_images_stop_the_run_or_are_skipped(tmp_path, caplog):
    config = tiny_config(tmp_path, steps=1)
    (tmp_path / "low" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(UserError, match="(?s)1 of 6 files in the low-quality folder.*corrupt.jpg"):
        Trainer(config, vgg=TinyFeatures())
    with caplog.at_level("WARNING"):
        result = Trainer(replace(config, skip_bad_images=True), vgg=TinyFeatures()).fit()
    assert result.step == 1 and "skipping 1 unreadable image(s)" in caplog.text


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_runs(tmp_path, precision):
    config = tiny_config(tmp_path, steps=2, precision=precision, save_every=2)
    Trainer(config, vgg=TinyFeatures()).fit()
    checkpoint = load_checkpoint(tmp_path / "run" / "checkpoints" / "step_00000002.pt")
    assert all(torch.isfinite(v).all() for v in checkpoint["G"].values())
    assert (checkpoint["scaler"] is not None) == (precision == "fp16")
    assert all(np.isfinite(row["g_loss"]) for row in _rows(tmp_path / "run", "train"))


def test_cli_reports_missing_settings(capsys):
    assert main(["train", "--low", "x"]) == 2
    assert "needs --high, --out" in capsys.readouterr().err


def test_fast_step_trains_like_the_published_step_and_resumes_without_it(tmp_path):
    # --fast-step (D frozen in the G step, fused Adam, conv-first upsampling, output-scaled
    # spectral norm) makes the same updates up to rounding, and its checkpoints are the
    # published step's: a fast run resumes as a plain one
    plain = tiny_config(tmp_path, out="plain", steps=4, save_every=2)
    Trainer(plain, vgg=TinyFeatures()).fit()
    fast = replace(plain, out=str(tmp_path / "fast"), fast_step=True, steps=2)
    Trainer(fast, vgg=TinyFeatures()).fit()
    Trainer(replace(fast, fast_step=False, steps=4, resume=True), vgg=TinyFeatures()).fit()

    expected = load_checkpoint(tmp_path / "plain" / "checkpoints" / "step_00000004.pt")
    got = load_checkpoint(tmp_path / "fast" / "checkpoints" / "step_00000004.pt")
    initial = load_checkpoint(tmp_path / "plain" / "checkpoints" / "step_00000002.pt")
    for net in ("G", "D"):
        assert got[net].keys() == expected[net].keys()
        # the updates of steps 3-4 (Adam turns rounding-level gradient differences into
        # differences of up to lr per element, so compare whole updates, not elements)
        keys = [k for k, v in expected[net].items() if v.is_floating_point() and not k.endswith((".u", ".v"))]
        delta_expected = torch.cat([(expected[net][k] - initial[net][k]).flatten() for k in keys])
        delta_got = torch.cat([(got[net][k] - initial[net][k]).flatten() for k in keys])
        relative = ((delta_got - delta_expected).norm() / delta_expected.norm()).item()
        assert delta_expected.norm() > 0 and relative < 1e-3, (net, relative)
    assert [r["step"] for r in _rows(tmp_path / "fast", "train")] == [1, 2, 3, 4]


def test_cli_speed_flags_reach_the_configuration():
    from uegan.cli.train import config_from_args
    from uegan.cli import build_parser

    args = build_parser().parse_args(["train", "--low", "a", "--high", "b", "--out", "c",
                                      "--fast-step", "--compile"])
    config = config_from_args(args)
    assert config.fast_step and config.compile
    config = config_from_args(build_parser().parse_args(["train", "--low", "a", "--high", "b",
                                                         "--out", "c"]))
    assert not config.fast_step and not config.compile


@pytest.mark.compile
@pytest.mark.skipif(os.environ.get("UEGAN_SLOW_TESTS") != "1",
                    reason="compiles G, D and the feature net, forward and backward (minutes on "
                           "a cold cache): set UEGAN_SLOW_TESTS=1")
def test_compiled_trainer_runs_validation_uncompiled_and_matches_eager(tmp_path, monkeypatch):
    # validation photos (112 x 100, padded to 112 x 112) differ from the 96 x 96 training crops:
    # under run_eagerly they compile nothing; the compiled run follows the eager one
    from torch._dynamo.utils import counters

    make_pairs(tmp_path / "val_low", tmp_path / "val_label", 2, seed=4)
    config = tiny_config(tmp_path, out="eager", steps=4, save_every=2, fast_step=True,
                         val_low=str(tmp_path / "val_low"), val_label=str(tmp_path / "val_label"),
                         val_start_epoch=1, val_every=1)
    Trainer(config, vgg=TinyFeatures()).fit()

    graphs_during_validation = []
    validate = Trainer._validate

    def counting_validate(self, epoch_label):
        before = counters["stats"]["unique_graphs"]
        result = validate(self, epoch_label)
        graphs_during_validation.append(counters["stats"]["unique_graphs"] - before)
        return result

    monkeypatch.setattr(Trainer, "_validate", counting_validate)
    torch._dynamo.reset()
    counters.clear()
    Trainer(replace(config, out=str(tmp_path / "compiled"), compile=True), vgg=TinyFeatures()).fit()
    compiled_graphs = counters["stats"]["unique_graphs"]
    torch._dynamo.reset()

    assert compiled_graphs > 0  # the step did run compiled
    assert [r["step"] for r in _rows(tmp_path / "compiled", "val")] == [4]
    assert graphs_during_validation == [0]
    eager = load_checkpoint(tmp_path / "eager" / "checkpoints" / "step_00000004.pt")
    got = load_checkpoint(tmp_path / "compiled" / "checkpoints" / "step_00000004.pt")
    for net in ("G", "D"):
        for key, value in eager[net].items():
            if value.is_floating_point():
                assert torch.allclose(got[net][key], value, rtol=1e-3, atol=1e-4), (net, key)

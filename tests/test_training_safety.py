"""Resume and save never lose work, and bad runtime options stop a run before it starts.

- ``--resume`` with a damaged newest checkpoint resumes from the newest intact one and keeps
  the damaged file (renamed ``.damaged``), naming it in a warning;
- a full disk seen by torch (a RuntimeError of its zip writer, not an OSError) becomes the
  one-line checkpoint error that names the file and the cause;
- ``--device xyz``, ``--threads -1``, ``--set g_lr=nan`` and other non-finite or negative
  numbers: one line, exit 2, before any file is written;
- ``--out`` inside a data folder is refused (its saved validation images would become data).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace

import pytest
import torch
from _training_utils import one_thread  # noqa: F401  (a fixture)
from _training_utils import (TinyFeatures, make_pairs, save_fails_after_the_first, tensors_equal,
                             tiny_config)

from uegan import runtime
from uegan.cli import main
from uegan.errors import UserError
from uegan.training import trainer as trainer_module
from uegan.training.checkpoint import CheckpointWriteError, list_checkpoints, load_checkpoint
from uegan.training.config import load_config
from uegan.training.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------------------------------------
# resume from the newest intact checkpoint


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_resume_skips_a_damaged_newest_checkpoint_and_keeps_it(tmp_path, caplog):
    config = tiny_config(tmp_path, out="straight", steps=6, save_every=2)
    Trainer(config, vgg=TinyFeatures()).fit()

    broken = replace(config, out=str(tmp_path / "broken"), steps=4)
    Trainer(broken, vgg=TinyFeatures()).fit()
    folder = tmp_path / "broken" / "checkpoints"
    newest = folder / "step_00000004.pt"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # cut short
    damaged = _digest(newest)

    with caplog.at_level(logging.WARNING, logger="uegan"):
        trainer = Trainer(replace(broken, steps=6, resume=True), vgg=TinyFeatures())
    assert trainer.resumed_from == folder / "step_00000002.pt"
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "step_00000004.pt" in warning and "step_00000002.pt" in warning
    kept = folder / "step_00000004.pt.damaged"
    assert _digest(kept) == damaged  # never deleted, never overwritten
    result = trainer.fit()
    assert result.step == 6
    assert _digest(kept) == damaged
    # from the intact step 2 the run continues exactly as an uninterrupted one
    straight = load_checkpoint(tmp_path / "straight" / "checkpoints" / "step_00000006.pt")
    resumed = load_checkpoint(folder / "step_00000006.pt")
    assert tensors_equal({k: straight[k] for k in ("G", "D", "opt_g", "opt_d")},
                         {k: resumed[k] for k in ("G", "D", "opt_g", "opt_d")}) == []


def test_resume_with_only_damaged_checkpoints_names_them_and_writes_nothing(tmp_path):
    config = tiny_config(tmp_path, steps=2, save_every=2)
    folder = tmp_path / "run" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "step_00000002.pt").write_bytes(b"not a zip file")
    with pytest.raises(UserError, match=r"step_00000002\.pt") as caught:
        Trainer(replace(config, resume=True), vgg=TinyFeatures())
    assert "\n" not in str(caught.value)
    assert sorted(p.name for p in folder.iterdir()) == ["step_00000002.pt"]


# ---------------------------------------------------------------------------------------------
# a full disk while saving


def test_full_disk_reported_by_torch_names_the_file_and_the_cause(tmp_path, monkeypatch):
    real_save = torch.save
    # what torch's zip writer raises when the disk fills up: a RuntimeError, not an OSError
    monkeypatch.setattr(torch, "save", save_fails_after_the_first(RuntimeError(
        "[enforce fail at inline_container.cc:626] . unexpected pos 4096 vs 4032\n"
        "Exception raised from write_record")))
    config = tiny_config(tmp_path, steps=4, save_every=2)
    with pytest.raises(CheckpointWriteError) as caught:
        Trainer(config, vgg=TinyFeatures()).fit()
    message = str(caught.value)
    assert "\n" not in message
    assert "step_00000004.pt" in message and "unexpected pos 4096" in message
    assert "intact" in message
    folder = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["step_00000002.pt"]
    monkeypatch.setattr(torch, "save", real_save)
    assert load_checkpoint(folder / "step_00000002.pt")["step"] == 2


# ---------------------------------------------------------------------------------------------
# bad runtime options: one line, exit 2, before any work


@pytest.mark.parametrize("values,message", [
    ({"g_lr": "nan"}, "g_lr must be a finite number"),
    ({"d_lr": "inf"}, "d_lr must be a finite number"),
    ({"g_lr": "-inf"}, "g_lr must be a finite number"),
    ({"g_lr": -1e-4}, "g_lr must not be negative"),
    ({"beta1": "nan"}, "beta1 must be a finite number"),
    ({"fidelity_weight": float("inf")}, "fidelity_weight must be a finite number"),
    ({"beta2": 1.0}, r"beta2 must be in \[0, 1\)"),
    ({"init_gain": "nan"}, "init_gain must be a finite number"),
    ({"threads": -1}, "threads must be a whole number of at least 1"),
    ({"threads": 0}, "threads must be a whole number of at least 1"),
    ({"device": "xyz"}, "device 'xyz' is not a device name: choose auto, cpu, cuda"),
    ({"device": "cuda:x"}, "is not a device name"),
])
def test_bad_runtime_values_are_refused_by_the_configuration(values, message):
    with pytest.raises(UserError, match=message):
        load_config(set_values=values)


@pytest.mark.parametrize("argv,message", [
    (["--device", "xyz"], "device 'xyz' is not a device name"),
    (["--threads", "-1"], "threads must be a whole number of at least 1"),
    (["--set", "g_lr=nan"], "g_lr must be a finite number"),
    (["--set", "d_lr=inf"], "d_lr must be a finite number"),
    (["--set", "g_lr=-0.001"], "g_lr must not be negative"),
])
def test_cli_refuses_bad_runtime_values_in_one_line_before_any_work(tmp_path, capsys, monkeypatch,
                                                                   argv, message):
    def no_work(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(trainer_module.Trainer, "__init__", no_work)
    out = tmp_path / "run"
    code = main(["train", "--low", str(tmp_path / "low"), "--high", str(tmp_path / "high"),
                 "--out", str(out), *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_select_device_auto_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert runtime.select_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert runtime.select_device("auto") == torch.device("cpu")
    assert runtime.select_device("CPU") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert runtime.select_device("auto", local_rank=3) == torch.device("cuda", 1)
    assert runtime.select_device("cuda") == torch.device("cuda", 0)
    with pytest.raises(UserError, match=r"2 CUDA device\(s\)"):
        runtime.select_device("cuda:2")


@pytest.mark.parametrize("name,message", [
    ("xyz", "not a device name: choose auto, cpu, cuda, cuda:N or mps"),
    ("cuda", "CUDA is not available on this machine (choose auto, cpu, cuda, cuda:N or mps)"),
    ("mps", "MPS is not available on this machine (choose auto, cpu, cuda, cuda:N or mps)"),
])
def test_select_device_refuses_unknown_or_missing_devices_in_one_line(monkeypatch, name, message):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(UserError) as caught:
        runtime.select_device(name)
    assert message in str(caught.value) and "\n" not in str(caught.value)


# ---------------------------------------------------------------------------------------------
# the run folder outside the data


@pytest.mark.parametrize("inside", ["low", "high", "val_low", "val_label"])
def test_out_inside_a_data_folder_is_refused(tmp_path, capsys, inside):
    make_pairs(tmp_path / "val_low", tmp_path / "val_label", 1, seed=4)
    config = tiny_config(tmp_path, val_low=str(tmp_path / "val_low"),
                         val_label=str(tmp_path / "val_label"))
    out = tmp_path / inside / "runs" / "a"
    with pytest.raises(UserError, match=f"inside --{inside.replace('_', '-')}"):
        Trainer(replace(config, out=str(out)), vgg=TinyFeatures())
    code = main(["train", "--low", config.low, "--high", config.high, "--val-low",
                 config.val_low, "--val-label", config.val_label, "--out", str(out),
                 "--vgg-weights", "random"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "choose a run folder" in err
    assert not (tmp_path / inside / "runs").exists()


def test_out_beside_the_data_folders_is_accepted(tmp_path):
    # a name that merely starts like a data folder is not inside it
    config = tiny_config(tmp_path, out="low_run", steps=1, save_every=1)
    assert Trainer(config, vgg=TinyFeatures()).fit().step == 1
    assert [s for s, _ in list_checkpoints(config.out)] == [1]

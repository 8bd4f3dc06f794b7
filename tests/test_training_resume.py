"""Exact resume: a run stopped after step k (cleanly, by Ctrl-C, or by SIGKILL right after a
checkpoint) and resumed ends at step n bit-identical to an uninterrupted run."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from dataclasses import replace

import pytest
import torch
from _training_utils import one_thread  # noqa: F401  (a fixture)
from _training_utils import TinyFeatures, cli_env, run_cli, tensors_equal, tiny_config, uegan_command

from uegan.training.checkpoint import list_checkpoints, load_checkpoint, newest_checkpoint
from uegan.training.trainer import Trainer

# what must match bit for bit at the end (everything but bookkeeping such as the config)
COMPARED = ("G", "D", "opt_g", "opt_d", "step", "epoch", "step_in_epoch", "streams", "ranks")


def _final_state(run_dir):
    return {key: load_checkpoint(newest_checkpoint(run_dir))[key] for key in COMPARED}


@pytest.mark.usefixtures("one_thread")
def test_resume_in_process_is_bit_identical(tmp_path):
    # pool of 2 with batch 1: from the third step the pool swaps images at random, so its own
    # random state and contents must survive the restart; 3 epochs of 4 steps cross an epoch
    # boundary and the learning-rate schedule (epochs 3, decay 2)
    config = tiny_config(tmp_path, out="straight", steps=6, save_every=2, epochs=3, decay_epochs=2)
    Trainer(config, vgg=TinyFeatures()).fit()

    first = replace(config, out=str(tmp_path / "resumed"), steps=3)
    result = Trainer(first, vgg=TinyFeatures()).fit()
    assert result.step == 3 and not result.interrupted
    assert [s for s, _ in list_checkpoints(first.out)] == [2, 3]
    second = replace(first, steps=6, resume=True)
    result = Trainer(second, vgg=TinyFeatures()).fit()
    assert result.step == 6

    straight, resumed = _final_state(config.out), _final_state(second.out)
    assert straight["step"] == resumed["step"] == 6
    assert tensors_equal(straight, resumed) == []
    # and training did move the weights
    initial = load_checkpoint(tmp_path / "straight" / "checkpoints" / "step_00000002.pt")["G"]
    assert tensors_equal(initial, straight["G"]) != []


def test_rng_states_round_trip(tmp_path):
    import random

    import numpy as np

    from uegan.training.checkpoint import capture_rng_state, restore_rng_state

    random.seed(5)
    np.random.seed(6)
    torch.manual_seed(7)
    state = capture_rng_state()
    torch.save(state, tmp_path / "rng.pt")
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    restore_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


@pytest.mark.usefixtures("one_thread")
def test_resume_restores_the_global_random_states(tmp_path, monkeypatch):
    """A step that draws from Python's, numpy's and torch's global generators sees, after a
    resume, the same numbers as in an uninterrupted run (the checkpoint's random states are
    put back). The step itself is replaced: only its random draws matter here."""
    import random

    import numpy as np

    from uegan.training import trainer as trainer_module
    from uegan.training.step import StepLosses

    draws = []

    def drawing_step(*args, **kwargs):
        draws.append((random.random(), float(np.random.rand()), float(torch.rand(1))))
        zero = torch.zeros(())
        return StepLosses(zero, zero, zero, zero, zero)

    monkeypatch.setattr(trainer_module, "train_step", drawing_step)
    config = tiny_config(tmp_path, out="straight", steps=4, save_every=2)
    Trainer(config, vgg=TinyFeatures()).fit()
    straight = list(draws)
    assert len(straight) == 4 and len(set(straight)) == 4

    draws.clear()
    first = replace(config, out=str(tmp_path / "resumed"), steps=2)
    Trainer(first, vgg=TinyFeatures()).fit()
    Trainer(replace(first, steps=4, resume=True), vgg=TinyFeatures()).fit()
    assert draws == straight


def test_resume_never_unpickles_a_checkpoint(tmp_path):
    from _malicious import write_malicious

    from uegan.errors import UserError

    config = tiny_config(tmp_path, resume=True)
    folder = tmp_path / "run" / "checkpoints"
    folder.mkdir(parents=True)
    marker = tmp_path / "pwned"
    write_malicious(folder / "step_00000002.pt", marker,
                    lambda p: {"format": "uegan-train", "G": p})
    with pytest.raises(UserError, match="step_00000002.pt"):
        Trainer(config, vgg=TinyFeatures())
    assert not marker.exists()


def _wait_for(path, process, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"trainer exited early ({process.returncode}): "
                                 f"{process.stderr.read() if process.stderr else ''}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"{path} did not appear")
        time.sleep(0.01)


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """The arguments of a small CLI run, and the final state of its uninterrupted run."""
    root = tmp_path_factory.mktemp("cli_resume")
    config = tiny_config(root)  # makes the image folders
    args = ["train", "--low", config.low, "--high", config.high, "--steps", "5",
            "--save-every", "2", "--vgg-weights", "random", "--seed", "3", "--batch-size", "1",
            "--num-workers", "0", "--set", "conv_dim=8", "--set", "d_conv_dim=8",
            "--set", "image_size=96", "--set", "crop_size=128", "--set", "pool_size=2",
            "--set", "keep_last=10", "--set", "log_every=1"]
    straight = run_cli(*args, "--out", str(root / "straight"))
    assert straight.returncode == 0, straight.stderr
    return args, _final_state(root / "straight")


SIGNALS = {"sigkill": signal.SIGKILL, "ctrl-c": signal.SIGINT, "sigterm": signal.SIGTERM}


@pytest.mark.parametrize("how", ["sigkill", "ctrl-c", "sigterm"])
def test_cli_resume_after_kill_or_interrupt_is_bit_identical(tmp_path, cli_run, how):
    args, straight = cli_run
    run_dir = tmp_path / "stopped"
    process = subprocess.Popen(uegan_command(*args, "--out", str(run_dir)), env=cli_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(run_dir / "checkpoints" / "step_00000002.pt", process)
    process.send_signal(SIGNALS[how])
    _, stderr = process.communicate(timeout=120)
    if how == "sigkill":
        assert process.returncode == -signal.SIGKILL
    else:  # the shell's codes, as every other command: 130 after Ctrl-C, 143 after SIGTERM
        assert process.returncode == 128 + SIGNALS[how], stderr
        assert "continue with --resume" in stderr
    stopped_at = load_checkpoint(newest_checkpoint(run_dir))["step"]
    assert 2 <= stopped_at < 5

    resumed = run_cli(*args, "--out", str(run_dir), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming from {run_dir / 'checkpoints'}" in resumed.stderr
    assert tensors_equal(straight, _final_state(run_dir)) == []
    # the metrics log has one train row per step, as an uninterrupted run's
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "train"] == [1, 2, 3, 4, 5]

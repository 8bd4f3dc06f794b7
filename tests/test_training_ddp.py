"""Two training processes with torchrun (gloo on the CPU): identical replicas, one set of logs,
and --resume in this mode too."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from _training_utils import cli_env, make_pairs, tensors_equal, tiny_config

from uegan.training.checkpoint import load_checkpoint, newest_checkpoint

WORKER = Path(__file__).with_name("_ddp_train_worker.py")

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason="torch.distributed with gloo is not available")


def _torchrun(dump: Path, *args: str) -> subprocess.CompletedProcess:
    dump.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
               "2", str(WORKER), str(dump), *args]
    result = subprocess.run(command, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def _rank_states(dump: Path, run: int) -> list[dict]:
    return [torch.load(dump / f"run{run}_rank{r}.pt", weights_only=True) for r in range(2)]


def test_two_processes_train_identical_replicas_and_resume(tmp_path):
    config = tiny_config(tmp_path)  # the image folders: 5 low, 4 high -> 2 steps per epoch
    make_pairs(tmp_path / "vl", tmp_path / "vb", 2, seed=4)
    common = ["--low", config.low, "--high", config.high, "--vgg-weights", "random", "--seed", "3",
              "--batch-size", "1", "--num-workers", "0", "--save-every", "2", "--device", "cpu",
              "--set", "conv_dim=8", "--set", "d_conv_dim=8", "--set", "image_size=96",
              "--set", "crop_size=128", "--set", "pool_size=2", "--set", "log_every=1",
              "--set", "keep_last=10"]
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    dump = tmp_path / "dump"
    # run 0: 4 steps with validation; run 1: 2 steps; run 2: run 1 resumed to 4 steps;
    # run 3: 2 steps with --fast-step (D frozen in the G step: D runs outside DDP there)
    result = _torchrun(dump, *common, "--steps", "4", "--out", str(straight),
                       "--val-low", str(tmp_path / "vl"), "--val-label", str(tmp_path / "vb"),
                       "--set", "val_start_epoch=1", "--set", "val_every=1",
                       "--then", *common, "--steps", "2", "--out", str(stopped),
                       "--then", *common, "--steps", "4", "--out", str(stopped), "--resume",
                       "--then", *common, "--steps", "2", "--out", str(tmp_path / "fast"),
                       "--fast-step")

    # every parameter and buffer (spectral-norm u, v included) is the same on both ranks
    rank0, rank1 = _rank_states(dump, 0)
    assert tensors_equal(rank0, rank1) == []
    final = load_checkpoint(newest_checkpoint(straight))
    assert final["world_size"] == 2 and len(final["ranks"]) == 2
    assert final["streams"]["low"]["position"] == 4 * 2  # 4 steps of 2 processes x 1 image
    for key, value in final["G"].items():
        assert torch.equal(value, rank0[f"G.{key}"])

    # one set of logs: every step once, the start-up line once, one TensorBoard file at most
    rows = [json.loads(line) for line in (straight / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "train"] == [1, 2, 3, 4]
    assert [r["step"] for r in rows if r["kind"] == "val"] == [2, 4]
    assert (straight / "train.log").read_text().count("training uegan") == 1
    assert result.stderr.count(f"saved checkpoint {straight / 'checkpoints' / 'step_'}") == 2
    assert len(list((straight / "tensorboard").glob("events.*"))) <= 1

    # stopped after 2 steps and resumed to 4, with two processes: the same replicas
    resumed0, resumed1 = _rank_states(dump, 2)
    assert tensors_equal(resumed0, rank0) == []
    assert tensors_equal(resumed1, rank1) == []

    # --fast-step under DDP: the replicas stay identical too
    fast0, fast1 = _rank_states(dump, 3)
    assert tensors_equal(fast0, fast1) == []
    assert newest_checkpoint(tmp_path / "fast").name == "step_00000002.pt"

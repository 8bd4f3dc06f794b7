"""One convention across the sub-commands: every ``--help`` runs, the checkpoint is ``-c``
everywhere, long work takes ``--threads`` and ``--no-progress``, ``--device auto`` means the
same, each default is stated once, and ``uegan train --print-config`` shows every setting."""

from __future__ import annotations

import dataclasses
import re

import pytest

from uegan.cli import COMMAND_MODULES, main
from uegan.training.config import TrainConfig

COMMANDS = [name.replace("_", "-") for name in COMMAND_MODULES]
TAKES_A_CHECKPOINT = ["enhance", "export", "audit", "serve"]
LONG_WORK = ["train", "enhance", "evaluate", "study", "demo", "prepare-fivek"]
CHOOSES_A_DEVICE = ["train", "enhance", "evaluate", "serve"]


def help_text(capsys, command: str) -> str:
    with pytest.raises(SystemExit) as stopped:
        main([command, "--help"])
    assert stopped.value.code == 0
    text = capsys.readouterr().out
    return re.sub(r"\s+", " ", text)  # argparse wraps lines: compare words


def option_blocks(text: str) -> list[str]:
    """The help of each option: from one ' --name' at the start of an entry to the next."""
    return [block for block in re.split(r" (?=-{1,2}[a-z][\w-]* )", text) if block.startswith("-")]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_help_runs_and_states_each_default_once(capsys, command):
    text = help_text(capsys, command)
    assert text.startswith(f"usage: uegan {command}")
    for block in option_blocks(text.split(" options: ", 1)[-1]):
        assert block.count("(default") <= 1, block


@pytest.mark.parametrize("command", TAKES_A_CHECKPOINT)
def test_the_checkpoint_is_given_with_c(capsys, command):
    assert "--checkpoint CHECKPOINT, -c CHECKPOINT" in help_text(capsys, command)


@pytest.mark.parametrize("command", LONG_WORK)
def test_long_work_takes_threads_and_no_progress(capsys, command):
    text = help_text(capsys, command)
    # prepare-fivek runs no torch: its --workers are processes converting images
    assert ("--workers" if command == "prepare-fivek" else "--threads") in text
    assert "--no-progress" in text


@pytest.mark.parametrize("command", CHOOSES_A_DEVICE)
def test_device_auto_means_cuda_then_mps_then_cpu_everywhere(capsys, command):
    assert "default auto: CUDA, then MPS, then the CPU" in help_text(capsys, command)


def test_train_help_shows_the_published_defaults(capsys):
    text = help_text(capsys, "train")
    # the published FiveK settings (docs/uegan-spec.md): 100 epochs, batch 10, fp32
    for flag, default in (("--epochs N", "100"), ("--batch-size N", "10"),
                          ("--precision", "fp32"), ("--save-every N", "1000")):
        block = next(b for b in option_blocks(text) if b.startswith(flag))
        assert f"(default {default}" in block, block


def test_print_config_shows_every_setting_with_its_type_and_default(capsys):
    assert main(["train", "--print-config", "--epochs", "3", "--set", "crop_size=384"]) == 0
    lines = capsys.readouterr().out.splitlines()
    entries = {line[2:].split()[0]: line for line in lines if not line.startswith("#")}
    assert sorted(entries) == sorted(f.name for f in dataclasses.fields(TrainConfig))
    assert entries["epochs"].startswith("* ") and "= 3 " in entries["epochs"]
    assert "# int, default 100" in entries["epochs"]
    assert entries["crop_size"].startswith("* ") and "# int, default 512" in entries["crop_size"]
    assert entries["g_lr"].startswith("  ") and "# float, default 0.0001" in entries["g_lr"]
    assert "# str or none, default None" in entries["val_low"]
    # no data folders needed to print it, and nothing trained
    assert main(["train", "--print-config", "--set", "nonsense=1"]) == 2

"""Progress of long work: a bar on a terminal, a line with n/N, rate and ETA every few seconds
elsewhere (nohup, SLURM, CI), nothing when switched off; ``uegan enhance`` shows it."""

from __future__ import annotations

import io
import logging

import numpy as np
import pytest
import torch
from conftest import load_golden
from PIL import Image

from uegan.cli import main
from uegan.progress import Progress, format_seconds


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_format_seconds():
    assert [format_seconds(s) for s in (0, 12.4, 75, 3599, 7500)] == [
        "0 s", "12 s", "1 min 15 s", "59 min 59 s", "2 h 05 min"]


def test_off_a_terminal_a_line_every_few_seconds_with_count_rate_and_eta(caplog):
    clock, stream = Clock(), io.StringIO()
    caplog.set_level(logging.INFO, logger="uegan.progress")
    with Progress(10, "enhancing", stream=stream, every=10.0, clock=clock) as progress:
        for _ in range(4):           # 4 images in 8 s: under 10 s, no line yet
            clock.now += 2.0
            progress.update()
        assert caplog.messages == []
        clock.now += 2.0             # the fifth image at 10 s: 0.5 images/s, 5 to go
        progress.update()
        assert caplog.messages == ["enhancing: 5/10 images, 0.50 images/s, ETA 10 s"]
        for _ in range(5):
            clock.now += 1.0
            progress.update()
    assert caplog.messages[-1] == "enhancing: 10/10 images, 0.67 images/s, done in 15 s"
    assert stream.getvalue() == ""   # no bar drawn into a log file


def test_on_a_terminal_a_bar_and_no_lines(caplog):
    stream = Terminal()
    caplog.set_level(logging.INFO, logger="uegan.progress")
    with Progress(3, "enhancing", stream=stream) as progress:
        for _ in range(3):
            progress.update()
    drawn = stream.getvalue()   # tqdm redraws at most every 0.1 s: the first frame is enough
    assert "enhancing:" in drawn and "/3 [" in drawn and caplog.messages == []


def test_switched_off_it_is_silent(caplog):
    stream = Terminal()
    caplog.set_level(logging.INFO, logger="uegan.progress")
    with Progress(3, "enhancing", enabled=False, stream=stream) as progress:
        progress.update(3)
    assert stream.getvalue() == "" and caplog.messages == []


@pytest.mark.parametrize("quiet", [False, True])
def test_uegan_enhance_reports_its_progress_unless_asked_not_to(tmp_path, capsys, quiet):
    checkpoint = tmp_path / "published.pth"
    torch.save({"G_net": load_golden("generator_forward.pt")["state_dict"]}, checkpoint)
    rng = np.random.default_rng(0)
    for k in range(3):
        Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(tmp_path / f"{k}.png")
    args = ["enhance", str(tmp_path), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "out")]
    assert main(args + (["--no-progress"] if quiet else [])) == 0
    err = capsys.readouterr().err
    progress = [line for line in err.splitlines() if line.startswith("enhancing: ")]
    if quiet:
        assert progress == []
    else:
        assert progress and progress[-1].startswith("enhancing: 3/3 images, ") and "done in" in progress[-1]

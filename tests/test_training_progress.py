"""Progress of training: the loss lines (elapsed time, ETA) reach ``train.log`` whether or not a
terminal shows a bar, and validation shows its own progress instead of freezing the bar."""

from __future__ import annotations

import io
import re
import sys

import pytest
from _training_utils import one_thread  # noqa: F401  (a fixture)
from _training_utils import TinyFeatures, make_pairs, tiny_config

from uegan.training.run_log import remaining_seconds, train_row_line
from uegan.training.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")

LOSS_LINE = re.compile(r"step (\d+)/(\d+) epoch \d+: d [\d.]+ g [\d.]+ .* steps/s, "
                       r"elapsed \d+ s, eta (\d+ s|unknown)")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_eta_is_the_remaining_steps_at_the_mean_rate_so_far():
    assert remaining_seconds(done=10, remaining=90, elapsed=20.0) == 180.0
    assert remaining_seconds(done=0, remaining=90, elapsed=0.0) is None


def test_a_train_row_as_a_line():
    row = {"step": 30, "epoch": 2, "d_loss": 0.5, "g_loss": 1.25, "g_adv_loss": 0.125,
           "g_fidelity_loss": 1.0, "g_identity_loss": 0.0625, "steps_per_s": 1.5}
    assert train_row_line(row, 100, elapsed=75.0, eta=3900.0) == (
        "step 30/100 epoch 2: d 0.5000 g 1.2500 (adv 0.1250 fid 1.0000 idt 0.0625) "
        "1.50 steps/s, elapsed 1 min 15 s, eta 1 h 05 min")


def _loss_lines(text: str) -> list[re.Match]:
    return [match for match in map(LOSS_LINE.search, text.splitlines()) if match]


@pytest.mark.parametrize("terminal", [False, True], ids=["log", "terminal"])
def test_train_log_gets_every_loss_line_with_elapsed_and_eta(tmp_path, monkeypatch, caplog,
                                                             terminal):
    caplog.set_level("INFO", logger="uegan")
    stderr = Terminal() if terminal else io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    config = tiny_config(tmp_path, steps=4, log_every=2, progress=True)
    Trainer(config, vgg=TinyFeatures()).fit()
    lines = _loss_lines((tmp_path / "run" / "train.log").read_text())
    assert [(int(m[1]), int(m[2])) for m in lines] == [(2, 4), (4, 4)]
    assert lines[-1][3] == "0 s"  # nothing left after the last step
    shown = _loss_lines("\n".join(caplog.messages))
    # on a terminal the bar shows the losses: the lines go to the file only
    assert len(shown) == (0 if terminal else 2)
    assert ("it/s" in stderr.getvalue() or "step/s" in stderr.getvalue()) == terminal


def _validated_run(tmp_path, monkeypatch, progress: bool, pairs: int) -> None:
    """A 2-step run off a terminal that validates ``pairs`` photos after its last step."""
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    make_pairs(tmp_path / "val_low", tmp_path / "val_label", pairs, seed=4)
    config = tiny_config(tmp_path, steps=2, progress=progress, val_low=str(tmp_path / "val_low"),
                         val_label=str(tmp_path / "val_label"), val_start_epoch=99)
    Trainer(config, vgg=TinyFeatures()).fit()


def test_validation_reports_its_progress_off_a_terminal(tmp_path, monkeypatch, caplog):
    caplog.set_level("INFO", logger="uegan")
    _validated_run(tmp_path, monkeypatch, progress=True, pairs=3)
    lines = [m for m in caplog.messages if m.startswith("validating: ")]
    assert len(lines) == 1 and lines[0].startswith("validating: 3/3 images") and "done in" in lines[0]
    assert lines[0] in (tmp_path / "run" / "train.log").read_text()


def test_no_progress_means_no_validation_lines(tmp_path, monkeypatch, caplog):
    caplog.set_level("INFO", logger="uegan")
    _validated_run(tmp_path, monkeypatch, progress=False, pairs=2)
    assert not [m for m in caplog.messages if m.startswith("validating: ")]
    assert len(_loss_lines((tmp_path / "run" / "train.log").read_text())) == 2  # losses still logged


class FakeTime:
    """The trainer's clock: every reading one second later than the last."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        self.now += 1.0
        return self.now


def test_a_resumed_run_estimates_from_its_own_steps(tmp_path, monkeypatch, caplog):
    caplog.set_level("INFO", logger="uegan")
    from uegan.training import trainer as trainer_module

    Trainer(tiny_config(tmp_path, steps=2, log_every=2), vgg=TinyFeatures()).fit()
    monkeypatch.setattr(trainer_module, "time", FakeTime())
    Trainer(tiny_config(tmp_path, steps=6, log_every=2, resume=True), vgg=TinyFeatures()).fit()
    lines = _loss_lines((tmp_path / "run" / "train.log").read_text())
    at_four = next(line for line in lines if line[1] == "4")
    elapsed = re.search(r"elapsed (\d+) s", at_four.string)[1]
    # 2 steps done since the resume, 2 to go: the ETA is the time taken so far (the resumed
    # steps 1-2 are not this process's work)
    assert at_four[3] == f"{elapsed} s"


def test_train_log_gets_the_loss_lines_under_quiet_too(tmp_path, monkeypatch, caplog):
    caplog.set_level("WARNING", logger="uegan")   # uegan --quiet: warnings only on the terminal
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    Trainer(tiny_config(tmp_path, steps=4, log_every=2), vgg=TinyFeatures()).fit()
    lines = _loss_lines((tmp_path / "run" / "train.log").read_text())
    assert [int(m[1]) for m in lines] == [2, 4]
    assert not _loss_lines("\n".join(caplog.messages))

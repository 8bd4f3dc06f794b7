"""``uegan evaluate``: result files that cannot be written are found before any image is
measured; a full disk names the file; file names that are not UTF-8 are written as they are."""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import uegan.cli as cli
from uegan import evaluation, nima


@pytest.fixture(autouse=True)
def _only_evaluate(monkeypatch):
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("evaluate",))
    monkeypatch.delenv(nima.ENV_VAR, raising=False)


def png_bytes(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (32, 40, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def folders(tmp_path):
    for folder, seed in (("pred", 1), ("label", 2)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "a.png").write_bytes(png_bytes(seed))
    return tmp_path / "pred", tmp_path / "label"


def evaluate(*argv) -> int:
    return cli.main(["evaluate", *map(str, argv)])


@pytest.fixture
def no_scoring(monkeypatch):
    def refuse(config):
        pytest.fail("images were measured although the results could not be written")

    monkeypatch.setattr(evaluation, "evaluate", refuse)


@pytest.mark.parametrize("option", ["--json", "--csv"])
@pytest.mark.parametrize("case", ["under-a-file", "a-folder", "not-writable"])
def test_an_unwritable_result_file_is_refused_before_scoring(tmp_path, folders, monkeypatch,
                                                           capsys, no_scoring, option, case):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    (tmp_path / "results").mkdir()
    target = {"under-a-file": blocker / "m.out", "a-folder": tmp_path / "results",
              "not-writable": tmp_path / "locked" / "m.out"}[case]
    if case == "not-writable":
        # simulated (a test run as root may write anywhere): no write permission in locked/
        (tmp_path / "locked").mkdir()
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda path, mode, **kw: (
            False if str(path).endswith("locked") else real_access(path, mode, **kw)))
    before = sorted(tmp_path.rglob("*"))
    assert evaluate("--pred", folders[0], "--label", folders[1], option, target, "--no-nima") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and str(target) in err, err
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.parametrize("option", [["--threads", "-1"], ["--device", "xyz"]])
def test_bad_threads_and_device_are_usage_errors_before_any_work(folders, capsys, no_scoring,
                                                                 option):
    assert evaluate("--pred", folders[0], "--label", folders[1], "--no-nima", *option) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and option[1] in err, err


def test_a_full_disk_while_writing_names_the_file_and_leaves_nothing(tmp_path, folders,
                                                                   monkeypatch, capsys):
    def fsync(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as write() reports it: no name

    monkeypatch.setattr(os, "fsync", fsync)
    out = tmp_path / "m.json"
    assert evaluate("--pred", folders[0], "--label", folders[1], "--no-nima", "--json", out) == 1
    err = capsys.readouterr().err
    [line] = [line for line in err.splitlines() if line.startswith("uegan evaluate:")]
    assert str(out) in line and os.strerror(errno.ENOSPC) in line and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["label", "pred"]  # no temporary file


@pytest.mark.skipif(sys.platform != "linux", reason="file names are bytes only on Linux")
def test_a_file_name_that_is_not_utf8_is_written_with_its_bytes(tmp_path, capsys):
    name = b"caf\xff.png"  # Latin-1 bytes: os.fsdecode gives a surrogate escape
    for folder, seed in ((b"pred", 3), (b"label", 4)):
        os.makedirs(os.path.join(os.fsencode(tmp_path), folder))
        with open(os.path.join(os.fsencode(tmp_path), folder, name), "wb") as stream:
            stream.write(png_bytes(seed))
    out_csv, out_json = tmp_path / "m.csv", tmp_path / "m.json"
    assert evaluate("--pred", tmp_path / "pred", "--label", tmp_path / "label", "--no-nima",
                    "--csv", out_csv, "--json", out_json) == 0
    data = out_csv.read_bytes()
    assert data.count(name) == 3  # image, pred and label columns keep the file's bytes
    with open(out_csv, newline="", encoding="utf-8", errors="surrogateescape") as stream:
        [row] = list(csv.DictReader(stream))
    assert os.fsencode(row["image"]) == name and float(row["psnr"]) > 0
    [row] = json.loads(out_json.read_text())["per_image"]
    assert os.fsencode(row["image"]) == name


def test_threads_sets_the_torch_threads(folders, monkeypatch):
    asked = []
    monkeypatch.setattr(torch, "set_num_threads", asked.append)
    assert evaluate("--pred", folders[0], "--label", folders[1], "--no-nima", "--threads", 3) == 0
    assert asked == [3]

"""``uegan enhance`` under hostile conditions: usage errors found before any work, outputs that
are folders, reruns (stale temporary files, an output folder inside the input folder), SIGTERM
and Ctrl-C, a looping symbolic link among the inputs."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image

import uegan.inference
import uegan.io.photo
from conftest import load_golden
from uegan.cli import main


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "published.pth"
    torch.save({"G_net": load_golden("generator_forward.pt")["state_dict"]}, path)
    return path


def save_photo(path, seed=0, height=24, width=32):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def enhance(capsys, *args):
    code = main(["enhance", *map(str, args)])
    return code, capsys.readouterr().err


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("uegan enhance:")]


def files_under(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture
def no_loading(monkeypatch):
    """Loading the generator is the first real work: a usage error must be found before it."""
    def refuse(*args, **kwargs):
        pytest.fail("the generator was loaded although the command line is wrong")

    monkeypatch.setattr(uegan.inference.Enhancer, "load", classmethod(refuse))


@pytest.mark.parametrize("case", ["out-is-a-file", "out-under-a-file", "out-not-writable"])
def test_an_unusable_out_is_a_usage_error_before_any_work(checkpoint, tmp_path, capsys,
                                                          monkeypatch, no_loading, case):
    save_photo(tmp_path / "in" / "a.png")
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    out = {"out-is-a-file": blocker, "out-under-a-file": blocker / "out",
           "out-not-writable": tmp_path / "locked" / "out"}[case]
    if case == "out-not-writable":
        # simulated (a test run as root may write anywhere): no write permission in locked/
        (tmp_path / "locked").mkdir()
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda path, mode, **kw: (
            False if str(path).endswith("locked") else real_access(path, mode, **kw)))
    before = files_under(tmp_path)
    code, err = enhance(capsys, tmp_path / "in", "--checkpoint", checkpoint, "--out", out)
    assert code == 2, err
    assert "Traceback" not in err and err.count("\n") == 1 and str(out) in err, err
    assert files_under(tmp_path) == before


@pytest.mark.parametrize("option", [["--threads", "-1"], ["--threads", "0"], ["--device", "xyz"],
                                    ["--device", "cuda:99"]])
def test_bad_threads_and_device_are_usage_errors_before_any_work(checkpoint, tmp_path, capsys,
                                                                 no_loading, option):
    save_photo(tmp_path / "a.png")
    code, err = enhance(capsys, tmp_path / "a.png", "--checkpoint", checkpoint, "--out",
                        tmp_path / "out", *option)
    assert code == 2 and "Traceback" not in err and err.count("\n") == 1, err
    assert option[0] in err and option[1] in err
    assert not (tmp_path / "out").exists()


def test_a_folder_as_checkpoint_is_one_line(tmp_path, capsys):
    save_photo(tmp_path / "a.png")
    (tmp_path / "weights").mkdir()
    code, err = enhance(capsys, tmp_path / "a.png", "--checkpoint", tmp_path / "weights",
                        "--out", tmp_path / "out")
    assert code == 2 and "Traceback" not in err and err.count("\n") == 1, err
    assert str(tmp_path / "weights") in err


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]], ids=["keep", "overwrite"])
def test_an_output_that_is_a_folder_is_a_failed_file(checkpoint, tmp_path, capsys, overwrite):
    save_photo(tmp_path / "in" / "a.png", seed=1)
    save_photo(tmp_path / "in" / "b.png", seed=2)
    (tmp_path / "out" / "a.png").mkdir(parents=True)
    (tmp_path / "out" / "a.png" / "mine.txt").write_text("the user's")
    code, err = enhance(capsys, tmp_path / "in", "--checkpoint", checkpoint, "--out",
                        tmp_path / "out", *overwrite)
    assert code == 1 and "Traceback" not in err
    [line] = error_lines(err)
    assert "a.png" in line and "is a folder" in line
    assert (tmp_path / "out" / "a.png" / "mine.txt").read_text() == "the user's"
    assert (tmp_path / "out" / "b.png").is_file()


def test_disk_full_is_one_line_per_file_and_the_batch_goes_on(checkpoint, tmp_path, capsys,
                                                            monkeypatch):
    for name in ("a.png", "b.png"):
        save_photo(tmp_path / "in" / name)
    real_write = uegan.io.photo.write_photo

    def write_photo(path, *args, **kwargs):
        if "a.png" in str(path):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # no file name, as write()
        return real_write(path, *args, **kwargs)

    monkeypatch.setattr(uegan.io.photo, "write_photo", write_photo)
    code, err = enhance(capsys, tmp_path / "in", "--checkpoint", checkpoint, "--out",
                        tmp_path / "out")
    assert code == 1 and "Traceback" not in err
    [line] = error_lines(err)
    assert str(tmp_path / "out" / "a.png") in line and os.strerror(errno.ENOSPC) in line
    assert files_under(tmp_path / "out") == ["b.png"]  # no temporary file left


@pytest.mark.parametrize("spec", ["folder", "glob"])
def test_an_output_folder_inside_the_input_folder_is_not_enhanced_again(checkpoint, tmp_path,
                                                                       capsys, spec):
    photos = tmp_path / "photos"
    save_photo(photos / "a.png", seed=1)
    save_photo(photos / "trip" / "b.png", seed=2)
    out = photos / "enhanced"
    inputs = photos if spec == "folder" else f"{photos}/**/*.png"
    for _ in range(2):  # the rerun finds the first run's outputs inside photos/
        code, err = enhance(capsys, inputs, "--checkpoint", checkpoint, "--out", out)
        assert code == 0 and not error_lines(err), err
    expected = ["a.png", "trip/b.png"] if spec == "folder" else ["a.png", "b.png"]
    assert files_under(out) == sorted(expected + (["trip"] if spec == "folder" else []))


def test_stale_temporary_files_of_this_tool_are_removed_and_named(checkpoint, tmp_path, capsys):
    save_photo(tmp_path / "in" / "a.png", seed=1)
    save_photo(tmp_path / "in" / "sub" / "b.png", seed=2)
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    stale = [out / ".a.png.k3x_9q0z.tmp", out / "sub" / ".b.png.abcdefgh.tmp"]
    kept = [out / ".c.png.abcdefgh.tmp",  # not an output of this run
            out / ".a.png.tmp", out / "a.png.abcdefgh.tmp", out / ".a.png.abc.tmp",  # other names
            out / "notes.tmp"]
    for path in stale + kept:
        path.write_bytes(b"half-written")
    code, err = enhance(capsys, tmp_path / "in", "--checkpoint", checkpoint, "--out", out)
    assert code == 0, err
    assert not any(path.exists() for path in stale)
    assert all(path.read_bytes() == b"half-written" for path in kept)
    for path in stale:
        assert [line for line in err.splitlines() if str(path) in line and "removed" in line]
    assert (out / "a.png").is_file() and (out / "sub" / "b.png").is_file()


# The signal arrives while the second image is being written: deterministic, no timing.
SIGNAL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    import uegan.io.photo
    from uegan.cli import main

    real_write, calls = uegan.io.photo.write_photo, []

    def write_photo(path, *args, **kwargs):
        real_write(path, *args, **kwargs)
        calls.append(path)
        if len(calls) == 2:
            os.kill(os.getpid(), getattr(signal, sys.argv[1]))

    uegan.io.photo.write_photo = write_photo
    raise SystemExit(main(["enhance", *sys.argv[2:]]))
""")


@pytest.mark.parametrize(("name", "code", "said"), [("SIGTERM", 143, "SIGTERM"),
                                                    ("SIGINT", 130, "Ctrl-C")])
def test_a_signal_abandons_the_current_file_cleanly(checkpoint, tmp_path, name, code, said):
    for k in range(3):
        save_photo(tmp_path / "in" / f"p{k}.png", seed=k)
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-c", SIGNAL_SCRIPT, name, str(tmp_path / "in"), "--checkpoint",
         str(checkpoint), "--out", str(out), "--device", "cpu"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == code, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert f"uegan enhance: stopped by {said} after 1 of 3 images\n" in result.stderr
    assert files_under(out) == ["p0.png"]  # the second file abandoned, its temporary removed


@pytest.mark.parametrize("spec", ["folder", "glob"])
def test_a_looping_symbolic_link_is_one_failed_file(checkpoint, tmp_path, capsys, spec):
    folder = tmp_path / "in"
    save_photo(folder / "good.png")
    (folder / "loop.png").symlink_to(folder / "loop.png")  # resolving it loops
    (folder / "sub").mkdir()
    (folder / "sub" / "back").symlink_to(folder, target_is_directory=True)  # a folder loop
    inputs = folder if spec == "folder" else f"{folder}/**/*.png"  # glob follows the loop
    code, err = enhance(capsys, inputs, "--checkpoint", checkpoint, "--out", tmp_path / "out")
    assert code == 1 and "Traceback" not in err
    [line] = error_lines(err)
    assert "loop.png" in line
    assert files_under(tmp_path / "out") == ["good.png"]

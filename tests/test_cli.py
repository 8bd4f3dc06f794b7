"""The command-line entry points."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys

import pytest

import uegan.cli.variants as cli_variants
from uegan.cli import main


def test_help_lists_the_commands(capsys):
    assert main([]) == 2
    out = capsys.readouterr().out
    assert "variants" in out


def test_variants_lists_the_three_published_variants(capsys):
    assert main(["variants"]) == 0
    out = capsys.readouterr().out
    for name in ("uegan", "uegan-charbonnier", "uegan-charbonnier-se"):
        assert f"\n{name} " in out
    assert "22.88/0.8882/4.76" in out


def test_python_dash_m_and_console_script_agree():
    result = subprocess.run([sys.executable, "-m", "uegan", "--version"], capture_output=True,
                            text=True, check=True)
    assert result.stdout.startswith("uegan ")


# The safety net of uegan.cli.main: operating-system errors and interruptions that reach it
# become one line and an exit code; any other exception is a bug and keeps its traceback.

def _raising(monkeypatch, error: BaseException) -> None:
    def run(args):
        raise error

    monkeypatch.setattr(cli_variants, "run", run)


@pytest.mark.parametrize(("error", "cause"), [
    (PermissionError(errno.EACCES, os.strerror(errno.EACCES), "/data/secret.png"), "permissions"),
    (IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), "/data/photos"), "folder"),
    (FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), "/data/gone.png"), "path"),
    (OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/data/out.json"), "free some space"),
], ids=["permission", "folder", "missing", "disk-full"])
def test_os_errors_reaching_main_are_one_line_naming_the_file(monkeypatch, capsys, error, cause):
    _raising(monkeypatch, error)
    assert main(["variants"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("uegan variants: error: ")
    assert error.filename in err and error.strerror in err and cause in err


def test_debug_shows_the_traceback_of_an_os_error(monkeypatch):
    _raising(monkeypatch, PermissionError(errno.EACCES, "Permission denied", "/data/x"))
    with pytest.raises(PermissionError):
        main(["--debug", "variants"])


def test_other_exceptions_are_bugs_and_keep_their_traceback(monkeypatch):
    _raising(monkeypatch, RuntimeError("a bug"))
    with pytest.raises(RuntimeError, match="a bug"):
        main(["variants"])


def test_ctrl_c_is_one_line_and_exit_130(monkeypatch, capsys):
    _raising(monkeypatch, KeyboardInterrupt())
    assert main(["variants"]) == 130
    assert capsys.readouterr().err == "uegan variants: stopped by Ctrl-C\n"


def test_sigterm_in_any_command_is_one_line_and_exit_143():
    # in a child process: without the handler, SIGTERM would end the test run itself
    script = ("import os, signal, uegan.cli, uegan.cli.variants as v\n"
              "v.run = lambda args: os.kill(os.getpid(), signal.SIGTERM)\n"
              "raise SystemExit(uegan.cli.main(['variants']))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 143, result.stderr[-2000:]
    assert result.stderr == "uegan variants: stopped by SIGTERM\n"


def test_the_sigterm_handler_is_removed_after_the_command(capsys):
    before = signal.getsignal(signal.SIGTERM)
    assert main(["variants"]) == 0
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_closed_stdout_pipe_ends_quietly():
    # `uegan variants | head -c 0`: the reader has gone before the command writes
    child = subprocess.Popen([sys.executable, "-m", "uegan", "variants"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    child.stdout.close()
    err = child.stderr.read().decode()
    assert child.wait(timeout=120) == 1
    assert err == "", err

"""``uegan serve`` as a command: usage errors in one line, a warning when others can reach it,
and Ctrl-C or SIGTERM stop it cleanly, its temporary folder removed."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from _serve_utils import write_checkpoints
from _training_utils import cli_env
from uegan.cli import main


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_checkpoints(tmp_path_factory.mktemp("ckpt"))[0]


def test_serve_is_a_listed_sub_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert re.search(r"^\s+serve\s+a local web page", capsys.readouterr().out, re.MULTILINE)


@pytest.mark.parametrize("arguments, message", [
    (["-c", "missing.pth"], "--checkpoint missing.pth: no such file"),
    (["--port", "70000"], "--port 70000: expected 0 to 65535 (0: any free port)"),
    (["--max-upload-mb", "0"], "--max-upload-mb 0: must be positive"),
    (["-c", "{ckpt}"] * 5, "5 checkpoints: the page compares at most 4"),
])
def test_usage_errors_are_one_line(checkpoint, capsys, arguments, message):
    arguments = [a.replace("{ckpt}", str(checkpoint)) for a in arguments]
    if "-c" not in arguments:
        arguments += ["-c", str(checkpoint)]
    assert main(["serve", *arguments]) == 2
    assert capsys.readouterr().err == f"uegan serve: error: {message}\n"


def test_a_port_in_use_is_one_line(checkpoint, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "-c", str(checkpoint), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == (f"uegan serve: error: --port {port} is in use on 127.0.0.1: "
                                    f"choose another (--port 0 takes any free one)")
    assert "Traceback" not in err and "temporary folder" not in err  # nothing was made


def _start(checkpoint: Path, host: str) -> tuple[subprocess.Popen, list[str], str]:
    """The command in a child process, once it listens: (process, its first lines, its URL)."""
    child = subprocess.Popen([sys.executable, "-m", "uegan", "serve", "-c", str(checkpoint),
                              "--host", host, "--port", "0", "--threads", "1"],
                             env=cli_env(), stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = child.stderr.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        match = re.search(r"open (http://\S+) in a browser", line)
        if match:
            return child, lines, match.group(1)
    child.kill()
    raise AssertionError(f"uegan serve did not start: {lines}")


@pytest.mark.parametrize("stop, host, code", [(signal.SIGINT, "127.0.0.1", 130),
                                              (signal.SIGTERM, "0.0.0.0", 143)])
def test_a_signal_stops_it_and_removes_the_temporary_folder(checkpoint, stop, host, code):
    child, lines, url = _start(checkpoint, host)
    try:
        folder = Path(next(re.search(r"go to (\S+) \(removed on exit\)", line).group(1)
                           for line in lines if "removed on exit" in line))
        assert folder.is_dir()
        with urllib.request.urlopen(url + "api/info", timeout=10) as response:
            assert json.load(response)["models"][0]["label"] == "published"
        warnings = [line for line in lines if "anyone who can reach it" in line]
        assert len(warnings) == (host != "127.0.0.1")
        child.send_signal(stop)
        _, rest = child.communicate(timeout=30)
    finally:
        child.kill()
    assert child.returncode == code
    assert not folder.exists()
    name = "Ctrl-C" if stop == signal.SIGINT else "SIGTERM"
    assert rest.splitlines()[-1] == f"uegan serve: stopped by {name}"
    assert "Traceback" not in rest

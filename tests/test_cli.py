"""The command-line entry points."""

from __future__ import annotations

import subprocess
import sys

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

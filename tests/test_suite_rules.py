"""Rules of the test suite itself: a declared dependency that is missing fails, never skips."""

from __future__ import annotations

import ast
import importlib
import re

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

from conftest import REPO

# distribution name -> the module it installs (where they differ)
MODULES = {"scikit-image": "skimage", "pyyaml": "yaml", "pillow": "PIL"}


def _declared() -> list[str]:
    """The modules of uegan's dependencies and of its ``test`` extra (pyproject.toml)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = []
    for requirement in project["dependencies"] + project["optional-dependencies"]["test"]:
        name = re.match(r"[A-Za-z0-9_.\-]+", requirement).group(0).lower()
        names.append(MODULES.get(name, name.replace("-", "_")))
    return sorted(set(names))


def test_the_test_extra_is_what_the_issue_names():
    declared = _declared()
    for module in ("skimage", "onnx", "onnxruntime", "matplotlib", "pytest", "tifffile"):
        assert module in declared


@pytest.mark.parametrize("module", _declared())
def test_declared_dependency_is_installed(module):
    importlib.import_module(module)  # missing: this fails (install with pip install -e '.[test]')


def test_no_test_skips_on_a_declared_dependency():
    declared = set(_declared())
    offending = []
    for path in sorted((REPO / "tests").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "importorskip" and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and str(node.args[0].value).split(".")[0] in declared):
                offending.append(f"{path.name}:{node.lineno} importorskip({node.args[0].value!r})")
    assert offending == []

"""The layers of README "Layout" hold: import-linter's contracts (.importlinter), run as a user runs
them, in the repository; imports inside functions count."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())


def _package_dirs() -> dict[str, Path]:
    """Installed package name -> folder, from pyproject.toml's package-dir mapping."""
    conf = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = conf["package-dir"]
    out = {}
    for pkg in conf["packages"]:
        root = max((k for k in mapping if pkg == k or pkg.startswith(k + ".")), key=len)
        out[pkg] = REPO / mapping[root] / Path(*pkg[len(root) + 1:].split(".")) if pkg != root else REPO / mapping[root]
    return out


def test_every_package_folder_is_installed_under_the_namespace():
    listed = {p.resolve() for p in _package_dirs().values()}
    on_disk = {init.parent.resolve() for d in ("bnn2fpga", "flows", "hw", "quantize", "boards", "benchmarks")
               for init in (REPO / d).rglob("__init__.py")}
    assert on_disk == listed


def test_the_namespace_folder_shows_the_installed_layout():
    """bnn2fpga/<pkg> links to each top-level folder, so tools that walk folders (import-linter, an
    editor) and a plain `python` in the repository see the package as installed."""
    for pkg, folder in _package_dirs().items():
        here = REPO / Path(*pkg.split("."))
        assert here.resolve() == folder.resolve(), pkg


def _lint(root: Path) -> subprocess.CompletedProcess:
    lint = Path(sys.executable).parent / "lint-imports"
    return subprocess.run([str(lint), "--config", str(REPO / ".importlinter"), "--no-cache"], cwd=root,
                          env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True, text=True, timeout=300)


def test_import_contracts_hold():
    """What a user runs: lint-imports in the repository."""
    res = _lint(REPO)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "BROKEN" not in res.stdout and "5 kept, 0 broken" in res.stdout


def test_a_broken_layer_is_caught(tmp_path):
    """The check can fail: an upward import planted in a copy is reported."""
    shutil.copytree(REPO / "bnn2fpga", tmp_path / "bnn2fpga", ignore=shutil.ignore_patterns("__pycache__"))
    bad = tmp_path / "bnn2fpga" / "hw" / "rtlgen" / "base.py"
    bad.write_text(bad.read_text() + "\n\ndef _up():\n    from bnn2fpga.flows import runner  # noqa\n")
    res = _lint(tmp_path)
    assert res.returncode != 0 and "bnn2fpga.hw.rtlgen.base -> bnn2fpga.flows.runner" in res.stdout

"""The layers of README "Layout" hold: import-linter's contracts (.importlinter) on the code as
installed, i.e. every folder under the one bnn2fpga namespace; imports inside functions count."""
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


def _installed_copy(tmp_path: Path) -> Path:
    # import-linter walks a package's folder on disk; the installed namespace maps several
    # top-level folders into one package, so the check runs on a copy laid out as installed.
    for pkg, folder in _package_dirs().items():
        dest = tmp_path / Path(*pkg.split("."))
        dest.mkdir(parents=True, exist_ok=True)
        for f in folder.glob("*.py"):
            shutil.copy(f, dest / f.name)
    return tmp_path


def _lint(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    lint = Path(sys.executable).parent / "lint-imports"
    return subprocess.run([str(lint), "--config", str(REPO / ".importlinter"), "--no-cache"], cwd=root,
                          env=env, capture_output=True, text=True, timeout=300)


def test_import_contracts_hold(tmp_path):
    res = _lint(_installed_copy(tmp_path))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "BROKEN" not in res.stdout and "KEPT" in res.stdout


def test_a_broken_layer_is_caught(tmp_path):
    """The check can fail: an upward import planted in a copy is reported."""
    root = _installed_copy(tmp_path)
    bad = root / "bnn2fpga" / "hw" / "rtlgen" / "base.py"
    bad.write_text(bad.read_text() + "\n\ndef _up():\n    from bnn2fpga.flows import runner  # noqa\n")
    res = _lint(root)
    assert res.returncode != 0 and "bnn2fpga.hw.rtlgen.base -> bnn2fpga.flows.runner" in res.stdout

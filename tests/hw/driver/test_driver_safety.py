"""The board driver against hostile or broken packages and command lines, on a small package made here.

Every case must end in one line on stderr and exit code 2, before anything is allocated,
run or written; none needs a build, FINN or a board.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
DRIVER_SRC = ROOT / "hw" / "driver"
SHARED = [ROOT / "quantize" / n for n in ("preprocess.py", "input_quant.py", "postprocess.py")]
FAKE_HWH = ('<?xml version="1.0" encoding="UTF-8"?>\n<EDKSYSTEM NAME="top">'
            '<SYSTEMINFO ARCH="zynq" DEVICE="7z020" PACKAGE="clg400" SPEEDGRADE="-1"/></EDKSYSTEM>\n')
OUTPUTS = [0, 9, 1]  # what the fake accelerator answers for every frame: class 1 wins


@pytest.fixture(scope="module")
def drv(tmp_path_factory):
    """The board driver as deployed (hw/driver plus the shared modules), imported as the board does."""
    root = tmp_path_factory.mktemp("driver")
    pkg = root / "bnn2fpga_driver"
    pkg.mkdir()
    for f in sorted(DRIVER_SRC.glob("*.py")) + SHARED:
        shutil.copyfile(f, pkg / f.name)

    def forget():
        for name in [m for m in sys.modules if m == "bnn2fpga_driver" or m.startswith("bnn2fpga_driver.")]:
            del sys.modules[name]

    forget()
    sys.path.insert(0, str(root))
    try:
        names = ["__main__", "errors", "io_spec", "runtime"]
        yield types.SimpleNamespace(**{n.strip("_"): importlib.import_module(f"bnn2fpga_driver.{n}") for n in names})
    finally:
        sys.path.remove(str(root))
        forget()


def _spec(**changes) -> dict:
    # A valid 4x4 grey-image, 3-class package: UINT8 in (NHWC on the accelerator), UINT8 out.
    spec = {
        "format": "bnn2fpga-io/1", "model": "toy", "board": "pynq-z2", "part": "xc7z020clg400-1",
        "finn_board": "Pynq-Z2", "arch": "armv7l", "clock_mhz": 100.0,
        "input": {"host_shape": [1, 1, 4, 4], "layout": "NCHW", "quant": None,
                  "host_ops": [{"op": "Transpose", "shape": [1, 4, 4, 1], "perm": [0, 2, 3, 1]}],
                  "shape": [1, 4, 4, 1], "folded_shape": [1, 16, 1], "packed_shape": [1, 16, 1],
                  "datatype": "UINT8", "bits": 8},
        "output": {"shape": [1, 3], "folded_shape": [1, 1, 3], "packed_shape": [1, 1, 3], "datatype": "UINT8",
                   "bits": 8, "host_ops": []},
        "head": None, "class_names": ["cat", "dog", "bird"],
        "preprocessing": {"size": [4, 4], "luma": True, "equalize": False},
        "dma": {"input": "idma0", "output": "odma0"}, "dataflow_sha256": None, "estimate": None, "bitfile": None,
    }
    spec.update(changes)
    return spec


def _package(folder: Path, spec: dict | str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "io_spec.json").write_text(spec if isinstance(spec, str) else json.dumps(spec), encoding="utf-8")
    return folder


class FakeAccelerator:
    """Answers OUTPUTS for every frame and counts the frames it was given."""

    def __init__(self):
        self.frames = 0

    def execute(self, packed_in: bytes, batch: int) -> bytes:
        """The same output bytes for each of ``batch`` frames."""
        self.frames += batch
        return bytes(OUTPUTS) * batch


@pytest.fixture
def run(drv, monkeypatch, capsys):
    """main(argv) with the fake accelerator in place of the FPGA: (exit code, stdout, stderr, opened)."""
    opened = []

    def open_classifier(args):
        opened.append(args.package)
        return drv.runtime.Classifier(drv.io_spec.load(args.package), FakeAccelerator())

    monkeypatch.setattr(drv.main, "open_classifier", open_classifier)

    def call(*argv):
        code = drv.main.main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err, opened

    return call


def _image(path: Path) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3)).save(path)
    return path


def _one_error_line(code: int, err: str, *words: str) -> None:
    assert code == 2, err
    assert err.startswith("bnn2fpga_driver: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, err


def test_fake_package_classifies(run, tmp_path):
    pkg = _package(tmp_path / "pkg", _spec())
    img = _image(tmp_path / "a.png")
    code, out, err, _ = run("classify", img, "--package", pkg)
    assert code == 0, err
    assert out.splitlines()[0].startswith(f"{img}: dog (")


# --- 1. files named by the package stay inside it -----------------------------------------

def _with_bitstream(pkg: Path, rel: str) -> dict:
    return _spec(bitfile={"file": rel, "hwh": str(Path(rel).with_suffix(".hwh")), "sha256": "0" * 64})


@pytest.mark.parametrize("kind", ["parent", "absolute", "symlink", "down-and-out"])
def test_bitfile_outside_the_package_is_refused(drv, tmp_path, kind):
    outside = tmp_path / "elsewhere" / "x.bit"
    outside.parent.mkdir()
    outside.write_bytes(b"not from this package")
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    rel = {"parent": "../elsewhere/x.bit", "absolute": str(outside), "symlink": "link.bit",
           "down-and-out": "sub/../../elsewhere/x.bit"}[kind]
    if kind == "symlink":
        (pkg / "link.bit").symlink_to(outside)
    _package(pkg, _with_bitstream(pkg, rel))
    with pytest.raises(drv.errors.DriverError, match="field 'bitfile.file': .* leaves the package folder") as e:
        drv.io_spec.load(pkg)
    assert "io_spec.json" in str(e.value) and repr(rel) in str(e.value)


def test_hwh_outside_the_package_is_refused(drv, tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "bits").mkdir(parents=True)
    bit = pkg / "bits" / "x.bit"
    bit.write_bytes(b"bitstream")
    outside = tmp_path / "x.hwh"
    outside.write_text(FAKE_HWH)
    sha = hashlib.sha256(bit.read_bytes()).hexdigest()
    _package(pkg, _spec(bitfile={"file": "bits/x.bit", "hwh": "../x.hwh", "sha256": sha}))
    with pytest.raises(drv.errors.DriverError, match="field 'bitfile.hwh': '../x.hwh' leaves the package folder"):
        drv.io_spec.load(pkg)
    # PYNQ reads the .hwh next to the .bit whatever the field says: a symlink there is refused too.
    _package(pkg, _spec(bitfile={"file": "bits/x.bit", "sha256": sha}))
    (pkg / "bits" / "x.hwh").symlink_to(outside)
    spec = drv.io_spec.load(pkg)  # a file in a sub-folder of the package is fine
    with pytest.raises(drv.errors.DriverError, match="hardware handoff file .* leaves the package folder"):
        drv.io_spec.check_bitfile(spec)
    (pkg / "bits" / "x.hwh").unlink()
    (pkg / "bits" / "x.hwh").write_text(FAKE_HWH)
    assert drv.io_spec.check_bitfile(spec) == bit


# --- 2. names from the package cannot forge output ------------------------------------------

FORGED = "\x1b[31mdog\nbnn2fpga_driver: forged line"


def test_class_name_with_escape_codes_and_newline_cannot_forge_a_line(run, drv, tmp_path):
    pkg = _package(tmp_path / "pkg", _spec(class_names=["cat", FORGED, "bird"]))
    code, out, err, opened = run("classify", _image(tmp_path / "a.png"), "--package", pkg)
    _one_error_line(code, err, "field 'class_names[1]'", "control character")
    assert "\x1b" not in out + err and "forged" not in out
    assert not any(line.startswith("bnn2fpga_driver: forged") for line in (out + err).splitlines())
    with pytest.raises(drv.errors.DriverError, match=r"class_names\[1\]") as e:
        drv.io_spec.load(pkg)
    assert "\x1b" not in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("field, value", [("model", "toy\x1b]0;title\x07"), ("board", "pynq\r\nz2"),
                                          ("format", "bnn2fpga-io/1\x1b[2K")], ids=["model", "board", "format"])
def test_other_printed_names_must_be_printable(drv, tmp_path, field, value):
    pkg = _package(tmp_path / "pkg", _spec(**{field: value}))
    with pytest.raises(drv.errors.DriverError, match=f"field '{field}': .*control character") as e:
        drv.io_spec.load(pkg)
    assert "\x1b" not in str(e.value) and "\n" not in str(e.value)


def test_image_file_names_are_printed_escaped(run, tmp_path):
    pkg = _package(tmp_path / "pkg", _spec())
    img = _image(tmp_path / "evil\x1b[2J\nbnn2fpga_driver: x.png")
    code, out, err, _ = run("classify", img, "--package", pkg)
    assert code == 0, err
    assert "\x1b" not in out and len(out.splitlines()) == 2 and "evil\\x1b[2J\\nbnn2fpga_driver: x.png" in out


# --- 3. sizes are bounded before anything is allocated ----------------------------------------

def _big_input(n: int) -> dict:
    inp = _spec()["input"]
    inp.update(host_shape=[1, 1, n, n], shape=[1, n, n, 1], folded_shape=[1, n * n, 1], packed_shape=[1, n * n, 1],
               host_ops=[{"op": "Transpose", "shape": [1, n, n, 1], "perm": [0, 2, 3, 1]}])
    return {"input": inp}


def _many_outputs(n: int, names: bool) -> dict:
    out = dict(_spec()["output"], shape=[1, n], folded_shape=[1, 1, n], packed_shape=[1, 1, n])
    return {"output": out, **({"class_names": [f"c{i}" for i in range(n)]} if names else {})}


@pytest.mark.parametrize("changes, field", [
    (_big_input(100000), "input.host_shape|input.shape"),
    (_many_outputs(10**8, names=False), "output.shape"),
    (_many_outputs(5000, names=True), "class_names"),
    ({"preprocessing": {"size": [100000, 100000], "luma": True, "equalize": False}}, "preprocessing.size"),
], ids=["input-100000x100000", "output-10**8", "5000-classes", "preprocessing-100000x100000"])
def test_huge_sizes_are_refused_when_the_package_is_loaded(drv, tmp_path, changes, field):
    # A consistent spec: nothing but the size is wrong with it.
    pkg = _package(tmp_path / "pkg", _spec(**changes))
    with pytest.raises(drv.errors.DriverError, match=f"field '({field})': .*limit") as e:
        drv.io_spec.load(pkg)
    assert "\n" not in str(e.value)


def test_batch_too_big_to_allocate_is_refused(run, tmp_path):
    pkg = _package(tmp_path / "pkg", _spec())
    code, _, err, _ = run("benchmark", "--package", pkg, "--batch", 10**12, "--n", 10**12)
    _one_error_line(code, err, "--batch 1000000000000", "use at most --batch")


def test_oversized_spec_file_is_not_read(drv, tmp_path):
    # Valid JSON, but 32 MiB: twice what the driver reads.
    pkg = _package(tmp_path / "pkg", json.dumps(_spec()) + " " * 32 * 2**20)
    with pytest.raises(drv.errors.DriverError, match="more than an I/O spec can be"):
        drv.io_spec.load(pkg)


# --- 4. output files are checked before the run ------------------------------------------------

def test_validate_checks_the_csv_path_before_running(run, tmp_path):
    pkg = _package(tmp_path / "pkg", _spec())
    _image(tmp_path / "labeled" / "dog" / "a.png")
    for csv, words in [(tmp_path / "no" / "such" / "cm.csv", ["--csv", "does not exist"]),
                       (tmp_path / "labeled", ["--csv", "is a folder"])]:
        code, out, err, opened = run("validate", tmp_path / "labeled", "--package", pkg, "--csv", csv)
        _one_error_line(code, err, *words)
        assert out == "" and opened == []
    # The check leaves nothing behind when the run then fails, and the file is written when it does not.
    csv = tmp_path / "cm.csv"
    (tmp_path / "labeled" / "dog" / "b.png").write_bytes(b"not a png")
    code, _, err, opened = run("validate", tmp_path / "labeled", "--package", pkg, "--csv", csv)
    _one_error_line(code, err, "b.png")
    assert not csv.exists()
    (tmp_path / "labeled" / "dog" / "b.png").unlink()
    code, out, err, _ = run("validate", tmp_path / "labeled", "--package", pkg, "--csv", csv)
    assert code == 0 and "top-1 accuracy: 100.00% (1/1)" in out, err
    assert csv.read_text().splitlines()[2] == "dog,0,1,0"


# --- 6. other bad input: one line and exit code 2, not a traceback or exit code 1 ----------------

def _spec_with(path: str, value) -> dict:
    spec = _spec()
    node, keys = spec, path.split(".")
    for k in keys[:-1]:
        node = node[int(k)] if isinstance(node, list) else node[k]
    node[keys[-1]] = value
    return spec


@pytest.mark.parametrize("command, spec, words", [
    ("classify", "[" * 100000 + "]" * 100000, ["not valid JSON", "nested too deeply"]),
    ("classify", _spec(head={"scale": ["a", "b", "c"], "bias": [0, 0, 0]}), ["field 'head.scale'"]),
    ("classify", _spec_with("input.host_ops.0.perm", ["zero", 2, 3, 1]), ["field 'input.host_ops[0].perm'"]),
    ("classify", _spec_with("output.host_ops", [{"op": "Reshape", "shape": [1, 5]}]), ["Reshape after"]),
    ("validate", _spec(class_names=["cat"]), ["field 'class_names'", "1 names", "3 outputs"]),
    ("classify", _spec(dma={"input": ["idma0"]}), ["field 'dma.input'"]),
], ids=["deep-json", "head-not-numbers", "perm-not-integers", "reshape-mismatch", "class-count", "dma-not-a-name"])
def test_broken_package_is_one_line_and_exit_code_2(run, tmp_path, command, spec, words):
    pkg = _package(tmp_path / "pkg", spec)
    img = _image(tmp_path / "labeled" / "cat" / "a.png")
    target = tmp_path / "labeled" if command == "validate" else img
    code, out, err, _ = run(command, target, "--package", pkg, "--csv" if command == "validate" else "--batch",
                            tmp_path / "cm.csv" if command == "validate" else 1)
    _one_error_line(code, err, *words)
    assert "internal error" not in err

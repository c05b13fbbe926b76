"""The deployment package's I/O spec (``io_spec.json``): loading, validation, board and bitfile checks.

The spec is written by the build's ``package`` step and completed (bitfile name and
sha256) by its Vivado ``driver`` step. Every problem is a one-line ``DriverError``
naming the file and the field.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from .errors import UNSAFE_TEXT, DriverError
from .packing import packed_shape

__all__ = ["FORMAT", "SPEC_FILE", "MAX_FRAME_ELEMENTS", "MAX_CLASSES", "TensorSpec", "IOSpec", "load",
           "check_text", "inside_package", "check_board", "check_bitfile", "running_board", "sha256_of"]

FORMAT = "bnn2fpga-io/1"
SPEC_FILE = "io_spec.json"

# Limits on what a package can make the board allocate, checked before anything is.
# The largest frame a Zynq-class BNN takes is an ImageNet image (224x224x3 = 150,528
# elements); 2**24 leaves two orders of magnitude of headroom, yet the host's working
# copies of one frame (int64 codes, float32 images, bit planes) stay in the hundreds of
# MiB a PYNQ board's DDR can hold, where 100000x100000 would ask for ~74 GiB.
MAX_FRAME_ELEMENTS = 2**24
# validate keeps a classes x classes matrix of int64 counts: 4096 classes is 128 MiB,
# four times ImageNet-1k.
MAX_CLASSES = 4096
# Real specs are kilobytes (a 4096-class head is ~200 KB); a bigger file is not ours.
MAX_SPEC_BYTES = 16 * 2**20
# FINN's folded stream shapes have up to six axes; many more means it is not FINN's.
MAX_RANK = 8


@dataclass(frozen=True)
class TensorSpec:
    """One side of the accelerator: shapes with batch 1, FINN datatype, host ops on our side of it."""

    shape: tuple[int, ...]  # the accelerator's normal shape
    folded_shape: tuple[int, ...]
    packed_shape: tuple[int, ...]
    datatype: str
    host_ops: tuple[dict, ...]


@dataclass(frozen=True)
class IOSpec:
    """A validated io_spec.json and the package folder it came from."""

    package_dir: Path
    model: str
    board: str
    part: str
    finn_board: str
    arch: str | None
    clock_mhz: float
    host_shape: tuple[int, ...]  # what the network takes (NCHW, batch 1)
    input_quant: dict | None
    input: TensorSpec
    output: TensorSpec
    head: dict | None
    class_names: tuple[str, ...]
    preprocessing: dict | None
    bitfile: dict | None
    dma: dict
    estimate: dict | None = None  # the build's FINN estimate (fps, latency_ms), for comparison
    dataflow_sha256: str | None = None  # identifies the dataflow model the package describes
    input_float_ops: tuple[dict, ...] = ()  # float pre-processing before the input quantizer (2x - 1)
    serial_baud: int | None = None  # the accelerator sits behind a serial line at this rate (ECP5 boards)

    @property
    def path(self) -> Path:
        """The io_spec.json file."""
        return self.package_dir / SPEC_FILE


class _Fields:
    # Typed access to nested JSON fields; any problem names the file and the field.
    def __init__(self, data: dict, path: Path):
        self.data, self.path = data, path

    def fail(self, field: str, problem: str):
        raise DriverError(f"{self.path}: field '{field}': {problem}")

    def get(self, field: str, kinds: tuple[type, ...], optional: bool = False):
        node = self.data
        for key in field.split("."):
            if not isinstance(node, dict) or key not in node:
                if optional:
                    return None
                self.fail(field, "missing")
            node = node[key]
        if node is None and optional:
            return None
        if not isinstance(node, kinds) or isinstance(node, bool) and bool not in kinds:
            self.fail(field, f"expected {' or '.join(k.__name__ for k in kinds)}, got {node!r}"[:200])
        return node

    def text(self, field: str, optional: bool = False) -> str | None:
        value = self.get(field, (str,), optional)
        if value is not None:
            check_text(value, lambda problem: self.fail(field, problem))
        return value

    def shape(self, field: str) -> tuple[int, ...]:
        value = self.get(field, (list,))
        if not value or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in value):
            self.fail(field, f"expected a list of positive integers, got {value!r}"[:200])
        if len(value) > MAX_RANK:
            self.fail(field, f"{len(value)} axes; the driver takes at most {MAX_RANK}")
        if _prod(value) > MAX_FRAME_ELEMENTS:
            self.fail(field, f"{'x'.join(map(str, value))} is {_prod(value):,} elements per frame, more than the "
                      f"driver's limit of {MAX_FRAME_ELEMENTS:,}")
        return tuple(value)

    def inside(self, field: str, package_dir: Path) -> Path | None:
        # A package is copied to the board and unzipped as root: a file it names must
        # not reach outside its folder, neither by path nor through a symlink.
        rel = self.text(field, optional=True)
        if rel is None:
            return None
        return inside_package(package_dir, rel, lambda problem: self.fail(field, problem))


def check_text(value: str, fail) -> None:
    """Call ``fail(problem)`` when ``value`` holds characters that can forge terminal output."""
    bad = UNSAFE_TEXT.search(value)
    if bad:
        fail(f"{value[:60]!r} contains the control character {bad.group()!r}; names from a package must be "
             "printable text (they are printed to the terminal)")


def inside_package(package_dir: Path, rel: str, fail) -> Path:
    """``package_dir / rel`` resolved, after ``fail(problem)`` if it leads out of the package folder."""
    root = Path(package_dir).resolve()
    try:
        target = (root / rel).resolve()
    except (OSError, RuntimeError, ValueError) as e:  # symlink loops, unreadable folders
        fail(f"{rel!r} cannot be resolved ({e})")
    if target == root:
        fail(f"{rel!r} names the package folder itself, not a file in it")
    if not target.is_relative_to(root):
        fail(f"{rel!r} leaves the package folder {root}")
    return target


def _tensor(f: _Fields, side: str) -> TensorSpec:
    shape, folded = f.shape(f"{side}.shape"), f.shape(f"{side}.folded_shape")
    dt = f.get(f"{side}.datatype", (str,))
    try:
        expected = packed_shape(folded, dt)
    except ValueError as e:
        f.fail(f"{side}.datatype", str(e))
    if int(_prod(shape)) != int(_prod(folded)):
        f.fail(f"{side}.folded_shape", f"{list(folded)} does not hold the {_prod(shape)} elements of shape {list(shape)}")
    packed = f.shape(f"{side}.packed_shape")
    if packed != expected:
        f.fail(f"{side}.packed_shape", f"{list(packed)} does not match {dt} {list(folded)} (expected {list(expected)})")
    ops = f.get(f"{side}.host_ops", (list,))
    for i, op in enumerate(ops):
        if not isinstance(op, dict) or not isinstance(op.get("op"), str):
            f.fail(f"{side}.host_ops[{i}]", f"expected an object with an 'op' name, got {op!r}"[:200])
        check_text(op["op"], lambda problem: f.fail(f"{side}.host_ops[{i}].op", problem))
        for key in ("perm", "shape", "value_shape"):
            ints = op.get(key)
            if ints is not None and not (isinstance(ints, list) and all(
                    isinstance(d, int) and not isinstance(d, bool) for d in ints)):
                f.fail(f"{side}.host_ops[{i}].{key}", f"expected a list of integers, got {ints!r}"[:200])
    return TensorSpec(shape, folded, packed, dt, tuple(ops))


def _prod(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _read(package_dir: Path, path: Path):
    if not package_dir.is_dir():
        raise DriverError(f"no deployment package at {package_dir} (expected a folder with {SPEC_FILE}; "
                          "give it with --package DIR)")
    try:
        if path.stat().st_size > MAX_SPEC_BYTES:
            raise DriverError(f"{path}: {path.stat().st_size:,} bytes, more than an I/O spec can be "
                              f"({MAX_SPEC_BYTES:,}); it is not a bnn2fpga package")
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DriverError(f"{package_dir} is not a deployment package: {SPEC_FILE} is missing") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DriverError(f"{path}: cannot read ({e})") from None
    except ValueError as e:
        raise DriverError(f"{path}: not valid JSON ({e})") from None
    except RecursionError:
        raise DriverError(f"{path}: not valid JSON (nested too deeply)") from None


def _numbers(f: _Fields, field: str, count: int) -> None:
    values = f.get(field, (list,))
    if len(values) != count or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                       and math.isfinite(v) for v in values):
        f.fail(field, f"expected {count} numbers (one per class), all finite")


def load(package_dir) -> IOSpec:
    """Read and validate ``<package_dir>/io_spec.json``."""
    package_dir = Path(package_dir)
    path = package_dir / SPEC_FILE
    data = _read(package_dir, path)
    if not isinstance(data, dict):
        raise DriverError(f"{path}: expected a JSON object")
    f = _Fields(data, path)
    fmt = f.text("format")
    if fmt != FORMAT:
        f.fail("format", f"'{fmt}' is not '{FORMAT}', the format this driver reads")
    quant = f.get("input.quant", (dict,), optional=True)
    if quant is not None:
        for key in ("scale", "zero_point", "bits", "signed", "narrow"):
            if key not in quant:
                f.fail(f"input.quant.{key}", "missing")
    head = f.get("head", (dict,), optional=True)
    float_ops = f.get("input.float_ops", (list,), optional=True) or []
    for i, op in enumerate(float_ops):
        if not isinstance(op, dict) or not isinstance(op.get("op"), str):
            f.fail(f"input.float_ops[{i}]", f"expected an object with an 'op' name, got {op!r}"[:200])
        check_text(op["op"], lambda problem: f.fail(f"input.float_ops[{i}].op", problem))
    for side in ("input", "output"):
        f.text(f"{side}.datatype")
    inp, out = _tensor(f, "input"), _tensor(f, "output")
    names = f.get("class_names", (list,))
    if len(names) > MAX_CLASSES:
        f.fail("class_names", f"{len(names):,} classes, more than the driver's limit of {MAX_CLASSES:,}")
    for i, name in enumerate(names):
        if not isinstance(name, str):
            f.fail("class_names", "expected a list of strings")
        check_text(name, lambda problem: f.fail(f"class_names[{i}]", problem))
    if head is not None:
        for key in ("scale", "bias"):
            _numbers(f, f"head.{key}", len(names))
    pre = f.get("preprocessing", (dict,), optional=True)
    size = (pre or {}).get("size")
    if isinstance(size, list) and all(isinstance(d, int) and not isinstance(d, bool) for d in size) \
            and 3 * _prod(size) > MAX_FRAME_ELEMENTS:
        f.fail("preprocessing.size", f"{'x'.join(map(str, size))} RGB images are more than the driver's limit "
               f"of {MAX_FRAME_ELEMENTS:,} elements per frame")
    bitfile = f.get("bitfile", (dict,), optional=True)
    if bitfile is not None:
        f.get("bitfile.file", (str,))
        f.inside("bitfile.file", package_dir)
        f.inside("bitfile.hwh", package_dir)
        f.text("bitfile.sha256")
    serial_baud = None
    if f.get("link", (dict,), optional=True):
        kind = f.text("link.kind")
        if kind == "serial":
            serial_baud = f.get("link.baud", (int,))
            if not 300 <= serial_baud <= 100_000_000:
                f.fail("link.baud", f"{serial_baud} is not a serial rate")
        elif kind != "axi-dma":
            f.fail("link.kind", f"{kind!r} is neither 'axi-dma' nor 'serial'")
    dma = {"input": "idma0", "output": "odma0"}
    if f.get("dma", (dict,), optional=True):
        dma.update({k: v for k in dma if (v := f.text(f"dma.{k}", optional=True)) is not None})
    return IOSpec(
        package_dir=package_dir,
        model=f.text("model"),
        board=f.text("board"),
        part=f.text("part"),
        finn_board=f.text("finn_board"),
        arch=f.text("arch", optional=True),
        clock_mhz=float(f.get("clock_mhz", (int, float))),
        host_shape=f.shape("input.host_shape"),
        input_quant=quant,
        input=inp,
        output=out,
        head=head,
        class_names=tuple(names),
        preprocessing=pre,
        bitfile=bitfile,
        dma=dma,
        estimate=f.get("estimate", (dict,), optional=True),
        dataflow_sha256=f.text("dataflow_sha256", optional=True),
        input_float_ops=tuple(float_ops),
        serial_baud=serial_baud,
    )


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def _names_of(spec: IOSpec) -> set[str]:
    names = {_norm(spec.board), _norm(spec.finn_board)}
    # FINN calls the Kria board "KV260_SOM"; PYNQ and people say "KV260".
    return names | {n[:-3] for n in names if n.endswith("som")}


def running_board() -> tuple[str | None, str]:
    """The board PYNQ images name in $BOARD (None elsewhere) and this machine's architecture."""
    return os.environ.get("BOARD") or None, platform.machine()


def check_board(spec: IOSpec, board: str | None = None, on_board: bool = False) -> None:
    """Refuse a package built for another board: ``board`` (from --board) or, on a board, $BOARD and the CPU."""
    what = f"{spec.board} (part {spec.part})"
    if board is not None:
        if _norm(board) not in _names_of(spec):
            raise DriverError(f"package {spec.package_dir} was built for {what}, not for '{board}'")
        return
    if not on_board:
        return
    env_board, machine = running_board()
    if env_board and _norm(env_board) not in _names_of(spec):
        raise DriverError(f"package {spec.package_dir} was built for {what}, but this board is '{env_board}' "
                          "($BOARD); rebuild for it with 'bnn2fpga build ... --board NAME'")
    if spec.arch and machine and machine != spec.arch and spec.arch in ("armv7l", "aarch64") \
            and machine in ("armv7l", "aarch64"):
        raise DriverError(f"package {spec.package_dir} was built for {what}, whose CPU is {spec.arch}, "
                          f"but this machine is {machine}")


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks (bitstreams are several MB)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _hwh_part(hwh: Path) -> str | None:
    # Vivado's hardware handoff names the device in its SYSTEMINFO element.
    try:
        for _, elem in ET.iterparse(str(hwh)):
            if elem.tag == "SYSTEMINFO":
                return "".join(elem.get(k, "") for k in ("DEVICE", "PACKAGE", "SPEEDGRADE")) or None
    except (ET.ParseError, OSError) as e:
        raise DriverError(f"{hwh}: cannot read the hardware handoff file ({e})") from None
    return None


def check_bitfile(spec: IOSpec) -> Path:
    """The package's bitstream, after checking it exists, matches its sha256 and targets the part."""
    if spec.bitfile is None:
        raise DriverError(f"package {spec.package_dir} has no bitstream (built without Vivado); build one with "
                          "'make bitstream' or, off the board, run with --simulate BUILD_DIR")
    rel = spec.bitfile["file"]

    def fail(problem):
        raise DriverError(f"{spec.path}: field 'bitfile.file': {problem}")

    inside_package(spec.package_dir, rel, fail)
    bit = spec.package_dir / rel
    if not bit.is_file():
        raise DriverError(f"{spec.path}: bitstream '{rel}' is missing from the package")
    digest = sha256_of(bit)
    if digest != spec.bitfile["sha256"].lower():
        raise DriverError(f"{bit.name} does not match {spec.path} (sha256 {digest[:12]}... != "
                          f"{spec.bitfile['sha256'][:12]}...): bitstream and I/O spec come from different builds")
    # PYNQ reads the handoff file next to the bitstream, whatever 'bitfile.hwh' says.
    hwh = bit.with_suffix(".hwh")
    inside_package(spec.package_dir, str(Path(rel).with_suffix(".hwh")),
                   lambda problem: fail(f"its hardware handoff file {problem}"))
    if not hwh.is_file():
        raise DriverError(f"{hwh.name} is missing next to {bit.name} (PYNQ needs the hardware handoff file)")
    part = _hwh_part(hwh)
    want = _norm(spec.part).removeprefix("xc")
    if part and not want.startswith(_norm(part).removeprefix("xc")):
        raise DriverError(f"{bit.name} was built for part {part}, but {spec.path} expects {spec.part}")
    return bit


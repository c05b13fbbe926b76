"""The deployment package's I/O spec (``io_spec.json``): loading, validation, board and bitfile checks.

The spec is written by the build's ``package`` step and completed (bitfile name and
sha256) by its Vivado ``driver`` step. Every problem is a one-line ``DriverError``
naming the file and the field.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from .errors import DriverError
from .packing import packed_shape

__all__ = ["FORMAT", "SPEC_FILE", "TensorSpec", "IOSpec", "load", "check_board", "check_bitfile",
           "running_board", "sha256_of"]

FORMAT = "bnn2fpga-io/1"
SPEC_FILE = "io_spec.json"


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

    def shape(self, field: str) -> tuple[int, ...]:
        value = self.get(field, (list,))
        if not value or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in value):
            self.fail(field, f"expected a list of positive integers, got {value!r}")
        return tuple(value)


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
            f.fail(f"{side}.host_ops[{i}]", f"expected an object with an 'op' name, got {op!r}")
    return TensorSpec(shape, folded, packed, dt, tuple(ops))


def _prod(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def load(package_dir) -> IOSpec:
    """Read and validate ``<package_dir>/io_spec.json``."""
    package_dir = Path(package_dir)
    path = package_dir / SPEC_FILE
    if not package_dir.is_dir():
        raise DriverError(f"no deployment package at {package_dir} (expected a folder with {SPEC_FILE}; "
                          "give it with --package DIR)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DriverError(f"{package_dir} is not a deployment package: {SPEC_FILE} is missing") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DriverError(f"{path}: cannot read ({e})") from None
    except ValueError as e:
        raise DriverError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise DriverError(f"{path}: expected a JSON object")
    f = _Fields(data, path)
    fmt = f.get("format", (str,))
    if fmt != FORMAT:
        f.fail("format", f"'{fmt}' is not '{FORMAT}', the format this driver reads")
    quant = f.get("input.quant", (dict,), optional=True)
    if quant is not None:
        for key in ("scale", "zero_point", "bits", "signed", "narrow"):
            if key not in quant:
                f.fail(f"input.quant.{key}", "missing")
    head = f.get("head", (dict,), optional=True)
    inp, out = _tensor(f, "input"), _tensor(f, "output")
    names = f.get("class_names", (list,))
    if not all(isinstance(n, str) for n in names):
        f.fail("class_names", "expected a list of strings")
    if head is not None:
        for key in ("scale", "bias"):
            values = head.get(key)
            if not isinstance(values, list) or len(values) != len(names):
                f.fail(f"head.{key}", f"expected {len(names)} numbers (one per class)")
    bitfile = f.get("bitfile", (dict,), optional=True)
    if bitfile is not None:
        f.get("bitfile.file", (str,))
        f.get("bitfile.sha256", (str,))
    return IOSpec(
        package_dir=package_dir,
        model=f.get("model", (str,)),
        board=f.get("board", (str,)),
        part=f.get("part", (str,)),
        finn_board=f.get("finn_board", (str,)),
        arch=f.get("arch", (str,), optional=True),
        clock_mhz=float(f.get("clock_mhz", (int, float))),
        host_shape=f.shape("input.host_shape"),
        input_quant=quant,
        input=inp,
        output=out,
        head=head,
        class_names=tuple(names),
        preprocessing=f.get("preprocessing", (dict,), optional=True),
        bitfile=bitfile,
        dma=f.get("dma", (dict,), optional=True) or {"input": "idma0", "output": "odma0"},
        estimate=f.get("estimate", (dict,), optional=True),
        dataflow_sha256=f.get("dataflow_sha256", (str,), optional=True),
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
    bit = spec.package_dir / spec.bitfile["file"]
    if not bit.is_file():
        raise DriverError(f"{spec.path}: bitstream '{spec.bitfile['file']}' is missing from the package")
    digest = sha256_of(bit)
    if digest != spec.bitfile["sha256"].lower():
        raise DriverError(f"{bit.name} does not match {spec.path} (sha256 {digest[:12]}... != "
                          f"{spec.bitfile['sha256'][:12]}...): bitstream and I/O spec come from different builds")
    hwh = bit.with_suffix(".hwh")
    if not hwh.is_file():
        raise DriverError(f"{hwh.name} is missing next to {bit.name} (PYNQ needs the hardware handoff file)")
    part = _hwh_part(hwh)
    want = _norm(spec.part).removeprefix("xc")
    if part and not want.startswith(_norm(part).removeprefix("xc")):
        raise DriverError(f"{bit.name} was built for part {part}, but {spec.path} expects {spec.part}")
    return bit


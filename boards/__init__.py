"""Target boards: one YAML file per board in this folder, validated on load.

A board file is checked once, here, so the rest of the flow can trust a
``Board`` without re-checking types or ranges.

Two families: Xilinx boards (``family`` absent or ``xilinx``: part, FINN board name,
Vivado shell flow, LUT/FF/BRAM36/URAM/DSP) built with Vivado, and Lattice ECP5 boards
(``family: ecp5``: part, package, speed grade, LUT4/FF/EBR/DSP, clock and pins) built
with the open flow (yosys, nextpnr-ecp5, ecppack; ``hw/synth/ecp5.py``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import re

import yaml

from bnn2fpga.errors import UserError

__all__ = [
    "Board",
    "BoardError",
    "Ecp5Resources",
    "Resources",
    "get_board",
    "list_boards",
    "load_board_file",
]

BOARDS_DIR = Path(__file__).resolve().parent

# Shell flows FINN knows about; a typo here would only surface hours later
# in Vivado, so reject it at load time.
SHELL_FLOWS = ("vivado_zynq", "vitis_alveo")
ARCHES = ("armv7l", "aarch64", "x86_64")
FAMILIES = ("xilinx", "ecp5")

# FINN's analytical LUT estimates count 6-input LUTs (7-series / UltraScale); an ECP5
# slice has 4-input LUTs. The folding search and the fit check compare FINN's figure
# against ``Ecp5Resources.LUT``, the LUT4 count times this factor. Measured after place
# and route (nextpnr-ecp5, whole designs with the serial shell, report/ecp5.json's
# lut_estimate_check): cbcnn-mnist 8,720 estimated -> 19,869 LUT4 (2.28 per LUT),
# cbcnn-gtsrb 8,840 -> 21,099 (2.39). One layer alone (PE 16 x SIMD 9): 1.73.
FINN_LUT_PER_LUT4 = 1 / 2.4

# ECP5 parts nextpnr-ecp5 has chip databases for: LFE5U / LFE5UM / LFE5UM5G, size, speed
# grade, package code, temperature grade (e.g. LFE5U-85F-6BG381C).
_ECP5_PART = re.compile(r"^(LFE5U|LFE5UM|LFE5UM5G)-(12|25|45|85)F-([678])(BG|MG)(\d+)([CI])$")
# Package codes in a part number -> nextpnr's --package names.
_ECP5_PACKAGES = {("BG", "256"): "CABGA256", ("BG", "381"): "CABGA381", ("BG", "554"): "CABGA554",
                  ("BG", "756"): "CABGA756", ("MG", "285"): "CSFBGA285"}
_PIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SITE = re.compile(r"^[A-Z]{1,2}[0-9]{1,2}$")
# Ports the serial shell (hw/rtl/ecp5_uart_top.sv) needs on every ECP5 board.
ECP5_SHELL_PINS = ("clk", "uart_rx", "uart_tx", "led0", "led1")


@dataclass(frozen=True)
class Resources:
    """Device totals of the programmable logic (not what a design uses)."""

    LUT: int
    FF: int
    BRAM36: int  # 36 Kb block RAM tiles; each splits into two 18 Kb halves
    URAM: int
    DSP: int

    @property
    def BRAM18(self) -> int:  # noqa: N802 - matches the vendor's unit name
        """Block RAM counted in 18 Kb halves, the unit FINN's estimates use."""
        return 2 * self.BRAM36

    def as_dict(self) -> dict:
        """Plain dict of the five device totals."""
        return asdict(self)


@dataclass(frozen=True)
class Ecp5Resources:
    """Device totals of a Lattice ECP5 (not what a design uses).

    The Xilinx-unit properties (``LUT``, ``BRAM18``, ``BRAM36``, ``URAM``) are what
    FINN's estimates, the folding search and the report compare against.
    """

    LUT4: int
    FF: int
    EBR: int  # 18 Kb embedded block RAMs (sysMEM)
    DSP: int  # 18 x 18 multipliers (MULT18X18D)

    @property
    def LUT(self) -> int:  # noqa: N802 - the unit FINN's estimates use
        """The LUT4 count in FINN's estimate units (6-input LUTs), see ``FINN_LUT_PER_LUT4``."""
        return int(self.LUT4 * FINN_LUT_PER_LUT4)

    @property
    def BRAM18(self) -> int:  # noqa: N802
        """An EBR holds 18 Kb, like a Xilinx 18 Kb block RAM half."""
        return self.EBR

    @property
    def BRAM36(self) -> int:  # noqa: N802
        """EBRs in pairs, the unit of the Xilinx report columns."""
        return self.EBR // 2

    @property
    def URAM(self) -> int:  # noqa: N802
        """ECP5 has no UltraRAM."""
        return 0

    def as_dict(self) -> dict:
        """The totals in the Xilinx units the report schema has (LUT as FINN-estimate LUTs)."""
        return {"LUT": self.LUT, "FF": self.FF, "BRAM36": self.BRAM36, "URAM": 0, "DSP": self.DSP}

    def native(self) -> dict:
        """The totals as the part's data sheet counts them: LUT4, FF, EBR, DSP."""
        return asdict(self)


@dataclass(frozen=True)
class Board:
    """A validated target board (Xilinx, or ECP5 with ``family == "ecp5"``)."""

    name: str
    description: str
    part: str
    finn_board: str
    shell_flow: str
    clock_mhz: float
    arch: str
    resources: Resources | Ecp5Resources
    family: str = "xilinx"
    # ECP5 only: nextpnr's package name, the speed grade, shell port -> package pin
    # (as a tuple of pairs, so the board stays hashable), the I/O standard of those pins.
    package: str = ""
    speed_grade: int = 0
    pins: tuple[tuple[str, str], ...] = ()
    io_standard: str = ""

    @property
    def clock_period_ns(self) -> float:
        """Fabric clock period in ns, as FINN's ``synth_clk_period_ns`` wants it."""
        return 1000.0 / self.clock_mhz

    @property
    def is_ecp5(self) -> bool:
        """True for a Lattice ECP5 board (built by the open flow, not Vivado)."""
        return self.family == "ecp5"

    @property
    def nextpnr_device(self) -> str:
        """nextpnr-ecp5's device option without dashes (``85k``, ``um5g-45k``, ...)."""
        m = _ECP5_PART.match(self.part)
        if not m:
            raise ValueError(f"{self.name} is not an ECP5 board")
        prefix = {"LFE5U": "", "LFE5UM": "um-", "LFE5UM5G": "um5g-"}[m.group(1)]
        return f"{prefix}{m.group(2)}k"

    def pin(self, port: str) -> str:
        """The package pin of shell port ``port``."""
        return dict(self.pins)[port]

    def to_dict(self) -> dict:
        """Plain, YAML/JSON-ready dict; round-trips through the board file format."""
        d = asdict(self)
        if not self.is_ecp5:
            for key in ("family", "package", "speed_grade", "pins", "io_standard"):
                del d[key]
            return d
        for key in ("finn_board", "shell_flow"):
            del d[key]
        d["pins"] = dict(self.pins)
        return d


class BoardError(UserError, ValueError):
    """A board is unknown or its file is invalid; the message is one line."""


_STR_FIELDS = ("name", "description", "part", "finn_board", "shell_flow", "arch")
_TOP_FIELDS = _STR_FIELDS + ("clock_mhz", "resources")
_RESOURCE_FIELDS = ("LUT", "FF", "BRAM36", "URAM", "DSP")


def _is_int(value) -> bool:
    # bool is a subclass of int, but "LUT: yes" is a mistake, not a count.
    return isinstance(value, int) and not isinstance(value, bool)


def _check_keys(data: dict, allowed: tuple[str, ...], where: str, fail) -> None:
    unknown = sorted(str(k) for k in data if k not in allowed)
    if unknown:
        fail(f"{where}{unknown[0]}", f"unknown key (allowed: {', '.join(allowed)})")
    for key in allowed:
        if key not in data:
            fail(f"{where}{key}", "missing")


def _check_common(data: dict, fields: tuple[str, ...], path: Path, fail) -> float:
    """Checks both families share: strings, name = file stem, arch, clock; returns the clock."""
    for key in fields:
        if not isinstance(data[key], str) or not data[key].strip():
            fail(key, f"expected a non-empty string, got {data[key]!r}")
    if data["name"] != path.stem:
        fail("name", f"'{data['name']}' does not match the file name '{path.stem}'")
    if data["arch"] not in ARCHES:
        fail("arch", f"'{data['arch']}' is not one of {', '.join(ARCHES)}")
    clock = data["clock_mhz"]
    if isinstance(clock, bool) or not isinstance(clock, (int, float)):
        fail("clock_mhz", f"expected a number, got {clock!r}")
    if not clock > 0 or clock == float("inf"):  # also rejects NaN
        fail("clock_mhz", f"must be a positive number, got {clock!r}")
    return float(clock)


def _check_counts(res, fields: tuple[str, ...], fail) -> dict:
    if not isinstance(res, dict):
        fail("resources", f"expected a mapping of {', '.join(fields)}")
    _check_keys(res, fields, "resources.", fail)
    for key in fields:
        if not _is_int(res[key]):
            fail(f"resources.{key}", f"expected an integer, got {res[key]!r}")
        if res[key] < 0:
            fail(f"resources.{key}", f"must not be negative, got {res[key]}")
    return {k: res[k] for k in fields}


_ECP5_STR_FIELDS = ("name", "description", "part", "package", "io_standard", "arch")
_ECP5_TOP_FIELDS = ("family",) + _ECP5_STR_FIELDS + ("speed_grade", "clock_mhz", "resources", "pins")
_ECP5_RESOURCE_FIELDS = ("LUT4", "FF", "EBR", "DSP")
_IO_STANDARDS = ("LVCMOS33", "LVCMOS25", "LVCMOS18", "LVCMOS15", "LVCMOS12")


def _load_ecp5(data: dict, path: Path, fail) -> Board:
    """An ECP5 board: the part, package and speed grade must agree; the shell's pins are named."""
    _check_keys(data, _ECP5_TOP_FIELDS, "", fail)
    clock = _check_common(data, _ECP5_STR_FIELDS, path, fail)
    m = _ECP5_PART.match(data["part"])
    if not m:
        fail("part", f"'{data['part']}' is not an ECP5 part nextpnr-ecp5 knows (e.g. LFE5U-85F-6BG381C)")
    package = _ECP5_PACKAGES.get((m.group(4), m.group(5)))
    if data["package"] != package:
        fail("package", f"'{data['package']}' does not match the part's package {package or m.group(4) + m.group(5)}")
    grade = data["speed_grade"]
    if not _is_int(grade) or grade not in (6, 7, 8):
        fail("speed_grade", f"expected 6, 7 or 8, got {grade!r}")
    if grade != int(m.group(3)):
        fail("speed_grade", f"{grade} does not match the part's speed grade {m.group(3)}")
    if data["io_standard"] not in _IO_STANDARDS:
        fail("io_standard", f"'{data['io_standard']}' is not one of {', '.join(_IO_STANDARDS)}")
    res = _check_counts(data["resources"], _ECP5_RESOURCE_FIELDS, fail)
    pins = data["pins"]
    if not isinstance(pins, dict):
        fail("pins", "expected a mapping of shell port -> package pin (e.g. clk: G2)")
    for port, site in pins.items():
        if not isinstance(port, str) or not _PIN_NAME.match(port):
            fail(f"pins.{port}", "port names are identifiers (letters, digits, _)")
        if not isinstance(site, str) or not _SITE.match(site):
            fail(f"pins.{port}", f"expected a package pin such as G2, got {site!r}")
    for port in ECP5_SHELL_PINS:
        if port not in pins:
            fail(f"pins.{port}", f"missing (the serial shell needs {', '.join(ECP5_SHELL_PINS)})")
    sites = list(pins.values())
    dup = next((s for s in sites if sites.count(s) > 1), None)
    if dup:
        fail("pins", f"pin {dup} is assigned to more than one port")
    return Board(
        name=data["name"], description=data["description"].strip(), part=data["part"],
        finn_board="", shell_flow="", clock_mhz=clock, arch=data["arch"],
        resources=Ecp5Resources(**res), family="ecp5", package=package, speed_grade=grade,
        pins=tuple((str(k), str(v)) for k, v in pins.items()), io_standard=data["io_standard"],
    )


def load_board_file(path) -> Board:
    """Read and validate one board YAML file; any problem raises ``BoardError``."""
    path = Path(path)

    def fail(field: str | None, problem: str):
        where = f"{path}: field '{field}'" if field else str(path)
        raise BoardError(f"{where}: {problem}")

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        fail(None, f"cannot read ({exc.strerror or exc})")
    except yaml.YAMLError as exc:
        # YAML errors span several lines; keep the first for a one-line message.
        fail(None, "invalid YAML: " + " ".join(str(exc).split()))
    if not isinstance(data, dict):
        fail(None, "expected a mapping of board fields")

    family = data.get("family", "xilinx")
    if family not in FAMILIES:
        fail("family", f"{family!r} is not one of {', '.join(FAMILIES)}")
    if family == "ecp5":
        return _load_ecp5(data, path, fail)
    data = {k: v for k, v in data.items() if k != "family"}
    _check_keys(data, _TOP_FIELDS, "", fail)
    clock = _check_common(data, _STR_FIELDS, path, fail)
    if data["shell_flow"] not in SHELL_FLOWS:
        fail("shell_flow", f"'{data['shell_flow']}' is not one of {', '.join(SHELL_FLOWS)}")
    res = _check_counts(data["resources"], _RESOURCE_FIELDS, fail)

    return Board(
        name=data["name"],
        description=data["description"].strip(),
        part=data["part"],
        finn_board=data["finn_board"],
        shell_flow=data["shell_flow"],
        clock_mhz=float(clock),
        arch=data["arch"],
        resources=Resources(**res),
    )


def list_boards() -> list[Board]:
    """All boards shipped in this package, sorted by name."""
    boards = [load_board_file(p) for p in BOARDS_DIR.glob("*.yaml")]
    return sorted(boards, key=lambda b: b.name)


def get_board(name: str) -> Board:
    """The shipped board called ``name`` (case-insensitive)."""
    wanted = str(name).strip().lower()
    boards = list_boards()
    for board in boards:
        if board.name.lower() == wanted:
            return board
    valid = ", ".join(b.name for b in boards)
    raise BoardError(f"unknown board '{name}'; valid boards: {valid}")

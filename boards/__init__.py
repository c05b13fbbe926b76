"""Target boards: one YAML file per board in this folder, validated on load.

A board file is checked once, here, so the rest of the flow can trust a
``Board`` without re-checking types or ranges.
"""

from __future__ import annotations

from bnn2fpga.errors import UserError
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

__all__ = [
    "Board",
    "BoardError",
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
class Board:
    """A validated target board."""

    name: str
    description: str
    part: str
    finn_board: str
    shell_flow: str
    clock_mhz: float
    arch: str
    resources: Resources

    @property
    def clock_period_ns(self) -> float:
        """Fabric clock period in ns, as FINN's ``synth_clk_period_ns`` wants it."""
        return 1000.0 / self.clock_mhz

    def to_dict(self) -> dict:
        """Plain, YAML/JSON-ready dict; round-trips through the board file format."""
        return asdict(self)


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

    _check_keys(data, _TOP_FIELDS, "", fail)
    for key in _STR_FIELDS:
        if not isinstance(data[key], str) or not data[key].strip():
            fail(key, f"expected a non-empty string, got {data[key]!r}")
    if data["name"] != path.stem:
        fail("name", f"'{data['name']}' does not match the file name '{path.stem}'")
    if data["shell_flow"] not in SHELL_FLOWS:
        fail("shell_flow", f"'{data['shell_flow']}' is not one of {', '.join(SHELL_FLOWS)}")
    if data["arch"] not in ARCHES:
        fail("arch", f"'{data['arch']}' is not one of {', '.join(ARCHES)}")

    clock = data["clock_mhz"]
    if isinstance(clock, bool) or not isinstance(clock, (int, float)):
        fail("clock_mhz", f"expected a number, got {clock!r}")
    if not clock > 0 or clock == float("inf"):  # also rejects NaN
        fail("clock_mhz", f"must be a positive number, got {clock!r}")

    res = data["resources"]
    if not isinstance(res, dict):
        fail("resources", f"expected a mapping of {', '.join(_RESOURCE_FIELDS)}")
    _check_keys(res, _RESOURCE_FIELDS, "resources.", fail)
    for key in _RESOURCE_FIELDS:
        if not _is_int(res[key]):
            fail(f"resources.{key}", f"expected an integer, got {res[key]!r}")
        if res[key] < 0:
            fail(f"resources.{key}", f"must not be negative, got {res[key]}")

    return Board(
        name=data["name"],
        description=data["description"].strip(),
        part=data["part"],
        finn_board=data["finn_board"],
        shell_flow=data["shell_flow"],
        clock_mhz=float(clock),
        arch=data["arch"],
        resources=Resources(**{k: res[k] for k in _RESOURCE_FIELDS}),
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

"""The layout of a build folder, in one place, and the rule that the tool only touches its own.

A build folder carries a marker file written when the tool creates it. The tool writes
into a folder only when the folder is new, empty, or carries that marker (or, for builds
made before the marker existed, a ``build_state.json`` of the tool's own shape); any
other existing folder is refused before anything in it is touched.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from bnn2fpga.errors import UserError

MARKER = ".bnn2fpga-build"
STATE_FILE = "build_state.json"
STEPS_DIR = "steps"
REPORT_DIR = "report"
REPORT_JSON = "report.json"
VERIFY_JSON = "verify.json"
QONNX_DIR = "qonnx"
QONNX_MODEL = "model.onnx"
FINN_DIR = "finn"
FINN_LOG = "finn.log"
DATAFLOW_PARENT = "dataflow_parent.onnx"
FOLDING_JSON = "folding.json"
ECP5_DIR = "ecp5"  # the open ECP5 flow's sources, logs and nextpnr report
BITSTREAM = "bitstream.bit"  # the open ECP5 flow's bitstream


def report_dir(out_dir: Path) -> Path:
    """The report folder of a build."""
    return Path(out_dir) / REPORT_DIR


def steps_dir(out_dir: Path) -> Path:
    """The folder of the model saved after every step."""
    return Path(out_dir) / STEPS_DIR


def qonnx_model(out_dir: Path) -> Path:
    """The build's own copy of the exported QONNX model."""
    return Path(out_dir) / QONNX_DIR / QONNX_MODEL


def is_build_dir(path: Path) -> bool:
    """True when ``path`` is a folder this tool created (marker, or a legacy build state)."""
    path = Path(path)
    if (path / MARKER).is_file():
        return True
    try:
        state = json.loads((path / STATE_FILE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(state, dict) and isinstance(state.get("keys"), dict)


def check_out_dir(path: Path) -> None:
    """Refuse an output folder the tool must not write into; touches nothing."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise UserError(f"--out {path}: a broken symbolic link")
    if path.exists() and not path.is_dir():
        raise UserError(f"--out {path} is a file, not a folder")
    if path.is_dir() and any(path.iterdir()) and not is_build_dir(path):
        raise UserError(
            f"--out {path} is a folder that was not made by bnn2fpga and is not empty; "
            "refusing to write into it (give a new or empty folder)"
        )


def claim(path: Path) -> None:
    """Create the build folder (after :func:`check_out_dir`) and mark it as the tool's."""
    check_out_dir(path)
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    marker = path / MARKER
    if not marker.exists():
        marker.write_text(json.dumps({"tool": "bnn2fpga", "created": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                   time.gmtime())}) + "\n")

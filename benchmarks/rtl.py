"""``make bench`` section: the RTL of a zoo model under Verilator and Yosys, against FINN's estimates."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

# Layers with more XNOR lanes than this take minutes to hours as one design in WebAssembly
# Yosys; they are counted per PE (flows/synth.py), and one of them is also synthesized whole
# as a cross-check of that count.
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
    from bnn2fpga.flows.synth import PER_PE_LANES, collect, default_workers, plan, run_jobs
    from bnn2fpga.hw.sim.graph_sim import build_design, measure_layers, run_frames

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
        # Every layer (wide ones per PE), in parallel and through the synthesis cache.
        jobs, _ = plan(model, Path(tmp) / "synth", per_pe_lanes=PER_PE_LANES)
        pes = {n.name: getCustomOp(n).get_nodeattr("PE") for n in model.graph.node
               if any(j.layer == n.name and j.part != "whole" for j in jobs)}
        synth = collect(jobs, run_jobs(jobs, default_workers()), pes)
        cross = _cross_check(model, synth, pes, synth_lanes, Path(tmp) / "whole", log)
        layers = []
        for node, layer in zip(model.graph.node, design.layers):
            row = {"name": node.name, "op": layer.op, "est_cycles": est[node.name]["cycles"],
                   "sim_cycles": per_layer[node.name]["sim_cycles"], "est_LUT": est[node.name]["LUT"],
                   "est_BRAM_18K": est[node.name]["BRAM_18K"]}
            res = synth.get(node.name, {"error": "no RTL"})
            if "error" not in res:
                row.update({f"yosys_{k}": res[k] for k in ("LUT", "FF", "BRAM_18K", "DSP")})
                row.update(yosys_s=res["seconds"], yosys_levels=res["levels"], yosys_method=res["method"])
                log(f"rtl {node.name}: {row['sim_cycles']:,.0f} cycles (est {row['est_cycles']:,}), Yosys "
                    f"{res['LUT']:,} LUT / {res['BRAM_18K']} BRAM18 (est {row['est_LUT']:,.0f} / "
                    f"{row['est_BRAM_18K']:g}), {res['levels']} levels [{res['method']}]")
            else:
                row["yosys_skipped"] = res["error"][:100]
            layers.append(row)
        design.close()
    synthed = [r for r in layers if "yosys_LUT" in r]
    return {
        "model": model_name, "frames": frames, "layers_stitched": len(design.layers),
        "cycles_per_frame": run.cycles_per_frame, "est_max_cycles": rep["performance"]["max_cycles"],
        "bottleneck": rep["performance"]["bottleneck"], "latency_cycles": run.latency_cycles,
        "sim_frames_per_s": run.frames_per_second, "sim_cycles_per_s": run.cycles / run.seconds,
        "compile_s": compile_s, "layers": layers,
        "per_pe_cross_check": cross,
        "yosys": {"layers": len(synthed), "of": len(layers),
                  **{k: sum(r[f"yosys_{k}"] for r in synthed) for k in ("LUT", "FF", "BRAM_18K", "DSP")},
                  "est_LUT": sum(r["est_LUT"] for r in synthed), "est_BRAM_18K": sum(r["est_BRAM_18K"] for r in synthed)},
    }


def _cross_check(model, synth: dict, pes: dict, max_lanes: int, workdir: Path, log) -> dict | None:
    """The smallest per-PE-counted layer (at most ``max_lanes`` lanes) synthesized whole too: the difference."""
    from qonnx.custom_op.registry import getCustomOp

    from bnn2fpga.flows.synth import Job, collect, run_jobs
    from bnn2fpga.hw.rtlgen.from_finn import layer_for

    def lanes(name):
        inst = getCustomOp(model.get_node_from_name(name))
        return inst.get_nodeattr("PE") * inst.get_nodeattr("SIMD")

    names = sorted((n for n in pes if "error" not in synth.get(n, {"error": 1}) and lanes(n) <= max_lanes), key=lanes)
    if not names:
        return None
    name = names[0]
    node = model.get_node_from_name(name)
    job = Job(name, "whole", layer_for(model, node, workdir), lanes(name))
    whole = collect([job], run_jobs([job], 1), {})[name]
    if "error" in whole:
        return {"layer": name, "error": whole["error"]}
    per = synth[name]
    out = {"layer": name, "lanes": lanes(name), "PE": pes[name], "whole_seconds": whole["seconds"],
           **{f"{k}_whole": whole[k] for k in ("LUT", "FF", "BRAM_18K", "levels")},
           **{f"{k}_per_pe": per[k] for k in ("LUT", "FF", "BRAM_18K", "levels")}}
    out["LUT_diff"] = (per["LUT"] - whole["LUT"]) / max(1, whole["LUT"])
    log(f"rtl per-PE cross-check {name} ({out['lanes']} lanes): whole {whole['LUT']:,} LUT / {whole['FF']:,} FF / "
        f"{whole['BRAM_18K']} BRAM18, per-PE x {pes[name]} {per['LUT']:,} / {per['FF']:,} / {per['BRAM_18K']} "
        f"({out['LUT_diff']:+.1%} LUT)")
    return out


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
        + (f" (not synthesized: {', '.join(skipped)})." if skipped else ".")
        + _cross_check_line(r.get("per_pe_cross_check")),
        "",
        "| layer | RTL | cycles est. | cycles sim. | LUT est. | LUT Yosys | BRAM18 est. | BRAM18 Yosys | levels |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for x in r["layers"]:
        yl = f"{x['yosys_LUT']:,}" if "yosys_LUT" in x else "—"
        if x.get("yosys_method", "whole") != "whole":
            yl += f" ({x['yosys_method']})"
        yb = f"{x['yosys_BRAM_18K']}" if "yosys_LUT" in x else "—"
        lv = f"{x['yosys_levels']}" if "yosys_levels" in x else "—"
        lines.append(f"| {x['name']} | {x['op']} | {x['est_cycles']:,} | {x['sim_cycles']:,.0f} | "
                     f"{x['est_LUT']:,.0f} | {yl} | {x['est_BRAM_18K']:g} | {yb} | {lv} |")
    return lines


def _cross_check_line(c: dict | None) -> str:
    if not c or "error" in c:
        return ""
    from bnn2fpga.flows.synth import PER_PE_LANES

    return (f" MVAU layers wider than {PER_PE_LANES} lanes are counted per PE; cross-check on "
            f"{c['layer']} ({c['lanes']} lanes, PE {c['PE']}): per-PE {c['LUT_per_pe']:,} LUT, {c['FF_per_pe']:,} FF, "
            f"{c['BRAM_18K_per_pe']} BRAM18 against {c['LUT_whole']:,} / {c['FF_whole']:,} / {c['BRAM_18K_whole']} "
            f"whole ({c['LUT_diff']:+.1%} LUT).")

"""The build report: ``report/report.json`` for machines and ``report/report.html`` for people."""
from __future__ import annotations

import json
import time
from pathlib import Path

from bnn2fpga.flows import ops
from bnn2fpga.flows.build_dir import REPORT_JSON, report_dir
from bnn2fpga.errors import UserError
from bnn2fpga.flows.report_html import render_html


def layer_table(model, board) -> list[dict]:
    """Per-layer op, folding, cycles and resources, in dataflow order."""
    ops.prepare()
    from finn.analysis.fpgadataflow.exp_cycles_per_layer import exp_cycles_per_layer
    from qonnx.custom_op.registry import getCustomOp

    from bnn2fpga.flows.folding import estimate_resources

    cycles = model.analysis(exp_cycles_per_layer)
    res = estimate_resources(model, board)
    rows = []
    for node in model.graph.node:
        inst = getCustomOp(node)
        attr = lambda name: inst.get_nodeattr(name) if name in inst.get_nodeattr_types() else None  # noqa: E731
        r = res.get(node.name, {})
        rows.append({
            "name": node.name, "op": node.op_type, "PE": attr("PE"), "SIMD": attr("SIMD"),
            "cycles": int(cycles.get(node.name, 0)),
            "LUT": float(r.get("LUT", 0)), "BRAM_18K": float(r.get("BRAM_18K", 0)),
            "URAM": float(r.get("URAM", 0)), "DSP": float(r.get("DSP", 0)),
        })
    return rows


def write_estimate(model, ctx) -> Path:
    """Write report.json (and the HTML) from the estimate step's model and FINN's reports."""
    board = ctx.cfg.board
    perf_file = ctx.report_dir / "estimate_network_performance.json"
    perf = json.loads(perf_file.read_text()) if perf_file.exists() else {}
    layers = layer_table(model, board)
    totals = {k: sum(row[k] for row in layers) for k in ("LUT", "BRAM_18K", "URAM", "DSP")}
    report = load_report(ctx.out_dir, missing_ok=True, replace_corrupt=True)
    report.update({
        "model": ctx.cfg.source.label,
        "board": {"name": board.name, "part": board.part, "clock_mhz": board.clock_mhz,
                  "resources": board.resources.as_dict()},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "folding": _folding_section(ctx),
        "layers": layers,
        "totals": totals,
        "performance": {
            "max_cycles": perf.get("max_cycles"),
            "bottleneck": perf.get("max_cycles_node_name"),
            "critical_path_cycles": perf.get("critical_path_cycles"),
            "fps": perf.get("estimated_throughput_fps"),
            "latency_ms": perf["estimated_latency_ns"] / 1e6 if "estimated_latency_ns" in perf else None,
        },
        "fit": ctx.info.get("fit"),
        "host": {"input_quant": ctx.info.get("input_quant"), "pre": ctx.info.get("host_pre"),
                 "post": ctx.info.get("host_post")},
    })
    return save_report(ctx.out_dir, report)


def _folding_section(ctx) -> dict:
    fold = {k: v for k, v in ctx.info.get("folding", {}).items() if k != "tried"}
    labels = {"search": "search (fastest that fits)", "fps": "FPS target", "file": "folding file"}
    source = labels.get(fold.get("mode"), fold.get("mode"))
    if fold.get("mode") == "file":
        source = f"{source} {Path(fold.get('file', '')).name}"
    return {**fold, "source": source, "target_fps": ctx.cfg.target.fps, "ceiling": ctx.cfg.target.ceiling}


def load_report(out_dir: Path, missing_ok: bool = False, replace_corrupt: bool = False) -> dict:
    """The build's report.json as a dict.

    The report is the tool's own output: while a build adds to it (``replace_corrupt``),
    an unreadable one is started afresh; when a user asks to read it, it is an error
    naming the file.
    """
    path = report_dir(out_dir) / REPORT_JSON
    if not path.exists():
        if missing_ok:
            return {}
        raise UserError(f"no report in {out_dir} (run 'bnn2fpga build' or 'bnn2fpga verify' first)")
    try:
        report = json.loads(path.read_text())
        problem = None if isinstance(report, dict) else f"holds a JSON {type(report).__name__}, not an object"
    except (ValueError, UnicodeDecodeError):
        problem = "is not valid JSON"
    if problem is None:
        return report
    if replace_corrupt:
        return {}
    raise UserError(f"{path} {problem} (rebuild to rewrite it)")


def save_report(out_dir: Path, report: dict) -> Path:
    """Write report.json atomically and re-render the HTML page; returns the HTML path."""
    d = report_dir(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / (REPORT_JSON + ".tmp")
    tmp.write_text(json.dumps(report, indent=2, default=str))
    tmp.replace(d / REPORT_JSON)
    return render_html(report, d)


def add_section(out_dir: Path, key: str, value) -> Path:
    """Set one top-level section (e.g. 'verification', 'steps', 'notes') and re-render."""
    report = load_report(out_dir, missing_ok=True, replace_corrupt=True)
    report[key] = value
    return save_report(out_dir, report)


def add_yosys(out_dir: Path, per_layer: dict[str, dict], tool: str) -> Path:
    """Add Yosys' resource counts beside FINN's estimates: ``yosys_*`` per layer, a 'yosys' section."""
    report = load_report(out_dir, missing_ok=True, replace_corrupt=True)
    keys = ("LUT", "FF", "BRAM_18K", "DSP")
    for row in report.get("layers", []):
        r = per_layer.get(row.get("name"), {})
        for k in keys:
            if k in r:
                row[f"yosys_{k}"] = r[k]
    done = {n: r for n, r in per_layer.items() if "error" not in r}
    report["yosys"] = {
        "tool": tool, "layers": per_layer,
        "totals": {k: sum(r[k] for r in done.values()) for k in keys},
        "estimate_totals": {k: sum(row.get(k, 0) for row in report.get("layers", []) if row.get("name") in done)
                            for k in ("LUT", "BRAM_18K", "DSP")},
    }
    return save_report(out_dir, report)


"""The build report: ``report/report.json`` for machines and ``report/report.html`` for people.

This module is the report's one writer: every section goes through the schema in
``report_schema`` on its way in and out, so a reader can trust the file's shape.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from pydantic import ValidationError

from bnn2fpga.errors import UserError
from bnn2fpga.flows import ops
from bnn2fpga.flows.build_dir import REPORT_JSON, report_dir
from bnn2fpga.flows.report_html import render_html
from bnn2fpga.flows.report_schema import (
    BoardResources, BoardSection, FoldingSection, HostSection, LayerRow, PerformanceSection, Report,
    SECTIONS, TotalsSection, YosysSection,
)
from bnn2fpga.hw.synth.yosys import judged_levels

_RESOURCES = ("LUT", "BRAM_18K", "URAM", "DSP")
_YOSYS_KEYS = ("LUT", "FF", "BRAM_18K", "DSP")


def layer_table(model, board) -> list[LayerRow]:
    """Per-layer op, folding, cycles and resources, in dataflow order."""
    ops.prepare()
    from finn.analysis.fpgadataflow.exp_cycles_per_layer import exp_cycles_per_layer
    from qonnx.custom_op.registry import getCustomOp

    from bnn2fpga.flows.folding import estimate_resources, price_layers

    cycles = model.analysis(exp_cycles_per_layer)
    res = estimate_resources(model, board)
    priced = price_layers(model, board, calibrated=True)
    rows = []
    for node in model.graph.node:
        inst = getCustomOp(node)
        attr = lambda name: inst.get_nodeattr(name) if name in inst.get_nodeattr_types() else None  # noqa: E731
        r, p = res.get(node.name, {}), priced.get(node.name, {})
        cal = {f"calibrated_{k}": round(p[k], 1) for k in ("LUT", "FF", "BRAM_18K")
               if p.get("model") == "calibrated"}
        rows.append(LayerRow(
            name=node.name, op=node.op_type, PE=attr("PE"), SIMD=attr("SIMD"),
            cycles=int(cycles.get(node.name, 0)), **{k: float(r.get(k, 0)) for k in _RESOURCES},
            priced_by=p.get("model"), **cal,
        ))
    return rows


def write_estimate(model, ctx) -> Path:
    """Write report.json (and the HTML) from the estimate step's model and FINN's reports."""
    board = ctx.cfg.board
    perf_file = ctx.report_dir / "estimate_network_performance.json"
    perf = json.loads(perf_file.read_text()) if perf_file.exists() else {}
    layers = layer_table(model, board)
    report = read_report(ctx.out_dir, missing_ok=True, replace_corrupt=True)
    report.model = ctx.cfg.source.label
    report.board = BoardSection(name=board.name, part=board.part, clock_mhz=board.clock_mhz,
                                resources=BoardResources(**board.resources.as_dict()))
    report.created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    report.folding = _folding_section(ctx)
    report.layers = layers
    report.totals = TotalsSection(**{k: sum(getattr(row, k) for row in layers) for k in _RESOURCES})
    report.performance = PerformanceSection(
        max_cycles=perf.get("max_cycles"),
        bottleneck=perf.get("max_cycles_node_name"),
        critical_path_cycles=perf.get("critical_path_cycles"),
        fps=perf.get("estimated_throughput_fps"),
        latency_ms=perf["estimated_latency_ns"] / 1e6 if "estimated_latency_ns" in perf else None,
    )
    report.fit = ctx.info.get("fit")
    report.host = HostSection(input_quant=ctx.info.get("input_quant"), pre=ctx.info.get("host_pre"),
                              post=ctx.info.get("host_post"))
    return save_report(ctx.out_dir, report)


def _folding_section(ctx) -> FoldingSection:
    # The search trace ("tried") can run to hundreds of entries; build_state keeps it.
    fold = {k: v for k, v in ctx.info.get("folding", {}).items() if k != "tried"}
    labels = {"search": "search (fastest that fits)", "fps": "FPS target", "file": "folding file",
              "serial": "the serial link's rate (serial-fed board)"}
    source = labels.get(fold.get("mode"), fold.get("mode"))
    if fold.get("mode") == "file":
        source = f"{source} {Path(fold.get('file', '')).name}"
    return FoldingSection.model_validate(
        {**fold, "source": source, "target_fps": ctx.cfg.target.fps, "ceiling": ctx.cfg.target.ceiling,
         "margin": ctx.cfg.target.margin})


def _printable(text: str) -> str:
    # Field names in an error come from the file; keep control characters off the terminal.
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _invalid(error: ValidationError) -> str:
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "(top level)"
    more = error.error_count() - 1
    extra = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"field '{_printable(field)}': {_printable(first['msg'])}{extra}"


def read_report(out_dir: Path, missing_ok: bool = False, replace_corrupt: bool = False) -> Report:
    """The build's report.json, validated, as a typed ``Report``.

    The report is the tool's own output: while a build adds to it (``replace_corrupt``),
    an unreadable or invalid one is started afresh; when a user asks to read it, it is an
    error naming the file and the field.
    """
    path = report_dir(out_dir) / REPORT_JSON
    if not path.exists():
        if missing_ok:
            return Report()
        raise UserError(f"no report in {out_dir} (run 'bnn2fpga build' or 'bnn2fpga verify' first)")
    try:
        data = json.loads(path.read_text())
        problem = None if isinstance(data, dict) else f"holds a JSON {type(data).__name__}, not an object"
    except (ValueError, UnicodeDecodeError):
        problem = "is not valid JSON"
    if problem is None:
        try:
            return Report.model_validate(data)
        except ValidationError as e:
            problem = f"does not match the report schema: {_invalid(e)}"
    if replace_corrupt:
        return Report()
    raise UserError(f"{path} {problem} (rebuild to rewrite it)")


def load_report(out_dir: Path, missing_ok: bool = False, replace_corrupt: bool = False) -> dict:
    """The build's report.json as a plain dict, validated like ``read_report``.

    For readers that index the JSON (benchmarks, scripts); code that writes uses ``read_report``.
    """
    return read_report(out_dir, missing_ok, replace_corrupt).to_json()


def save_report(out_dir: Path, report: Report | dict) -> Path:
    """Validate, write report.json atomically and re-render the HTML page; returns the HTML path."""
    if not isinstance(report, Report):
        report = Report.model_validate(report)
    d = report_dir(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / (REPORT_JSON + ".tmp")
    tmp.write_text(json.dumps(report.to_json(), indent=2, default=str))
    tmp.replace(d / REPORT_JSON)
    return render_html(report, d)


def add_section(out_dir: Path, key: str, value) -> Path:
    """Set one top-level section (e.g. 'verification', 'steps', 'notes') and re-render.

    ``value`` is the section's model (or a dict / list that validates as one).
    """
    if key not in SECTIONS:
        # A new section belongs in report_schema first, where readers will look for it.
        raise ValueError(f"unknown report section {key!r}; known: {', '.join(SECTIONS)}")
    report = read_report(out_dir, missing_ok=True, replace_corrupt=True)
    setattr(report, key, value)  # validated on assignment
    return save_report(out_dir, report)


def add_fifos(out_dir: Path, sizing: dict) -> Path:
    """Set the 'fifos' section (the fifo_sizing step's depths and their cost) and re-render."""
    return add_section(out_dir, "fifos", sizing)


def add_yosys(out_dir: Path, per_layer: dict[str, dict], tool: str, level_limit: int | None = None,
              merge: bool = False, **run) -> Path:
    """Add Yosys' counts beside FINN's estimates: ``yosys_*`` per layer, a 'yosys' section.

    ``merge`` keeps the section's other layers (a run on some layers only); ``run`` holds the
    run's facts for the section (clock_mhz, seconds, yosys_runs, workers).
    """
    report = read_report(out_dir, missing_ok=True, replace_corrupt=True)
    layers = report.layers or []
    per_layer = {n: dict(r) for n, r in per_layer.items()}  # flagged below; the caller's stay as they are
    if merge and report.yosys:
        known = {row.name for row in layers}
        per_layer = {**{n: r.model_dump(exclude_none=True) for n, r in report.yosys.layers.items() if n in known},
                     **per_layer}
    for row in layers:
        counts = per_layer.get(row.name, {})
        for k in _YOSYS_KEYS:
            if k in counts:
                setattr(row, f"yosys_{k}", counts[k])
    done = {n: r for n, r in per_layer.items() if "error" not in r}
    # Judged as mapped for delay where the area-mapped netlist was over the limit (flows/synth.py).
    deep = [n for n, r in done.items() if level_limit is not None and judged_levels(r) > level_limit]
    for name in done:
        if level_limit is not None and "levels" in done[name]:
            done[name]["too_deep"] = name in deep
    res = report.board.resources if report.board else None
    report.yosys = YosysSection(
        tool=tool, layers=per_layer,
        totals={k: sum(r.get(k, 0) for r in done.values()) for k in (*_YOSYS_KEYS, "LUT_logic", "LUT_mem")},
        estimate_totals={k: sum(getattr(row, k) or 0 for row in layers if row.name in done)
                         for k in ("LUT", "BRAM_18K", "DSP")},
        board_totals={k: v for k, v in {"LUT": res.LUT, "FF": res.FF, "DSP": res.DSP,
                                          "BRAM_18K": 2 * res.BRAM36 if res.BRAM36 is not None else None}.items()
                      if v is not None} if res else None,
        level_limit=level_limit, too_deep=deep if level_limit is not None else None,
        **{k: v for k, v in run.items() if v is not None},
    )
    return save_report(out_dir, report)

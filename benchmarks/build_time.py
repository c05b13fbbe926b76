"""``make bench-build-time``: how the Vivado-free build's time grows with the network (issue #19).

Builds graphs of growing size to ``estimate`` (zoo models, and reduced-width PresB-Nets
with more and more blocks) and writes the seconds of every step, the node count of the
QONNX export and of every step's result, and seconds per node to
``OUT/build_time.json`` and ``OUT/build_time.md``. The scaling exponent ``k`` of
``time ~ nodes**k`` is fitted per step (least squares on logs) over the graphs measured,
so a step that turns quadratic again shows up as k near 2.

Graphs (``--graphs``): any deployable zoo model name, or ``presb-lite-B1B2B3B4`` for a
PresB-Net at ``presb-net-18-lite``'s widths with that many blocks per stage
(``presb-lite-2222`` is ``presb-net-18-lite``, ~730 nodes, the slowest by far). A graph is built
for the PYNQ-Z2 unless it names a board: ``presb-net-18-deploy@zcu104``.
``--keep DIR`` keeps every build folder (to compare step models between two versions
of the flow with ``--compare``).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import sys
import tempfile
import time
from pathlib import Path

#: Built once untimed before the timed graphs (the first not among them).
WARM_UP_GRAPHS = ("cbcnn-mnist", "cbcnn-gtsrb", "blinknet-hybrid")

DEFAULT_GRAPHS = ("cbcnn-gtsrb", "blinknet-hybrid", "dra-bnn-waste", "presb-lite-1111", "presb-lite-1121",
                  "presb-lite-1221", "presb-lite-2222", "presb-net-18-deploy@zcu104")


def _quiet():
    from bnn2fpga.flows.cli import _finn_output_to

    return _finn_output_to(Path(tempfile.gettempdir()) / "bnn2fpga-bench-finn.log")


def export_graph(name: str, onnx: Path) -> Path:
    """Export graph ``name`` (zoo model or ``presb-lite-XXXX``) to ``onnx`` with calibrated random weights."""
    m = re.fullmatch(r"presb-lite-(\d{4})", name)
    if m is None:
        from bnn2fpga.quantize.export import export_model

        return export_model(name, onnx).onnx
    import dataclasses

    import torch

    from bnn2fpga.quantize.export import calibrate_untrained, export_qonnx
    from bnn2fpga.quantize.models.presb_net import LITE, PresBNet
    from bnn2fpga.quantize.registry import get_spec

    cfg = dataclasses.replace(LITE, blocks=tuple(int(c) for c in m.group(1)))
    spec = dataclasses.replace(get_spec("presb-net-18-lite"), name=name, factory=lambda: PresBNet(cfg))
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = PresBNet(cfg)
        calibrate_untrained(model, spec)
    return export_qonnx(model, spec, onnx, {"trained": False}).onnx


def _nodes(path: Path) -> int:
    import onnx

    return len(onnx.load(str(path), load_external_data=False).graph.node)


def split_graph(graph: str) -> tuple[str, str]:
    """``name@board`` -> (name, board); the board defaults to the PYNQ-Z2."""
    name, _, board = graph.partition("@")
    return name, board or "pynq-z2"


def check_graph(graph: str) -> None:
    """ValueError naming ``graph`` when its model or board is unknown (before any build starts)."""
    from bnn2fpga.boards import get_board
    from bnn2fpga.quantize.registry import get_spec

    name, board = split_graph(graph)
    try:
        if not re.fullmatch(r"presb-lite-\d{4}", name):
            get_spec(name)
        get_board(board)
    except Exception as e:  # noqa: BLE001 - the registries' own messages list the valid names
        raise ValueError(f"--graphs {graph}: {e}") from None


def bench_graph(graph: str, work: Path, until: str = "estimate") -> dict:
    """Export ``graph`` (``name[@board]``), build it to ``until``; seconds per step and node counts."""
    from bnn2fpga.flows.config import make_config
    from bnn2fpga.flows.runner import run_build

    name, board = split_graph(graph)
    onnx = export_graph(name, work / "qonnx" / f"{name}.onnx")
    cpu: dict[str, float] = {}
    t0 = time.time()
    with _quiet(), _cpu_per_step(cpu):
        result = run_build(make_config(onnx=onnx, board=board, out_dir=work / "build", until=until),
                           log=lambda m: None)
    total = time.time() - t0
    nodes = _nodes(onnx)
    step_nodes = {s: _nodes(result.model_path(s)) for s in result.done}
    return {"graph": graph, "nodes": nodes, "step_nodes": step_nodes, "times": dict(result.times),
            "cpu": {k: round(v, 2) for k, v in cpu.items()}, "total_s": total, "s_per_node": total / nodes}


@contextlib.contextmanager
def _cpu_per_step(into: dict):
    """Record the CPU seconds (user + sys, this process) of each step's function into ``into``.

    On a shared machine wall time depends on the other jobs; CPU time much less.
    """
    import dataclasses

    from bnn2fpga.flows import steps

    def timed(name, fn):
        def run(model, ctx):
            c0 = time.process_time()
            try:
                return fn(model, ctx)
            finally:
                into[name] = into.get(name, 0.0) + time.process_time() - c0
        return run

    orig = list(steps.STEPS)
    steps.STEPS[:] = [dataclasses.replace(s, fn=timed(s.name, s.fn)) for s in orig]
    try:
        yield
    finally:
        steps.STEPS[:] = orig


def fit_exponents(rows: list[dict]) -> dict:
    """Per step (and total): k in time ~ nodes**k, least squares on logs (needs >= 2 graphs > 0.05 s).

    Graphs built for another board (``name@board``) are left out: at the same node count a
    full-width network costs more by its tensors, not by its nodes.
    """
    rows = [r for r in rows if "@" not in r["graph"]]
    steps = sorted({s for r in rows for s in r["times"]}) + ["total"]
    out = {}
    for s in steps:
        pts = [(math.log(r["nodes"]), math.log(r["total_s"] if s == "total" else r["times"].get(s, 0)))
               for r in rows if (r["total_s"] if s == "total" else r["times"].get(s, 0)) > 0.05]
        if len(pts) < 2 or len({x for x, _ in pts}) < 2:
            continue
        mx, my = sum(x for x, _ in pts) / len(pts), sum(y for _, y in pts) / len(pts)
        out[s] = sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)
    return out


#: Steps shown as columns (the slow ones; the rest go into "other").
COLUMNS = ("export", "qonnx_to_finn", "tidy_up", "streamline", "convert_to_hw", "dataflow_partition", "folding",
           "estimate")


def markdown(results: dict) -> str:
    """The table: one row per graph, seconds per step, total and seconds per node; the fitted exponents."""
    rows = sorted(results["graphs"], key=lambda r: r["nodes"])
    cols = [c for c in COLUMNS if any(c in r["times"] for r in rows)]
    lines = ["| graph | nodes | " + " | ".join(cols) + " | other | total s | s/node |",
             "| --- | ---: | " + " | ".join("---:" for _ in cols) + " | ---: | ---: | ---: |"]
    for r in rows:
        other = sum(v for k, v in r["times"].items() if k not in cols)
        lines.append(f"| {r['graph']} | {r['nodes']} | " + " | ".join(f"{r['times'].get(c, 0):.1f}" for c in cols)
                     + f" | {other:.1f} | {r['total_s']:.1f} | {r['s_per_node']:.3f} |")
    k = results.get("exponents", {})
    if k:
        lines += ["", "Fitted k in time ~ nodes^k: " + ", ".join(f"{s} {v:.2f}" for s, v in k.items()) + "."]
    w = results.get("warm_up")
    warm = f"; {w['graph']} built once untimed first ({w['s']} s: the process's imports)" if w else ""
    lines.append(f"Measured {results['date']} on {results['machine']} (nodes: QONNX export){warm}.")
    return "\n".join(lines)


def before_after(before: dict, after: dict) -> str:
    """One row per graph measured in both runs: CPU seconds per step before -> after, total and s/node.

    CPU seconds of the build process, not wall time: the two runs may share the machine differently.
    """
    old = {r["graph"]: r for r in before["graphs"]}
    rows = sorted((r for r in after["graphs"] if r["graph"] in old), key=lambda r: r["nodes"])
    cols = [c for c in COLUMNS if c != "export" and any(c in r["cpu"] for r in rows)]
    lines = ["| graph | nodes | " + " | ".join(cols) + " | other | total CPU s | CPU s/node |",
             "| --- | ---: | " + " | ".join("---:" for _ in cols) + " | ---: | ---: | ---: |"]

    def cells(r):
        other = sum(v for k, v in r["cpu"].items() if k not in cols)
        total = sum(r["cpu"].values())
        return [r["cpu"].get(c, 0.0) for c in cols] + [other, total, total / r["nodes"]]

    for r in rows:
        b, a = cells(old[r["graph"]]), cells(r)
        fmt = [f"{x:.1f} -> {y:.1f}" for x, y in zip(b[:-1], a[:-1])] + [f"{b[-1]:.3f} -> {a[-1]:.3f}"]
        lines.append(f"| {r['graph']} | {r['nodes']} | " + " | ".join(fmt) + " |")
    lines.append(f"Before: {before['date']}, {before.get('code', '?')}; after: {after['date']}, "
                 f"{after.get('code', '?')}; CPU seconds of the build process per step.")
    return "\n".join(lines)


def load_run(path: Path) -> dict:
    """A ``build_time.json`` with what ``before_after`` reads checked; ValueError naming the file otherwise."""
    try:
        run = json.loads(path.read_text())
        for r in run["graphs"]:
            if not (isinstance(r["graph"], str) and isinstance(r["nodes"], int) and r["nodes"] > 0
                    and isinstance(r["cpu"], dict)
                    and all(isinstance(v, (int, float)) for v in r["cpu"].values())):
                raise TypeError(f"graph entry {r.get('graph')!r} has the wrong types or no nodes")
        run.setdefault("date", "?")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a build_time.json ({type(e).__name__}: {e})") from None
    return run


def _canonical(m):
    """The model with its inner tensors renamed t0, t1, ... in order of first use: some FINN/QONNX passes name
    new tensors with random strings, which differ from build to build of the very same graph."""
    g = m.graph
    keep = {t.name for t in list(g.input) + list(g.output)}
    names: dict[str, str] = {}
    for n in g.node:
        for t in list(n.input) + list(n.output):
            if t and t not in keep and t not in names:
                names[t] = f"t{len(names)}"
    ren = lambda t: names.get(t, t)  # noqa: E731
    for n in g.node:
        n.input[:] = [ren(t) for t in n.input]
        n.output[:] = [ren(t) for t in n.output]
    for coll in (g.initializer, g.value_info):
        for x in coll:
            x.name = ren(x.name)
    for a in g.quantization_annotation:
        a.tensor_name = ren(a.tensor_name)
    return m


def compare_models(f: Path, g: Path) -> list[str]:
    """Differences between two ONNX files: nodes (ops, names, wiring, attributes), initializers, datatypes, shapes\n    (inner tensor names compared up to a consistent renaming, see ``_canonical``)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    ma, mb = _canonical(onnx.load(str(f))), _canonical(onnx.load(str(g)))
    na = [(n.op_type, n.domain, list(n.input), list(n.output), n.name) for n in ma.graph.node]
    nb = [(n.op_type, n.domain, list(n.input), list(n.output), n.name) for n in mb.graph.node]
    if na != nb:
        first = next((i for i, (x, y) in enumerate(zip(na, nb)) if x != y), min(len(na), len(nb)))
        return [f"nodes differ ({len(na)} vs {len(nb)}; first at #{first})"]
    diffs = []
    for x, y in zip(ma.graph.node, mb.graph.node):
        if sorted(a.SerializeToString() for a in x.attribute) != sorted(a.SerializeToString() for a in y.attribute):
            diffs.append(f"attributes of {x.name} differ")
            break
    ia = {i.name: numpy_helper.to_array(i) for i in ma.graph.initializer}
    ib = {i.name: numpy_helper.to_array(i) for i in mb.graph.initializer}
    if ia.keys() != ib.keys() or any(ia[k].dtype != ib[k].dtype or not np.array_equal(ia[k], ib[k]) for k in ia):
        diffs.append("initializers differ")
    for what, get in (("datatype annotations", lambda m: m.graph.quantization_annotation),
                      ("shapes (value_info)", lambda m: list(m.graph.value_info) + list(m.graph.input)
                       + list(m.graph.output))):
        if sorted(x.SerializeToString() for x in get(ma)) != sorted(x.SerializeToString() for x in get(mb)):
            diffs.append(f"{what} differ")
    if ma.graph.SerializeToString(deterministic=True) != mb.graph.SerializeToString(deterministic=True) and not diffs:
        for n in list(ma.graph.node) + list(mb.graph.node):
            del n.metadata_props[:]
        if ma.graph.SerializeToString(deterministic=True) == mb.graph.SerializeToString(deterministic=True):
            # torch's export notes each node's Python stack trace: another checkout, other paths
            diffs.append("node metadata_props only (e.g. the exporter's stack traces)")
        else:
            diffs.append("graphs differ in order of value_info/annotations only")
    return diffs


def compare_builds(a: Path, b: Path) -> list[str]:
    """Differences between the step models of two --keep folders (same graphs)."""
    diffs = []
    for d in sorted(p for p in a.iterdir() if p.is_dir()):
        for f in sorted((d / "build" / "steps").glob("*.onnx")):
            g = b / d.name / "build" / "steps" / f.name
            if not g.exists():
                diffs.append(f"{d.name}/{f.name}: missing in {b}")
                continue
            diffs += [f"{d.name}/{f.name}: {x}" for x in compare_models(f, g)]
    return diffs


def main(argv=None) -> int:
    """Build each graph to estimate and write the table."""
    from bnn2fpga.hw import finn_env

    ap = argparse.ArgumentParser(prog="make bench-build-time")
    ap.add_argument("--out", default="build/bench-build-time")
    ap.add_argument("--graphs", nargs="+", default=list(DEFAULT_GRAPHS), metavar="GRAPH",
                    help="zoo models or presb-lite-B1B2B3B4 (presb-lite-2222 = presb-net-18-lite)")
    ap.add_argument("--until", default="estimate")
    ap.add_argument("--no-warm-up", action="store_true",
                    help="time the first graph cold (with the process's one-time imports; by default it is "
                         "built once untimed first)")
    ap.add_argument("--keep", metavar="DIR", help="keep the build folders here (one per graph)")
    ap.add_argument("--code", default="", help="a label for the code measured (e.g. its commit), kept in the JSON")
    ap.add_argument("--before-after", nargs=2, metavar=("BEFORE_JSON", "AFTER_JSON"),
                    help="only print the before/after table of two build_time.json files")
    ap.add_argument("--compare", nargs=2, metavar=("DIR_A", "DIR_B"),
                    help="only compare the step models of two --keep folders; exit 1 on a difference")
    args = ap.parse_args(argv)
    if args.compare:
        diffs = compare_builds(Path(args.compare[0]), Path(args.compare[1]))
        print("\n".join(diffs) if diffs else "step models identical (nodes, attributes, initializers, "
                                             "datatypes, shapes)")
        return 1 if diffs else 0
    if args.before_after:
        try:
            runs = [load_run(Path(f)) for f in args.before_after]
        except ValueError as e:
            print(f"make bench-build-time: {e}", file=sys.stderr)
            return 2
        print(before_after(*runs))
        return 0
    try:
        for graph in args.graphs:
            check_graph(graph)
    except ValueError as e:
        print(f"make bench-build-time: {e}", file=sys.stderr)
        return 2
    finn_env.prepare()
    log = lambda m: print(m, flush=True)  # noqa: E731
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {"date": time.strftime("%Y-%m-%d"), "machine": f"{os.cpu_count()} cores, no Vivado",
               "code": args.code, "graphs": []}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.no_warm_up:
            # The first build in a process also imports FINN's and QONNX's modules and fills
            # their registries (~2 s here), which no later graph pays: not time per node. A graph
            # that is not timed: the build's own caches (per-layer estimates) would favour it.
            warm = next((g for g in WARM_UP_GRAPHS if g not in args.graphs), None)
            if warm is not None:
                t0 = time.time()
                bench_graph(warm, Path(tmp) / "warm-up", args.until)
                results["warm_up"] = {"graph": warm, "s": round(time.time() - t0, 1)}
                log(f"warm-up: {warm} built once untimed ({results['warm_up']['s']} s)")
        for name in args.graphs:
            work = Path(args.keep) / name if args.keep else Path(tmp) / name
            work.mkdir(parents=True, exist_ok=True)
            row = bench_graph(name, work, args.until)
            results["graphs"].append(row)
            log(f"{name}: {row['nodes']} nodes, {row['total_s']:.1f} s ({row['s_per_node']:.3f} s/node): "
                + ", ".join(f"{k} {v:.1f}" for k, v in row["times"].items())
                + " | CPU s: " + ", ".join(f"{k} {v:.1f}" for k, v in row["cpu"].items()))
            results["exponents"] = fit_exponents(results["graphs"])
            (out / "build_time.json").write_text(json.dumps(results, indent=2))
    table = markdown(results)
    (out / "build_time.md").write_text(table + "\n")
    log(table)
    log(f"wrote {out / 'build_time.json'} and {out / 'build_time.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The ladder's "rtlsim (Verilator)" stage: the folded dataflow graph as RTL, frame by frame.

The host part of the parent graph (before and after the dataflow partition) runs in
numpy as in the other stages; the partition itself runs as our stitched RTL.
"""
from __future__ import annotations

import copy
import logging
from typing import Callable

import numpy as np

logger = logging.getLogger(__name__)

STAGE = "rtlsim (Verilator)"


def around_partition(parent):
    """(host part before, the partition node, host part after) of a dataflow parent; None unless one partition."""
    names = [n.op_type for n in parent.graph.node]
    if names.count("StreamingDataflowPartition") != 1:
        return None
    k = names.index("StreamingDataflowPartition")
    part = parent.graph.node[k]
    pre = _host_part(parent, parent.graph.node[:k], parent.graph.input[0].name, part.input[0])
    post = _host_part(parent, parent.graph.node[k + 1:], part.output[0], parent.graph.output[0].name)
    return pre, part, post


def _host_part(parent, nodes, inp: str, out: str):
    """A model of ``nodes`` of the parent graph from tensor ``inp`` to tensor ``out`` (None: identity)."""
    if not nodes:
        return None
    from onnx import TensorProto, helper
    from qonnx.core.modelwrapper import ModelWrapper

    m = ModelWrapper(copy.deepcopy(parent.model))
    g = m.graph
    keep = [copy.deepcopy(n) for n in nodes]
    del g.node[:]
    g.node.extend(keep)
    kept = [vi for vi in g.value_info if vi.name not in (inp, out)]
    del g.value_info[:]
    g.value_info.extend(kept)
    for vi_list, name in ((g.input, inp), (g.output, out)):
        del vi_list[:]
        vi_list.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, parent.get_tensor_shape(name)))
    return m


def _apply(part, xs: np.ndarray) -> np.ndarray:
    if part is None:
        return xs
    from qonnx.core.onnx_exec import execute_onnx

    iname, oname = part.graph.input[0].name, part.graph.output[0].name
    return np.stack([execute_onnx(part, {iname: xs[i:i + 1]})[oname] for i in range(len(xs))])


def rtlsim_stage(build, host_x: np.ndarray, ref: np.ndarray | None, kinds: list[str],
                 log: Callable[[str], None] | None = None):
    """Run the stage; returns a flows.verify.StageResult ("not run" with the reason when it cannot)."""
    log = log or logger.info
    from bnn2fpga.flows import ops
    from bnn2fpga.hw import finn_env
    from bnn2fpga.flows.runner import hardware_model_file
    from bnn2fpga.flows.compare import StageResult, compare
    from bnn2fpga.hw.rtlgen.from_finn import Unsupported, unsupported
    from bnn2fpga.hw.sim import verilator
    from bnn2fpga.hw.sim.graph_sim import FIFOS_SIZED, build_design, run_frames

    missing = verilator.missing_tools()
    if missing:
        return StageResult(STAGE, "not run", f"needs {' and '.join(missing)}")
    # The FIFO depths the build measured, when it got that far; else the fixed ones.
    path = hardware_model_file(build.out_dir)
    parent_path = build.out_dir / "dataflow_parent.onnx"
    if path is None or not parent_path.exists():
        return StageResult(STAGE, "not run", "build stopped before 'minimize_bit_width'")
    if ref is None:
        return StageResult(STAGE, "not run", "no reference output to compare with")
    ops.prepare()
    from qonnx.core.modelwrapper import ModelWrapper

    model = ModelWrapper(str(path))
    reasons = unsupported(model)
    if reasons:
        return StageResult(STAGE, "not run", "needs RTL for: " + "; ".join(reasons))
    parent = ModelWrapper(str(parent_path))
    split = around_partition(parent)
    if split is None:
        return StageResult(STAGE, "not run", "needs exactly one dataflow partition")
    pre, part, post = split
    log(f"verify: {STAGE} ({len(host_x)} inputs): generating and compiling the RTL")
    try:
        design = build_design(model)
    except Unsupported as e:
        return StageResult(STAGE, "not run", f"needs RTL for: {e}")
    measured = int(model.get_metadata_prop(FIFOS_SIZED) or 0)
    steady = None
    try:
        with finn_env.exact_execution():
            frames = _apply(pre, host_x)
            run = run_frames(design, frames)
            if measured:  # the rate the sizing promised, past the pipeline fill (steady_run)
                from bnn2fpga.flows.fifo_sizing import steady_run

                steady = steady_run(design, model)
            # The host ops after the partition take the partition's output tensor as the parent
            # graph shapes it (frame by frame, batch axis 1).
            shape = design.out_shape if post is None else parent.get_tensor_shape(part.output[0])[1:]
            out = _apply(post, run.out.reshape(len(host_x), *shape))
    except RuntimeError as e:  # the RTL stopped producing outputs: a hardware failure, not a pass
        return StageResult(STAGE, "mismatch", f"RTL simulation did not finish: {e}", 0, len(host_x))
    finally:
        design.close()
    res = compare(STAGE, ref, out, kinds)
    est = max(layer.exp_cycles for layer in design.layers)
    cpf = f"{run.cycles_per_frame:,.0f}" if run.cycles_per_frame else "?"
    fifos = [e for e in design.edges if e.src is not None and e.dst is not None]
    sized = "measured" if measured else "fixed"
    rate = f", {steady[0]:,} in the steady state" if steady else ""
    res.detail += (f"; {len(design.layers)} layers stitched, {len(fifos)} FIFOs ({sized} depths, "
                   f"{sum(e.depth for e in fifos):,} entries), {cpf} cycles/frame measured{rate} "
                   f"(FINN estimate {est:,}{f', {measured:,} with deep FIFOs' if measured else ''}), "
                   f"{run.frames_per_second:,.0f} frames/s simulated")
    slow = throughput_problem(*steady, design, est, measured) if steady else ""
    if slow and res.status == "bit-exact":
        res.status, res.detail = "mismatch", f"{slow}; {res.detail}"
    return res


def throughput_problem(cpf: float | None, run, design, estimate: int, sized_for: int = 0) -> str:
    """Why the design with measured FIFO depths is slower than it should be ("" when it is not).

    ``cpf``: its steady-state cycles per frame (``fifo_sizing.steady_run``), ``run`` that run.
    ``sized_for``: the cycles per frame the FIFO sizing measured with FIFOs too deep to fill
    (0: the depths were not measured, so a slow layer and a short FIFO cannot be told apart
    and nothing is flagged). Slower than that is the FIFOs' doing: names the most downstream
    ones that ran full (``fifo_sizing.frontier``).
    """
    if cpf is None or not sized_for or cpf <= sized_for:
        return ""
    from bnn2fpga.flows.fifo_sizing import frontier

    full = [f"{design.layers[e.src[0]].name}->{design.layers[e.dst[0]].name} ({e.depth})"
            for e in (design.edges[j] for j in frontier(design.edges, run))]
    also = f" and FINN's estimate {estimate:,}" if cpf > estimate else ""
    return (f"throughput: {cpf:,.0f} cycles/frame measured, above the {sized_for:,} the FIFO sizing measured "
            f"with deep FIFOs{also}"
            + (f"; FIFOs full: {', '.join(full)}" if full else ""))

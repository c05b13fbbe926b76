"""The whole dataflow graph as RTL under Verilator: generate, stitch, compile, run frames."""
from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bnn2fpga.hw.rtlgen.base import LayerRTL
from bnn2fpga.hw.rtlgen.from_finn import Unsupported, base_op, layer_for, stream_inputs
from bnn2fpga.hw.rtlgen.stitch import FIFO_DEPTH, Edge, stitched_layer
from bnn2fpga.hw.sim import verilator
from bnn2fpga.hw.rtlgen.streams import pack, unpack
from bnn2fpga.hw.sim.testbench import Ports

TOP = "bnn_top"
#: Model metadata set once FIFO depths were measured and written into the nodes'
#: inFIFODepths/outFIFODepths (see :func:`graph_edges`): the cycles per frame they sustain.
FIFOS_SIZED = "bnn2fpga_fifos_sized"


def encode(values: np.ndarray, dtype) -> np.ndarray:
    """FINN values -> stream integers (bipolar -1/+1 travel as bits 0/1)."""
    v = np.asarray(values)
    return ((v + 1) // 2).astype(np.int64) if dtype.name == "BIPOLAR" else np.rint(v).astype(np.int64)


def decode(values: np.ndarray, dtype) -> np.ndarray:
    """Stream integers -> FINN values."""
    return 2 * values - 1 if dtype.name == "BIPOLAR" else values


@dataclass
class Design:
    """A compiled stitched design and what is needed to drive it."""

    layers: list[LayerRTL]
    top: LayerRTL
    sim: verilator.Simulator
    mem_files: dict[str, Path]
    in_dtype: object
    out_dtype: object
    in_shape: tuple
    out_shape: tuple
    folder: Path
    build_seconds: float = 0.0
    edges: list[Edge] = field(default_factory=list)

    def close(self) -> None:
        """Remove the generated sources (the compiled simulation stays cached)."""
        shutil.rmtree(self.folder, ignore_errors=True)


@dataclass
class FramesRun:
    """Outputs of a batch of frames and the measured timing."""

    out: np.ndarray                       # (N, *out_shape), FINN values
    cycles: int
    cycles_per_frame: float | None        # steady state, from consecutive frames
    latency_cycles: int                   # first input to last output of frame 0
    seconds: float
    frames_per_second: float              # simulation speed
    stats: dict = field(default_factory=dict)
    #: edge index -> (most entries its FIFO ever held, cycle it first held that many); with fifo_peaks
    fifo_peaks: dict = field(default_factory=dict)
    frame_ends: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # cycle of each frame's last beat


def graph_edges(model, layers: list[LayerRTL], measure: bool = False) -> list[Edge]:
    """The streams between the nodes of a dataflow model, by tensor name.

    A model whose FIFOs were sized (metadata ``FIFOS_SIZED``) gets exactly the depths in
    its nodes' outFIFODepths/inFIFODepths, the larger of the two ends as FINN's
    InsertFIFO takes it, on that end's side of a width conversion. Otherwise (or with
    ``measure``, for sizing) the depths follow the rules below.

    A branch (an output of a DuplicateStreams or StreamingSplit) gets a FIFO holding
    a whole frame of its stream: the other branch may lag by up to a frame before the
    join (an add or a concat) consumes both, and a shorter FIFO could deadlock the two
    paths.

    An MVAU takes its input only while computing the first of its NF output folds
    and replays it for the others, (NF - 1) * SF cycles per vector without reading.
    Its FIFO holds a whole input vector (SF beats), so the producer keeps going
    meanwhile; a shorter one stalls everything upstream for the replay, which costs
    BlinkNet's classifier (SF 4096, NF 10) 40 % of the throughput. FINN sizes the
    same FIFO by simulation (step_set_fifo_depths).
    """
    nodes = list(model.graph.node)
    producer = {model.graph.input[0].name: None}
    for i, node in enumerate(nodes):
        for k, t in enumerate(node.output):
            producer[t] = (i, k)
    sized = bool(model.get_metadata_prop(FIFOS_SIZED)) and not measure
    edges = []
    for i, node in enumerate(nodes):
        for k, t in enumerate(stream_inputs(model, node)):
            src = producer[t]
            if sized and src is not None:
                out_d, in_d = _end_depth(nodes[src[0]], "outFIFODepths", src[1]), _end_depth(node, "inFIFODepths", k)
                edges.append(Edge(src, (i, k), max(out_d, in_d), "src" if out_d > in_d else "dst"))
                continue
            depth = FIFO_DEPTH
            if src is not None and len(nodes[src[0]].output) > 1:
                depth = max(depth, _pow2(_out_port_beats(nodes[src[0]], src[1])))
            if src is not None and base_op(node) in ("MVAU", "MVAUXnor"):
                depth = max(depth, _pow2(_mvau_input_beats(node)))
            edges.append(Edge(src, (i, k), depth))
    edges.append(Edge(producer[model.graph.output[0].name], None))
    return edges


def _end_depth(node, attr: str, k: int) -> int:
    """A node's FIFO depth for its k-th input or output (FINN repeats a list's last entry)."""
    from qonnx.custom_op.registry import getCustomOp

    depths = getCustomOp(node).get_nodeattr(attr)
    return int(depths[min(k, len(depths) - 1)])


def _pow2(n: int) -> int:
    return 1 << (max(n, 1) - 1).bit_length()


def _out_port_beats(node, k: int) -> int:
    """Beats per frame of output ``k`` (a split's outputs differ in size)."""
    from qonnx.custom_op.registry import getCustomOp

    return int(np.prod(getCustomOp(node).get_folded_output_shape(k)[:-1]))


def _mvau_input_beats(node) -> int:
    """Input beats per vector (SF) of an MVAU that replays its input (NF > 1), else 0."""
    from qonnx.custom_op.registry import getCustomOp

    inst = getCustomOp(node)
    sf = inst.get_nodeattr("MW") // inst.get_nodeattr("SIMD")
    nf = inst.get_nodeattr("MH") // inst.get_nodeattr("PE")
    return sf if nf > 1 else 0


def build_design(model, workdir: Path | None = None, jobs: int = 2, stats: bool = False,
                 edges: list[Edge] | None = None, fifo_peaks: bool = True) -> Design:
    """Generate RTL for every node of a dataflow (partition) model, stitch and compile it.

    Raises :class:`Unsupported` listing every node without RTL. ``stats`` adds per-layer
    stall counters, ``fifo_peaks`` the FIFOs' peak occupancy (see
    :func:`hw.rtlgen.stitch.stitched_top`), both reported by :func:`run_frames`.
    ``edges`` overrides :func:`graph_edges` (e.g. other FIFO depths).
    """
    folder = Path(workdir or tempfile.mkdtemp(prefix="bnn-rtl-"))
    folder.mkdir(parents=True, exist_ok=True)
    layers, missing = [], []
    for node in model.graph.node:
        try:
            layers.append(layer_for(model, node, folder / "finn"))
        except Unsupported as e:
            missing.append(str(e))
    if missing:
        raise Unsupported("; ".join(missing))
    edges = edges or graph_edges(model, layers)
    top = stitched_layer(TOP, layers, stats=stats, edges=edges, fifo_peaks=fifo_peaks)
    t0 = time.time()
    sources, mems = top.write(folder / "src")
    sim = verilator.build(TOP, sources, Ports(top.in_padded, top.out_padded), jobs=jobs)
    first, last = model.graph.node[0], model.graph.node[-1]
    iname, oname = model.graph.input[0].name, model.graph.output[0].name
    return Design(layers, top, sim, mems, model.get_tensor_datatype(iname), model.get_tensor_datatype(oname),
                  tuple(model.get_tensor_shape(first.input[0])), tuple(model.get_tensor_shape(last.output[0])),
                  folder, time.time() - t0, edges)


def run_frames(design: Design, frames: np.ndarray, seed: int = 0, gap_pct: int = 0, stall_pct: int = 0,
               cycles_per_frame: int | None = None) -> FramesRun:
    """Stream N frames (FINN values, each of the graph's input shape) through the design.

    With ``cycles_per_frame`` the input arrives evenly spread at that rate; otherwise as
    fast as the design takes it.
    """
    top = design.top
    frames = np.asarray(frames).reshape(-1, *design.in_shape[1:])
    n = len(frames)
    elems = encode(frames, design.in_dtype).reshape(-1, top.in_elems)
    beats = pack(elems, top.in_elem_bits, design.sim.ports.in_words)
    n_out = n * top.out_beats
    # Generous: 4x FINN's slowest-layer estimate per frame plus the pipeline fill; a
    # design that needs more has stalled (or deadlocked) and the run says so.
    budget = (1 + gap_pct + stall_pct) * (4 * (n + 4) * max(top.exp_cycles, 1) + 200 * (len(beats) + n_out)) + 100_000
    pace = (cycles_per_frame, top.in_beats) if cycles_per_frame else None
    if pace:
        budget += n * cycles_per_frame
    res = verilator.run(design.sim, beats, n_out, design.mem_files, seed=seed, gap_pct=gap_pct,
                        stall_pct=stall_pct, max_cycles=budget, pace=pace)
    out = unpack(res.words, top.out_elems, top.out_elem_bits,
                 design.out_dtype.signed() and design.out_dtype.name != "BIPOLAR")
    out = decode(out, design.out_dtype).reshape(n, *design.out_shape[1:]).astype(np.float32)
    ends = res.cycles_at[top.out_beats - 1::top.out_beats]
    # The median interval is the steady state; the first includes filling the pipeline.
    cpf = float(np.median(np.diff(ends))) if len(ends) >= 2 else None
    stats, peaks = {}, {}
    for line in res.stdout.splitlines():
        if line.startswith("STAT "):
            name, *kv = line.split()[1:]
            stats[name] = {k: int(v) for k, v in (p.split("=") for p in kv)}
        elif line.startswith("FIFOPEAK "):
            j, cycle, count = (int(v) for v in line.split()[1:])
            peaks[j] = (count, cycle)
    return FramesRun(out, res.cycles, cpf, int(ends[0]) if len(ends) else 0, res.seconds,
                     n / res.seconds if res.seconds > 0 else float("inf"), stats, peaks, ends.astype(np.int64))


def measure_layers(model, design: Design, frames: int = 3, jobs: int = 2) -> list[dict]:
    """Each layer alone at full input rate: steady-state cycles per frame against FINN's estimate.

    Random inputs of the layer's input type; every layer compiles separately (cached).
    """
    from bnn2fpga.hw.sim.layer_sim import compile_layer, simulate

    rng = np.random.default_rng(0)
    rows = []
    for node, layer in zip(model.graph.node, design.layers):
        if len(layer.in_ports) > 1 or len(layer.out_ports) > 1:
            # the testbench drives one stream in and one out
            rows.append({"name": layer.name, "op": layer.op, "exp_cycles": layer.exp_cycles, "sim_cycles": None})
            continue
        dt = model.get_tensor_datatype(stream_inputs(model, node)[0])
        lo, hi = int(dt.min()), int(dt.max())
        x = encode(rng.integers(lo, hi + 1, (frames * layer.in_beats, layer.in_elems)), dt)
        sim = compile_layer(layer, jobs=jobs)
        try:
            run = simulate(layer, x, out_signed=False, sim=sim)
        finally:
            shutil.rmtree(sim[2], ignore_errors=True)
        rows.append({"name": layer.name, "op": layer.op, "exp_cycles": layer.exp_cycles,
                     "sim_cycles": run.cycles_per_frame(layer.out_beats)})
    return rows

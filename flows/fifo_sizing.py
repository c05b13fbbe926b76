"""FIFO depths from our Verilator simulation of the whole folded design (no Vivado).

FINN sizes its FIFOs by simulating the stitched IP in Vivado's simulator. We simulate the
same folded graph as our RTL, with every FIFO deep enough never to fill, and record each
FIFO's peak occupancy:

1. Free-running input: the design's steady-state cycles per frame P and first-frame latency L,
   as measured (pipeline registers added inside a layer show up here, not by assumption).
2. Input paced at exactly P cycles per frame, spread evenly over the frame's beats. A source
   faster than the bottleneck would fill every FIFO in front of it to whatever depth it has
   (the peak would only measure the FIFO); at the bottleneck's rate a FIFO holds what the
   burstiness of its two layers needs (a sliding window's row start, an MVAU that replays
   its input for every output fold), which is the depth that keeps the rate.
   The pipeline holds about ceil(L / P) frames at once; after that many frames every layer
   runs its periodic schedule. We run that many plus ``SETTLE_FRAMES`` more and require that
   no peak grew during the last ``SETTLE_FRAMES`` (else the run is doubled, up to ``MAX_FRAMES``).
3. depth = the peak plus ``margin`` (1/8 of it, at least 2 entries: a free-running design
   aligns its layers' phases a few beats differently from the paced run), rounded up to a
   power of two, since both FIFO implementations address a power-of-two memory (our
   axis_fifo's clog2 pointers; FINN's fifo.sv LUTRAM of 2^clog2(depth - 1) rows, shift
   registers in 32-stage steps, BRAM in power-of-two aspects): a depth in between saves nothing.

4. The sized design runs free-running (``confirm``); where it runs slower than in step 1, the
   most downstream FIFOs that ran full are doubled, and the run repeated.

The Verilator stage then simulates exactly these depths with free-running input and checks
the cycles per frame against FINN's estimate.
"""
from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field, replace

import numpy as np

logger = logging.getLogger(__name__)

#: Frames without a new peak that count as the steady state (see the module docstring).
SETTLE_FRAMES = 3
#: The most frames the paced run may take before the sizing gives up on a steady state.
MAX_FRAMES = 64
#: Frames of the free-running run (enough intervals for a median past the pipeline fill).
FREE_FRAMES = 8
#: Measured depths are at least this (FINN's InsertFIFO default; a single entry would halve a stream's rate).
MIN_DEPTH = 2


def margin(peak: int) -> int:
    """Entries added to a measured peak (see the module docstring)."""
    return max(2, math.ceil(peak / 8))


def depth_for(peak: int) -> int:
    """The FIFO depth for a measured peak occupancy: peak + margin, rounded up to a power of two."""
    need = max(MIN_DEPTH, peak + margin(peak))
    return 1 << (need - 1).bit_length()


@dataclass
class FifoRow:
    """One inter-layer FIFO: where it is, what was measured, what it is sized to, what it costs."""

    producer: str
    consumer: str
    tensor: str
    side: str              # "out" (producer's outFIFODepths) or "in" (consumer's inFIFODepths)
    width: int             # bits per entry, as FINN's StreamingFIFO stores them (padded to bytes)
    peak: int              # most entries held, measured at the stream's widest point
    depth: int
    depth_before: int      # the simulation's previous fixed depth, in this side's entries
    ram_style: str = ""
    LUT: float = 0.0       # FINN's StreamingFIFO estimate (fifo.sv), storage in LUTs included
    BRAM_18K: float = 0.0
    LUT_before: float = 0.0      # the same at depth_before
    BRAM_18K_before: float = 0.0


@dataclass
class Sizing:
    """What the sizing measured and decided."""

    method: str
    cycles_per_frame: int = 0          # measured, free-running input, at the measuring depths
    latency_cycles: int = 0
    frames: int = 0                    # frames in the paced run
    settled_frame: int = 0             # the last frame in which any peak grew
    fifos: list[FifoRow] = field(default_factory=list)
    note: str = ""
    #: Steady-state cycles per frame free-running with FIFOs too deep to fill (``steady_run``):
    #: what the sized design must keep (the Verilator stage measures it the same way).
    sized_for: int = 0
    #: Streams (tensor names) whose FIFO the free-running check doubled (``confirm``), once per doubling.
    widened: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-friendly form (build state and report)."""
        d = asdict(self)
        d["margin"] = "peak + max(2, ceil(peak / 8)), rounded up to a power of two"
        d["cost_model"] = "FINN StreamingFIFO estimate (fifo.sv)"
        d["totals"] = {k: sum(getattr(r, k) for r in self.fifos)
                       for k in ("LUT", "BRAM_18K", "LUT_before", "BRAM_18K_before")}
        d["totals"]["bits"] = sum(r.width * r.depth for r in self.fifos)
        d["totals"]["bits_before"] = sum(r.width * r.depth_before for r in self.fifos)
        return d


def fifo_cost(width: int, depth: int, part: str) -> tuple[str, float, float]:
    """(ram_style, LUT, BRAM18) of FINN's StreamingFIFO_rtl of ``depth`` x ``width`` bits on ``part``."""
    from onnx import helper
    from qonnx.custom_op.registry import getCustomOp

    node = helper.make_node("StreamingFIFO_rtl", ["i"], ["o"], domain="finn.custom_op.fpgadataflow.rtl",
                            depth=depth, folded_shape=[1, width], normal_shape=[width], dataType="BINARY")
    inst = getCustomOp(node)
    return inst.get_ram_style(), float(inst.lut_estimation(part)), float(inst.bram_estimation(part))


def _random_frames(model, n: int, seed: int = 0) -> np.ndarray:
    """``n`` frames of the model's input type (timing of our layers does not depend on the values)."""
    dt = model.get_tensor_datatype(model.graph.input[0].name)
    shape = model.get_tensor_shape(model.graph.input[0].name)[1:]
    rng = np.random.default_rng(seed)
    if dt.name == "BIPOLAR":
        return rng.choice([-1.0, 1.0], (n, *shape)).astype(np.float32)
    return rng.integers(int(dt.min()), int(dt.max()) + 1, (n, *shape)).astype(np.float32)


def _period(ends: np.ndarray) -> int:
    # Mean interval of the second half (past the pipeline fill), rounded up: a pace of the
    # median could be a fraction of a cycle faster than the design and grow a backlog.
    half = ends[len(ends) // 2:]
    return math.ceil((half[-1] - half[0]) / (len(half) - 1))


def steady_run(design, model):
    """A free-running run long enough for the steady state: (cycles per frame, the run).

    The first frames' intervals include the pipeline filling (blinknet-hybrid: 98,786, 98,432,
    98,432, then 98,304 for good), so the rate is the mean interval of the run's second half
    (``_period``), over at least twice the frames the pipeline holds plus ``SETTLE_FRAMES``.
    """
    from bnn2fpga.hw.sim.graph_sim import run_frames

    n = FREE_FRAMES
    while True:
        run = run_frames(design, _random_frames(model, n))
        period = _period(run.frame_ends)
        need = 2 * (math.ceil(run.latency_cycles / max(period, 1)) + SETTLE_FRAMES)
        if n >= need or n >= MAX_FRAMES:
            return period, run
        n = min(need, MAX_FRAMES)


def measure(model, part: str, log=logger.info, jobs: int = 2) -> Sizing:
    """Simulate ``model`` (a folded dataflow partition) and size every inter-layer FIFO."""
    from bnn2fpga.hw.sim.graph_sim import build_design, graph_edges, run_frames

    edges = before = graph_edges(model, [], measure=True)
    for _ in range(4):
        design = build_design(model, jobs=jobs, edges=edges)
        try:
            period, free = steady_run(design, model)
            latency = free.latency_cycles
            n = math.ceil(latency / period) + SETTLE_FRAMES + 1
            while True:
                run = run_frames(design, _random_frames(model, n, seed=1), cycles_per_frame=period)
                last = max((cycle for _, cycle in run.fifo_peaks.values()), default=0)
                settled = int(np.searchsorted(run.frame_ends, last))
                if settled < n - SETTLE_FRAMES or 2 * n > MAX_FRAMES:
                    break
                n *= 2
        finally:
            design.close()
        full = full_fifos(edges, run)
        if not full:
            break
        # A FIFO that filled up measured only itself: measure again with it four times deeper.
        log(f"fifo sizing: {len(full)} FIFO(s) full at the measuring depth, measuring again deeper")
        edges = [replace(e, depth=4 * e.depth) if j in full else e for j, e in enumerate(edges)]
    rows = _rows(model, design, edges, run.fifo_peaks, part, [e.depth for e in before])
    notes = [f"peaks still grew in frame {settled} of {n}"] if settled >= n - SETTLE_FRAMES else []
    notes += [f"{len(full)} FIFO(s) still full at the deepest measuring depth"] if full else []
    note = "; ".join(notes)
    return Sizing("verilator", period, latency, n, settled, rows, note, period)


#: Times the free-running check may deepen FIFOs that ran full before the sizing gives up.
CHECK_ROUNDS = 3


def apply(model, sizing: Sizing):
    """``model`` with ``sizing``'s depths where FINN's InsertFIFO reads them (and the mark our simulation reads)."""
    from bnn2fpga.flows.transforms.set_fifo_depths import SetFIFODepths

    return model.transform(SetFIFODepths([(r.tensor, r.side, r.depth) for r in sizing.fifos], sizing.sized_for))


def confirm(model, sizing: Sizing, part: str, log=logger.info):
    """Run the sized design free-running, as the Verilator stage will; deepen FIFOs that slow it.

    The paced run measures what each FIFO holds at the bottleneck's rate. Free-running, a layer
    in front of the bottleneck can run ahead, fill its FIFO and then stall the bottleneck for a
    few cycles per frame (blinknet-hybrid: 128 of 98,304). Each FIFO that ran full in a run
    slower than ``sizing.sized_for`` while its consumer's outputs did not (``frontier``) is
    doubled, up to ``CHECK_ROUNDS`` times. Returns the sized
    model and the sizing; the compiled design is the one the Verilator stage simulates (cached).
    """
    from bnn2fpga.hw.sim.graph_sim import build_design

    for attempt in range(CHECK_ROUNDS + 1):
        sized = apply(model, sizing)
        design = build_design(sized)
        try:
            rate, run = steady_run(design, sized)
        finally:
            design.close()
        if rate <= sizing.sized_for:
            return sized, sizing
        nodes = list(sized.graph.node)
        full = {nodes[design.edges[j].src[0]].output[design.edges[j].src[1]] for j in frontier(design.edges, run)}
        slow = f"{rate:,} cycles/frame free-running at the sized depths, {sizing.sized_for:,} deep"
        if not full or attempt == CHECK_ROUNDS:
            sizing.note = "; ".join(x for x in (sizing.note, f"{slow} (no FIFO left to deepen)" if not full
                                                else f"{slow} after {CHECK_ROUNDS} rounds of deepening") if x)
            return sized, sizing
        log(f"fifo sizing: {slow}; doubling {len(full)} FIFO(s) that ran full")
        rows = []
        for r in sizing.fifos:
            if r.tensor in full:
                style, lut, bram = fifo_cost(r.width, 2 * r.depth, part)
                r = replace(r, depth=2 * r.depth, ram_style=style, LUT=lut, BRAM_18K=bram)
            rows.append(r)
        sizing = replace(sizing, fifos=rows, widened=sizing.widened + sorted(full))
    raise AssertionError("unreachable: the last round returns")


def full_fifos(edges, run) -> set[int]:
    """The inter-layer FIFOs (edge indices) that held as many entries as they are deep during ``run``."""
    return {j for j, e in enumerate(edges)
            if e.src is not None and e.dst is not None and run.fifo_peaks.get(j, (0,))[0] >= e.depth}


def frontier(edges, run) -> list[int]:
    """The inter-layer FIFOs that ran full while their consumer's own output FIFOs did not.

    A FIFO too short for its consumer's needs fills, its producer stops and every FIFO upstream
    fills in turn: only the most downstream full ones are the cause.
    """
    full = full_fifos(edges, run)
    out_of = {}
    for j in full:
        out_of.setdefault(edges[j].src[0], set()).add(j)
    return sorted(j for j in full if not out_of.get(edges[j].dst[0]))


def _rows(model, design, edges, peaks: dict, part: str, before: list[int]) -> list[FifoRow]:
    from bnn2fpga.hw.rtlgen.stitch import fifo_width

    nodes = list(model.graph.node)
    rows = []
    for j, e in enumerate(edges):
        if e.src is None or e.dst is None:
            continue
        (si, sk), (di, dk) = e.src, e.dst
        w_from, w_to = design.layers[si].out_ports[sk], design.layers[di].in_ports[dk]
        w_meas = fifo_width(w_from, w_to, e.at)
        peak = peaks.get(j, (0, 0))[0]
        # The depth goes on the side FINN's InsertFIFO puts a FIFO of that width (it has no
        # FIFO inside a width converter): the wider end, in its own entries.
        side, width = ("out", w_from) if w_from > w_to else ("in", w_to)
        entries = math.ceil(peak * w_meas / width)
        depth = depth_for(entries)
        padded = 8 * math.ceil(width / 8)
        style, lut, bram = fifo_cost(padded, depth, part)
        old = math.ceil(before[j] * w_meas / width)
        _, lut_old, bram_old = fifo_cost(padded, old, part)
        rows.append(FifoRow(nodes[si].name, nodes[di].name, nodes[si].output[sk], side, padded, entries, depth,
                            old, style, lut, bram, lut_old, bram_old))
    return rows

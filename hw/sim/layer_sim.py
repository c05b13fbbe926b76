"""Simulate one generated layer (or a stitched design) on folded element streams."""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bnn2fpga.hw.rtlgen.base import LayerRTL
from bnn2fpga.hw.sim import verilator
from bnn2fpga.hw.rtlgen.streams import pack, unpack
from bnn2fpga.hw.sim.testbench import Ports


@dataclass
class LayerRun:
    """Output elements per beat and the timing of one simulation."""

    out: np.ndarray           # (n_out_beats, out_elems)
    cycles_at: np.ndarray     # cycle each output beat was taken
    cycles: int
    seconds: float
    build_seconds: float

    def cycles_per_frame(self, beats_per_frame: int) -> float | None:
        """Steady-state cycles between the last beats of consecutive frames (needs 2+ frames)."""
        ends = self.cycles_at[beats_per_frame - 1::beats_per_frame]
        return float(np.median(np.diff(ends))) if len(ends) >= 2 else None


def compile_layer(layer: LayerRTL, jobs: int = 2) -> tuple[verilator.Simulator, dict[str, Path], Path]:
    """Write the layer's files to a scratch folder and compile (cached) its simulation."""
    folder = Path(tempfile.mkdtemp(prefix=f"rtl-{layer.top}-"))
    sources, mems = layer.write(folder)
    sim = verilator.build(layer.top, sources, Ports(layer.in_padded, layer.out_padded), jobs=jobs)
    return sim, mems, folder


def simulate(layer: LayerRTL, in_elems: np.ndarray, out_signed: bool, seed: int = 0, gap_pct: int = 0,
             stall_pct: int = 0, sim=None) -> LayerRun:
    """Drive (n_beats, in_elems) through the layer; returns the output elements."""
    import shutil

    if sim is None:
        simulator, mems, folder = compile_layer(layer)
    else:
        simulator, mems, folder = sim
    n_in = len(in_elems)
    frames = n_in // layer.in_beats
    n_out = frames * layer.out_beats
    beats = pack(np.asarray(in_elems).reshape(n_in, layer.in_elems), layer.in_elem_bits, simulator.ports.in_words)
    try:
        res = verilator.run(simulator, beats, n_out, mems, seed=seed, gap_pct=gap_pct, stall_pct=stall_pct)
    finally:
        if sim is None:
            shutil.rmtree(folder, ignore_errors=True)
    out = unpack(res.words, layer.out_elems, layer.out_elem_bits, out_signed)
    return LayerRun(out, res.cycles_at, res.cycles, res.seconds, simulator.build_seconds)

"""RTL for a ChannelPermute layer (hw/rtl/channel_permute.sv) and its numpy reference.

The permutation becomes a parameter of the module (a sized hex literal in the plain
Verilog wrapper that FINN's stitching and Vivado's block design need), so there is no
memory file.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from bnn2fpga.hw.rtlgen.base import RTL_DIR, LayerRTL, VerilogLiteral, stream_wrapper


def idx_bits(channels: int) -> int:
    """Bits of one permutation entry (at least 1)."""
    return max(1, math.ceil(math.log2(channels)))


def perm_literal(perm, bits: int) -> str:
    """``perm`` packed as a sized Verilog hex literal, entry i at [i*bits +: bits]."""
    word = 0
    for i, p in enumerate(perm):
        word |= int(p) << (i * bits)
    total = len(perm) * bits
    return f"{total}'h{word:0{(total + 3) // 4}x}"


def reference(elems: np.ndarray, perm) -> np.ndarray:
    """(pixels, C) elements -> the same pixels with channels in ``perm`` order."""
    return np.asarray(elems)[:, np.asarray(perm, dtype=np.int64)]


def channel_permute_layer(name: str, perm, simd: int, elem_bits: int, pixels: int,
                          exp_cycles: int | None = None) -> LayerRTL:
    """Wrapper module ``name`` (FINN's port names) around channel_permute for one layer."""
    perm = [int(p) for p in perm]
    c = len(perm)
    if sorted(perm) != list(range(c)):
        raise ValueError(f"{name}: perm is not a permutation of 0..{c - 1}")
    if simd < 1 or c % simd:
        raise ValueError(f"{name}: SIMD {simd} must divide the {c} channels")
    fold = c // simd
    width = simd * elem_bits
    ib = idx_bits(c)
    params = {"C": c, "SIMD": simd, "ELEM_BITS": elem_bits, "IDX_BITS": ib,
              "PERM": VerilogLiteral(perm_literal(perm, ib))}
    wrapper = stream_wrapper(name, "channel_permute", params, width, width)
    return LayerRTL(
        name=name, top=name, op="channel_permute", in_bits=width, out_bits=width,
        in_elems=simd, in_elem_bits=elem_bits, out_elems=simd, out_elem_bits=elem_bits,
        in_beats=pixels * fold, out_beats=pixels * fold,
        exp_cycles=(pixels + 1) * fold if exp_cycles is None else exp_cycles,
        sources={f"{name}.v": wrapper}, library=[RTL_DIR / "channel_permute.sv"],
    )


def layer_from_op(inst) -> LayerRTL:
    """The layer of a ChannelPermute HW op instance (generic or ``_rtl``)."""
    return channel_permute_layer(inst.onnx_node.name, inst.get_nodeattr("perm"), int(inst.get_nodeattr("SIMD")),
                                 inst.get_input_datatype(0).bitwidth(), inst.pixels(), int(inst.get_exp_cycles()))


def permute_layer(model, node, workdir: Path, mem_dir: Path | None = None) -> LayerRTL:
    """A ChannelPermute node of a dataflow graph (the dispatch signature of hw.rtlgen.from_finn)."""
    from qonnx.custom_op.registry import getCustomOp

    return layer_from_op(getCustomOp(node))

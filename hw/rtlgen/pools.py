"""RTL for FINN's summing pools: Pool with Function AccPool or QuantAvgPool (hw/rtl/sumpool_stream.sv)
and GlobalAccPool (hw/rtl/global_accpool.sv)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from bnn2fpga.hw.rtlgen.base import RTL_DIR, LayerRTL, Unsupported, finn_inst, finn_stream_info, stream_wrapper


def quant_avg_shift(in_bits: int, out_bits: int, k: int) -> int:
    """Right shift of FINN's QuantAvgPool: the bits of the largest unsigned sum beyond the output's."""
    return max(0, ((2 ** in_bits - 1) * k).bit_length() - out_bits)


def sum_pool_layer(model, node, workdir: Path, mem_dir: Path | None = None) -> LayerRTL:
    """A Pool node with Function AccPool or QuantAvgPool (after a depthwise sliding window) as sumpool_stream."""
    inst = finn_inst(node)
    fxn = inst.get_nodeattr("Function")
    idt, odt = inst.get_input_datatype(0), inst.get_output_datatype(0)
    if not idt.is_integer() or idt.name == "BIPOLAR" or not odt.is_integer():
        raise Unsupported(f"{node.name}: {fxn} of {idt.name} to {odt.name} (only integer types)")
    k = int(np.prod(inst.get_nodeattr("KernelSize")))
    if fxn == "AccPool":
        shift = 0
    elif fxn == "QuantAvgPool":
        # The ladder's references run FINN's Python execution, which derives the shift from
        # the bit widths; the HLS kernel takes the Size attribute. They must agree.
        shift = quant_avg_shift(idt.bitwidth(), odt.bitwidth(), k)
        if shift != int(inst.get_nodeattr("Size")):
            raise Unsupported(f"{node.name}: QuantAvgPool Size={inst.get_nodeattr('Size')} but FINN's "
                                  f"Python execution shifts by {shift}")
    else:
        raise Unsupported(f"{node.name}: Pool with Function={fxn}")
    info = finn_stream_info(node)
    params = {"PE": int(inst.get_nodeattr("PE")), "IN_BITS": idt.bitwidth(), "IN_SIGNED": int(idt.signed()),
              "K": k, "SHIFT": shift, "OUT_BITS": odt.bitwidth()}
    return LayerRTL(**info, top=node.name, op="sumpool_stream",
                    sources={f"{node.name}.v": stream_wrapper(node.name, "sumpool_stream", params,
                                                              info["in_bits"], info["out_bits"])},
                    library=[RTL_DIR / "window_group.sv", RTL_DIR / "sumpool_stream.sv"])


def global_accpool_layer(model, node, workdir: Path, mem_dir: Path | None = None) -> LayerRTL:
    """A GlobalAccPool node (sum over all pixels of each channel) as global_accpool."""
    inst = finn_inst(node)
    idt, odt = inst.get_input_datatype(0), inst.get_output_datatype(0)
    vecs = list(inst.get_nodeattr("numInputVectors"))
    if not idt.is_integer() or idt.name == "BIPOLAR":
        raise Unsupported(f"{node.name}: GlobalAccPool of {idt.name} (only integer types)")
    if len(vecs) != 3 or vecs[0] != 1:
        raise Unsupported(f"{node.name}: GlobalAccPool over numInputVectors={vecs} (only [1, H, W])")
    pe = int(inst.get_nodeattr("PE"))
    info = finn_stream_info(node)
    params = {"PE": pe, "CF": int(inst.get_nodeattr("NumChannels")) // pe, "PIXELS": vecs[1] * vecs[2],
              "IN_BITS": idt.bitwidth(), "IN_SIGNED": int(idt.signed()), "OUT_BITS": odt.bitwidth()}
    return LayerRTL(**info, top=node.name, op="global_accpool",
                    sources={f"{node.name}.v": stream_wrapper(node.name, "global_accpool", params,
                                                              info["in_bits"], info["out_bits"])},
                    library=[RTL_DIR / "global_accpool.sv"])

"""RTL for the nodes of a FINN dataflow graph: ours where FINN has only HLS, FINN's own otherwise.

Every function takes a FINN-ONNX model and one HW node (generic, ``_hls`` or ``_rtl``:
the choice of implementation does not change the stream format) and returns a
:class:`~hw.rtlgen.base.LayerRTL`, or raises :class:`Unsupported` naming what is missing.
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from bnn2fpga.hw.rtlgen.base import (RTL_DIR, LayerRTL, Unsupported, finn_stream_info, hex_lines, pad_assign,  # noqa: F401
                            stream_module, stream_wrapper)
from bnn2fpga.hw.rtlgen.channel_permute import permute_layer
from bnn2fpga.hw.rtlgen.joins import concat_layer, split_layer
from bnn2fpga.hw.rtlgen.pools import global_accpool_layer, sum_pool_layer
from bnn2fpga.hw.rtlgen.mvtu import MVTU, signed_bits

FPGA_PART = "xc7z020clg400-1"


#: Marks our LUT-fabric RTL of an op whose ``<op>_rtl`` name FINN already uses
#: (ElementwiseAddLut_rtl: ours; ElementwiseAdd_rtl: FINN's DSP58 version).
FABRIC_SUFFIX = "Lut"


def base_op(node) -> str:
    """Op type without the implementation suffix (MVAU_hls -> MVAU, ElementwiseAddLut_rtl -> ElementwiseAdd)."""
    op = node.op_type
    for suffix in ("_hls", "_rtl"):
        if op.endswith(suffix):
            op = op[: -len(suffix)]
            break
    if op.endswith(FABRIC_SUFFIX) and op[: -len(FABRIC_SUFFIX)] in GENERATORS:
        return op[: -len(FABRIC_SUFFIX)]
    return op


def _inst(node):
    from qonnx.custom_op.registry import getCustomOp

    return getCustomOp(node)


# ---- MVAU -> xnor_mvtu ---------------------------------------------------------------------


def mvtu_from_node(model, node) -> MVTU:
    """The binary-weight MVTU computing this MVAU node, in FINN's MVAU semantics."""
    from qonnx.core.datatype import DataType

    inst = _inst(node)
    w = model.get_initializer(node.input[1])
    if w is None:
        raise Unsupported(f"{node.name}: MVAU with streamed (non-constant) weights")
    idt, odt = inst.get_input_datatype(0), inst.get_output_datatype()
    values = set(np.unique(w).tolist())
    if inst.get_nodeattr("binaryXnorMode"):
        xnor, wq, in_bits, in_signed = True, w, 1, False
    elif idt == DataType["BIPOLAR"] and values <= {-1, 1}:
        # FINN executes bipolar x bipolar as XNOR-popcount of the bit encodings.
        xnor, wq, in_bits, in_signed = True, (w + 1) // 2, 1, False
    elif idt.is_integer() and np.array_equal(w, np.round(w)):
        # Bipolar or k-bit integer weights times integer inputs.
        xnor, wq, in_bits, in_signed = False, w, idt.bitwidth(), idt.signed()
    else:
        raise Unsupported(f"{node.name}: MVAU with {idt.name} inputs and non-integer weights")
    if inst.get_nodeattr("noActivation"):
        thr, out_bits, out_bias = None, odt.bitwidth(), 0
    else:
        thr = model.get_initializer(node.input[2])
        out_bits = odt.bitwidth()
        # Bipolar outputs travel as bit 1 = +1: the count itself, no bias.
        out_bias = 0 if odt == DataType["BIPOLAR"] else int(inst.get_nodeattr("ActVal"))
    style = inst.get_nodeattr("ram_style")
    # Our op carries the clock's depth limit (set when the layer is specialized for a board).
    levels = inst.get_nodeattr("max_levels") if "max_levels" in inst.get_nodeattr_types() else 0
    return MVTU(
        np.asarray(wq).astype(np.int64), thr, inst.get_nodeattr("PE"), inst.get_nodeattr("SIMD"), xnor=xnor,
        in_bits=in_bits, in_signed=in_signed, out_bits=out_bits, out_bias=out_bias,
        n_vectors=int(np.prod(inst.get_nodeattr("numInputVectors"))),
        ram_style=style if style in ("block", "distributed") else "auto",
        ram_style_thresh=inst.get_nodeattr("ram_style_thresholds") if "ram_style_thresholds"
        in inst.get_nodeattr_types() else "distributed",
        **({"max_levels": levels} if levels > 0 else {}),
        lut_products=wants_lut_products(inst),
    )


def wants_lut_products(inst) -> bool:
    """Whether an MVAU asks for its k-bit products in LUTs (FINN's resType "lut")."""
    return "resType" in inst.get_nodeattr_types() and inst.get_nodeattr("resType") == "lut"


def mvau_layer(model, node, workdir: Path, mem_dir: Path | None = None) -> LayerRTL:
    """An MVAU node as xnor_mvtu."""
    info = finn_stream_info(node)
    layer = mvtu_from_node(model, node).layer(node.name, exp_cycles=info["exp_cycles"], mem_dir=mem_dir)
    if (layer.in_bits, layer.out_bits) != (info["in_bits"], info["out_bits"]):
        raise Unsupported(f"{node.name}: stream widths {layer.in_bits}/{layer.out_bits} differ from FINN's "
                          f"{info['in_bits']}/{info['out_bits']}")
    return layer


# ---- max pool and constant elementwise ops (ours) ---------------------------------------


def pool_layer(model, node, workdir: Path, mem_dir: Path | None = None) -> LayerRTL:
    """A Pool node (after a depthwise sliding window): MaxPool as maxpool_stream, AccPool and
    QuantAvgPool as sumpool_stream."""
    inst = _inst(node)
    if inst.get_nodeattr("Function") != "MaxPool":
        return sum_pool_layer(model, node, workdir, mem_dir)
    dt = inst.get_input_datatype(0)
    info = finn_stream_info(node)
    k = int(np.prod(inst.get_nodeattr("KernelSize")))
    pe = inst.get_nodeattr("PE")
    # Bipolar bit 1 = +1 and binary are both ordered like their bits.
    params = {"PE": pe, "ELEM_BITS": dt.bitwidth(), "SIGNED": int(dt.signed() and dt.bitwidth() > 1), "K": k}
    return LayerRTL(**info, top=node.name, op="maxpool_stream",
                    sources={f"{node.name}.v": stream_wrapper(node.name, "maxpool_stream", params,
                                                              info["in_bits"], info["out_bits"])},
                    library=[RTL_DIR / "window_group.sv", RTL_DIR / "maxpool_stream.sv"])


_ELTWISE_OPS = {"ElementwiseAdd": 0, "ElementwiseSub": 1, "ElementwiseMul": 3}


def eltwise_layer(model, node, workdir: Path, mem_dir: Path | None = None) -> LayerRTL:
    """An elementwise Add/Sub/Mul with one constant (scalar or per channel) operand."""
    inst = _inst(node)
    op = base_op(node)
    consts = [model.get_initializer(t) for t in node.input]
    if (consts[0] is None) == (consts[1] is None):
        raise Unsupported(f"{node.name}: {op} of two streams (only stream with constant)")
    cidx = 0 if consts[0] is not None else 1
    c = np.broadcast_to(consts[cidx], inst.get_normal_output_shape()).reshape(-1, inst.get_normal_output_shape()[-1])
    if not (c == c[0]).all() or not np.array_equal(c[0], np.round(c[0])):
        raise Unsupported(f"{node.name}: {op} constant varies along more than the channel axis or is not integer")
    c = c[0].astype(np.int64)
    code = _ELTWISE_OPS[op]
    if op == "ElementwiseSub" and cidx == 0:
        code = 2  # c - in
    idt = inst.get_input_datatype(1 - cidx)
    odt = inst.get_output_datatype()
    if not (idt.is_integer() and odt.is_integer()):
        raise Unsupported(f"{node.name}: {op} on {idt.name} -> {odt.name} (only integer types)")
    info = finn_stream_info(node)
    pe = info["out_elems"]
    cf = len(c) // pe
    cbits = signed_bits(int(c.min()), int(c.max()))
    words = []
    for f in range(cf):
        word = 0
        for p in range(pe):
            word |= (int(c[f * pe + p]) & ((1 << cbits) - 1)) << (p * cbits)
        words.append(word)
    mem = f"{node.name}_const.dat"
    params = {"PE": pe, "CF": cf, "IN_BITS": idt.bitwidth(), "IN_SIGNED": int(idt.signed()), "C_BITS": cbits,
              "OUT_BITS": odt.bitwidth(), "OP": code, "CONST_FILE": str(mem_dir / mem) if mem_dir else mem}
    info["in_elem_bits"], info["in_bits"] = idt.bitwidth(), idt.bitwidth() * info["in_elems"]
    return LayerRTL(**info, top=node.name, op="eltwise_const",
                    sources={f"{node.name}.v": stream_wrapper(node.name, "eltwise_const", params,
                                                              info["in_bits"], info["out_bits"])},
                    library=[RTL_DIR / "eltwise_const.sv"], mem_files={mem: hex_lines(words, pe * cbits)})


# ---- FINN's own RTL (finn-rtllib), generated by FINN -----------------------------------------

_AXILITE_TIES = {p: "1'b0" for p in ("s_axilite_AWVALID", "s_axilite_WVALID", "s_axilite_BREADY",
                                     "s_axilite_ARVALID", "s_axilite_RREADY")}
_AXILITE_TIES.update({"s_axilite_AWADDR": "'0", "s_axilite_WDATA": "'0", "s_axilite_WSTRB": "'0",
                      "s_axilite_ARADDR": "'0"})


def finn_rtl_layer(model, node, workdir: Path, mem_dir: Path | None = None) -> LayerRTL:
    """FMPadding / ConvolutionInputGenerator / Thresholding through FINN's RTL generate_hdl."""
    from qonnx.custom_op.registry import getCustomOp

    from bnn2fpga.hw import finn_env

    finn_env.prepare()
    rtl = copy.deepcopy(node)
    rtl.op_type, rtl.domain = base_op(node) + "_rtl", "finn.custom_op.fpgadataflow.rtl"
    inst = getCustomOp(rtl)
    out = Path(workdir) / node.name
    out.mkdir(parents=True, exist_ok=True)
    inst.set_nodeattr("code_gen_dir_ipgen", str(out))
    try:
        inst.generate_hdl(model, FPGA_PART, 10.0)
    except Exception as e:  # noqa: BLE001 - FINN raises plain exceptions for unsupported configs
        raise Unsupported(f"{node.name}: FINN's {rtl.op_type}.generate_hdl failed: {e}") from None
    files = [Path(f) for f in inst.get_rtl_file_list(abspath=True)]
    files = [f for f in files if f.suffix in (".sv", ".v", ".svh")]
    info = finn_stream_info(rtl)
    ties = _AXILITE_TIES if "s_axilite" in " ".join(f.read_text() for f in files if f.parent == out) else {}
    mems = {f.name: f.read_bytes() for f in out.iterdir() if f.suffix == ".dat"}
    return LayerRTL(**info, top=inst.get_verilog_top_module_name(), op=f"FINN {rtl.op_type}",
                    library=files, mem_files=mems, ties=ties)


GENERATORS = {
    "MVAU": mvau_layer,
    "MVAUXnor": mvau_layer,
    "Pool": pool_layer,
    "ElementwiseAdd": eltwise_layer,
    "ElementwiseSub": eltwise_layer,
    "ElementwiseMul": eltwise_layer,
    "FMPadding": finn_rtl_layer,
    "ConvolutionInputGenerator": finn_rtl_layer,
    "Thresholding": finn_rtl_layer,
    "ChannelPermute": permute_layer,
    "StreamingSplit": split_layer,
    "StreamingConcat": concat_layer,
    "GlobalAccPool": global_accpool_layer,
}


def layer_for(model, node, workdir: Path, mem_dir: Path | None = None) -> LayerRTL:
    """The RTL of one dataflow node, or :class:`Unsupported`."""
    gen = GENERATORS.get(base_op(node))
    if gen is None:
        raise Unsupported(f"{node.name}: no RTL for {base_op(node)}")
    return gen(model, node, Path(workdir), mem_dir)


def unsupported(model) -> list[str]:
    """Reasons why some nodes of a dataflow model have no RTL (empty: all can be generated).

    Checks without generating files (MVAU weights, Pool function, constant operands).
    """
    import tempfile

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for node in model.graph.node:
            op = base_op(node)
            if op not in GENERATORS:
                out.append(f"{node.name} ({op})")
                continue
            if GENERATORS[op] is finn_rtl_layer:
                continue  # generated by FINN itself; checked when building
            try:
                layer_for(model, node, Path(tmp))
            except Unsupported as e:
                out.append(str(e))
    return out


# ---- multi-stream nodes (residual networks) -------------------------------------------------


def duplicate_layer(model, node, workdir: Path, mem_dir: Path | None = None) -> LayerRTL:
    """DuplicateStreams as dup_stream: one input, NumOutputStreams identical outputs."""
    inst = _inst(node)
    info = finn_stream_info(node)
    n, w = len(node.output), info["in_bits"]
    body = [f"    wire [{w - 1}:0] d; wire [{n - 1}:0] v, r;",
            f"    dup_stream #(.WIDTH({w}), .N_OUT({n})) core (.clk(ap_clk), .rst_n(ap_rst_n),"
            f" .in_tdata(in0_V_TDATA[{w - 1}:0]), .in_tvalid(in0_V_TVALID), .in_tready(in0_V_TREADY),"
            " .out_tdata(d), .out_tvalid(v), .out_tready(r));"]
    for k in range(n):
        body += [pad_assign(f"out{k}_V", w, "d"), f"    assign out{k}_V_TVALID = v[{k}]; assign r[{k}] = out{k}_V_TREADY;"]
    assert inst.get_outstream_width(0) == w
    return LayerRTL(**info, top=node.name, op="dup_stream", out_ports=[w] * n,
                    sources={f"{node.name}.v": stream_module(node.name, [w], [w] * n, body)},
                    library=[RTL_DIR / "dup_stream.sv"])


def eltwise2_layer(model, node, workdir: Path, mem_dir: Path | None = None) -> LayerRTL:
    """Elementwise Add/Sub/Mul of two streams of the same shape as eltwise_stream2."""
    inst = _inst(node)
    op = base_op(node)
    if list(inst.get_normal_input_shape(0)) != list(inst.get_normal_input_shape(1)):
        raise Unsupported(f"{node.name}: {op} of two streams with broadcasting")
    a, b, o = inst.get_input_datatype(0), inst.get_input_datatype(1), inst.get_output_datatype()
    if not (a.is_integer() and b.is_integer() and o.is_integer()):
        raise Unsupported(f"{node.name}: {op} on {a.name}, {b.name} (only integer types)")
    info = finn_stream_info(node)
    pe = info["out_elems"]
    wa, wb, wo = pe * a.bitwidth(), pe * b.bitwidth(), pe * o.bitwidth()
    code = {"ElementwiseAdd": 0, "ElementwiseSub": 1, "ElementwiseMul": 3}[op]
    body = [f"    wire [{wo - 1}:0] y;",
            f"    eltwise_stream2 #(.PE({pe}), .A_BITS({a.bitwidth()}), .A_SIGNED({int(a.signed())}),"
            f" .B_BITS({b.bitwidth()}), .B_SIGNED({int(b.signed())}), .OUT_BITS({o.bitwidth()}), .OP({code}))"
            " core (.clk(ap_clk), .rst_n(ap_rst_n),"
            f" .a_tdata(in0_V_TDATA[{wa - 1}:0]), .a_tvalid(in0_V_TVALID), .a_tready(in0_V_TREADY),"
            f" .b_tdata(in1_V_TDATA[{wb - 1}:0]), .b_tvalid(in1_V_TVALID), .b_tready(in1_V_TREADY),"
            " .out_tdata(y), .out_tvalid(out0_V_TVALID), .out_tready(out0_V_TREADY));",
            pad_assign("out0_V", wo, "y")]
    return LayerRTL(**info, top=node.name, op="eltwise_stream2", in_ports=[wa, wb],
                    sources={f"{node.name}.v": stream_module(node.name, [wa, wb], [wo], body)},
                    library=[RTL_DIR / "eltwise_stream2.sv"])


def _eltwise_any(model, node, workdir: Path, mem_dir: Path | None = None) -> LayerRTL:
    consts = [model.get_initializer(t) for t in node.input]
    if all(c is None for c in consts):
        return eltwise2_layer(model, node, workdir, mem_dir)
    return eltwise_layer(model, node, workdir, mem_dir)


GENERATORS.update({"DuplicateStreams": duplicate_layer, "ElementwiseAdd": _eltwise_any,
                   "ElementwiseSub": _eltwise_any, "ElementwiseMul": _eltwise_any})


def stream_inputs(model, node) -> list[str]:
    """The node's input tensors that are streams (not constants), in port order."""
    return [t for t in node.input if model.get_initializer(t) is None]

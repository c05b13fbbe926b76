"""RTL for FINN's StreamingSplit and StreamingConcat (hw/rtl/split_stream.sv, concat_stream.sv).

Both divide a pixel's channels (SIMD per beat, as FINN folds them) into consecutive
chunks, one per stream, so a chunk is a whole number of beats and the cores only count
beats. The chunk sizes become a parameter of the core, 16 bits per stream.
"""
from __future__ import annotations

from pathlib import Path

from bnn2fpga.hw.rtlgen.base import RTL_DIR, LayerRTL, Unsupported, finn_inst, finn_stream_info, pad_assign, stream_module


def folds_literal(channels, simd: int, name: str) -> str:
    """Beats per stream chunk as a Verilog literal, entry k at [k*16 +: 16]."""
    word = 0
    for k, c in enumerate(channels):
        if c % simd or not 0 < c // simd < 1 << 16:
            raise Unsupported(f"{name}: SIMD {simd} does not divide {c} channels into 1..65535 beats")
        word |= (c // simd) << (16 * k)
    return f"{16 * len(channels)}'h{word:0{4 * len(channels)}x}"


def _extend(src: str, lanes: int, in_bits: int, out_bits: int, signed: bool) -> str:
    """Verilog concatenation widening each ``in_bits`` lane of ``src`` to ``out_bits``."""
    if in_bits == out_bits:
        return f"{src}[{lanes * in_bits - 1}:0]"
    parts = []
    for s in reversed(range(lanes)):
        lane = f"{src}[{s * in_bits + in_bits - 1}:{s * in_bits}]"
        fill = f"{{{out_bits - in_bits}{{{src}[{s * in_bits + in_bits - 1}]}}}}" if signed \
            else f"{out_bits - in_bits}'b0"
        parts.append(f"{fill}, {lane}")
    return "{" + ", ".join(parts) + "}"


def split_layer(model, node, workdir: Path, mem_dir: Path | None = None) -> LayerRTL:
    """A StreamingSplit node as split_stream: one input, one output per channel chunk."""
    inst = finn_inst(node)
    info = finn_stream_info(node)
    chans = [int(c) for c in inst.get_nodeattr("ChannelsPerStream")]
    simd, n = int(inst.get_nodeattr("SIMD")), len(chans)
    w = info["in_bits"]
    folds = folds_literal(chans, simd, node.name)
    body = [f"    wire [{w - 1}:0] d; wire [{n - 1}:0] v, r;",
            f"    split_stream #(.WIDTH({w}), .N({n}), .FOLDS({folds})) core (.clk(ap_clk), .rst_n(ap_rst_n),"
            f" .in_tdata(in0_V_TDATA[{w - 1}:0]), .in_tvalid(in0_V_TVALID), .in_tready(in0_V_TREADY),"
            " .out_tdata(d), .out_tvalid(v), .out_tready(r));"]
    for k in range(n):
        body += [pad_assign(f"out{k}_V", w, "d"), f"    assign out{k}_V_TVALID = v[{k}]; assign r[{k}] = out{k}_V_TREADY;"]
    return LayerRTL(**info, top=node.name, op="split_stream", out_ports=[w] * n,
                    sources={f"{node.name}.v": stream_module(node.name, [w], [w] * n, body)},
                    library=[RTL_DIR / "split_stream.sv"])


def concat_layer(model, node, workdir: Path, mem_dir: Path | None = None) -> LayerRTL:
    """A StreamingConcat node as concat_stream; inputs of narrower types are widened lane by lane."""
    inst = finn_inst(node)
    info = finn_stream_info(node)
    chans = [int(c) for c in inst.get_nodeattr("ChannelsPerStream")]
    simd, n = int(inst.get_nodeattr("SIMD")), len(chans)
    odt = inst.get_output_datatype()
    ob = odt.bitwidth()
    w = simd * ob
    ins = []
    for k in range(n):
        idt = inst.get_input_datatype(k)
        if not idt.is_integer() or idt.name == "BIPOLAR" and odt.name != "BIPOLAR":
            raise Unsupported(f"{node.name}: concat of {idt.name} into {odt.name}")
        ins.append((idt.bitwidth(), idt.signed() and idt.name != "BIPOLAR"))
    folds = folds_literal(chans, simd, node.name)
    data = ", ".join(_extend(f"in{k}_V_TDATA", simd, b, ob, s) for k, (b, s) in reversed(list(enumerate(ins))))
    body = [f"    wire [{w - 1}:0] y; wire [{n - 1}:0] v, r;",
            f"    assign v = {{{', '.join(f'in{k}_V_TVALID' for k in reversed(range(n)))}}};",
            *[f"    assign in{k}_V_TREADY = r[{k}];" for k in range(n)],
            f"    concat_stream #(.WIDTH({w}), .N({n}), .FOLDS({folds})) core (.clk(ap_clk), .rst_n(ap_rst_n),"
            f" .in_tdata({{{data}}}), .in_tvalid(v), .in_tready(r),"
            " .out_tdata(y), .out_tvalid(out0_V_TVALID), .out_tready(out0_V_TREADY));",
            pad_assign("out0_V", w, "y")]
    in_widths = [simd * b for b, _ in ins]
    return LayerRTL(**info, top=node.name, op="concat_stream", in_ports=in_widths,
                    sources={f"{node.name}.v": stream_module(node.name, in_widths, [w], body)},
                    library=[RTL_DIR / "concat_stream.sv"])

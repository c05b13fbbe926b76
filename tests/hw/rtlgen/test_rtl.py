"""Vivado-free hardware verification: our RTL under Verilator, bit for bit against numpy/FINN."""
from __future__ import annotations

import numpy as np
import pytest


from tool_markers import needs_verilator, needs_yosys  # noqa: E402


def test_stream_packing_round_trips_signed_and_wide_beats():
    from bnn2fpga.hw.rtlgen.streams import pack, unpack

    rng = np.random.default_rng(0)
    for elems, bits, signed in ((3, 1, False), (16, 9, True), (64, 1, False), (5, 12, True)):
        lo, hi = (-(1 << (bits - 1)), 1 << (bits - 1)) if signed else (0, 1 << bits)
        v = rng.integers(lo, hi, (7, elems))
        assert np.array_equal(unpack(pack(v, bits), elems, bits, signed), v)
    # element 0 sits in the lowest bits, as FINN packs streams
    assert pack(np.array([[1, 0, 0, 1]]), 1)[0, 0] == 0b1001
    assert pack(np.array([[3, 1]]), 4)[0, 0] == 0x13


def _mvtu_case(rng, mw, mh, pe, simd, xnor=True, n_thres=1, in_bits=1, in_signed=False, out_bits=1,
               out_bias=0, noact=False, w_bits=1, max_levels=8, lut_products=False):
    from bnn2fpga.hw.rtlgen.mvtu import MVTU

    if w_bits > 1:
        w = rng.integers(-(1 << (w_bits - 1)), 1 << (w_bits - 1), (mw, mh))
        scale = (1 << (in_bits + w_bits)) * mw // 8
        thr = np.sort(rng.integers(-scale, scale, (mh, n_thres)), axis=1)
    elif xnor:
        w = rng.integers(0, 2, (mw, mh))
        thr = np.sort(rng.integers(mw // 2 - 3, mw // 2 + 4, (mh, n_thres)), axis=1)
    else:
        w = 2 * rng.integers(0, 2, (mw, mh)) - 1
        scale = (1 << in_bits) * mw // 4
        thr = np.sort(rng.integers(-scale, scale, (mh, n_thres)), axis=1)
    return MVTU(w, None if noact else thr, pe, simd, xnor=xnor, in_bits=in_bits, in_signed=in_signed,
                out_bits=out_bits, out_bias=out_bias, max_levels=max_levels, lut_products=lut_products)


def _inputs(rng, m, n):
    lo, hi = (-(1 << (m.in_bits - 1)), 1 << (m.in_bits - 1)) if m.in_signed else (0, 1 << m.in_bits)
    return rng.integers(lo, hi, (n, m.mw))


def _run(m, x, **kw):
    from bnn2fpga.hw.sim.layer_sim import simulate

    n = len(x)
    layer = m.layer("mvtu_dut")
    run = simulate(layer, x.reshape(n * m.sf, m.simd), m.out_signed, **kw)
    return run, run.out.reshape(n, m.mh)


CASES = {
    # name: (MW, MH, PE, SIMD, options)
    "xnor-fold4x8": (32, 16, 4, 8, {}),
    "xnor-full-2bit-out": (32, 16, 16, 32, {"n_thres": 3, "out_bits": 2}),
    "uint8-bipolar-first-layer": (9, 16, 4, 3, {"xnor": False, "in_bits": 8}),
    "xnor-noact-simd1": (24, 6, 3, 1, {"noact": True, "out_bits": 9}),
    "int4-weights-signed-inputs": (16, 8, 2, 4, {"xnor": False, "in_bits": 4, "in_signed": True, "w_bits": 4}),
    # A limit of one level registers every tree level and the thresholds' count (odd SIMD:
    # sums that pass a level alone); the 8-bit layer at a limit that splits its tree once.
    "xnor-every-stage-registered": (40, 12, 3, 10, {"n_thres": 3, "out_bits": 2, "max_levels": 1}),
    "uint8-tree-split": (18, 8, 2, 9, {"xnor": False, "in_bits": 8, "max_levels": 6}),
    "int4-noact-every-stage": (12, 4, 2, 3, {"xnor": False, "in_bits": 4, "in_signed": True, "w_bits": 4,
                                             "noact": True, "out_bits": 9, "max_levels": 1}),
    # Products as shift-and-add (resType "lut"): signed and unsigned inputs, an odd weight width.
    "int4-lut-products": (16, 8, 2, 4, {"xnor": False, "in_bits": 4, "in_signed": True, "w_bits": 4,
                                        "lut_products": True}),
    "uint8-int3-lut-products-noact": (12, 6, 3, 4, {"xnor": False, "in_bits": 8, "w_bits": 3, "noact": True,
                                                    "out_bits": 16, "lut_products": True, "max_levels": 4}),
    # The partial-product tree subtracts the sign bit's product where it joins: at the first
    # level (2 bits), the last (5 bits: 4 + 1), in between (8 bits: the pair 6 + 7).
    "uint5-int2-lut-products": (8, 4, 2, 2, {"xnor": False, "in_bits": 5, "w_bits": 2, "lut_products": True}),
    "int3-int5-lut-products-noact": (6, 4, 2, 3, {"xnor": False, "in_bits": 3, "in_signed": True, "w_bits": 5,
                                                  "noact": True, "out_bits": 12, "lut_products": True}),
    "uint4-int8-lut-products-noact": (4, 4, 4, 1, {"xnor": False, "in_bits": 4, "w_bits": 8, "noact": True,
                                                   "out_bits": 14, "lut_products": True}),
}


@needs_verilator
@pytest.mark.parametrize("case", list(CASES))
def test_mvtu_is_bit_exact_with_backpressure(case):
    mw, mh, pe, simd, opts = CASES[case]
    rng = np.random.default_rng(list(CASES).index(case))
    m = _mvtu_case(rng, mw, mh, pe, simd, **opts)
    if opts.get("max_levels", 8) < 8:  # the case is there for its pipeline registers
        assert m.pipeline()[0] != 0
    x = _inputs(rng, m, 6)
    ref = m.reference(x)
    run, out = _run(m, x, seed=3, gap_pct=35, stall_pct=35)
    assert np.array_equal(out, ref), f"{case}: first mismatch at {np.argwhere(out != ref)[0]}"
    # full throughput: exactly NF*SF cycles per vector, as FINN estimates
    run, out = _run(m, x)
    assert np.array_equal(out, ref)
    assert run.cycles_per_frame(m.nf) == m.nf * m.sf


def test_reference_model_matches_finn_mvau_python_execution():
    """Our numpy model is FINN's MVAU semantics (xnorpopcount + MultiThreshold)."""
    import qonnx.custom_op.general.xnorpopcount as xp
    from qonnx.custom_op.general.multithreshold import multithreshold

    rng = np.random.default_rng(5)
    m = _mvtu_case(rng, 64, 8, 2, 16, n_thres=3, out_bits=2)
    x = _inputs(rng, m, 10)
    finn = multithreshold(xp.xnorpopcountmatmul(x.astype(float), m.weights.astype(float)), m.thresholds)
    assert np.array_equal(m.reference(x), finn)
    w = 2 * rng.integers(0, 2, (9, 4)) - 1
    from bnn2fpga.hw.rtlgen.mvtu import MVTU

    m2 = MVTU(w, np.array([[-100], [0], [3], [250]]), 2, 3, xnor=False, in_bits=8)
    x2 = rng.integers(0, 256, (10, 9))
    assert np.array_equal(m2.reference(x2), multithreshold(x2 @ w.astype(float), m2.thresholds))


# ---- the whole dataflow graph ------------------------------------------------------------


def _dataflow_model(mnist_build):
    from qonnx.core.modelwrapper import ModelWrapper

    from bnn2fpga.hw import finn_env
    from bnn2fpga.flows.runner import model_file

    finn_env.prepare()
    _, result = mnist_build
    return ModelWrapper(str(model_file(result.out_dir, "minimize_bit_width")))


@needs_verilator
def test_ladder_runs_the_whole_mnist_graph_as_rtl_bit_exact(mnist_build):
    from bnn2fpga.flows.verify import brevitas_reference, make_inputs, verify_build

    _, result = mnist_build
    inputs = make_inputs((1, 28, 28), 2, result.info.get("input_quant"), real=None, seed=4)
    verdict = verify_build(result, inputs, brevitas_reference("cbcnn-mnist", None, inputs.x), log=lambda m: None)
    names = [s.name for s in verdict.stages]
    assert names.index("rtlsim (Verilator)") == names.index("folded") + 1
    stage = verdict.stages[names.index("rtlsim (Verilator)")]
    assert stage.status == "bit-exact", stage.detail
    assert stage.equal == len(inputs.x) == 4
    assert "cycles/frame measured" in stage.detail and "FINN estimate" in stage.detail


@needs_verilator
def test_a_corrupted_threshold_memory_is_caught(mnist_build):
    """The RTL really computes: one changed threshold word changes the outputs."""
    from bnn2fpga.hw.sim.graph_sim import build_design, run_frames

    model = _dataflow_model(mnist_build)
    design = build_design(model)
    try:
        x = np.random.default_rng(0).integers(0, 256, (3, *design.in_shape[1:])).astype(np.float32)
        good = run_frames(design, x).out
        name = next(n for n in design.mem_files if n.startswith("MVAU") and n.endswith("_thresholds.dat")
                    and n.split("_thresholds")[0].endswith("_4"))
        path = design.mem_files[name]
        lines = path.read_text().splitlines()
        lines[0] = "f" * len(lines[0])  # thresholds of the first fold far out of reach
        path.write_text("\n".join(lines) + "\n")
        bad = run_frames(design, x).out
    finally:
        design.close()
    assert not np.array_equal(good, bad)


def test_an_mvau_that_replays_its_input_gets_a_fifo_of_a_whole_vector(mnist_build, tmp_path):
    """Otherwise its producers stall while it computes the other output folds (BlinkNet's classifier)."""
    from qonnx.custom_op.registry import getCustomOp

    from bnn2fpga.hw.rtlgen.from_finn import layer_for
    from bnn2fpga.hw.sim.graph_sim import graph_edges

    model = _dataflow_model(mnist_build)
    nodes = list(model.graph.node)
    i = max((k for k, n in enumerate(nodes) if n.op_type == "MVAUXnor_rtl"),
            key=lambda k: getCustomOp(nodes[k]).get_nodeattr("MW"))
    inst = getCustomOp(nodes[i])
    inst.set_nodeattr("SIMD", 1)
    inst.set_nodeattr("PE", 1)
    sf, nf = inst.get_nodeattr("MW"), inst.get_nodeattr("MH")
    assert sf > 256 and nf > 1
    layers = [layer_for(model, n, tmp_path) for n in nodes]
    depth = {e.dst: e.depth for e in graph_edges(model, layers)}
    assert depth[(i, 0)] >= sf
    assert min(depth.values()) == 256  # elsewhere the default


def test_nodes_without_rtl_are_named(mnist_build):
    from qonnx.custom_op.registry import getCustomOp

    from bnn2fpga.hw.rtlgen.from_finn import unsupported

    model = _dataflow_model(mnist_build)
    assert unsupported(model) == []
    pool = next(n for n in model.graph.node if n.op_type.startswith("Pool"))
    getCustomOp(pool).set_nodeattr("Function", "AvgPool")
    reasons = unsupported(model)
    assert len(reasons) == 1 and pool.name in reasons[0] and "AvgPool" in reasons[0]


# ---- the FINN custom op --------------------------------------------------------------------


def _hls_specialized_model(mnist_build, tmp_path):
    """The build's graph after specialize_layers with --binary-mvau hls (FINN's MVAU_hls nodes)."""
    import shutil

    from qonnx.core.modelwrapper import ModelWrapper

    from bnn2fpga.flows.config import make_config
    from bnn2fpga.flows.runner import model_file, run_build

    cfg, _ = mnist_build
    out = tmp_path / "hls"
    shutil.copytree(cfg.out_dir, out)
    run_build(make_config(model="cbcnn-mnist", board="pynq-z2", out_dir=out, until="specialize_layers",
                          binary_mvau="hls"), log=lambda m: None)
    return ModelWrapper(str(model_file(out, "specialize_layers")))


def test_binary_mvaus_switch_to_our_rtl_op_and_generate_hdl(mnist_build, tmp_path):
    from qonnx.custom_op.registry import getCustomOp

    import bnn2fpga.hw.finn_ops
    from bnn2fpga.flows.transforms.despecialize import DespecializeForPython
    from bnn2fpga.hw.finn_ops import UseXnorRTL

    model = _hls_specialized_model(mnist_build, tmp_path)
    mvaus = [n.name for n in model.graph.node if n.op_type == "MVAU_hls"]
    # Per layer through FINN's implementation style: only the node asking for RTL switches.
    getCustomOp(model.get_node_from_name(mvaus[2])).set_nodeattr("preferred_impl_style", "rtl")
    one = model.transform(UseXnorRTL())
    assert [n.name for n in one.graph.node if n.op_type == "MVAUXnor_rtl"] == [mvaus[2]]
    allm = model.transform(UseXnorRTL(all_binary=True))
    ops = {n.name: n.op_type for n in allm.graph.node}
    assert all(ops[m] == "MVAUXnor_rtl" for m in mvaus)  # the UINT8 first layer has bipolar weights too
    node = allm.get_node_from_name(mvaus[-1])
    inst = getCustomOp(node)
    assert node.domain == bnn2fpga.hw.finn_ops.RTL_DOMAIN and inst.get_nodeattr("mem_mode") == "internal_embedded"
    gen = tmp_path / "gen"
    inst.set_nodeattr("code_gen_dir_ipgen", str(gen))
    inst.generate_hdl(allm, "xc7z020clg400-1", 10.0)
    files = [gen / f for f in inst.get_rtl_file_list()]
    assert all(f.exists() for f in files) and files[-1].name == f"{node.name}.v"
    wrapper = files[-1].read_text()
    assert f"module {node.name}" in wrapper and str(gen / node.name) in wrapper  # absolute memory paths
    assert (gen / f"{node.name}_weights.dat").exists()
    tcl = inst.code_generation_ipi()
    assert tcl[-1].startswith(f"create_bd_cell -type module -reference {node.name}")
    assert [i[0] for i in inst.get_verilog_top_module_intf_names()["s_axis"]] == ["in0_V"]
    # the ladder's Python stand-in still works on graphs using the op
    py = allm.transform(DespecializeForPython())
    assert {n.op_type for n in py.graph.node} >= {"MVAUXnor"}


def test_our_op_estimates_luts_and_brams_like_finn_without_dsps(mnist_build):
    import copy

    from qonnx.custom_op.registry import getCustomOp

    part = "xc7z020clg400-1"
    model = _dataflow_model(mnist_build)
    nodes = [n for n in model.graph.node if n.op_type == "MVAUXnor_rtl"]
    first = getCustomOp(nodes[0])  # UINT8 pixels times +-1: FINN's HLS would multiply
    first.set_nodeattr("resType", "lut")
    hls_node = copy.deepcopy(nodes[0])
    hls_node.op_type, hls_node.domain = "MVAU_hls", "finn.custom_op.fpgadataflow.hls"
    hls = getCustomOp(hls_node)
    assert 300 < first.lut_estimation(part) < hls.lut_estimation(part)  # the same model minus multipliers
    first.set_nodeattr("resType", "dsp")
    hls.set_nodeattr("resType", "dsp")
    assert first.dsp_estimation(part) == 0 < hls.dsp_estimation(part)
    # The weight ROM where bnn_rom puts it: BRAM, or LUTs (none of them URAM).
    deep = getCustomOp(max(nodes, key=lambda n: getCustomOp(n).calc_wmem()))
    assert deep.calc_wmem() > 128
    deep.set_nodeattr("ram_style", "block")
    lut_block, bram_block = deep.lut_estimation(part), deep.bram_estimation(part)
    deep.set_nodeattr("ram_style", "distributed")
    assert bram_block > 0 == deep.bram_estimation(part) and deep.lut_estimation(part) > lut_block
    assert deep.uram_estimation(part) == 0


@needs_verilator
def test_prepare_ip_and_finn_stitching_take_our_rtl_layers(mnist_build, monkeypatch):
    """FINN's own PrepareIP and CreateStitchedIP up to the point where they would start Vivado."""
    import copy
    from pathlib import Path

    from finn.transformation.fpgadataflow import create_stitched_ip
    from finn.transformation.fpgadataflow.prepare_ip import PrepareIP
    from finn.util.fpgadataflow import is_rtl_node
    from onnx import TensorProto, helper
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp

    from bnn2fpga.hw.rtlgen.base import RTL_DIR
    from bnn2fpga.hw.sim.verilator import lint

    model = _dataflow_model(mnist_build).transform(PrepareIP("xc7z020clg400-1", 10.0))
    ours = [n for n in model.graph.node if n.op_type == "MVAUXnor_rtl"]
    assert len(ours) == 6
    for node in ours:
        inst = getCustomOp(node)
        folder = Path(inst.get_nodeattr("code_gen_dir_ipgen"))
        assert inst.get_nodeattr("ip_path") == str(folder.resolve())
        names = {f.name for f in folder.iterdir()}
        assert {f"{node.name}.v", "xnor_mvtu.sv", "bnn_rom.sv", f"{node.name}_weights.dat"} <= names
        assert (f"{node.name}_thresholds.dat" in names) == (not inst.get_nodeattr("noActivation"))
        lint(inst.get_nodeattr("gen_top_module"), inst.get_rtl_file_list(abspath=True))  # raises on a warning

    # FINN's stitching of the run of RTL nodes around our first layer (HLS nodes would
    # need Vitis' IP first): every layer is RTL by default, so that is the whole design.
    # Vivado itself is never launched: the launcher stops FINN.
    nodes = list(model.graph.node)
    a = b = nodes.index(ours[0])
    while a > 0 and is_rtl_node(nodes[a - 1]):
        a -= 1
    while b + 1 < len(nodes) and is_rtl_node(nodes[b + 1]):
        b += 1
    assert (a, b) == (0, len(nodes) - 1)
    part = ModelWrapper(copy.deepcopy(model.model))
    g = part.graph
    del g.node[:]
    g.node.extend(copy.deepcopy(nodes[a:b + 1]))
    for ports, t in ((g.input, nodes[a].input[0]), (g.output, nodes[b].output[0])):
        del ports[:]
        ports.append(helper.make_tensor_value_info(t, TensorProto.FLOAT, model.get_tensor_shape(t)))

    class VivadoWouldStart(Exception):
        pass

    def launch(cmd, **kwargs):
        raise VivadoWouldStart(cmd)

    monkeypatch.setattr(create_stitched_ip, "resolve_xilinx_tool", lambda tool: tool)
    monkeypatch.setattr(create_stitched_ip, "launch_process_helper", launch)
    with pytest.raises(VivadoWouldStart) as stop:
        create_stitched_ip.CreateStitchedIP("xc7z020clg400-1", 10.0).apply(part)
    tcl = (Path(stop.value.args[0][-1]).parent / "make_project.tcl").read_text().splitlines()
    name, prev, nxt = ours[0].name, nodes[nodes.index(ours[0]) - 1].name, nodes[nodes.index(ours[0]) + 1].name
    assert f"create_bd_cell -type module -reference {name} {name}" in tcl
    assert f"connect_bd_intf_net [get_bd_intf_pins {prev}/out0_V] [get_bd_intf_pins {name}/in0_V]" in tcl
    assert f"connect_bd_intf_net [get_bd_intf_pins {name}/out0_V] [get_bd_intf_pins {nxt}/in0_V]" in tcl
    added = [Path(line.split()[-1]) for line in tcl if line.startswith("add_files -norecurse /")]
    # One definition of each module: every layer names the same file of hw/rtl (Vivado skips
    # a file already in the project), and each layer adds its own wrapper.
    library = {f for f in added if f.parent == RTL_DIR}
    assert {f.name for f in library} >= {"xnor_mvtu.sv", "bnn_rom.sv", "maxpool_stream.sv", "window_group.sv",
                                         "eltwise_const.sv"}
    assert len({f.name for f in library}) == len(library)
    ours_all = [n for n in nodes if n.op_type in ("MVAUXnor_rtl", "Pool_rtl", "ElementwiseMulLut_rtl",
                                                  "ElementwiseAddLut_rtl")]
    wrappers = [f for f in added if f.name in {f"{n.name}.v" for n in ours_all}]
    assert len(wrappers) == len(ours_all) == 12 and all(f.exists() for f in [*library, *wrappers])


@needs_verilator
def test_our_op_executes_in_verilator_like_finn_python(mnist_build):
    from qonnx.custom_op.registry import getCustomOp

    model = _dataflow_model(mnist_build)
    node = [n for n in model.graph.node if n.op_type == "MVAUXnor_rtl"][-2]  # a thresholded binary layer
    inst = getCustomOp(node)
    rng = np.random.default_rng(2)
    x = rng.integers(0, 2, model.get_tensor_shape(node.input[0])).astype(np.float32)
    ctx = {node.input[0]: x, node.output[0]: np.zeros(model.get_tensor_shape(node.output[0]), np.float32)}
    for t in node.input[1:]:
        ctx[t] = model.get_initializer(t)
    inst.execute_node(ctx, model.graph)
    python_out = ctx[node.output[0]].copy()
    inst.set_nodeattr("exec_mode", "rtlsim")
    inst.execute_node(ctx, model.graph)
    assert np.array_equal(ctx[node.output[0]], python_out)


# ---- Yosys resources -------------------------------------------------------------------------


@needs_yosys
def test_yosys_counts_a_small_layer_for_xc7():
    """One small layer in CI (the first yowasp call compiles WebAssembly); the rest is make bench."""
    from bnn2fpga.hw.synth.yosys import synthesize

    rng = np.random.default_rng(1)
    m = _mvtu_case(rng, 16, 4, 2, 4)
    res = synthesize(m.layer("mvtu_small"))
    assert res["LUT"] > 0 and res["FF"] > 0 and res["DSP"] == 0
    assert res["LUT"] < 200  # 2 PEs x 4-bit XNOR-popcount, counters and thresholds


def test_yosys_counts_sit_beside_finn_estimates_in_the_report(mnist_build, tmp_path):
    import json
    import shutil

    from bnn2fpga.flows.report import add_yosys, load_report

    cfg, _ = mnist_build
    out = tmp_path / "b"
    shutil.copytree(cfg.out_dir, out)
    names = [row["name"] for row in load_report(out)["layers"]]
    fake = {names[0]: {"LUT": 11, "FF": 7, "BRAM_18K": 0, "DSP": 0}, names[1]: {"error": "boom"}}
    html = add_yosys(out, fake, "Yosys test")
    rep = json.loads((out / "report" / "report.json").read_text())
    row = next(r for r in rep["layers"] if r["name"] == names[0])
    assert row["yosys_LUT"] == 11 and row["LUT"] >= 0  # FINN's estimate is kept beside it
    assert rep["yosys"]["totals"]["LUT"] == 11 and "error" in rep["yosys"]["layers"][names[1]]
    assert "yosys_LUT" in html.read_text()


@needs_verilator
def test_a_residual_fork_and_join_is_stitched_with_deadlock_free_fifos():
    """DuplicateStreams -> (x, 2x) -> two-stream add: the DAG stitcher, dup_stream and eltwise_stream2."""
    from bnn2fpga.hw.rtlgen.base import RTL_DIR, LayerRTL, hex_lines, stream_wrapper
    from bnn2fpga.hw.rtlgen.base import pad_assign as _pad, stream_module as _module
    from bnn2fpga.hw.rtlgen.stitch import Edge, stitched_layer
    from bnn2fpga.hw.sim.layer_sim import simulate

    n, pe = 64, 2  # beats per frame, 4-bit lanes
    common = dict(in_elems=pe, in_elem_bits=4, out_elems=pe, in_beats=n, out_beats=n, exp_cycles=n)
    dup_body = ["    wire [7:0] d; wire [1:0] v, r;",
                "    dup_stream #(.WIDTH(8), .N_OUT(2)) core (.clk(ap_clk), .rst_n(ap_rst_n), .in_tdata(in0_V_TDATA),"
                " .in_tvalid(in0_V_TVALID), .in_tready(in0_V_TREADY), .out_tdata(d), .out_tvalid(v), .out_tready(r));",
                _pad("out0_V", 8, "d"), "    assign out0_V_TVALID = v[0]; assign r[0] = out0_V_TREADY;",
                _pad("out1_V", 8, "d"), "    assign out1_V_TVALID = v[1]; assign r[1] = out1_V_TREADY;"]
    dup = LayerRTL("dup", "dup", "dup_stream", 8, 8, out_elem_bits=4, **common, out_ports=[8, 8],
                   sources={"dup.v": _module("dup", [8], [8, 8], dup_body)}, library=[RTL_DIR / "dup_stream.sv"])
    params = {"PE": pe, "CF": 1, "IN_BITS": 4, "IN_SIGNED": 0, "C_BITS": 3, "OUT_BITS": 5, "OP": 3,
              "CONST_FILE": "twice_const.dat"}
    twice = LayerRTL("twice", "twice", "eltwise_const", 8, 10, out_elem_bits=5, **common,
                     sources={"twice.v": stream_wrapper("twice", "eltwise_const", params, 8, 10)},
                     library=[RTL_DIR / "eltwise_const.sv"], mem_files={"twice_const.dat": hex_lines([0b010010], 6)})
    add_body = ["    wire [11:0] y;",
                "    eltwise_stream2 #(.PE(2), .A_BITS(4), .A_SIGNED(0), .B_BITS(5), .B_SIGNED(0), .OUT_BITS(6), .OP(0))"
                " core (.clk(ap_clk), .rst_n(ap_rst_n), .a_tdata(in0_V_TDATA[7:0]), .a_tvalid(in0_V_TVALID),"
                " .a_tready(in0_V_TREADY), .b_tdata(in1_V_TDATA[9:0]), .b_tvalid(in1_V_TVALID),"
                " .b_tready(in1_V_TREADY), .out_tdata(y), .out_tvalid(out0_V_TVALID), .out_tready(out0_V_TREADY));",
                _pad("out0_V", 12, "y")]
    add = LayerRTL("add", "add", "eltwise_stream2", 8, 12, out_elem_bits=6, **common, in_ports=[8, 10],
                   sources={"add.v": _module("add", [8, 10], [12], add_body)}, library=[RTL_DIR / "eltwise_stream2.sv"])
    # The direct branch (dup out0 -> add in0) must hold a whole frame while 'twice' runs.
    edges = [Edge(None, (0, 0)), Edge((0, 0), (2, 0), 64), Edge((0, 1), (1, 0), 2), Edge((1, 0), (2, 1), 2),
             Edge((2, 0), None)]
    top = stitched_layer("dag_top", [dup, twice, add], edges=edges)
    x = np.random.default_rng(7).integers(0, 16, (3 * n, pe))
    run = simulate(top, x, out_signed=False, seed=5, gap_pct=30, stall_pct=30)
    assert np.array_equal(run.out, 3 * x)



def test_rtl_digest_follows_the_library_and_the_extra_files(tmp_path, monkeypatch):
    """The key of the steps whose results follow the RTL (FIFO depths, bitstreams) sees every source."""
    import shutil

    from bnn2fpga.hw.rtlgen import base

    extra = tmp_path / "flow.py"
    extra.write_text("x = 1\n")
    before = base.rtl_digest(extra)
    extra.write_text("x = 2\n")
    assert base.rtl_digest(extra) != before
    lib = tmp_path / "rtl"
    shutil.copytree(base.RTL_DIR, lib)
    monkeypatch.setattr(base, "RTL_DIR", lib)
    same = base.rtl_digest()
    (lib / "xnor_mvtu.sv").write_text((lib / "xnor_mvtu.sv").read_text() + "\n// changed\n")
    assert base.rtl_digest() != same

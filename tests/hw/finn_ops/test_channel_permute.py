"""ChannelPermute: the generic op, the channel-shuffle rewrite, the Transpose moves, the FINN HW/RTL ops,
our RTL under Verilator (alone and stitched into a dataflow graph) and its Yosys size.

The references are torch (the module the graph was exported from) and numpy.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn as nn

from bnn2fpga.hw import finn_env

finn_env.prepare()

import bnn2fpga.hw.finn_ops  # noqa: E402,F401 - registers the ops with FINN
from onnx import TensorProto, helper  # noqa: E402
from qonnx.core.datatype import DataType  # noqa: E402
from qonnx.core.modelwrapper import ModelWrapper  # noqa: E402
from qonnx.core.onnx_exec import execute_onnx  # noqa: E402
from qonnx.custom_op.registry import getCustomOp  # noqa: E402
from qonnx.transformation.infer_datatypes import InferDataTypes  # noqa: E402
from qonnx.transformation.infer_shapes import InferShapes  # noqa: E402
from qonnx.util.basic import qonnx_make_model  # noqa: E402

from bnn2fpga.flows.transforms.channel_shuffle_to_permute import ChannelShuffleToPermute  # noqa: E402
from bnn2fpga.flows.transforms.fold_channel_permute import FoldChannelPermute  # noqa: E402
from bnn2fpga.flows.transforms.infer_channel_permute_layer import InferChannelPermuteLayer  # noqa: E402
from bnn2fpga.flows.transforms.move_channel_permute_past_transpose import MoveChannelPermutePastTranspose  # noqa: E402
from bnn2fpga.flows.transforms.move_transpose_past_channel_permute import MoveTransposePastChannelPermute  # noqa: E402
from bnn2fpga.hw.finn_ops.channel_permute import DOMAIN  # noqa: E402

from tool_markers import needs_verilator, needs_yosys  # noqa: E402
PART = "xc7z020clg400-1"


# Small tensors: one torch thread is faster, and much faster when the CPUs are shared.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _run(model: ModelWrapper, x: np.ndarray) -> np.ndarray:
    with finn_env.exact_execution():
        out = execute_onnx(model, {model.graph.input[0].name: np.asarray(x, np.float32)})
    return out[model.graph.output[0].name]


def _one_node_model(node, shape, dtype="INT4", out_shape=None) -> ModelWrapper:
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info(node.input[0], TensorProto.FLOAT, shape)],
                          [helper.make_tensor_value_info(node.output[-1], TensorProto.FLOAT, out_shape or shape)])
    model = ModelWrapper(qonnx_make_model(g))
    model.set_tensor_datatype(node.input[0], DataType[dtype])
    return model.transform(InferShapes()).transform(InferDataTypes())


def _shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


def _shuffle_perm(channels: int, groups: int) -> list[int]:
    """The shuffle's permutation computed by torch itself on channel indices."""
    idx = torch.arange(channels, dtype=torch.float32).reshape(1, channels, 1, 1)
    return _shuffle(idx, groups).reshape(-1).long().tolist()


class _Shuffle(nn.Module):
    def __init__(self, groups: int):
        super().__init__()
        from brevitas.nn import QuantIdentity

        self.groups = groups
        self.q = QuantIdentity(bit_width=4, return_quant_tensor=False)

    def forward(self, x):
        return _shuffle(self.q(x), self.groups)


def _export(module: nn.Module, x: torch.Tensor, path) -> ModelWrapper:
    from brevitas.export import export_qonnx
    from qonnx.util.cleanup import cleanup_model

    export_qonnx(module.eval(), input_t=x, export_path=str(path))
    return cleanup_model(ModelWrapper(str(path)))


# ---- the generic op and the rewrite --------------------------------------------------------------


def test_generic_op_is_found_by_domain_and_gathers_channels():
    rng = np.random.default_rng(0)
    perm = rng.permutation(6).tolist()
    node = helper.make_node("ChannelPermute", ["x"], ["y"], domain=DOMAIN, perm=perm, axis=1)
    model = _one_node_model(node, [1, 6, 3, 2])
    assert type(getCustomOp(node)).__module__ == "bnn2fpga.hw.finn_ops.channel_permute"
    assert model.get_tensor_shape("y") == [1, 6, 3, 2] and model.get_tensor_datatype("y") == DataType["INT4"]
    x = rng.integers(-8, 8, (1, 6, 3, 2))
    assert np.array_equal(_run(model, x), x[:, perm])
    # channels last, by a negative axis
    nhwc = _one_node_model(helper.make_node("ChannelPermute", ["x"], ["y"], domain=DOMAIN, perm=perm, axis=-1),
                           [1, 3, 2, 6])
    x = rng.integers(-8, 8, (1, 3, 2, 6))
    assert np.array_equal(_run(nhwc, x), x[..., perm])
    bad = helper.make_node("ChannelPermute", ["x"], ["y"], domain=DOMAIN, perm=[0, 0, 1])
    assert "not a permutation" in getCustomOp(bad).verify_node()[0]


@pytest.mark.parametrize("channels,groups", [(8, 2), (12, 4), (12, 3)])
def test_torch_channel_shuffle_becomes_one_permute_with_identical_outputs(tmp_path, channels, groups):
    torch.manual_seed(groups)
    module = _Shuffle(groups)
    x = torch.randn(1, channels, 3, 4)
    model = _export(module, x, tmp_path / "shuffle.onnx")
    assert [n.op_type for n in model.graph.node] == ["Quant", "Reshape", "Transpose", "Reshape"]
    before = _run(model, x.numpy())
    after_model = model.transform(ChannelShuffleToPermute())
    ops = [n.op_type for n in after_model.graph.node]
    assert ops == ["Quant", "ChannelPermute"]
    node = after_model.graph.node[1]
    inst = getCustomOp(node)
    assert list(inst.get_nodeattr("perm")) == _shuffle_perm(channels, groups) and inst.get_nodeattr("axis") == 1
    assert not any(i.name.startswith("Reshape") for i in after_model.graph.initializer)
    after = _run(after_model, x.numpy())
    with torch.no_grad():
        ref = module(x).numpy()
    assert np.array_equal(after, before) and np.array_equal(after, ref)
    # the generic op's own execution is numpy's gather on the quantized input
    with finn_env.exact_execution():
        ctx = execute_onnx(after_model, {after_model.graph.input[0].name: x.numpy()}, return_full_exec_context=True)
    assert np.array_equal(after, np.take(ctx[node.input[0]], _shuffle_perm(channels, groups), axis=1))


def _chain(in_shape, mid, perm, out_shape):
    nodes = [helper.make_node("Reshape", ["x", "s1"], ["a"]), helper.make_node("Transpose", ["a"], ["b"], perm=perm),
             helper.make_node("Reshape", ["b", "s2"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)])
    model = ModelWrapper(qonnx_make_model(g))
    model.set_initializer("s1", np.asarray(mid, np.int64))
    model.set_initializer("s2", np.asarray(out_shape, np.int64))
    return model.transform(InferShapes())


def test_chains_that_move_more_than_channels_are_left_alone():
    # rows and columns swapped (a square map keeps its shape)
    spatial = _chain([1, 2, 3, 3], [1, 2, 3, 3, 1], [0, 1, 3, 2, 4], [1, 2, 3, 3])
    # channels mixed into the batch axis's neighbour: a channel shuffle of the flattened map
    mixed = _chain([1, 4, 2, 2], [1, 2, 8], [0, 2, 1], [1, 4, 2, 2])
    for model in (spatial, mixed):
        assert [n.op_type for n in model.transform(ChannelShuffleToPermute()).graph.node] == \
            ["Reshape", "Transpose", "Reshape"]
    # 0 in a Reshape shape copies the input's size (ONNX), and the permutation is still found
    zero = _chain([1, 6, 2, 2], [0, 3, 2, 2, 2], [0, 2, 1, 3, 4], [1, 6, 2, 2])
    out = zero.transform(ChannelShuffleToPermute())
    assert [n.op_type for n in out.graph.node] == ["ChannelPermute"]
    x = np.arange(24, dtype=np.float32).reshape(1, 6, 2, 2)
    assert np.array_equal(_run(out, x), _run(zero, x))


# ---- Transpose moves ---------------------------------------------------------------------------


def _transposed_permute(perm, axis, tr_in=(0, 3, 1, 2), tr_out=(0, 2, 3, 1), shape=(1, 3, 2, 6)):
    """x (NHWC) -> Transpose(tr_in) -> ChannelPermute(axis) -> Transpose(tr_out) -> Identity -> y."""
    mid = [shape[p] for p in tr_in]
    out = [mid[p] for p in tr_out]
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=list(tr_in)),
             helper.make_node("ChannelPermute", ["t"], ["c"], domain=DOMAIN, perm=perm, axis=axis),
             helper.make_node("Transpose", ["c"], ["o"], perm=list(tr_out)),
             # FINN's AbsorbConsecutiveTransposes cannot remove a Transpose that writes the graph output
             helper.make_node("Identity", ["o"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, out)])
    model = ModelWrapper(qonnx_make_model(g))
    model.set_tensor_datatype("x", DataType["INT4"])
    return model.transform(InferShapes()).transform(InferDataTypes())


@pytest.mark.parametrize("move", [MoveTransposePastChannelPermute, MoveChannelPermutePastTranspose])
def test_transposes_around_a_permute_cancel_after_either_move(move):
    from finn.transformation.streamline.absorb import AbsorbConsecutiveTransposes

    rng = np.random.default_rng(1)
    perm = rng.permutation(6).tolist()
    model = _transposed_permute(perm, 1)
    x = rng.integers(-8, 8, (1, 3, 2, 6))
    ref = _run(model, x)
    out = model.transform(move()).transform(AbsorbConsecutiveTransposes())
    assert [n.op_type for n in out.graph.node] == ["ChannelPermute", "Identity"]
    assert getCustomOp(out.graph.node[0]).get_nodeattr("axis") == 3  # NHWC: channels last
    assert np.array_equal(_run(out, x), ref) and np.array_equal(ref, x[..., perm])
    assert out.get_tensor_datatype(out.graph.output[0].name) == DataType["INT4"]


def test_moves_keep_values_for_any_transpose():
    rng = np.random.default_rng(2)
    perm = rng.permutation(3).tolist()
    # the permuted axis (2 of the middle tensor) is axis 3 of x: shape 3 there
    model = _transposed_permute(perm, 2, tr_in=(0, 2, 3, 1), tr_out=(1, 0, 3, 2), shape=(1, 2, 4, 3))
    x = rng.integers(-8, 8, (1, 2, 4, 3))
    ref = _run(model, x)
    for move, ops in ((MoveTransposePastChannelPermute, ["ChannelPermute", "Transpose", "Transpose", "Identity"]),
                      (MoveChannelPermutePastTranspose, ["Transpose", "Transpose", "ChannelPermute", "Identity"])):
        out = ModelWrapper(copy.deepcopy(model.model)).transform(move())
        assert [n.op_type for n in out.graph.node] == ops
        assert np.array_equal(_run(out, x), ref)


# ---- the HW op and its RTL backend -------------------------------------------------------------


def _hw_model(perm, shape=(1, 2, 3, 12), dtype="INT4"):
    node = helper.make_node("ChannelPermute", ["x"], ["y"], domain=DOMAIN, perm=list(perm), axis=3, name="cp")
    return _one_node_model(node, list(shape), dtype).transform(InferChannelPermuteLayer())


def test_hw_op_shapes_streams_cycles_and_python_execution():
    rng = np.random.default_rng(3)
    perm = rng.permutation(12).tolist()
    model = _hw_model(perm)
    node = model.graph.node[0]
    assert (node.op_type, node.domain) == ("ChannelPermute", "finn.custom_op.fpgadataflow")
    inst = getCustomOp(node)
    assert inst.get_nodeattr("NumChannels") == 12 and list(inst.get_nodeattr("numInputVectors")) == [1, 2, 3]
    assert inst.get_nodeattr("preferred_impl_style") == "rtl"
    assert inst.verify_node() == ["ChannelPermute attributes are valid"]
    inst.set_nodeattr("SIMD", 4)
    assert inst.get_folded_input_shape() == (1, 2, 3, 3, 4) == inst.get_folded_output_shape()
    assert inst.get_instream_width() == inst.get_outstream_width() == 16
    assert inst.get_output_datatype() == DataType["INT4"] and inst.get_number_output_values() == 18
    assert inst.get_exp_cycles() == (6 + 1) * 3  # 6 pixels of 3 beats plus one pixel buffered
    assert inst.bram_estimation(PART) == 0 and 0 < inst.lut_estimation(PART) < 100
    x = rng.integers(-8, 8, (1, 2, 3, 12))
    assert np.array_equal(_run(model, x), x[..., perm])
    # the channel axis must be last and the input integer
    nchw = helper.make_node("ChannelPermute", ["x"], ["y"], domain=DOMAIN, perm=perm, axis=1)
    assert _one_node_model(nchw, [1, 12, 2, 3]).transform(InferChannelPermuteLayer()).graph.node[0].domain == DOMAIN
    flt = helper.make_node("ChannelPermute", ["x"], ["y"], domain=DOMAIN, perm=perm, axis=3)
    assert _one_node_model(flt, [1, 2, 3, 12], "FLOAT32").transform(
        InferChannelPermuteLayer()).graph.node[0].domain == DOMAIN


def test_specialize_layers_picks_our_rtl_which_generates_hdl(tmp_path):
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

    from bnn2fpga.flows.transforms.despecialize import DespecializeForPython

    perm = np.random.default_rng(4).permutation(12).tolist()
    model = _hw_model(perm).transform(SpecializeLayers(PART))
    node = model.graph.node[0]
    assert (node.op_type, node.domain) == ("ChannelPermute_rtl", bnn2fpga.hw.finn_ops.RTL_DOMAIN)
    inst = getCustomOp(node)
    inst.set_nodeattr("SIMD", 3)
    inst.set_nodeattr("code_gen_dir_ipgen", str(tmp_path))
    inst.generate_hdl(model, PART, 10.0)
    files = [tmp_path / f for f in inst.get_rtl_file_list()]
    assert [f.name for f in files] == ["channel_permute.sv", f"{node.name}.v"] and all(f.exists() for f in files)
    wrapper = files[-1].read_text()
    assert f"module {node.name}" in wrapper and ".SIMD(3)" in wrapper and "48'h" in wrapper  # 12 x 4-bit entries
    assert inst.get_nodeattr("ip_path") == str(tmp_path.resolve())
    tcl = inst.code_generation_ipi()
    assert tcl[-1] == f"create_bd_cell -type module -reference {node.name} {node.name}"
    # Vivado gets the one shared copy of the module (many permute layers, one definition).
    from bnn2fpga.hw.rtlgen.base import RTL_DIR

    assert tcl[0] == f"add_files -norecurse {RTL_DIR / 'channel_permute.sv'}"
    # the ladder's Python stand-in
    py = model.transform(DespecializeForPython())
    x = np.random.default_rng(5).integers(-8, 8, (1, 2, 3, 12))
    assert py.graph.node[0].op_type == "ChannelPermute" and np.array_equal(_run(py, x), x[..., perm])


def test_folding_gives_the_smallest_simd_within_the_budget():
    model = _hw_model(list(range(12))[::-1])  # 6 pixels: (6 + 1) * 12 / SIMD cycles
    inst = lambda m: getCustomOp(m.graph.node[0])  # noqa: E731
    assert inst(model.transform(FoldChannelPermute(cycles=30))).get_nodeattr("SIMD") == 3  # 28 <= 30 < 42
    assert inst(model.transform(FoldChannelPermute(cycles=84))).get_nodeattr("SIMD") == 1
    assert inst(model.transform(FoldChannelPermute(cycles=1))).get_nodeattr("SIMD") == 12  # nothing fits: fastest


# ---- RTL under Verilator -------------------------------------------------------------------------


@needs_verilator
@pytest.mark.parametrize("simd", [1, 4, 12])
def test_rtl_matches_python_with_backpressure_and_reaches_the_cycle_estimate(simd):
    from bnn2fpga.hw.rtlgen.channel_permute import channel_permute_layer, reference
    from bnn2fpga.hw.sim.layer_sim import compile_layer, simulate

    rng = np.random.default_rng(simd)
    channels, bits, pixels, frames = 12, 3, 5, 3
    perm = rng.permutation(channels)
    x = rng.integers(0, 1 << bits, (frames * pixels, channels))
    layer = channel_permute_layer(f"cp_test_s{simd}", perm, simd, bits, pixels)
    sim = compile_layer(layer)
    ref = reference(x, perm)
    run = simulate(layer, x.reshape(-1, simd), False, seed=7, gap_pct=30, stall_pct=40, sim=sim)
    assert np.array_equal(run.out.reshape(-1, channels), ref)
    run = simulate(layer, x.reshape(-1, simd), False, sim=sim)
    assert np.array_equal(run.out.reshape(-1, channels), ref)
    fold = channels // simd
    # one beat per cycle at steady state; the first frame's last beat after one more pixel
    assert run.cycles_per_frame(layer.out_beats) == pixels * fold
    assert run.cycles_at[layer.out_beats - 1] == layer.exp_cycles == (pixels + 1) * fold


@needs_verilator
def test_rtl_op_executes_in_verilator_like_python():
    perm = np.random.default_rng(6).permutation(12).tolist()
    model = _hw_model(perm, dtype="INT4")
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

    model = model.transform(SpecializeLayers(PART))
    node = model.graph.node[0]
    inst = getCustomOp(node)
    inst.set_nodeattr("SIMD", 6)
    x = np.random.default_rng(7).integers(-8, 8, (1, 2, 3, 12)).astype(np.float32)  # negative values too
    ctx = {node.input[0]: x, node.output[0]: np.zeros_like(x)}
    inst.execute_node(ctx, model.graph)
    python_out = ctx[node.output[0]].copy()
    inst.set_nodeattr("exec_mode", "rtlsim")
    ctx[node.output[0]] = np.zeros_like(x)
    inst.execute_node(ctx, model.graph)
    assert np.array_equal(ctx[node.output[0]], python_out) and np.array_equal(python_out, x[..., perm])
    assert inst.get_nodeattr("cycles_rtlsim") > 0


class _Block(nn.Module):
    """conv -> 4-bit act -> channel shuffle -> 1x1 conv -> 4-bit act: a PresB-Net-like join."""

    def __init__(self):
        super().__init__()
        from brevitas.nn import QuantConv2d, QuantIdentity, QuantReLU

        self.inp = QuantIdentity(bit_width=4, return_quant_tensor=True)
        self.c1 = QuantConv2d(4, 8, 3, padding=1, weight_bit_width=2, bias=False)
        self.a1 = QuantReLU(bit_width=4, return_quant_tensor=False)
        self.c2 = QuantConv2d(8, 8, 1, weight_bit_width=2, bias=False)
        self.a2 = QuantReLU(bit_width=4)

    def forward(self, x):
        return self.a2(self.c2(_shuffle(self.a1(self.c1(self.inp(x))), 2)))


def _keep(model: ModelWrapper, lo: int, hi: int) -> ModelWrapper:
    """Nodes lo..hi only, their first input and last output becoming the graph's."""
    g = model.graph
    nodes = list(g.node)
    inp, out = nodes[lo].input[0], nodes[hi].output[0]
    shapes = {t: model.get_tensor_shape(t) for t in (inp, out)}
    del g.node[:]
    g.node.extend(nodes[lo:hi + 1])
    kept = [vi for vi in g.value_info if vi.name not in shapes]
    del g.value_info[:]
    g.value_info.extend(kept)
    for vis, t in ((g.input, inp), (g.output, out)):
        del vis[:]
        vis.append(helper.make_tensor_value_info(t, TensorProto.FLOAT, shapes[t]))
    return model


@needs_verilator
def test_exported_shuffle_streams_through_finn_and_the_stitched_rtl(tmp_path):
    """torch -> QONNX -> FINN streamlining -> our transforms -> HW layers -> folding -> stitched Verilator.

    The shuffle is rewritten after FINN's streamlining (its scalar moves pass Reshape and
    Transpose, not ChannelPermute), then the lowering Transposes around it cancel.
    """
    from finn.builder.build_dataflow_config import DataflowBuildConfig
    from finn.transformation.streamline.absorb import AbsorbConsecutiveTransposes

    from bnn2fpga.flows.folding import fold_to_cycles, max_cycles
    from bnn2fpga.hw.sim.graph_sim import build_design, run_frames

    steps = finn_env.finn_steps()
    torch.manual_seed(0)
    module = _Block().eval()
    with torch.no_grad():
        module(torch.rand(16, 4, 5, 5))  # calibrates nothing, but runs the quantizers once
    x = torch.rand(1, 4, 5, 5)
    with torch.no_grad():
        ref = module(x).numpy()
    cfg = DataflowBuildConfig(output_dir=str(tmp_path / "finn"), synth_clk_period_ns=10.0, generate_outputs=[],
                              fpga_part=PART)
    model = steps.step_tidy_up(steps.step_qonnx_to_finn(_export(module, x, tmp_path / "b.onnx"), cfg), cfg)
    model = steps.step_streamline(model, cfg)
    model = model.transform(ChannelShuffleToPermute()).transform(MoveTransposePastChannelPermute())
    model = model.transform(AbsorbConsecutiveTransposes())
    ops = [n.op_type for n in model.graph.node]
    assert ops[ops.index("ChannelPermute") - 1:ops.index("ChannelPermute") + 2] == \
        ["MultiThreshold", "ChannelPermute", "MatMul"]
    assert np.array_equal(_run(model, x.numpy()), ref)
    # The accelerator part: from the first quantized tensor to the last threshold (host ops cut off).
    with finn_env.exact_execution():
        ctx = execute_onnx(model, {model.graph.input[0].name: x.numpy()}, return_full_exec_context=True)
    last_mt = max(i for i, op in enumerate(ops) if op == "MultiThreshold")
    core = _keep(ModelWrapper(copy.deepcopy(model.model)), 1, last_mt)
    xi = ctx[core.graph.input[0].name]
    core_ref = _run(core, xi)
    hwm = core.transform(InferChannelPermuteLayer())
    hwm = steps.step_convert_to_hw(hwm, cfg)
    hwm = steps.step_create_dataflow_partition(hwm, cfg)  # drops the leading NCHW->NHWC Transpose
    hwm = steps.step_specialize_layers(hwm, cfg)
    assert "ChannelPermute_rtl" in [n.op_type for n in hwm.graph.node]
    hwm = fold_to_cycles(hwm, 50)
    cp = getCustomOp(next(n for n in hwm.graph.node if n.op_type == "ChannelPermute_rtl"))
    others = [getCustomOp(n).get_exp_cycles() for n in hwm.graph.node if n.op_type != "ChannelPermute_rtl"]
    assert cp.get_exp_cycles() <= max(others) == max_cycles(hwm)  # off the critical path
    simd = cp.get_nodeattr("SIMD")
    for smaller in [d for d in range(1, simd) if 8 % d == 0][-1:]:  # and no wider than needed
        cp.set_nodeattr("SIMD", smaller)
        assert cp.get_exp_cycles() > max(others)
        cp.set_nodeattr("SIMD", simd)
    hwm = steps.step_minimize_bit_width(hwm, cfg)
    design = build_design(hwm, tmp_path / "rtl")
    try:
        xh = xi.transpose(0, 2, 3, 1)
        run = run_frames(design, np.concatenate([xh, xh[:, ::-1]]), seed=3, gap_pct=20, stall_pct=20)
    finally:
        design.close()
    assert "channel_permute" in [layer.op for layer in design.layers]
    flipped = np.ascontiguousarray(xi[:, :, ::-1])  # the second frame: rows upside down
    assert np.array_equal(run.out, np.concatenate([core_ref, _run(core, flipped)]))


# ---- Yosys ---------------------------------------------------------------------------------------


@needs_yosys
def test_yosys_size_matches_the_estimate():
    """32 binary channels, SIMD 4: two 32-bit pixel buffers and four 8:1 multiplexers."""
    from bnn2fpga.hw.rtlgen.channel_permute import channel_permute_layer
    from bnn2fpga.hw.synth.yosys import synthesize

    perm = np.random.default_rng(8).permutation(32).tolist()
    res = synthesize(channel_permute_layer("cp_yosys", perm, 4, 1, 4))
    est = getCustomOp(helper.make_node("ChannelPermute", ["x"], ["y"], domain="finn.custom_op.fpgadataflow",
                                       NumChannels=32, perm=perm, SIMD=4, inputDataType="BINARY",
                                       numInputVectors=[1, 2, 2]))
    assert res["BRAM_18K"] == 0 == est.bram_estimation(PART) and res["DSP"] == 0
    assert res["FF"] == 2 * 32 + 2 * 3 + 2  # both buffers, two 3-bit beat counters, full and busy
    assert 0.5 * est.lut_estimation(PART) <= res["LUT"] <= 2 * est.lut_estimation(PART)

"""Our RTL for FINN's StreamingSplit, StreamingConcat, summing Pool (AccPool, QuantAvgPool) and
GlobalAccPool under Verilator, against FINN's Python execution of the same nodes, at two foldings
each, with random input gaps and output stalls."""
from __future__ import annotations

import numpy as np
import pytest

from bnn2fpga.hw import finn_env

finn_env.prepare()

from onnx import TensorProto, helper  # noqa: E402
from qonnx.core.datatype import DataType  # noqa: E402
from qonnx.core.modelwrapper import ModelWrapper  # noqa: E402
from qonnx.core.onnx_exec import execute_onnx  # noqa: E402
from qonnx.custom_op.registry import getCustomOp  # noqa: E402
from qonnx.util.basic import qonnx_make_model  # noqa: E402


from tool_markers import needs_verilator  # noqa: E402
FINN_DOMAIN = "finn.custom_op.fpgadataflow"


def _hw(op: str, ins: list[str], outs: list[str], name: str, **attrs):
    return helper.make_node(op, ins, outs, name=name, domain=FINN_DOMAIN, backend="fpgadataflow", **attrs)


def _model(nodes, shapes: dict, dtypes: dict) -> ModelWrapper:
    """A graph of HW nodes; ``shapes`` and ``dtypes`` of every tensor, the first and last are the graph's."""
    names = list(shapes)
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(names[0], TensorProto.FLOAT, shapes[names[0]])],
                          [helper.make_tensor_value_info(names[-1], TensorProto.FLOAT, shapes[names[-1]])],
                          value_info=[helper.make_tensor_value_info(t, TensorProto.FLOAT, s)
                                      for t, s in shapes.items() if t not in (names[0], names[-1])])
    model = ModelWrapper(qonnx_make_model(g))
    for t, dt in dtypes.items():
        model.set_tensor_datatype(t, DataType[dt])
    return model


def _python(model: ModelWrapper, x: np.ndarray) -> np.ndarray:
    with finn_env.exact_execution():
        return execute_onnx(model, {model.graph.input[0].name: x.astype(np.float32)})[model.graph.output[0].name]


def _execute_node(node, x: np.ndarray, out_shape) -> np.ndarray:
    """FINN's Python execution of one node."""
    ctx = {node.input[0]: x.astype(np.float32), node.output[0]: np.zeros(out_shape, np.float32)}
    with finn_env.exact_execution():
        getCustomOp(node).execute_node(ctx, None)
    return ctx[node.output[0]]


# ---- split and concat: a small graph through the stitcher ------------------------------------


def _split_concat_graph(split_simd: int, pool_pe: int, concat_simd: int) -> ModelWrapper:
    """x -> split [4, 6, 2] -> concat(AccPool-1x1(c) as INT6, a, b): three streams each way, order
    changed, one input widened (INT4 -> INT6, negative values sign-extended)."""
    h, w = 3, 4
    vecs = [1, h, w]
    nodes = [
        _hw("StreamingSplit", ["x"], ["a", "b", "c"], "split", SIMD=split_simd, ChannelsPerStream=[4, 6, 2],
            inputDataType="INT4", numInputVectors=vecs),
        _hw("Pool", ["c"], ["p"], "widen", Channels=2, PE=pool_pe, KernelSize=[1, 1], Function="AccPool",
            OutImgDims=[h, w], InputDataType="INT4", OutputDataType="INT6", AccumBits=6),
        _hw("StreamingConcat", ["p", "a", "b"], ["y"], "concat", SIMD=concat_simd, ChannelsPerStream=[2, 4, 6],
            inputDataTypes=["INT6", "INT4", "INT4"], numInputVectors=vecs),
    ]
    shapes = {"x": [1, h, w, 12], "a": [1, h, w, 4], "b": [1, h, w, 6], "c": [1, h, w, 2], "p": [1, h, w, 2],
              "y": [1, h, w, 12]}
    dtypes = {"x": "INT4", "a": "INT4", "b": "INT4", "c": "INT4", "p": "INT6", "y": "INT6"}
    return _model(nodes, shapes, dtypes)


@needs_verilator
@pytest.mark.parametrize("split_simd,pool_pe,concat_simd", [(2, 2, 2), (1, 1, 2)])
def test_split_and_concat_match_python_with_backpressure(split_simd, pool_pe, concat_simd):
    from bnn2fpga.hw.sim.graph_sim import build_design, run_frames

    model = _split_concat_graph(split_simd, pool_pe, concat_simd)
    assert getCustomOp(model.graph.node[2]).get_output_datatype() == DataType["INT6"]
    x = np.random.default_rng(split_simd).integers(-8, 8, (4, 3, 4, 12))
    ref = np.concatenate([_python(model, x[i:i + 1]) for i in range(len(x))])
    assert np.array_equal(ref, np.concatenate([x[..., 10:], x[..., :10]], axis=-1))
    design = build_design(model)
    try:
        assert [lay.op for lay in design.layers] == ["split_stream", "sumpool_stream", "concat_stream"]
        assert design.layers[0].out_ports == [4 * split_simd, 4 * split_simd, 4 * split_simd]
        assert design.layers[2].in_ports == [6 * concat_simd, 4 * concat_simd, 4 * concat_simd]
        run = run_frames(design, x, seed=3, gap_pct=30, stall_pct=40)
        assert np.array_equal(run.out, ref)
        run = run_frames(design, x)
        assert np.array_equal(run.out, ref)
        # one beat per cycle at the narrowest point: 12 pixels of 12 channels
        assert run.cycles_per_frame == 12 * 12 // min(split_simd, concat_simd)
    finally:
        design.close()


# ---- the pools alone -------------------------------------------------------------------------


POOLS = {
    # name: (Function, input type, output type, PE); Size is the QuantAvgPool shift
    "quantavg-int4-pe1": ("QuantAvgPool", "INT4", "INT4", 1),
    "quantavg-int4-pe4": ("QuantAvgPool", "INT4", "INT4", 4),
    "accpool-uint3-pe2": ("AccPool", "UINT3", "UINT5", 2),
}


@needs_verilator
@pytest.mark.parametrize("case", list(POOLS))
def test_sum_pool_matches_python_with_backpressure(case, tmp_path):
    """2x2 windows of 8 channels on a 3x2 output map, in the depthwise sliding window's order."""
    from bnn2fpga.hw.rtlgen.from_finn import layer_for
    from bnn2fpga.hw.sim.layer_sim import compile_layer, simulate

    fxn, idt, odt, pe = POOLS[case]
    oh, ow, c, k = 3, 2, 8, 4
    node = _hw("Pool", ["x"], ["y"], f"pool_{case.replace('-', '_')}", Channels=c, PE=pe, KernelSize=[2, 2],
               Function=fxn, OutImgDims=[oh, ow], InputDataType=idt, OutputDataType=odt, Size=2, AccumBits=6)
    model = _model([node], {"x": [1, oh, ow, k * c], "y": [1, oh, ow, c]}, {"x": idt, "y": odt})
    layer = layer_for(model, node, tmp_path)
    assert layer.op == "sumpool_stream"
    dt = DataType[idt]
    frames = 3
    # FINN's Python takes im2col order (window position, channel); the generator streams
    # (channel fold, window position, PE) per output pixel.
    x = np.random.default_rng(len(case)).integers(int(dt.min()), int(dt.max()) + 1, (frames, oh, ow, k, c))
    ref = np.concatenate([_execute_node(node, x[f].reshape(1, oh, ow, k * c), (1, oh, ow, c)) for f in range(frames)])
    if fxn == "QuantAvgPool":
        assert np.array_equal(ref, np.floor(x.sum(axis=3) / 4))  # floor average: sum >> 2
    beats = x.reshape(frames, oh, ow, k, c // pe, pe).transpose(0, 1, 2, 4, 3, 5).reshape(-1, pe)
    sim = compile_layer(layer)
    run = simulate(layer, beats, DataType[odt].signed(), seed=5, gap_pct=30, stall_pct=40, sim=sim)
    assert np.array_equal(run.out.reshape(ref.shape), ref)
    run = simulate(layer, beats, DataType[odt].signed(), sim=sim)
    assert np.array_equal(run.out.reshape(ref.shape), ref)
    assert run.cycles_per_frame(layer.out_beats) == layer.exp_cycles == oh * ow * k * c // pe


@needs_verilator
@pytest.mark.parametrize("pe", [1, 4])
def test_global_acc_pool_matches_python_with_backpressure(pe, tmp_path):
    from bnn2fpga.hw.rtlgen.from_finn import layer_for
    from bnn2fpga.hw.sim.layer_sim import compile_layer, simulate

    h, w, c = 3, 5, 8
    node = _hw("GlobalAccPool", ["x"], ["y"], f"gap_pe{pe}", NumChannels=c, PE=pe, inputDataType="INT4",
               numInputVectors=[1, h, w])
    odt = getCustomOp(node).get_output_datatype()
    assert odt == DataType["INT8"]  # 15 pixels of -8 need 8 bits
    model = _model([node], {"x": [1, h, w, c], "y": [1, 1, 1, c]}, {"x": "INT4", "y": odt.name})
    layer = layer_for(model, node, tmp_path)
    assert layer.op == "global_accpool" and layer.out_elem_bits == 8
    frames = 4
    x = np.random.default_rng(pe).integers(-8, 8, (frames, h, w, c))
    x[0] = -8  # the extreme sum
    ref = np.concatenate([_execute_node(node, x[f:f + 1], (1, 1, 1, c)) for f in range(frames)])
    assert np.array_equal(ref.reshape(frames, c), x.sum(axis=(1, 2)))
    sim = compile_layer(layer)
    run = simulate(layer, x.reshape(-1, pe), True, seed=9, gap_pct=30, stall_pct=60, sim=sim)
    assert np.array_equal(run.out.reshape(frames, c), ref.reshape(frames, c))
    run = simulate(layer, x.reshape(-1, pe), True, sim=sim)
    assert np.array_equal(run.out.reshape(frames, c), ref.reshape(frames, c))
    # a beat per cycle; FINN's estimate adds draining the C/PE sums after the last pixel
    assert run.cycles_per_frame(layer.out_beats) == h * w * c // pe
    assert run.cycles_at[layer.out_beats - 1] <= layer.exp_cycles == (h * w + 1) * c // pe


def test_pools_finn_cannot_match_are_named(tmp_path):
    from bnn2fpga.hw.rtlgen.base import Unsupported
    from bnn2fpga.hw.rtlgen.from_finn import layer_for

    node = _hw("Pool", ["x"], ["y"], "avg", Channels=4, PE=1, KernelSize=[2, 2], Function="AvgPool",
               OutImgDims=[2, 2], InputDataType="INT4", OutputDataType="INT4")
    model = _model([node], {"x": [1, 2, 2, 16], "y": [1, 2, 2, 4]}, {"x": "INT4", "y": "INT4"})
    with pytest.raises(Unsupported, match="AvgPool"):
        layer_for(model, node, tmp_path)
    # a QuantAvgPool whose HLS shift (Size) is not the shift of FINN's Python execution
    q = _hw("Pool", ["x"], ["y"], "qavg", Channels=4, PE=1, KernelSize=[2, 2], Function="QuantAvgPool",
            OutImgDims=[2, 2], InputDataType="INT4", OutputDataType="INT4", Size=3)
    model = _model([q], {"x": [1, 2, 2, 16], "y": [1, 2, 2, 4]}, {"x": "INT4", "y": "INT4"})
    with pytest.raises(Unsupported, match="Size=3"):
        layer_for(model, q, tmp_path)

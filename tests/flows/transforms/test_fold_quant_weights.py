"""FoldAllQuantWeights: FINN's FoldQuantWeights in one pass, the same graph (issue #19)."""
from __future__ import annotations

import copy

import numpy as np
import pytest


def _model(debug_marker: bool = False):
    """x -> Conv(Quant(W), per-channel scale) -> Add(Quant(b), scalar scale) -> Reshape -> MatMul(Quant(W2), scale 1)."""
    from onnx import TensorProto, helper
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.util.basic import qonnx_make_model

    rng = np.random.default_rng(0)
    q = "qonnx.custom_op.general"
    nodes = [
        helper.make_node("Quant", ["w0", "ws", "z", "b4"], ["w"], domain=q, narrow=0, signed=1, rounding_mode="ROUND"),
        helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Quant", ["c0", "cs", "z2", "b8"], ["c"], domain=q, narrow=0, signed=1,
                         rounding_mode="ROUND"),
        helper.make_node("Add", ["y", "c"], ["s"]),
        helper.make_node("Reshape", ["s", "shape"], ["f"]),
        helper.make_node("Quant", ["m0", "ms", "z3", "b2"], ["m"], domain=q, narrow=1, signed=1,
                         rounding_mode="ROUND"),
        helper.make_node("MatMul", ["f", "m"], ["out"]),
    ]
    inits = {
        "w0": rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "ws": np.array([0.5, 0.25, 1.0, 0.125],
                                                                              np.float32).reshape(4, 1, 1, 1),
        "z": np.float32(0), "b4": np.float32(4),
        "c0": rng.normal(size=(1, 4, 1, 1)).astype(np.float32), "cs": np.array([0.5], np.float32),
        "z2": np.float32(0), "b8": np.float32(8),
        "shape": np.array([1, 64], np.int64),
        "m0": rng.integers(-1, 2, size=(64, 10)).astype(np.float32), "ms": np.float32(1.0), "z3": np.float32(0),
        "b2": np.float32(2),
    }
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
                          [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 10])])
    model = ModelWrapper(qonnx_make_model(g))
    for k, v in inits.items():
        model.set_initializer(k, np.asarray(v))
    if debug_marker:  # a case the one-pass fold leaves to FINN (which removes the marker first)
        n = model.graph.node[1]
        model.graph.node.insert(1, helper.make_node("DebugMarker", ["w"], ["w_dbg"], domain="qonnx.custom_op.general",
                                                     export_debug_name="dbg"))
        n.input[1] = "w_dbg"
    return model.transform(InferShapes())


def _same(a, b, tmp_path) -> list[str]:
    from bnn2fpga.benchmarks.build_time import compare_models

    a.save(str(tmp_path / "a.onnx"))
    b.save(str(tmp_path / "b.onnx"))
    return compare_models(tmp_path / "a.onnx", tmp_path / "b.onnx")


def test_one_pass_equals_finn_fold_quant_weights(tmp_path):
    from finn.transformation.qonnx.fold_quant_weights import FoldQuantWeights
    from qonnx.transformation.infer_datatypes import InferDataTypes

    from bnn2fpga.flows.transforms.fold_quant_weights import FoldAllQuantWeights

    base = _model().transform(InferDataTypes())
    expected = copy.deepcopy(base).transform(FoldQuantWeights())
    ours = FoldAllQuantWeights()
    got = copy.deepcopy(base).transform(ours)
    # Not a no-op: all three weight quantizers folded in the one pass, nothing left for FINN's.
    assert ours.folded == 3
    assert not got.get_nodes_by_op_type("Quant")
    assert sorted(n.op_type for n in got.graph.node) == ["Add", "Conv", "Div", "MatMul", "Mul", "Mul", "Reshape"]
    assert _same(got, expected, tmp_path) == []
    after_finn = copy.deepcopy(got).transform(FoldQuantWeights())
    assert _same(after_finn, got, tmp_path) == []
    # and the folded graph computes what the quantized one did
    from qonnx.core.onnx_exec import execute_onnx

    x = np.random.default_rng(1).normal(size=(1, 3, 4, 4)).astype(np.float32)
    ref = execute_onnx(base, {"x": x})["out"]
    assert np.allclose(execute_onnx(got, {"x": x})["out"], ref, atol=1e-4)


def test_cases_left_to_finn_end_the_pass(tmp_path):
    from finn.transformation.qonnx.fold_quant_weights import FoldQuantWeights
    from qonnx.transformation.infer_datatypes import InferDataTypes

    from bnn2fpga.flows.transforms.fold_quant_weights import FoldAllQuantWeights

    base = _model(debug_marker=True).transform(InferDataTypes())
    ours = FoldAllQuantWeights()
    got = copy.deepcopy(base).transform(ours)
    assert ours.folded == 0  # the first weight feeds a DebugMarker: FINN's pass does it all
    got = got.transform(FoldQuantWeights())
    expected = copy.deepcopy(base).transform(FoldQuantWeights())
    assert _same(got, expected, tmp_path) == []


@pytest.mark.parametrize("zero_point", [0.0, 1.0])
def test_nonzero_zero_point_is_finns_error(zero_point):
    from finn.transformation.qonnx.fold_quant_weights import FoldQuantWeights

    from bnn2fpga.flows.transforms.fold_quant_weights import FoldAllQuantWeights

    base = _model()
    base.set_initializer("z", np.float32(zero_point))
    got = copy.deepcopy(base).transform(FoldAllQuantWeights())
    if zero_point:
        assert len(got.get_nodes_by_op_type("Quant")) == 3  # untouched: FINN's own pass raises
        with pytest.raises(ValueError, match="zero-point"):
            got.transform(FoldQuantWeights())

"""The clean-ups after FINN's streamlining (flows.steps._post_streamline) on a standalone threshold.

A signed re-quantizer after a QuantReLU and a pool (e.g. QuantReLU -> MaxPool -> QuantIdentity) is a
MultiThreshold on an unsigned input whose lowest thresholds are negative. finn-plus' streamlining
leaves them so; its minimize_bit_width step then asserts (thresholds >= 0 for an unsigned input)
before it rounds and clips. Rounding and clipping right after streamlining keeps the outputs and
lets the hardware conversion through.
"""
from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from bnn2fpga.hw import finn_env

finn_env.prepare()

from qonnx.core.datatype import DataType  # noqa: E402
from qonnx.core.modelwrapper import ModelWrapper  # noqa: E402
from qonnx.core.onnx_exec import execute_onnx  # noqa: E402
from qonnx.util.basic import qonnx_make_model  # noqa: E402

from bnn2fpga.flows.steps import _post_streamline  # noqa: E402


def _requant(thresholds: np.ndarray) -> ModelWrapper:
    """UINT4 (1, 2, 2, C) NHWC -> MultiThreshold (INT4 out, bias -8) -> out."""
    c = thresholds.shape[0]
    node = helper.make_node("MultiThreshold", ["x", "t"], ["y"], domain="qonnx.custom_op.general",
                            out_dtype="INT4", out_bias=-8.0, data_layout="NHWC")
    graph = helper.make_graph([node], "requant",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 2, c])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 2, c])])
    model = ModelWrapper(qonnx_make_model(graph))
    model.set_initializer("t", thresholds.astype(np.float32))
    model.set_tensor_datatype("x", DataType["UINT4"])
    model.set_tensor_datatype("y", DataType["INT4"])
    return model


def _thresholds(c: int = 3) -> np.ndarray:
    # 15 ascending thresholds per channel spanning -23.7 .. 20.5: below 0 and above 15 on purpose.
    return np.stack([np.linspace(-23.7 + i, 20.5 - i, 15) for i in range(c)])


def _all_inputs(c: int) -> list[np.ndarray]:
    return [np.full((1, 2, 2, c), v, np.float32) for v in range(16)]


def test_post_streamline_rounds_and_clips_thresholds_on_integer_inputs_without_changing_outputs():
    model = _requant(_thresholds())
    before = [execute_onnx(model, {"x": x})["y"] for x in _all_inputs(3)]
    for transform in _post_streamline():
        model = model.transform(transform())
    t = model.get_initializer(model.graph.node[0].input[1])
    assert t.min() >= 0 and t.max() <= 16 and np.array_equal(t, np.ceil(t))
    after = [execute_onnx(model, {"x": x})["y"] for x in _all_inputs(3)]
    assert all(np.array_equal(a, b) for a, b in zip(before, after))


def test_standalone_thresholding_on_unsigned_input_minimizes_its_bit_width():
    """The step that asserted before the fix: FINN's MinimizeWeightBitWidth on a standalone Thresholding."""
    from finn.transformation.fpgadataflow.convert_to_hw.thresholding import InferThresholdingLayer
    from finn.transformation.fpgadataflow.minimize_weight_bit_width import MinimizeWeightBitWidth

    model = _requant(_thresholds())
    for transform in _post_streamline():
        model = model.transform(transform())
    model = model.transform(InferThresholdingLayer())
    assert model.graph.node[0].op_type == "Thresholding"
    model = model.transform(MinimizeWeightBitWidth())
    assert not DataType[model.get_tensor_datatype(model.graph.node[0].input[1]).name].signed()

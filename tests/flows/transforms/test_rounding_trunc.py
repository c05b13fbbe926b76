"""RoundingTruncToThresholds: Brevitas' rounding TruncAvgPool2d as a flooring sum pool plus thresholds.

The reference is the exported QONNX graph itself (QONNX's Trunc), on inputs whose window sums
cover every value, the rounding ties (sum = 2 mod 4 for a 2x2 window) included.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from bnn2fpga.hw import finn_env

finn_env.prepare()

from brevitas.export import export_qonnx  # noqa: E402
from brevitas.nn import QuantIdentity, QuantReLU, TruncAvgPool2d  # noqa: E402
from brevitas.quant import Int8ActPerTensorFloat, TruncTo8bit  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402
from qonnx.core.modelwrapper import ModelWrapper  # noqa: E402
from qonnx.core.onnx_exec import execute_onnx  # noqa: E402
from qonnx.util.basic import qonnx_make_model  # noqa: E402
from qonnx.util.cleanup import cleanup_model  # noqa: E402

from bnn2fpga.errors import UserError  # noqa: E402
from bnn2fpga.flows.steps import _check_trunc_rounding  # noqa: E402
from bnn2fpga.flows.transforms.rounding_trunc_to_thresholds import (  # noqa: E402
    RoundingTruncToThresholds,
    code_thresholds,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _pool_model(tmp_path, signed: bool, trunc_quant=None) -> ModelWrapper:
    """8-bit input -> 3-bit QuantReLU (or signed 3-bit QuantIdentity) -> 2x2 TruncAvgPool2d to 3 bits."""
    torch.manual_seed(0)
    act = (QuantIdentity(act_quant=Int8ActPerTensorFloat, bit_width=3, return_quant_tensor=True) if signed
           else QuantReLU(bit_width=3, return_quant_tensor=True))
    kw = {} if trunc_quant is None else {"trunc_quant": trunc_quant}
    net = nn.Sequential(QuantIdentity(bit_width=8, return_quant_tensor=True), act,
                        TruncAvgPool2d(2, 2, bit_width=3, return_quant_tensor=False, **kw)).eval()
    path = tmp_path / "pool.onnx"
    export_qonnx(net, input_t=torch.zeros(1, 2, 8, 8), export_path=str(path))
    return cleanup_model(ModelWrapper(str(path)))


def _inputs(model: ModelWrapper, n: int = 64) -> np.ndarray:
    """Float inputs that land on the activation's grid at every code (so every window sum occurs)."""
    act_scale = float(model.get_initializer(model.graph.node[1 if model.graph.node[1].op_type == "Quant" else 2]
                                            .input[1]))
    rng = np.random.default_rng(0)
    return (rng.integers(-4, 8, size=(n, 1, 2, 8, 8)) * act_scale).astype(np.float32)


def _run(model: ModelWrapper, x: np.ndarray) -> np.ndarray:
    return np.stack([execute_onnx(model, {model.graph.input[0].name: xi})[model.graph.output[0].name] for xi in x])


@pytest.mark.parametrize("signed", [False, True])
def test_rounding_trunc_becomes_floor_sum_and_thresholds_and_stays_exact(tmp_path, signed):
    model = _pool_model(tmp_path, signed)
    trunc = model.get_nodes_by_op_type("Trunc")[0]
    assert trunc.attribute and any(a.name == "rounding_mode" and a.s.upper() == b"ROUND" for a in trunc.attribute)
    x = _inputs(model)
    before = _run(model, x)
    new = model.transform(RoundingTruncToThresholds())
    ops = [n.op_type for n in new.graph.node]
    assert ops[-4:] == ["AveragePool", "Trunc", "MultiThreshold", "Mul"]
    assert all(a.s.upper() == b"FLOOR" for n in new.get_nodes_by_op_type("Trunc") for a in n.attribute
               if a.name == "rounding_mode")
    after = _run(new, x)
    assert np.array_equal(before, after)
    # The inputs reached rounding ties: a 2x2 window sum of 2 mod 4 (half-way between two codes).
    sums = np.round(_run_until_pool(model, x))
    assert np.any(np.mod(sums, 4) == 2)


def _run_until_pool(model: ModelWrapper, x: np.ndarray) -> np.ndarray:
    pool = model.get_nodes_by_op_type("AveragePool")[0]
    trunc = model.get_nodes_by_op_type("Trunc")[0]
    scale = float(model.get_initializer(trunc.input[1]))
    outs = [execute_onnx(model, {model.graph.input[0].name: xi}, return_full_exec_context=True)[pool.output[0]]
            for xi in x]
    return np.stack(outs) / scale


def test_flooring_trunc_is_left_to_finn(tmp_path):
    model = _pool_model(tmp_path, False, trunc_quant=TruncTo8bit)
    new, changed = RoundingTruncToThresholds().apply(model)
    assert not changed and [n.op_type for n in new.graph.node].count("MultiThreshold") == 0


def test_code_thresholds_half_way_below_each_first_sum():
    sums = np.arange(0, 8)
    codes = np.round(sums / 4.0)  # half to even: 0 0 0 1 1 1 2 2
    # code 1 from S = 3, code 2 from S = 6, code 3 never (above every sum)
    assert code_thresholds(sums, codes, 0, 3).tolist() == [2.5, 5.5, 7.5]


def test_rounding_trunc_it_cannot_rewrite_names_node_op_and_the_fix():
    """A rounding Trunc that does not follow an AveragePool is refused with the node, op, mode and fix."""
    inp = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4, 4])
    node = helper.make_node("Trunc", ["x", "s", "z", "ib", "os", "ob"], ["y"], name="Trunc_7",
                            domain="qonnx.custom_op.general", rounding_mode="ROUND", signed=1, narrow=0)
    model = ModelWrapper(qonnx_make_model(helper.make_graph([node], "t", [inp], [out])))
    for name, v in {"s": 0.25, "z": 0.0, "ib": 8.0, "os": 1.0, "ob": 6.0}.items():
        model.set_initializer(name, np.asarray(v, np.float32))
    model, changed = RoundingTruncToThresholds().apply(model)
    assert not changed
    with pytest.raises(UserError) as e:
        _check_trunc_rounding(model)
    msg = str(e.value)
    assert msg.startswith("node 'Trunc_7' (op Trunc") and "rounding_mode ROUND" in msg
    assert "trunc_quant=TruncTo8bit" in msg

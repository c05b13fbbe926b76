"""The graph transformations behind split / shuffle / concat networks (PresB-Net), each on a small
hand-built graph: the rewritten graph computes the same numbers and has the intended form."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from bnn2fpga.hw import finn_env

finn_env.prepare()

from qonnx.core.datatype import DataType  # noqa: E402
from qonnx.core.modelwrapper import ModelWrapper  # noqa: E402
from qonnx.core.onnx_exec import execute_onnx  # noqa: E402
from qonnx.transformation.infer_datatypes import InferDataTypes  # noqa: E402
from qonnx.transformation.infer_shapes import InferShapes  # noqa: E402
from qonnx.util.basic import qonnx_make_model  # noqa: E402

from bnn2fpga.flows.transforms.absorb_threshold_chains import AbsorbThresholdChains  # noqa: E402
from bnn2fpga.flows.transforms.explicit_split_sizes import ExplicitSplitSizes  # noqa: E402
from bnn2fpga.flows.transforms.global_pool_to_acc_pool import GlobalPoolToAccPool  # noqa: E402
from bnn2fpga.flows.transforms.infer_split_datatypes import InferSplitDataTypes  # noqa: E402
from bnn2fpga.flows.transforms.merge_identical_splits import MergeIdenticalSplits  # noqa: E402
from bnn2fpga.flows.transforms.move_transpose_past_avg_pool import MoveTransposePastQuantAvgPool  # noqa: E402
from bnn2fpga.flows.transforms.split_before_thresholds import SplitBeforeThresholds  # noqa: E402

RNG = np.random.default_rng(0)


def _model(nodes, inp, outs, inits=None, in_dt="INT4", opset=18) -> ModelWrapper:
    vi = lambda name, shape: helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)  # noqa: E731
    graph = helper.make_graph(nodes, "g", [vi(*inp)], [vi(*o) for o in outs])
    model = ModelWrapper(qonnx_make_model(graph, opset_imports=[helper.make_opsetid("", opset)]))
    for name, value in (inits or {}).items():
        model.set_initializer(name, np.asarray(value))
    model.set_tensor_datatype(inp[0], DataType[in_dt])
    return model.transform(InferShapes()).transform(InferDataTypes())


def _run(model: ModelWrapper, x: np.ndarray) -> list[np.ndarray]:
    with finn_env.exact_execution():
        ctx = execute_onnx(model, {model.graph.input[0].name: x.astype(np.float32)})
    return [ctx[o.name] for o in model.graph.output]


def _ints(shape, lo=-8, hi=8) -> np.ndarray:
    return RNG.integers(lo, hi, shape).astype(np.float32)


def _ops(model) -> list[str]:
    return [n.op_type for n in model.graph.node]


def _mt(inp, thr, out, dt="INT4", bias=-8.0):
    return helper.make_node("MultiThreshold", [inp, thr], [out], domain="qonnx.custom_op.general",
                            out_dtype=dt, out_bias=bias)


def _split_model(with_sizes: bool) -> ModelWrapper:
    inputs = ["x", "sizes"] if with_sizes else ["x"]
    kw = {} if with_sizes else {"num_outputs": 2}
    split = helper.make_node("Split", inputs, ["a", "b"], axis=1, **kw)
    return _model([split], ("x", [1, 6, 2, 2]), [("a", [1, 3, 2, 2]), ("b", [1, 3, 2, 2])],
                  {"sizes": np.array([3, 3], dtype=np.int64)} if with_sizes else None)


def test_explicit_split_sizes_adds_the_sizes_input():
    model = _split_model(with_sizes=False)
    x = _ints([1, 6, 2, 2])
    before = _run(model, x)
    model = model.transform(ExplicitSplitSizes())
    split = model.graph.node[0]
    assert model.get_initializer(split.input[1]).tolist() == [3, 3]
    assert not [a for a in split.attribute if a.name == "num_outputs"]
    for a, b in zip(before, _run(model, x)):
        assert np.array_equal(a, b)


def test_split_outputs_get_the_input_datatype():
    model = _split_model(with_sizes=True)
    assert model.get_tensor_datatype("a") == DataType["FLOAT32"]  # QONNX does not know Split
    model = model.transform(InferSplitDataTypes()).transform(InferDataTypes())
    assert model.get_tensor_datatype("a") == DataType["INT4"] == model.get_tensor_datatype("b")


def _threshold_split_model() -> ModelWrapper:
    thr = np.sort(RNG.normal(0, 3, (6, 15)), axis=1).astype(np.float32)
    nodes = [_mt("x", "thr", "q"), helper.make_node("Split", ["q", "sizes"], ["a", "b"], axis=1)]
    return _model(nodes, ("x", [1, 6, 3, 3]), [("a", [1, 2, 3, 3]), ("b", [1, 4, 3, 3])],
                  {"thr": thr, "sizes": np.array([2, 4], dtype=np.int64)}, in_dt="INT8")


def test_split_before_thresholds_keeps_each_parts_rows():
    model = _threshold_split_model()
    x = _ints([1, 6, 3, 3], -128, 128)
    before = _run(model, x)
    model = model.transform(SplitBeforeThresholds())
    assert _ops(model) == ["Split", "MultiThreshold", "MultiThreshold"]
    assert model.get_initializer(model.graph.node[1].input[1]).shape == (2, 15)
    assert model.get_initializer(model.graph.node[2].input[1]).shape == (4, 15)
    for a, b in zip(before, _run(model, x)):
        assert np.array_equal(a, b)


def test_identical_splits_merge_and_readers_are_rewired():
    sizes = np.array([2, 2], dtype=np.int64)
    nodes = [helper.make_node("Split", ["x", "s"], ["a0", "a1"], axis=1),
             helper.make_node("Split", ["x", "s"], ["b0", "b1"], axis=1),
             helper.make_node("Add", ["a0", "b1"], ["y"]), helper.make_node("Sub", ["a1", "b0"], ["z"])]
    model = _model(nodes, ("x", [1, 4, 2, 2]), [("y", [1, 2, 2, 2]), ("z", [1, 2, 2, 2])], {"s": sizes})
    x = _ints([1, 4, 2, 2])
    before = _run(model, x)
    model = model.transform(MergeIdenticalSplits())
    assert _ops(model).count("Split") == 1
    for a, b in zip(before, _run(model, x)):
        assert np.array_equal(a, b)


def test_threshold_chain_with_two_prelus_becomes_one_threshold_node():
    c = 4
    slope1, slope2 = np.full(c, 0.25, np.float32), np.array([0.0, 0.1, 0.5, 1.0], np.float32)
    nodes = [helper.make_node("Mul", ["x", "alpha"], ["m"]), helper.make_node("Add", ["m", "b1"], ["p"]),
             helper.make_node("PRelu", ["p", "s1"], ["r1"]), helper.make_node("Mul", ["r1", "g"], ["n"]),
             helper.make_node("Add", ["n", "b2"], ["o"]), helper.make_node("PRelu", ["o", "s2"], ["r2"]),
             _mt("r2", "thr", "y")]
    shape = lambda v: np.asarray(v, np.float32).reshape(1, c, 1, 1)  # noqa: E731
    thr = np.sort(RNG.normal(0, 2, (c, 15)), axis=1).astype(np.float32)
    model = _model(nodes, ("x", [1, c, 5, 5]), [("y", [1, c, 5, 5])], {
        "alpha": shape([0.5, 1.0, 2.0, 0.75]), "b1": shape(RNG.normal(0, 1, c)), "s1": slope1.reshape(c, 1, 1),
        "g": shape([1.5, 0.2, 0.9, 3.0]), "b2": shape(RNG.normal(0, 1, c)), "s2": slope2.reshape(c, 1, 1),
        "thr": thr}, in_dt="INT16")
    x = _ints([1, c, 5, 5], -60, 60) + 0.0
    before = _run(model, x)[0]
    model = model.transform(AbsorbThresholdChains())
    assert _ops(model) == ["MultiThreshold"]
    assert np.array_equal(before, _run(model, x)[0])


def test_global_mean_of_integers_becomes_an_accumulating_pool():
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]),
             helper.make_node("ReduceMean", ["t", "axes"], ["m"], keepdims=1),
             helper.make_node("Reshape", ["m", "shape"], ["f"]), helper.make_node("MatMul", ["f", "w"], ["y"]),
             helper.make_node("Mul", ["y", "k"], ["out"])]
    model = _model(nodes, ("x", [1, 4, 4, 8]), [("out", [1, 3])], {
        "axes": np.array([-1, -2], dtype=np.int64), "shape": np.array([1, 8], dtype=np.int64),
        "w": RNG.integers(-3, 4, (8, 3)).astype(np.float32), "k": np.array(16.0, np.float32)})
    model.set_tensor_datatype("w", DataType["INT3"])
    model = model.transform(InferDataTypes())
    x = _ints([1, 4, 4, 8])
    before = _run(model, x)[0]
    model = model.transform(GlobalPoolToAccPool())
    assert _ops(model) == ["GlobalAccPool", "Reshape", "MatMul"]  # the Transpose is read through, 1/16 * 16 cancels
    assert np.array_equal(before, _run(model, x)[0])


def test_avg_pool_takes_the_nhwc_map_and_the_transpose_moves_behind_it():
    pool = helper.make_node("QuantAvgPool2d", ["t"], ["p"], domain="qonnx.custom_op.general", stride=2,
                            kernel=2, ibits=4, obits=4, signed=1, data_layout="NCHW")
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]), pool]
    model = _model(nodes, ("x", [1, 4, 4, 3]), [("p", [1, 3, 2, 2])])
    x = _ints([1, 4, 4, 3])
    before = _run(model, x)[0]
    model = model.transform(MoveTransposePastQuantAvgPool())
    assert _ops(model) == ["QuantAvgPool2d", "Transpose"]
    assert np.array_equal(before, _run(model, x)[0])


@pytest.mark.parametrize("transform", [SplitBeforeThresholds, MergeIdenticalSplits, GlobalPoolToAccPool,
                                       MoveTransposePastQuantAvgPool, AbsorbThresholdChains])
def test_graphs_without_the_pattern_are_left_alone(transform):
    model = _model([helper.make_node("Relu", ["x"], ["y"])], ("x", [1, 2, 2, 2]), [("y", [1, 2, 2, 2])])
    assert _ops(model.transform(transform())) == ["Relu"]

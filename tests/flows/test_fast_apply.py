"""flows.fast_apply: FINN's streamlining with the same result, skipping clean-ups of unchanged graphs (issue #19)."""
from __future__ import annotations

import copy
import random

from bnn2fpga.flows import fast_apply


def test_finn_streamline_source_still_recognized():
    # Otherwise the fast path silently falls back to FINN's own (correct, but slow again).
    trns, post = fast_apply._streamline_plan()
    assert len(trns) >= 20 and "AbsorbMulIntoMultiThreshold" in trns
    assert post == ["RemoveIdentityOps", "GiveUniqueNodeNames", "GiveReadableTensorNames", "InferDataTypes",
                    "InferDataLayouts"]
    assert fast_apply._finn_step_matches()


_CALLS: list = []


class _Counting:
    # The count lives outside the instance: its settings (vars) are part of the applier's key.
    def __init__(self, change: bool):
        self.change = change

    def apply(self, model):
        _CALLS.append(self)
        if self.change and _CALLS.count(self) == 1:
            model.graph.doc_string = model.graph.doc_string + "x"
            return model, True
        return model, False


def _tiny():
    from onnx import TensorProto, helper
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.basic import qonnx_make_model

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    return ModelWrapper(qonnx_make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])))


def test_applier_skips_only_known_no_ops():
    a = fast_apply.Applier(check=True)
    model = _tiny()
    noop = _Counting(change=False)
    model = a.transform(model, noop)  # ran: a no-op (with the clean-up) on this graph, remembered
    model = a.transform(model, noop)  # skipped (and re-run by check=True to prove it)
    model = a.transform(model, _Counting(change=False))  # same class and settings, same graph: skipped
    assert (a.ran, a.skipped) == (1, 2)
    changing = _Counting(change=True)
    before = fast_apply.digest(model)
    model = a.transform(model, changing)
    assert fast_apply.digest(model) != before and a.ran == 2


def test_fast_step_streamline_equals_finn(mnist_build):
    from qonnx.core.modelwrapper import ModelWrapper

    from bnn2fpga.hw import finn_env

    _, result = mnist_build
    tidy = ModelWrapper(str(result.model_path("tidy_up")))
    finn_cfg = _finn_cfg(result.out_dir)
    expected = finn_env.finn_steps().step_streamline(copy.deepcopy(tidy), finn_cfg)
    applier = fast_apply.Applier(check=True)  # every skip re-run and checked
    got = fast_apply.finn_step_streamline(tidy, finn_cfg, applier)
    assert applier.skipped > 0
    assert got.model.SerializeToString(deterministic=True) == expected.model.SerializeToString(deterministic=True)


def _finn_cfg(out_dir):
    from bnn2fpga.flows.config import make_config
    from bnn2fpga.flows.steps import make_finn_config

    cfg = make_config(model="cbcnn-mnist", board="pynq-z2", out_dir=out_dir / "fast_apply", until="estimate")
    return make_finn_config(cfg, out_dir / "fast_apply")


def test_applier_skips_the_clean_up_of_a_clean_graph_only_when_nothing_changed():
    fast_apply._CLEAN.clear()  # the memory of clean graphs is shared by all appliers
    a = fast_apply.Applier(check=True)  # every skipped clean-up is run anyway and compared
    model = a.transform(_tiny(), _Counting(change=False))  # the input is not known clean: clean-up runs
    assert a.cleanups_skipped == 0
    changing = _Counting(change=True)
    model = a.transform(model, changing)  # changes the graph: its clean-up runs
    assert a.cleanups_skipped == 0
    model = a.transform(model, changing)  # runs again on the new graph, changes nothing: no clean-up
    assert (a.ran, a.cleanups_skipped) == (3, 1)


def _compare(a, b, tmp_path) -> list[str]:
    from bnn2fpga.benchmarks.build_time import compare_models

    a.save(str(tmp_path / "a.onnx"))
    b.save(str(tmp_path / "b.onnx"))
    return compare_models(tmp_path / "a.onnx", tmp_path / "b.onnx")


def test_fast_step_qonnx_to_finn_equals_finn(mnist_build, tmp_path):
    from qonnx.core.modelwrapper import ModelWrapper

    from bnn2fpga.hw import finn_env

    _, result = mnist_build
    qonnx = ModelWrapper(str(result.model_path("export")))
    finn_cfg = _finn_cfg(result.out_dir)
    expected = finn_env.finn_steps().step_qonnx_to_finn(copy.deepcopy(qonnx), finn_cfg)
    assert fast_apply._qonnx_plan_matches()  # else the fast path is FINN's own again
    from bnn2fpga.flows.transforms.fold_quant_weights import FoldAllQuantWeights

    applier = fast_apply.Applier(check=True)
    got = fast_apply.finn_step_qonnx_to_finn(copy.deepcopy(qonnx), finn_cfg, applier, fold_weights=FoldAllQuantWeights)
    assert applier.cleanups_skipped > 0 and not got.get_nodes_by_op_type("Quant")
    # FINN names the scale tensors of folded weights at random: equal up to renaming
    assert _compare(got, expected, tmp_path) == []


def test_fast_step_tidy_up_equals_finn(mnist_build):
    from qonnx.core.modelwrapper import ModelWrapper

    from bnn2fpga.hw import finn_env

    _, result = mnist_build
    model = ModelWrapper(str(result.model_path("qonnx_to_finn")))
    finn_cfg = _finn_cfg(result.out_dir)
    expected = finn_env.finn_steps().step_tidy_up(copy.deepcopy(model), finn_cfg)
    assert fast_apply._tidy_up_matches()
    got = fast_apply.finn_step_tidy_up(copy.deepcopy(model), finn_cfg, fast_apply.Applier(check=True))
    assert got.model.SerializeToString(deterministic=True) == expected.model.SerializeToString(deterministic=True)


def test_readable_tensor_names_equal_qonnx_on_a_clean_graph(mnist_build):
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.general import GiveRandomTensorNames, GiveReadableTensorNames

    _, result = mnist_build
    for step in ("export", "tidy_up", "streamline", "convert_to_hw"):
        model = ModelWrapper(str(result.model_path(step))).cleanup()
        model = model.transform(GiveRandomTensorNames())  # names to give, not the readable ones already there
        expected = copy.deepcopy(model).transform(GiveReadableTensorNames())
        assert fast_apply.readable_tensor_names(model)
        assert model.model.SerializeToString(deterministic=True) == expected.model.SerializeToString(
            deterministic=True), step


def test_readable_tensor_names_leave_odd_graphs_to_qonnx():
    model = _tiny()
    model.graph.node[0].name = ""  # QONNX asserts on an empty node name
    before = fast_apply.digest(model)
    assert not fast_apply.readable_tensor_names(model) and fast_apply.digest(model) == before


def test_infer_shapes_equals_qonnx(mnist_build):
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_shapes import InferShapes

    _, result = mnist_build
    for step in ("export", "tidy_up", "streamline", "convert_to_hw"):
        model = ModelWrapper(str(result.model_path(step)))
        # shapes to infer (not those a custom op's shape-compatible stand-in needs), initializer infos to add back
        custom_in = {t for n in model.graph.node if n.domain not in ("", "ai.onnx") for t in n.input}
        dropped = [vi for vi in model.graph.value_info if vi.name not in custom_in][::2]
        for vi in dropped:
            model.graph.value_info.remove(vi)
        expected = copy.deepcopy(model).transform(InferShapes(), make_deepcopy=False, cleanup=False)
        got = fast_apply.infer_shapes(model)
        assert len(got.graph.value_info) > len(model.graph.value_info) or not dropped
        assert got.model.SerializeToString(deterministic=True) == expected.model.SerializeToString(
            deterministic=True), step


def _small_with_weights():
    import numpy as np
    from onnx import TensorProto, helper
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.basic import qonnx_make_model

    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["y", "b"], ["s"]), helper.make_node("Relu", ["s"], ["r"]),
             helper.make_node("Reshape", ["r", "shape"], ["f"]), helper.make_node("MatMul", ["f", "m"], ["out"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
                          [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 10])])
    model = ModelWrapper(qonnx_make_model(g))
    for k, v in {"w": np.ones((4, 3, 3, 3), np.float32), "b": np.zeros((1, 4, 1, 1), np.float32),
                 "shape": np.array([1, 64], np.int64), "m": np.ones((64, 10), np.float32)}.items():
        model.set_initializer(k, v)
    return model


def test_infer_shapes_and_readable_names_equal_qonnx_on_a_small_graph():
    from qonnx.transformation.general import GiveReadableTensorNames, GiveUniqueNodeNames
    from qonnx.transformation.infer_shapes import InferShapes

    model = _small_with_weights()
    del model.graph.value_info[:]  # every shape to infer, every initializer's value info to add
    expected = copy.deepcopy(model).transform(InferShapes(), make_deepcopy=False, cleanup=False)
    got = fast_apply.infer_shapes(copy.deepcopy(model))
    assert len(got.graph.value_info) > 4
    assert got.model.SerializeToString(deterministic=True) == expected.model.SerializeToString(deterministic=True)
    clean = got.transform(GiveUniqueNodeNames())  # with the clean-up: a clean graph
    expected = copy.deepcopy(clean).transform(GiveReadableTensorNames())
    assert fast_apply.readable_tensor_names(clean)
    assert "Conv_0_param0" in {i.name for i in clean.graph.initializer}
    assert clean.model.SerializeToString(deterministic=True) == expected.model.SerializeToString(deterministic=True)


def _strip_datatypes(model) -> int:
    # Annotations of computed tensors dropped (two of every three), so inference has work to do
    # and finds some outputs annotated already, as in the streamlining fixed points.
    g = model.graph
    computed = {t for n in g.node for t in n.output}
    drop = [a for i, a in enumerate(x for x in g.quantization_annotation if x.tensor_name in computed) if i % 3]
    for a in drop:
        g.quantization_annotation.remove(a)
    return len(drop)


def test_infer_datatypes_equals_qonnx(mnist_build):
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_datatypes import InferDataTypes

    _, result = mnist_build
    for step in ("export", "tidy_up", "streamline", "convert_to_hw", "minimize_bit_width"):
        model = ModelWrapper(str(result.model_path(step)))  # the export has no datatypes to strip: all inferred
        assert _strip_datatypes(model) > 0 or step == "export", step
        for allow in (False, True):
            expected = copy.deepcopy(model).transform(InferDataTypes(allow_scaledint_dtypes=allow),
                                                      make_deepcopy=False, cleanup=False)
            got = fast_apply.infer_datatypes(copy.deepcopy(model), allow)
            assert got.model.SerializeToString(deterministic=True) == expected.model.SerializeToString(
                deterministic=True), (step, allow)
            assert "get_tensor_datatype" not in vars(got)  # QONNX's own lookups are back
            with fast_apply.qonnx_tables():  # as FINN's passes call it inside theirs
                got = copy.deepcopy(model).transform(InferDataTypes(allow_scaledint_dtypes=allow),
                                                     make_deepcopy=False, cleanup=False)
            assert got.model.SerializeToString(deterministic=True) == expected.model.SerializeToString(
                deterministic=True), (step, allow)


def test_infer_datatypes_equals_qonnx_on_a_small_graph():
    from qonnx.core.datatype import DataType
    from qonnx.transformation.infer_datatypes import InferDataTypes

    model = _small_with_weights()
    model.set_tensor_datatype("x", DataType["UINT8"])
    model.set_tensor_datatype("w", DataType["INT2"])
    model.set_tensor_datatype("b", DataType["INT4"])  # Add of integers: INT32, then Relu (unknown op): FLOAT32
    model.set_tensor_datatype("m", DataType["BIPOLAR"])
    model.set_tensor_datatype("r", DataType["INT8"])  # an output annotated already, kept by the unknown-op rule
    expected = copy.deepcopy(model).transform(InferDataTypes(), make_deepcopy=False, cleanup=False)
    got = fast_apply.infer_datatypes(copy.deepcopy(model))
    assert got.get_tensor_datatype("s") == DataType["INT32"] and got.get_tensor_datatype("out") == DataType["INT32"]
    assert got.model.SerializeToString(deterministic=True) == expected.model.SerializeToString(deterministic=True)


def test_infer_datatypes_leaves_duplicate_annotations_to_qonnx():
    import pytest
    from onnx import TensorAnnotation

    model = _small_with_weights()
    a = TensorAnnotation(tensor_name="y")
    model.graph.quantization_annotation.extend([a, a])  # QONNX raises on a name found twice
    with pytest.raises(Exception, match="multiple get_by_name"):
        fast_apply.infer_datatypes(model)


def test_shape_check_by_table_equals_qonnx(mnist_build):
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_shapes import InferShapes

    _, result = mnist_build
    for step in ("export", "tidy_up", "streamline", "convert_to_hw"):
        model = ModelWrapper(str(result.model_path(step)))
        inits = {i.name for i in model.graph.initializer}
        for vi in [v for v in model.graph.value_info if v.name in inits][::2]:
            model.graph.value_info.remove(vi)  # initializer infos for the check to add back
        gone = [v for v in model.graph.value_info if v.name not in inits][:3]
        for vi in gone:
            model.graph.value_info.remove(vi)  # tensors without a shape: the check says False
        for fix in (False, True):
            expected, got = copy.deepcopy(model), copy.deepcopy(model)
            want = ModelWrapper.check_all_tensor_shapes_specified(expected, fix_missing_init_shape=fix)
            assert fast_apply.check_all_tensor_shapes_specified(got, fix_missing_init_shape=fix) == want
            assert want is (not gone)
            assert got.model.SerializeToString(deterministic=True) == expected.model.SerializeToString(
                deterministic=True), (step, fix)
        # QONNX's InferShapes (whose new ModelWrapper runs the check) inside the context: the same model
        random.seed(0)  # QONNX names new tensors at random (GiveUniqueParameterTensors in the clean-up)
        expected = copy.deepcopy(model).transform(InferShapes())
        random.seed(0)
        with fast_apply.qonnx_tables():
            got = copy.deepcopy(model).transform(InferShapes())
        assert ModelWrapper.check_all_tensor_shapes_specified is fast_apply._QONNX_CHECK_SHAPES
        assert got.model.SerializeToString(deterministic=True) == expected.model.SerializeToString(deterministic=True)


def test_shape_check_by_table_keeps_qonnx_assertion_on_a_name_twice():
    import pytest

    model = _small_with_weights()
    model.graph.value_info.extend([model.graph.output[0]])  # "out" has two value infos
    with pytest.raises(AssertionError, match="Multiple ValueInfoProto"):
        fast_apply.check_all_tensor_shapes_specified(model)


def _scrambled(model, seed: int):
    # Work for each clean-up pass: nodes out of order, initializers first in commutative ops,
    # one parameter shared by two nodes.
    import random

    from onnx import NodeProto

    g = model.graph
    nodes = [n.SerializeToString() for n in g.node]
    random.Random(seed).shuffle(nodes)
    del g.node[:]
    g.node.extend(NodeProto.FromString(b) for b in nodes)
    for n in list(g.node)[::3]:
        n.name = ""  # as nodes are before GiveUniqueNodeNames (FINN's converters make them so)
    inits = {i.name for i in g.initializer}
    swapped = 0
    for n in g.node:
        if n.op_type in ("Add", "Mul") and len(n.input) == 2 and n.input[1] in inits:
            n.input[:] = [n.input[1], n.input[0]]
            swapped += 1
    params = [(n, k) for n in g.node for k, x in enumerate(n.input) if x in inits]
    if len(params) >= 2 and params[0][0] is not params[-1][0]:
        a, b = params[0], params[-1]
        if model.get_tensor_shape(a[0].input[a[1]]) == model.get_tensor_shape(b[0].input[b[1]]):
            b[0].input[b[1]] = a[0].input[a[1]]
    return model


def test_clean_up_passes_by_table_equal_qonnx(mnist_build):
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.general import (
        GiveUniqueParameterTensors,
        SortCommutativeInputsInitializerLast,
        SortGraph,
    )

    _, result = mnist_build
    copied = 0
    for step in ("export", "tidy_up", "streamline", "convert_to_hw"):
        for seed in (0, 1):
            model = _scrambled(ModelWrapper(str(result.model_path(step))), seed)
            for qonnx_pass, ours in ((SortGraph, fast_apply.sort_graph),
                                     (SortCommutativeInputsInitializerLast, fast_apply.sort_commutative_inputs),
                                     (GiveUniqueParameterTensors, fast_apply.unique_parameter_tensors)):
                t = qonnx_pass()
                random.seed(seed)  # QONNX names a copied parameter at random
                expected, flag = t.apply(copy.deepcopy(model))
                random.seed(seed)
                got, got_flag = ours(t, copy.deepcopy(model))
                assert got_flag == flag and got.model.SerializeToString(
                    deterministic=True) == expected.model.SerializeToString(deterministic=True), (step, qonnx_pass)
                copied += len(got.graph.initializer) - len(model.graph.initializer)
            # QONNX's whole clean-up inside the context, and the methods put back after it
            random.seed(seed)
            expected = copy.deepcopy(model).cleanup()
            random.seed(seed)
            with fast_apply.qonnx_tables():
                got = copy.deepcopy(model).cleanup()
            assert SortGraph.apply is fast_apply._QONNX["SortGraph"]
            assert got.model.SerializeToString(deterministic=True) == expected.model.SerializeToString(
                deterministic=True), step
            assert [n.name for n in got.graph.node] != [n.name for n in model.graph.node]  # the sort did work
    assert copied > 0  # a shared parameter was copied at least once


def test_sort_graph_by_table_drops_unfed_nodes_as_qonnx_does():
    from onnx import helper
    from qonnx.transformation.general import SortGraph

    model = _small_with_weights()
    model.graph.node.append(helper.make_node("Relu", ["nowhere"], ["floating"], name="floating"))
    for i, n in enumerate(model.graph.node):
        n.name = n.name or f"n{i}"
    expected, _ = SortGraph().apply(copy.deepcopy(model))
    got, _ = fast_apply.sort_graph(SortGraph(), copy.deepcopy(model))
    assert "floating" not in [n.name for n in got.graph.node]
    assert got.model.SerializeToString(deterministic=True) == expected.model.SerializeToString(deterministic=True)


def test_toposort_levels_equal_the_library():
    from toposort import CircularDependencyError, toposort_flatten

    for seed in range(500):
        r = random.Random(seed)
        n = r.randint(0, 30)
        # mostly backward edges, some forward (cycles), self-dependencies, items only named as dependencies
        deps = {i: {j for j in range(n + 3) if r.random() < 0.12 and (j <= i or j >= n or r.random() < 0.05)}
                for i in range(n) if r.random() < 0.9}
        try:
            want = toposort_flatten({k: set(v) for k, v in deps.items()})
        except CircularDependencyError:
            want = None
        assert fast_apply.toposort_levels(deps) == want, seed


def _strip_layouts(model) -> int:
    # Every other layout annotation gone (and one annotation whole), for InferDataLayouts to add back.
    stripped = 0
    for i, a in enumerate(model.graph.quantization_annotation):
        entries = [e for e in a.quant_parameter_tensor_names if e.key == "tensor_layout"]
        if entries and i % 2:
            a.quant_parameter_tensor_names.remove(entries[0])
            stripped += 1
    if len(model.graph.quantization_annotation) > 3:
        model.graph.quantization_annotation.remove(model.graph.quantization_annotation[3])
    return stripped


def test_layout_and_shape_inference_by_table_equal_qonnx(mnist_build):
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_data_layouts import InferDataLayouts
    from qonnx.transformation.infer_shapes import InferShapes

    _, result = mnist_build
    stripped = 0
    for step in ("export", "qonnx_to_finn", "tidy_up", "streamline", "convert_to_hw"):
        model = ModelWrapper(str(result.model_path(step)))
        stripped += _strip_layouts(model)
        for t in (InferDataLayouts, InferShapes):
            expected = copy.deepcopy(model).transform(t(), make_deepcopy=False, cleanup=False)
            with fast_apply.qonnx_tables():
                got = copy.deepcopy(model).transform(t(), make_deepcopy=False, cleanup=False)
                with fast_apply.qonnx_own():
                    own = copy.deepcopy(model).transform(t(), make_deepcopy=False, cleanup=False)
            assert InferDataLayouts.apply is fast_apply._QONNX["InferDataLayouts"]
            assert not {"get_tensor_layout", "get_tensor_shape", "get_tensor_valueinfo"} & set(vars(got))
            want = expected.model.SerializeToString(deterministic=True)
            assert got.model.SerializeToString(deterministic=True) == want, (step, t)
            assert own.model.SerializeToString(deterministic=True) == want, (step, t)
    assert stripped > 0


def _unrounded(model) -> int:
    # Every MultiThreshold's thresholds moved off the integers, some past its input's range,
    # so that FINN's RoundAndClipThresholds has one pass per MultiThreshold to make.
    import numpy as np

    moved = 0
    for n in model.graph.node:
        if n.op_type == "MultiThreshold" and model.get_initializer(n.input[1]) is not None:
            t = model.get_initializer(n.input[1]).astype(np.float64)
            t = t - 0.5
            t.flat[0] = -1e9 - 0.25 * moved
            model.set_initializer(n.input[1], t)
            moved += 1
    return moved


def test_round_and_clip_thresholds_equals_finn(mnist_build, monkeypatch):
    from finn.transformation.streamline.round_thresholds import RoundAndClipThresholds
    from qonnx.core.modelwrapper import ModelWrapper

    passes = []
    finn_apply = RoundAndClipThresholds.apply

    def counted(self, model):
        passes.append(self)
        return finn_apply(self, model)

    monkeypatch.setattr(RoundAndClipThresholds, "apply", counted)
    _, result = mnist_build
    for step in ("streamline", "minimize_bit_width"):  # integer inputs: FINN rounds every threshold here
        model = ModelWrapper(str(result.model_path(step)))
        if step == "minimize_bit_width":  # hardware thresholds: left to FINN's passes, the same result
            _unrounded(model)
            finn_only = True
        else:
            assert _unrounded(model) > 2, step
            finn_only = False
        for make_deepcopy, cleanup in ((True, True), (False, False)):
            passes.clear()
            with fast_apply.qonnx_own():
                expected = copy.deepcopy(model).transform(RoundAndClipThresholds(), make_deepcopy, cleanup)
            finn_passes = len(passes)
            want = expected.model.SerializeToString(deterministic=True)
            for tables in (fast_apply.qonnx_tables, fast_apply.qonnx_own):
                passes.clear()
                given = copy.deepcopy(model)
                with tables():
                    got = fast_apply.round_and_clip_thresholds(given, make_deepcopy, cleanup, check=False)
                assert got.model.SerializeToString(deterministic=True) == want, (step, make_deepcopy, tables)
                if finn_only:
                    assert len(passes) == finn_passes
                else:
                    assert len(passes) <= 2 < finn_passes, (step, len(passes), finn_passes)
                if make_deepcopy:
                    assert given.model.SerializeToString(deterministic=True) == model.model.SerializeToString(
                        deterministic=True)  # the caller's model stays as it was


def _hidden_texts(hidden: dict) -> dict:
    return {k: v.SerializeToString(deterministic=True) for k, v in hidden.items()}


def test_custom_op_hiding_equals_qonnx(mnist_build):
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_shapes import _hide_finn_ops, _restore_finn_ops

    _, result = mnist_build
    hidden_any = 0
    for step in ("export", "qonnx_to_finn", "tidy_up", "streamline", "convert_to_hw"):
        model = ModelWrapper(str(result.model_path(step)))
        want, got = copy.deepcopy(model), copy.deepcopy(model)
        want_hidden, got_hidden = _hide_finn_ops(want), fast_apply.hide_custom_ops(got)
        hidden_any += len(got_hidden)
        assert got.model.SerializeToString(deterministic=True) == want.model.SerializeToString(deterministic=True)
        assert _hidden_texts(got_hidden) == _hidden_texts(want_hidden), step
        _restore_finn_ops(want, want_hidden)
        fast_apply.restore_custom_ops(got, got_hidden)
        assert got.model.SerializeToString(deterministic=True) == want.model.SerializeToString(deterministic=True)
    assert hidden_any > 0


def test_custom_op_hiding_equals_qonnx_on_twin_nodes():
    # Two equal custom nodes: one stand-in text, so both are restored from one entry, as in QONNX.
    from onnx import TensorProto, helper
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_shapes import _hide_finn_ops, _restore_finn_ops
    from qonnx.util.basic import qonnx_make_model

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    t = helper.make_tensor_value_info("t", TensorProto.FLOAT, [4, 1])
    twin = dict(inputs=["x", "t"], outputs=["y"], domain="qonnx.custom_op.general", out_dtype="UINT1")
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("MultiThreshold", **twin),
             helper.make_node("MultiThreshold", **twin)]
    model = ModelWrapper(qonnx_make_model(helper.make_graph(nodes, "g", [x, t], [y])))
    want, got = copy.deepcopy(model), copy.deepcopy(model)
    want_hidden, got_hidden = _hide_finn_ops(want), fast_apply.hide_custom_ops(got)
    assert len(got_hidden) == 1 and _hidden_texts(got_hidden) == _hidden_texts(want_hidden)
    assert got.model.SerializeToString(deterministic=True) == want.model.SerializeToString(deterministic=True)
    _restore_finn_ops(want, want_hidden)
    fast_apply.restore_custom_ops(got, got_hidden)
    assert got.model.SerializeToString(deterministic=True) == want.model.SerializeToString(deterministic=True)
    assert got.model.SerializeToString(deterministic=True) == model.model.SerializeToString(deterministic=True)


def test_lookup_table_takes_qonnx_keyword_names():
    """Custom ops call ``model.get_tensor_shape(tensor_name=...)``: the table answers with QONNX's signature."""
    import inspect

    from qonnx.core.modelwrapper import ModelWrapper

    from bnn2fpga.flows.fast_apply import _LookupTable

    for name in ("get_tensor_datatype", "set_tensor_datatype", "get_tensor_layout", "set_tensor_layout",
                 "get_tensor_shape", "get_tensor_valueinfo"):
        ours = list(inspect.signature(getattr(_LookupTable, name)).parameters)
        theirs = list(inspect.signature(getattr(ModelWrapper, name)).parameters)
        assert ours == theirs, (name, ours, theirs)

"""Our RTL ops for FINN's HLS-only stream layers: chosen by default, what FINN's Vivado flow gets from them,
and FINN's own choice kept with --layers finn.

The build is cbcnn-mnist (max pools, a constant Mul and Add after the last layer).
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from build_checks import hls_layers

PART = "xc7z020clg400-1"


@pytest.fixture(scope="module")
def folded(mnist_build):
    from qonnx.core.modelwrapper import ModelWrapper

    from bnn2fpga.flows.runner import model_file
    from bnn2fpga.flows.steps import FOLDED_MODEL_STEP

    _, result = mnist_build
    return ModelWrapper(str(model_file(result.out_dir, FOLDED_MODEL_STEP)))


def test_default_build_has_no_hls_layer(mnist_build, folded):
    _, result = mnist_build
    assert hls_layers(result.out_dir) == []
    ops = {n.op_type for n in folded.graph.node}
    assert {"Pool_rtl", "ElementwiseMulLut_rtl", "ElementwiseAddLut_rtl", "MVAUXnor_rtl"} <= ops


def test_each_of_our_ops_gives_vivado_the_rtl_the_verilator_stage_simulates(folded, tmp_path):
    """generate_hdl writes the same wrapper as hw/rtlgen; IPI adds exactly the files the wrapper needs."""
    from qonnx.custom_op.registry import getCustomOp

    from bnn2fpga.hw.finn_ops import HLS_TWIN_OF, STREAM_RTL_OPS
    from bnn2fpga.hw.rtlgen.base import RTL_DIR
    from bnn2fpga.hw.rtlgen.from_finn import layer_for

    model = copy.deepcopy(folded)
    ours = [n for n in model.graph.node if n.op_type in {c.__name__ for c in STREAM_RTL_OPS.values()}]
    assert len(ours) == 6  # 4 pools, the head's Mul and Add
    for node in ours:
        inst = getCustomOp(node)
        inst.set_nodeattr("code_gen_dir_ipgen", str(tmp_path / node.name))
        inst.generate_hdl(model, PART, 10.0)
        expected = layer_for(model, node, tmp_path / "ref" / node.name, mem_dir=tmp_path / node.name)
        wrapper = tmp_path / node.name / f"{node.name}.v"
        assert wrapper.read_text() == expected.sources[f"{node.name}.v"]
        files = inst.get_rtl_file_list(abspath=True)
        assert files == [str(f) for f in expected.library] + [str(wrapper)]
        assert all(f.startswith(str(RTL_DIR)) for f in files[:-1]) and all(Path(f).is_file() for f in files)
        for name in expected.mem_files:  # constants of the elementwise ops
            assert (tmp_path / node.name / name).is_file()
        ipi = inst.code_generation_ipi()
        assert ipi[:-1] == [f"add_files -norecurse {f}" for f in files]
        assert ipi[-1] == f"create_bd_cell -type module -reference {node.name} {node.name}"
        # Stream interfaces as FINN's HLS twin names them, so CreateStitchedIP connects ours alike.
        twin = copy.deepcopy(node)
        twin.op_type, twin.domain = HLS_TWIN_OF[node.op_type], "finn.custom_op.fpgadataflow.hls"
        assert inst.get_verilog_top_module_intf_names() == getCustomOp(twin).get_verilog_top_module_intf_names()
        ports = [name for name, _ in inst.get_verilog_top_module_intf_names()["s_axis"]]
        assert ports == ["in0_V"] and "in0_V_TDATA" in wrapper.read_text()
    pools = [n for n in ours if n.op_type == "Pool_rtl"]
    assert getCustomOp(pools[0]).get_rtl_file_list() == ["window_group.sv", "maxpool_stream.sv",
                                                         f"{pools[0].name}.v"]


def test_our_ops_execute_as_finn_ops_and_despecialize_for_python(folded):
    """Python execution is FINN's HW op; DespecializeForPython maps our names back to it."""
    from qonnx.custom_op.registry import getCustomOp

    from bnn2fpga.flows.transforms.despecialize import DespecializeForPython

    model = copy.deepcopy(folded).transform(DespecializeForPython())
    ops = {n.op_type for n in model.graph.node}
    assert {"Pool", "ElementwiseMulLut", "ElementwiseAddLut"} <= ops and not any(o.endswith("_rtl") for o in ops)
    head = [n for n in folded.graph.node if n.op_type == "ElementwiseMulLut_rtl"][0]
    inst = getCustomOp(head)
    x = np.random.default_rng(0).integers(-20, 20, size=inst.get_normal_input_shape(0)).astype(np.float32)
    ctx = {head.input[0]: x, head.input[1]: folded.get_initializer(head.input[1]),
           head.output[0]: np.zeros(inst.get_normal_output_shape(), np.float32)}
    inst.execute_node(ctx, folded.graph)
    assert np.array_equal(ctx[head.output[0]], x * folded.get_initializer(head.input[1]))
    inst.set_nodeattr("exec_mode", "rtlsim")
    with pytest.raises(NotImplementedError, match="Verilator stage"):
        inst.execute_node(ctx, folded.graph)


def test_layers_finn_keeps_finns_own_choice(tmp_path):
    """--layers finn: FINN's HLS layers stay (its choice), our binary MVAUs still by --binary-mvau."""
    from bnn2fpga.flows.config import make_config
    from bnn2fpga.flows.runner import run_build

    cfg = make_config(model="cbcnn-mnist", board="pynq-z2", out_dir=tmp_path / "b", until="specialize_layers",
                      layers="finn")
    result = run_build(cfg, log=lambda m: None)
    from qonnx.core.modelwrapper import ModelWrapper

    ops = {n.op_type for n in ModelWrapper(str(result.model_path("specialize_layers"))).graph.node}
    assert {"Pool_hls", "ElementwiseMul_hls", "ElementwiseAdd_hls", "MVAUXnor_rtl"} <= ops


def test_layers_choice_is_validated_once_at_the_edge(tmp_path):
    from bnn2fpga.errors import UserError
    from bnn2fpga.flows.config import make_config

    with pytest.raises(UserError, match="--layers must be one of rtl, finn, got 'vhdl'"):
        make_config(model="cbcnn-mnist", board="pynq-z2", out_dir=tmp_path / "b", layers="vhdl")

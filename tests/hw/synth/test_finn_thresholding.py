"""FINN's Thresholding_rtl with several thresholds per channel: read by Yosys through READER_FIXES,
and the rewritten source still computes FINN's function (Verilator against numpy).

Before the rewrite, slang's Yosys frontend rejected every such layer ("unsynthesizable feature"), so
the whole-design synthesis of dra-bnn-waste and presb-net-18-lite left 4 and 40 layers uncounted.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tool_markers import needs_verilator, needs_yosys  # noqa: E402

# 4-bit signed output: count of thresholds passed, minus 8. 12 thresholds, not 2**k - 1: the
# search's stages 2 and 3 then mask thresholds beyond the count (SCOPE_REDUCE 1 and 2), so the
# selects next to the rewritten one are live and a wrong rewrite shows in the simulation.
CHANNELS, PE, STEPS, BIAS = 6, 2, 12, -8


def _thresholds(rng) -> np.ndarray:
    # Ascending and distinct per channel, as FINN's binary search needs.
    return np.stack([np.sort(rng.choice(np.arange(-120, 120), STEPS, replace=False)) for _ in range(CHANNELS)])


def _finn_thresholding(tmp_path, thresholds: np.ndarray):
    """FINN's Thresholding_rtl for an INT8 stream of CHANNELS channels, as the build generates it."""
    from onnx import TensorProto, helper
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.basic import qonnx_make_model

    from bnn2fpga.hw.rtlgen.from_finn import layer_for

    node = helper.make_node(
        "Thresholding", ["inp", "thresh"], ["outp"], name="Thresholding_0", domain="finn.custom_op.fpgadataflow",
        backend="fpgadataflow", NumChannels=CHANNELS, PE=PE, numSteps=STEPS, inputDataType="INT8",
        weightDataType="INT8", outputDataType="INT4", ActVal=BIAS, numInputVectors=[1])
    graph = helper.make_graph([node], "thr", [helper.make_tensor_value_info("inp", TensorProto.FLOAT, [1, CHANNELS])],
                              [helper.make_tensor_value_info("outp", TensorProto.FLOAT, [1, CHANNELS])])
    model = ModelWrapper(qonnx_make_model(graph))
    model.set_initializer("thresh", thresholds.astype(np.float32))
    for t, dt in (("inp", "INT8"), ("thresh", "INT8"), ("outp", "INT4")):
        model.set_tensor_datatype(t, DataType[dt])
    return layer_for(model, model.graph.node[0], tmp_path / "gen")


def test_reader_fix_applies_once_and_leaves_other_files_alone():
    from bnn2fpga.hw.synth.yosys import READER_FIXES, readable_text

    name, old, new = READER_FIXES[0]
    text = f"a;\n{old};\nb;\n"
    assert readable_text(name, text) == f"a;\n{new};\nb;\n"
    assert readable_text("other.sv", text) == text


@needs_yosys
def test_finn_multi_threshold_layer_is_synthesized_by_yosys(tmp_path):
    """Failed before READER_FIXES: 'read_slang: ERROR: unsynthesizable feature'."""
    from bnn2fpga.hw.synth.yosys import synthesize

    layer = _finn_thresholding(tmp_path, _thresholds(np.random.default_rng(1)))
    assert "thresholding.sv" in {p.name for p in layer.library}
    res = synthesize(layer)
    # Two PEs, four search stages each, comparing 8-bit values: some tens of LUTs and FFs, no DSP or BRAM.
    assert 20 <= res["LUT"] <= 400, res
    assert res["FF"] >= 8 * PE and res["DSP"] == 0 and res["BRAM_18K"] == 0, res


@needs_verilator
def test_rewritten_thresholding_computes_finns_function(tmp_path):
    """The copy Yosys reads, simulated: y = #(thresholds <= x) + BIAS for every channel, with stalls."""
    import dataclasses

    from bnn2fpga.hw.sim.layer_sim import simulate
    from bnn2fpga.hw.synth.yosys import readable_text

    rng = np.random.default_rng(2)
    th = _thresholds(rng)
    layer = _finn_thresholding(tmp_path, th)
    fixed = tmp_path / "fixed"
    fixed.mkdir()
    library = []
    for p in layer.library:
        shutil.copy(p, fixed / p.name)
        if p.name == "thresholding.sv":
            (fixed / p.name).write_text(readable_text(p.name, p.read_text()))
            assert (fixed / p.name).read_text() != p.read_text()
        library.append(fixed / p.name)
    layer = dataclasses.replace(layer, library=library)

    frames = 40
    x = rng.integers(-128, 128, size=(frames, CHANNELS))
    x[:4] = th[:, :1].T  # exactly on a threshold: counted (<=)
    got = simulate(layer, x.reshape(-1, PE), out_signed=True, stall_pct=30).out.reshape(frames, CHANNELS)
    want = (th[None, :, :] <= x[:, :, None]).sum(axis=2) + BIAS
    np.testing.assert_array_equal(got, want)

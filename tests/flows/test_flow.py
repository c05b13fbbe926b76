"""The FINN build flow: steps, resume, folding, fit check, reports and error paths."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from bnn2fpga.flows.config import make_config
from bnn2fpga.errors import DoesNotFit, UserError
from bnn2fpga.flows.runner import load_state, model_file, run_build
from bnn2fpga.flows.steps import LAST_VIVADO_FREE, step_names


def test_every_vivado_free_step_saved_its_model(mnist_build):
    cfg, result = mnist_build
    # The shared build stops at the package, before the Verilator FIFO sizing (tests/flows/test_fifo_sizing.py).
    vivado_free = step_names()[: step_names().index(cfg.until) + 1]
    assert LAST_VIVADO_FREE in step_names()[len(vivado_free):]
    assert result.done == vivado_free
    for step in vivado_free:
        assert model_file(cfg.out_dir, step).stat().st_size > 0


def test_dataflow_partition_is_pure_hardware(mnist_build):
    from qonnx.core.modelwrapper import ModelWrapper

    cfg, _ = mnist_build
    model = ModelWrapper(str(model_file(cfg.out_dir, "minimize_bit_width")))
    ops = [n.op_type for n in model.graph.node]
    assert all(n.domain.startswith("finn.custom_op.fpgadataflow") for n in model.graph.node), ops
    # XNOR layers for the binary convs, one non-XNOR MVAU for the UINT8 first layer.
    from qonnx.custom_op.registry import getCustomOp

    mvaus = [getCustomOp(n) for n in model.graph.node if n.op_type.startswith("MVAU")]
    assert len(mvaus) == 6
    assert [m.get_nodeattr("binaryXnorMode") for m in mvaus] == [0, 1, 1, 1, 1, 1]
    # The host only reorders the input to NHWC; no float math is left outside.
    parent = ModelWrapper(str(cfg.out_dir / "dataflow_parent.onnx"))
    assert [n.op_type for n in parent.graph.node] == ["Transpose", "StreamingDataflowPartition"]


def test_report_json_and_html(mnist_build):
    cfg, _ = mnist_build
    rep = json.loads((cfg.out_dir / "report" / "report.json").read_text())
    assert rep["board"]["part"] == "xc7z020clg400-1"
    layer_names = [row["name"] for row in rep["layers"]]
    assert rep["performance"]["bottleneck"] in layer_names
    slowest = max(rep["layers"], key=lambda r: r["cycles"])
    assert rep["performance"]["max_cycles"] == slowest["cycles"]
    # FPS is the board clock over the slowest layer's cycles.
    assert rep["performance"]["fps"] == pytest.approx(100e6 / slowest["cycles"])
    assert rep["totals"]["LUT"] == pytest.approx(sum(r["LUT"] for r in rep["layers"]))
    html = (cfg.out_dir / "report" / "report.html").read_text()
    assert "cbcnn-mnist" in html and rep["performance"]["bottleneck"] in html


def test_search_fits_under_ceiling_and_beats_minimal_folding(mnist_build):
    cfg, result = mnist_build
    fit = result.info["fit"]
    assert fit["fits"]
    for res in ("LUT", "BRAM_18K", "DSP"):
        assert fit["used"][res] <= 0.85 * fit["available"][res]
    summary = result.info["folding"]
    assert summary["mode"] == "search"
    # Far faster than the fully folded design (PE = SIMD = 1), which every candidate tried may beat.
    assert summary["cycles"] < summary["fully_folded_cycles"] / 10


def test_binary_mvaus_are_our_rtl_by_default_and_hls_on_request(mnist_build, tmp_path):
    from qonnx.core.modelwrapper import ModelWrapper

    cfg, result = mnist_build
    folded = ModelWrapper(str(model_file(cfg.out_dir, "minimize_bit_width")))
    assert [n.op_type for n in folded.graph.node if n.op_type.startswith("MVAU")] == ["MVAUXnor_rtl"] * 6
    rows = [r for r in json.loads((cfg.out_dir / "report" / "report.json").read_text())["layers"]
            if r["op"] == "MVAUXnor_rtl"]
    # Folded by the search like FINN's MVAUs, estimated with LUTs and no DSPs.
    assert len(rows) == 6 and max(r["PE"] * r["SIMD"] for r in rows) > 64
    assert all(r["LUT"] > 300 and r["DSP"] == 0 and r["URAM"] == 0 for r in rows)
    assert result.info["fit"]["used"]["DSP"] == 0
    # The choice is part of the build key: 'hls' re-runs from specialize_layers on.
    out = tmp_path / "hls"
    shutil.copytree(cfg.out_dir, out)
    hls = make_config(model="cbcnn-mnist", board="pynq-z2", out_dir=out, until="specialize_layers",
                      binary_mvau="hls")
    assert run_build(hls, log=lambda m: None).ran == ["specialize_layers"]
    spec = ModelWrapper(str(model_file(out, "specialize_layers")))
    assert [n.op_type for n in spec.graph.node if n.op_type.startswith("MVAU")] == ["MVAU_hls"] * 6


def test_resume_reuses_steps_and_a_new_target_refolds_only(mnist_build, tmp_path):
    cfg, _ = mnist_build
    out = tmp_path / "copy"
    shutil.copytree(cfg.out_dir, out)
    same = make_config(model="cbcnn-mnist", board="pynq-z2", out_dir=out, until="estimate")
    assert run_build(same, log=lambda m: None).ran == []
    # Folding JSON from the first build, reapplied: export .. specialize are reused.
    refold = make_config(model="cbcnn-mnist", board="pynq-z2", out_dir=out, until="estimate",
                         folding=out / "folding.json")
    result = run_build(refold, log=lambda m: None)
    assert result.ran == ["folding", "minimize_bit_width", "estimate"]
    assert result.info["folding"]["mode"] == "file"
    assert json.loads((out / "report" / "report.json").read_text())["performance"]["max_cycles"] == \
        json.loads((cfg.out_dir / "report" / "report.json").read_text())["performance"]["max_cycles"]


def test_fps_target_is_met(mnist_build, tmp_path):
    cfg, _ = mnist_build
    out = tmp_path / "fps"
    shutil.copytree(cfg.out_dir, out)
    result = run_build(make_config(model="cbcnn-mnist", board="pynq-z2", out_dir=out, fps=1000,
                                   until="estimate"), log=lambda m: None)
    assert result.ran[0] == "folding"
    assert 1000 <= result.info["folding"]["fps"] < 4000


def test_design_that_does_not_fit_is_refused_before_vivado(mnist_build, tmp_path):
    cfg, _ = mnist_build
    out = tmp_path / "tight"
    shutil.copytree(cfg.out_dir, out)
    tight = make_config(model="cbcnn-mnist", board="pynq-z2", out_dir=out, ceiling=0.02)
    with pytest.raises(DoesNotFit, match=r"does not fit.*LUT.*over by.*largest"):
        run_build(tight, log=lambda m: None)
    assert load_state(out)["info"]["fit"]["fits"] is False


def test_interrupted_step_is_redone(mnist_build, tmp_path):
    cfg, _ = mnist_build
    out = tmp_path / "broken"
    shutil.copytree(cfg.out_dir, out)
    model_file(out, "folding").unlink()  # as if the build died while writing it
    result = run_build(make_config(model="cbcnn-mnist", board="pynq-z2", out_dir=out, until="estimate"),
                       log=lambda m: None)
    assert result.ran == ["folding", "minimize_bit_width", "estimate"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(model="nope"), "unknown model 'nope'; valid models: .*cbcnn-gtsrb"),
        (dict(model="cbcnn", board="nope"), "unknown board 'nope'; valid boards: .*pynq-z2"),
        (dict(model="cbcnn", fps=-5), "--fps must be positive"),
        (dict(model="cbcnn", ckpt="/no/such.pt"), "checkpoint not found"),
        (dict(onnx="/no/such.onnx"), "ONNX file not found"),
        (dict(), "either a model name or --onnx"),
        (dict(model="cbcnn", ceiling=1.5), "--ceiling"),
        (dict(model="cbcnn", margin=1.0), r"--margin must be in \[0, 1\), got 1.0"),
        (dict(model="cbcnn", margin=-0.1), "--margin must be in"),
        (dict(model="cbcnn", binary_mvau="vhdl"), "--binary-mvau must be one of rtl, hls"),
    ],
)
def test_bad_build_requests_are_one_line_errors(kwargs, message):
    with pytest.raises(UserError, match=message) as err:
        make_config(**kwargs)
    assert "\n" not in str(err.value)


def test_corrupt_onnx_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not a protobuf" * 10)
    with pytest.raises(UserError, match="cannot read ONNX file"):
        make_config(onnx=bad, board="pynq-z2", out_dir=tmp_path / "out", until="qonnx_to_finn")
    assert not (tmp_path / "out").exists()


def _export(module, example, path):
    from brevitas.export import export_qonnx

    module.eval()
    export_qonnx(module, input_t=example, export_path=str(path))
    return path


def test_op_finn_cannot_map_fails_at_first_step_naming_the_node(tmp_path):
    import torch.nn as nn

    from bnn2fpga.quantize import layers

    # Softsign exports as x / (1 + |x|): Abs is the first op FINN has no mapping for.
    model = nn.Sequential(layers.pixel_input(), nn.Flatten(), layers.binary_linear(16, 8), nn.Softsign())
    path = _export(model, __import__("torch").zeros(1, 1, 4, 4), tmp_path / "softsign.onnx")
    cfg = make_config(onnx=path, board="pynq-z2", out_dir=tmp_path / "out")
    with pytest.raises(UserError, match=r"node 'Abs_0' \(op Abs\) cannot be mapped to hardware"):
        run_build(cfg, log=lambda m: None)
    assert load_state(tmp_path / "out")["keys"].keys() == {"export"}


def test_user_onnx_with_external_weights_is_copied_whole(tmp_path):
    """torch writes big weights to <name>.onnx.data; the build must still find them."""
    import onnx
    from qonnx.core.modelwrapper import ModelWrapper

    from bnn2fpga.quantize.export import export_model

    exported = export_model("cbcnn-mnist", tmp_path / "user" / "mine.onnx")
    onnx.save_model(onnx.load(str(exported.onnx)), str(exported.onnx), save_as_external_data=True,
                    location="mine.onnx.data", size_threshold=1024)
    assert (tmp_path / "user" / "mine.onnx.data").exists()  # the case under test
    cfg = make_config(onnx=exported.onnx, board="pynq-z2", out_dir=tmp_path / "out", until="export")
    result = run_build(cfg, log=lambda m: None)
    copied = ModelWrapper(str(result.model_path("export")))
    original = onnx.load(str(exported.onnx))
    names = {i.name for i in original.graph.initializer}
    assert names and names <= {i.name for i in copied.graph.initializer}
    w = next(i.name for i in original.graph.initializer if "conv" in i.name)
    assert np.array_equal(copied.get_initializer(w), onnx.numpy_helper.to_array(
        next(i for i in original.graph.initializer if i.name == w), base_dir=str(tmp_path / "user")))


def test_weights_move_to_luts_when_bram_alone_is_short(mnist_build):
    import dataclasses

    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp

    from bnn2fpga.boards import get_board
    from bnn2fpga.flows.folding import check_fit, weights_to_luts

    cfg, _ = mnist_build
    folded = ModelWrapper(str(model_file(cfg.out_dir, "minimize_bit_width")))
    for n in folded.graph.node:  # every binary layer's weights in BRAM, as for a wide network
        if n.op_type == "MVAUXnor_rtl":
            getCustomOp(n).set_nodeattr("ram_style", "block")
    z2 = get_board("pynq-z2")
    before = check_fit(folded, z2, 0.85).used
    assert before["BRAM_18K"] > 0
    # A board with LUTs to spare but too little BRAM for those ROMs.
    small = dataclasses.replace(z2, resources=dataclasses.replace(
        z2.resources, LUT=int(2 * before["LUT"]), BRAM36=int(before["BRAM_18K"] / 4)))
    model, fit = weights_to_luts(folded, small, 0.85)
    styles = [getCustomOp(n).get_nodeattr("ram_style") for n in model.graph.node if n.op_type == "MVAUXnor_rtl"]
    assert fit.fits and "distributed" in styles
    assert fit.used["BRAM_18K"] < before["BRAM_18K"] and fit.used["LUT"] > before["LUT"]
    # Without LUTs to spare nothing moves: a design that cannot fit is reported, not made worse.
    tight = dataclasses.replace(small, resources=dataclasses.replace(small.resources, LUT=int(before["LUT"])))
    for n in folded.graph.node:
        if n.op_type == "MVAUXnor_rtl":
            getCustomOp(n).set_nodeattr("ram_style", "block")
    model, fit = weights_to_luts(folded, tight, 0.85)
    assert not fit.fits and fit.used["BRAM_18K"] == before["BRAM_18K"]


def test_unknown_until_step_is_one_line_error():
    from bnn2fpga.flows.steps import check_until

    with pytest.raises(UserError, match="unknown step 'nope'; steps: export, "):
        check_until("nope")

"""The cosim harness: every stage bit for bit, mismatches located, absent tools never 'passed'."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from bnn2fpga.flows.config import make_config
from bnn2fpga.flows.runner import model_file, run_build
from bnn2fpga.flows.verify import brevitas_reference, make_inputs, verify_build


def _inputs(result, n=3):
    return make_inputs((1, 28, 28), n, result.info.get("input_quant"), real=None, seed=1)


def test_zoo_model_is_bit_exact_at_every_stage(mnist_build):
    cfg, result = mnist_build
    inputs = _inputs(result)
    ref = brevitas_reference("cbcnn-mnist", None, inputs.x)
    verdict = verify_build(result, inputs, ref, log=lambda m: None)
    by_name = {s.name: s for s in verdict.stages}
    assert by_name["brevitas"].status == "reference"
    for stage in ("qonnx", "finn-onnx", "tidy", "streamlined", "hw layers", "dataflow partition",
                  "specialized", "folded"):
        assert by_name[stage].status == "bit-exact", by_name[stage]
        assert by_name[stage].equal == len(inputs.x)
    assert verdict.verdict == "bit-exact"
    # Without the tools these stages are reported as not run, never as passed.
    assert by_name["hls cppsim"].status == "not run" and "no HLS layer" in by_name["hls cppsim"].detail
    assert by_name["stitched-ip rtlsim"].status == "not run" and "Vivado" in by_name["stitched-ip rtlsim"].detail


def test_parallel_ladder_equals_the_sequential_one(mnist_build, monkeypatch):
    """All stages queued on one pool of workers: same verdict, same log lines in the same order."""
    import concurrent.futures as cf

    _, result = mnist_build
    inputs = _inputs(result)
    ref = brevitas_reference("cbcnn-mnist", None, inputs.x)
    seq_log: list[str] = []
    seq = verify_build(result, inputs, ref, log=seq_log.append, workers=1)
    pools = []
    real_pool = cf.ProcessPoolExecutor

    class Counting(real_pool):
        def __init__(self, *a, **k):
            pools.append(self)
            super().__init__(*a, **k)

    monkeypatch.setattr(cf, "ProcessPoolExecutor", Counting)
    par_log: list[str] = []
    par = verify_build(result, inputs, ref, log=par_log.append, workers=2)
    assert len(pools) == 1  # one pool for the whole ladder, not one per stage
    assert par.verdict == "bit-exact" and _untimed(par.to_dict()) == _untimed(seq.to_dict())
    assert par_log == seq_log


def _untimed(d: dict) -> dict:
    # The Verilator stage reports the frames/s it simulated: wall time, different in every run.
    import re

    for s in d["stages"]:
        s["detail"] = re.sub(r"[0-9,.]+ frames/s simulated", "N frames/s simulated", s["detail"])
    return d


def test_inputs_include_rounding_ties(mnist_build):
    _, result = mnist_build
    inputs = _inputs(result)
    ties = inputs.x[[k == "tie" for k in inputs.kinds]]
    assert len(ties) == 3 and np.all(ties - np.floor(ties) == 0.5)


def test_a_broken_stage_is_located(mnist_build, tmp_path):
    """Flip one threshold in the streamlined model: that stage and its node must be named."""
    from qonnx.core.modelwrapper import ModelWrapper

    cfg, result = mnist_build
    out = tmp_path / "broken"
    shutil.copytree(cfg.out_dir, out)
    broken = run_build(make_config(model="cbcnn-mnist", board="pynq-z2", out_dir=out, until="estimate"),
                       log=lambda m: None)
    assert broken.ran == []
    # Tampered after the build (a resumed build would re-run a changed step): the ladder reads this file.
    path = model_file(out, "streamline")
    model = ModelWrapper(str(path))
    mt = [n for n in model.graph.node if n.op_type == "MultiThreshold"][1]
    thr = model.get_initializer(mt.input[1])
    model.set_initializer(mt.input[1], thr + 1000.0)  # that layer's signs all become -1
    model.save(str(path))
    inputs = _inputs(broken, n=2)
    verdict = verify_build(broken, inputs, brevitas_reference("cbcnn-mnist", None, inputs.x), log=lambda m: None)
    stages = {s.name: s for s in verdict.stages}
    assert stages["tidy"].status == "bit-exact"
    assert stages["streamlined"].status == "mismatch"
    assert "input 0" in stages["streamlined"].detail and "!=" in stages["streamlined"].detail
    assert "first diverging node" in stages["streamlined"].detail
    assert verdict.verdict == "mismatch"


def test_non_zoo_qonnx_is_bit_exact_against_its_brevitas_model(tmp_path):
    """A Brevitas MLP with a fractional 8-bit input scale: the --onnx path, ties included."""
    import torch.nn as nn
    from brevitas.core.scaling import ScalingImplType
    from brevitas.export import export_qonnx
    from brevitas.nn import QuantIdentity
    from brevitas.quant.scaled_int import Int8ActPerTensorFloat

    from bnn2fpga.quantize import layers

    class InputQ(Int8ActPerTensorFloat):
        scaling_impl_type = ScalingImplType.CONST
        scaling_const = 3.3  # scale 3.3 / 128: ties are not at .5 of the raw value
        min_val, max_val = -3.3, 3.3

    torch.manual_seed(3)
    model = nn.Sequential(
        QuantIdentity(act_quant=InputQ), nn.Flatten(),
        layers.binary_linear(64, 48), nn.BatchNorm1d(48), layers.binary_act(),
        layers.binary_linear(48, 32), nn.BatchNorm1d(32), layers.binary_act(),
        layers.binary_linear(32, 10),
    )
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.uniform_(-5.3, 5.3)
                m.running_var.uniform_(5, 30)
                m.bias.uniform_(-0.5, 0.5)
    model.eval()
    path = tmp_path / "mlp.onnx"
    export_qonnx(model, input_t=torch.zeros(1, 1, 8, 8), export_path=str(path))
    result = run_build(make_config(onnx=path, board="pynq-z2", out_dir=tmp_path / "out", until="estimate"),
                       log=lambda m: None)
    iq = result.info["input_quant"]
    assert iq["bits"] == 8 and iq["signed"] and iq["scale"] == pytest.approx(3.3 / 128)
    inputs = make_inputs((1, 8, 8), 4, iq, real=None, seed=2)
    with torch.no_grad():
        ref = np.stack([model(torch.from_numpy(inputs.x[i:i + 1])).numpy() for i in range(len(inputs.x))])
    verdict = verify_build(result, inputs, ref, log=lambda m: None)
    assert verdict.verdict == "bit-exact", [(s.name, s.status, s.detail) for s in verdict.stages]
    assert {s.name for s in verdict.stages if s.status == "bit-exact"} >= {"qonnx", "streamlined", "folded"}


def test_reshape_layers_get_a_valid_folding(tmp_path):
    """The input's flatten is a host reshape; any Reshape left in hardware gets a PE that divides its axes.

    (FINN's SetFolding can give a Reshape a PE that does not divide its input axis.)
    """
    import json

    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp

    test_non_zoo_qonnx_is_bit_exact_against_its_brevitas_model(tmp_path)
    result = run_build(make_config(onnx=tmp_path / "mlp.onnx", board="pynq-z2", out_dir=tmp_path / "out",
                                   until="package"), log=lambda m: None)
    assert "Reshape" in result.info["host_pre"]  # the flatten of the 1x8x8 input runs on the host
    spec = json.loads((tmp_path / "out" / "deploy" / "io_spec.json").read_text())
    assert [op["op"] for op in spec["input"]["host_ops"]] == ["Reshape"]
    model = ModelWrapper(str(model_file(tmp_path / "out", "minimize_bit_width")))
    reshapes = [n for n in model.graph.node if n.op_type.startswith("Reshape")]
    for node in reshapes:
        inst = getCustomOp(node)
        pe = inst.get_nodeattr("PE")
        assert inst.get_normal_input_shape()[-1] % pe == 0 and inst.get_normal_output_shape()[-1] % pe == 0
        inst.get_folded_input_shape()  # FINN's own check

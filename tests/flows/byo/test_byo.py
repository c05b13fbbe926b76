"""Bring your own BNN: Brevitas networks the tool was not shaped for compile and stay bit-exact.

Every corpus model (tests/flows/byo/corpus.py) is exported with Brevitas at test time, built
through every Vivado-free step and checked at every stage, Verilator included, on random,
real-range and rounding-tie inputs. The board driver runs the same host ops on a simulated
accelerator. Float inputs without a quantizer and float tensors between integer layers fail
with messages that say what to change.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn as nn

from bnn2fpga.errors import UserError
from bnn2fpga.flows.config import make_config
from bnn2fpga.flows.runner import run_build
from bnn2fpga.flows.verify import make_inputs, verify_build
from build_checks import hls_layers

from . import corpus

pytestmark = pytest.mark.usefixtures("one_torch_thread")

VIVADO_FREE = ("qonnx", "finn-onnx", "tidy", "streamlined", "hw layers", "dataflow partition", "specialized",
               "folded")


def _build(name, tmp_path, **kw):
    path, model = corpus.export(name, tmp_path / "src")
    result = run_build(make_config(onnx=path, board="pynq-z2", out_dir=tmp_path / "out", until="package", **kw),
                       log=lambda m: None)
    return model, result


def _inputs(entry, result, n=2):
    return make_inputs(entry.input_shape, n, result.info.get("input_quant"), real=None, seed=4,
                       float_ops=result.info.get("input_float_ops"), value_range=entry.input_range)


def _corpus_params():
    # make test: each model once (the small MLPs at their test throughput); make bench: the
    # slow models, and the MLPs at the default search too.
    for n, e in corpus.CORPUS.items():
        bench = n in corpus.BENCH_ONLY
        yield pytest.param(n, e.test_fps, id=n, marks=[pytest.mark.bench] if bench else [])
        if e.test_fps is not None and not bench:
            yield pytest.param(n, None, id=f"{n}-default-search", marks=[pytest.mark.bench])


@pytest.mark.slow
@pytest.mark.parametrize(("name", "fps"), list(_corpus_params()))
def test_corpus_model_is_bit_exact_at_every_stage_and_in_verilator(name, fps, tmp_path):
    entry = corpus.CORPUS[name]
    model, result = _build(name, tmp_path, fps=fps)
    inputs = _inputs(entry, result)
    assert set(inputs.kinds) == {"random", "range", "tie"}
    verdict = verify_build(result, inputs, corpus.reference(model, inputs.x), log=lambda m: None, workers=1)
    stages = {s.name: s for s in verdict.stages}
    for stage in VIVADO_FREE + ("rtlsim (Verilator)",):
        assert stages[stage].status == "bit-exact", (stage, stages[stage].detail)
        assert stages[stage].equal == len(inputs.x)
    # What runs on the host is recorded: the quantizer (and any 2x - 1) before, the float head after.
    assert any(op.startswith(("Quant", "Sign")) for op in result.info["host_pre"])
    assert result.info["host_post"] and set(result.info["host_post"]) <= {"Mul", "Add", "Sub", "Div"}
    spec = json.loads((tmp_path / "out" / "deploy" / "io_spec.json").read_text())
    assert [op["op"] for op in spec["output"]["host_ops"]] == result.info["host_post"]
    assert spec["input"]["float_ops"] == result.info["input_float_ops"]
    assert hls_layers(result.out_dir) == []  # every layer RTL: Vivado alone builds its bitstream


@pytest.mark.slow
def test_board_driver_applies_the_host_ops_like_pytorch(tmp_path):
    """The numpy-only driver (2x - 1, sign, reshape before; scale and TensorNorm after) on a simulated FPGA."""
    import importlib
    import sys

    from bnn2fpga.flows.package import DEPLOY_DIR
    from bnn2fpga.flows.simulated_accelerator import SimulatedAccelerator
    from bnn2fpga.flows.verify import HeadCodes

    entry = corpus.CORPUS["tfc-1w1a"]
    model, result = _build("tfc-1w1a", tmp_path)
    assert result.info["input_float_ops"][:2] == [{"op": "Mul", "value": 2.0}, {"op": "Sub", "value": 1.0}]
    deploy = tmp_path / "out" / DEPLOY_DIR
    sys.path.insert(0, str(deploy))  # the deployed driver, imported as the board imports it
    try:
        runtime = importlib.import_module("bnn2fpga_driver.runtime")
        clf = runtime.Classifier(deploy, SimulatedAccelerator(tmp_path / "out"))
        x = _inputs(entry, result).x
        ref = corpus.reference(model, x)
        out = clf.run(x)
        labels = [p.index for p in clf.predictions(clf.logits(out))]
    finally:
        sys.path.remove(str(deploy))
        for name in [m for m in sys.modules if m == "bnn2fpga_driver" or m.startswith("bnn2fpga_driver.")]:
            del sys.modules[name]
    assert labels == list(np.argmax(ref.reshape(len(ref), -1), axis=1))
    head = HeadCodes(result.info["host_head"])
    assert np.array_equal(head.codes(out)[0], head.codes(ref)[0])
    assert np.allclose(out.reshape(ref.shape), ref, rtol=1e-5, atol=1e-5)


def _float_input_mlp():
    from brevitas.nn import QuantIdentity, QuantLinear
    from brevitas.quant import SignedBinaryActPerTensorConst, SignedBinaryWeightPerTensorConst

    torch.manual_seed(0)
    m = nn.Sequential(nn.Flatten(), QuantLinear(16, 8, bias=False, weight_quant=SignedBinaryWeightPerTensorConst),
                      nn.BatchNorm1d(8), QuantIdentity(act_quant=SignedBinaryActPerTensorConst),
                      QuantLinear(8, 4, bias=False, weight_quant=SignedBinaryWeightPerTensorConst))
    return corpus.spread_batchnorm(m, 1).eval()


def _export(model, path, shape=(1, 4, 4)):
    from brevitas.export import export_qonnx

    export_qonnx(model, input_t=torch.zeros(1, *shape), export_path=str(path))
    return path


def test_float_input_without_quantizer_is_refused_with_the_declaration_to_use(tmp_path):
    path = _export(_float_input_mlp(), tmp_path / "net.onnx")
    with pytest.raises(UserError) as e:
        run_build(make_config(onnx=path, out_dir=tmp_path / "out", until="qonnx_to_finn"), log=lambda m: None)
    msg = str(e.value)
    assert "float and has no input quantizer" in msg and "QuantIdentity" in msg
    assert "--input-scale 1/255 --input-dtype UINT8" in msg


@pytest.mark.slow
def test_declared_input_format_builds_bit_exact(tmp_path):
    """--input-scale 1/255 --input-dtype UINT8: the host quantizes x to q = round(255 x); the graph sees q / 255."""
    model = _float_input_mlp()
    path = _export(model, tmp_path / "net.onnx")
    result = run_build(make_config(onnx=path, out_dir=tmp_path / "out", until="package", input_scale="1/255",
                                   input_dtype="uint8"), log=lambda m: None)
    iq = result.info["input_quant"]
    assert iq["bits"] == 8 and not iq["signed"] and iq["scale"] == pytest.approx(1 / 255)
    from bnn2fpga.flows.verify import InputSet

    # The declared format is the user's statement: inputs on its grid (x = q / 255) are the network's
    # inputs, and there the whole network is bit-exact against PyTorch.
    grid = make_inputs((1, 4, 4), 3, iq, real=None, seed=0)
    keep = [k == "random" for k in grid.kinds]
    inputs = InputSet(x=grid.x[keep], kinds=["random"] * sum(keep))
    verdict = verify_build(result, inputs, corpus.reference(model, inputs.x), log=lambda m: None, workers=1)
    assert verdict.verdict == "bit-exact", [(s.name, s.status, s.detail) for s in verdict.stages]
    assert {s.name for s in verdict.stages if s.status == "bit-exact"} >= set(VIVADO_FREE)


@pytest.mark.parametrize("scale,dtype,problem", [
    ("1/255", None, "together"), ("abc", "UINT8", "number"), ("-1", "UINT8", "positive"),
    ("1/255", "FLOAT8", "UINTn or INTn"),
])
def test_input_declaration_is_validated(tmp_path, scale, dtype, problem):
    path = _export(_float_input_mlp(), tmp_path / "net.onnx")
    with pytest.raises(UserError, match=problem):
        make_config(onnx=path, out_dir=tmp_path / "out", input_scale=scale, input_dtype=dtype)


def test_cli_takes_the_input_declaration():
    from bnn2fpga.flows.cli import parser

    args = parser().parse_args(["build", "--onnx", "n.onnx", "--input-scale", "1/255", "--input-dtype", "UINT8"])
    assert (args.input_scale, args.input_dtype) == ("1/255", "UINT8")


def test_float_between_integer_layers_names_node_op_and_fix(tmp_path):
    """A float ReLU (not QuantReLU) between two integer layers: the error names the node and op and the fix.

    (A plain float scale there is no error: streamlining moves it past the next layer into the host head.)
    """
    from brevitas.nn import QuantIdentity, QuantLinear
    from brevitas.quant import SignedBinaryWeightPerTensorConst

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), QuantIdentity(bit_width=8),
                          QuantLinear(16, 8, bias=False, weight_quant=SignedBinaryWeightPerTensorConst),
                          nn.ReLU(),
                          QuantLinear(8, 4, bias=False, weight_quant=SignedBinaryWeightPerTensorConst)).eval()
    path = _export(model, tmp_path / "net.onnx")
    with pytest.raises(UserError) as e:
        run_build(make_config(onnx=path, out_dir=tmp_path / "out", until="dataflow_partition"), log=lambda m: None)
    msg = str(e.value)
    assert msg.startswith("node '") and "(op " in msg
    assert "MatMul" in msg and "quantize the tensors around it" in msg


def test_per_channel_activation_scale_before_a_conv_names_node_and_fix(tmp_path):
    """A QuantReLU with a scale per channel feeding a conv cannot map (weights times per-channel scales are
    not integers): the error names the scale's node and says to use a per-tensor scale or re-quantize.
    (After a pool and a per-tensor QuantIdentity it maps: corpus model cnn-perchannel-int4.)"""
    from brevitas.nn import QuantConv2d, QuantIdentity, QuantReLU

    torch.manual_seed(0)
    model = nn.Sequential(
        QuantIdentity(bit_width=8, return_quant_tensor=True), QuantConv2d(1, 8, 3, bias=False, weight_bit_width=4),
        nn.BatchNorm2d(8),
        QuantReLU(bit_width=4, scaling_per_output_channel=True, per_channel_broadcastable_shape=(1, 8, 1, 1),
                  scaling_stats_permute_dims=(1, 0, 2, 3), return_quant_tensor=True),
        QuantConv2d(8, 4, 3, bias=False, weight_bit_width=4))
    model = corpus.float_act_scales(corpus.spread_batchnorm(model, 1), 1).eval()
    path = _export(model, tmp_path / "net.onnx", shape=(1, 8, 8))
    with pytest.raises(UserError) as e:
        run_build(make_config(onnx=path, out_dir=tmp_path / "out", until="dataflow_partition"), log=lambda m: None)
    msg = str(e.value)
    assert msg.startswith("node '") and "Mul" in msg and "(1, 8, 1, 1)" in msg
    assert "per-tensor scale" in msg and "scaling_per_output_channel" in msg


def test_unsupported_op_names_node_op_and_what_to_change(tmp_path):
    class Sine(nn.Module):
        def forward(self, x):
            return torch.sin(x)

    from brevitas.nn import QuantIdentity

    model = nn.Sequential(QuantIdentity(bit_width=8), Sine()).eval()
    path = _export(model, tmp_path / "net.onnx")
    with pytest.raises(UserError) as e:
        run_build(make_config(onnx=path, out_dir=tmp_path / "out", until="qonnx_to_finn"), log=lambda m: None)
    msg = str(e.value)
    assert "(op Sin)" in msg and "Brevitas model" in msg


def test_verify_command_puts_inputs_on_the_grid_through_the_float_preprocessing(tmp_path, capfd, monkeypatch):
    """`bnn2fpga verify --onnx` on FINN's TFC (2x - 1 before a 1-bit input quantizer): the ties land
    exactly on the sign's threshold (0 after 2x - 1, so x = 0.5), and every stage is bit-exact."""
    from bnn2fpga.flows import verify
    from bnn2fpga.flows.cli import main

    made = []
    real_make = verify.make_inputs
    monkeypatch.setattr(verify, "make_inputs", lambda *a, **k: made.append(real_make(*a, **k)) or made[-1])
    path, _ = corpus.export("tfc-1w1a", tmp_path / "src")
    assert main(["verify", "--onnx", str(path), "--inputs", "2", "--out", str(tmp_path / "b"),
                 "--fps", str(corpus.FC_TEST_FPS)]) == 0
    assert "verdict: bit-exact at every stage that ran" in capfd.readouterr().out
    ties = made[0].x[[k == "tie" for k in made[0].kinds]]
    assert len(ties) == 2 and np.all(ties == 0.5)

"""Tests for BlinkNet (seed paper 003): sizes, number formats, the residual mapping, the recipe,
and a bit-exact FINN build of the hybrid network.

The FINN build uses narrower stages (8, 16, 32 channels) than the zoo model (32, 64, 128):
the same classes, export and build steps, a fraction of the time. The full-size numbers are
in the README's table.
"""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bnn2fpga.quantize import registry
from bnn2fpga.quantize.models.blinknet import BINARY, FP, HYBRID, BlinkNet, BlinkNetConfig

PAPER_PARAMS = 563_146  # MODELS.md / the authors' FPBlinkNet
SMALL = dataclasses.replace(HYBRID, widths=(8, 16, 32))


# Small tensors: one torch thread is faster, and much faster when the CPUs are shared.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _pixels(n: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 32, 32), generator=gen).float()


def _calibrated(cfg: BlinkNetConfig, seed: int = 0) -> BlinkNet:
    """A seeded untrained model with calibrated BN statistics and activation scales."""
    from bnn2fpga.quantize.export import calibrate_untrained

    torch.manual_seed(seed)
    model = BlinkNet(cfg)
    calibrate_untrained(model, registry.get_spec("blinknet-hybrid"))
    return model


def _is_pow2(v: float) -> bool:
    return v > 0 and float(np.log2(v)).is_integer()


# --- sizes -------------------------------------------------------------------------------


def _quantizer_scales(model) -> int:
    from brevitas.nn import QuantReLU

    return sum(p.numel() for m in model.modules() if isinstance(m, QuantReLU) for p in m.parameters())


@pytest.mark.parametrize("name", ["blinknet-fp", "blinknet-hybrid", "blinknet-binary"])
def test_parameter_count_is_the_papers(name):
    model = registry.create_model(name)
    # The integer variants learn one scale per ReLU quantizer (6) on top of the paper's weights.
    learned_scales = _quantizer_scales(model)
    assert learned_scales == (0 if name == "blinknet-fp" else 6)
    assert registry.count_trainable(model) - learned_scales == PAPER_PARAMS


@pytest.mark.parametrize("name, bits", [
    ("blinknet-fp", 0),
    ("blinknet-hybrid", 3 * 32 * 9 + 32 * 64 * 9 + 64 * 128 * 9),  # the three pre-activation convs
    ("blinknet-binary", 93_024 + 2 * 9 * (32 * 32 + 64 * 64 + 128 * 128)),  # and the six residual convs
])
def test_binary_weight_bits(name, bits):
    assert registry.count_binary_weight_bits(registry.create_model(name)) == bits


def test_output_shape_and_alias():
    assert registry.get_spec("blinknet").name == "blinknet-hybrid"
    model = registry.create_model("blinknet-hybrid").eval()
    assert model(_pixels(2)).shape == (2, 10)


# --- number formats ------------------------------------------------------------------------


def _codes(qt) -> torch.Tensor:
    return (qt.value / qt.scale).detach()


@pytest.mark.parametrize("residual_bits, act_bits, fc_bits", [(4, 4, 4), (3, 5, 2)])
def test_binary_layers_are_binary_and_kbit_layers_kbit(residual_bits, act_bits, fc_bits):
    cfg = dataclasses.replace(SMALL, residual_bits=residual_bits, act_bits=act_bits, fc_bits=fc_bits)
    model = _calibrated(cfg)
    for stage in model.stages():
        w = stage.conv.quant_weight()
        assert float(w.scale) == 1.0 and set(w.value.unique().tolist()) <= {-1.0, 1.0}
        for conv in (stage.conv_a, stage.conv_b):
            w = conv.quant_weight()
            codes = _codes(w)
            assert int(w.bit_width) == residual_bits and _is_pow2(float(w.scale.detach()))
            assert torch.equal(codes, codes.round()) and codes.abs().max() <= 2 ** (residual_bits - 1) - 1
    fc = model.body[-1].fc.quant_weight()
    assert int(fc.bit_width) == fc_bits and _is_pow2(float(fc.scale.detach()))
    assert _codes(fc).abs().max() <= 2 ** (fc_bits - 1) - 1
    # Every ReLU output is an integer code 0 .. 2^k - 1 times a power-of-two scale.
    seen = {}
    hooks = [m.register_forward_hook(lambda mod, i, o, n=n: seen.setdefault(n, []).append((mod, o)))
             for n, m in model.named_modules() if n.endswith("act") or n.endswith("act_a")]
    with torch.no_grad():
        model(_pixels(4))
    for h in hooks:
        h.remove()
    assert len(seen) == 6
    for outs in seen.values():
        for mod, out in outs:
            scale = float(mod.act_quant.scale())
            codes = out / scale
            assert _is_pow2(scale) and torch.equal(codes, codes.round())
            assert codes.min() >= 0 and codes.max() <= 2 ** act_bits - 1


def test_residual_add_inputs_come_from_one_quantizer():
    stage = _calibrated(SMALL).stages()[1]
    calls = []
    hook = stage.act.register_forward_hook(lambda m, i, o: calls.append(o))
    with torch.no_grad():
        x = torch.rand(1, 8, 32, 32) * 20
        out = stage(x)
    hook.remove()
    assert len(calls) == 2  # the pre-activation output and the residual branch
    assert torch.equal(out, calls[0] + calls[1])


def test_accelerator_output_is_the_integer_accumulator():
    from bnn2fpga.quantize.postprocess import apply_head

    model = _calibrated(SMALL)
    x = _pixels(3)
    with torch.no_grad():
        acc, logits = model.body(x), model(x)
    assert torch.equal(acc, acc.round()) and acc.abs().max() > 0
    head = model.head.affine()
    assert len(set(head["scale"])) == 1 and _is_pow2(head["scale"][0])
    np.testing.assert_allclose(apply_head(acc.numpy(), head), logits.numpy(), rtol=1e-6, atol=1e-6)


def test_untrained_calibration_gives_busy_activations():
    """Calibrated random weights must exercise the quantizers, or a build would prove little."""
    model = _calibrated(SMALL)
    fractions = []
    hooks = [m.register_forward_hook(lambda mod, i, o: fractions.append(
        (float((o > 0).float().mean()), float((o / mod.act_quant.scale() == 2 ** 4 - 1).float().mean()))))
        for n, m in model.named_modules() if n.endswith("act") or n.endswith("act_a")]
    with torch.no_grad():
        out = model.body(_pixels(4, seed=5))
    for h in hooks:
        h.remove()
    for nonzero, saturated in fractions:
        assert 0.05 < nonzero and saturated < 0.5
    assert len({tuple(r.tolist()) for r in out}) == 4  # different inputs, different outputs


def test_folded_normalization_equals_normalizing_the_zero_padded_image():
    model = BlinkNet(dataclasses.replace(FP, widths=(8, 16, 32))).eval()
    stage = model.stages()[0]
    x = _pixels(2)
    with torch.no_grad():
        folded = stage.standardize(stage.conv(x)) + stage.conv_bias.view(1, -1, 1, 1)
        # Normalize(0.5, 0.5) of x / 255, with the raw image's zero padding (-1 normalized).
        normed = F.pad((x / 255 - 0.5) / 0.5, (1, 1, 1, 1), value=-1.0)
        direct = F.conv2d(normed, stage.conv.weight, stage.conv_bias)
    torch.testing.assert_close(folded, direct, rtol=1e-4, atol=1e-4)


# --- training behaviour ------------------------------------------------------------------


def _one_step(model):
    from bnn2fpga.quantize.recipes import make_loss
    from bnn2fpga.quantize.train import train_step

    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    train_step(model.train(), opt, make_loss("cross_entropy"), _pixels(8), torch.arange(8) % 10)


def test_sign_weights_train_through_the_ste_and_stay_clipped():
    model = BlinkNet(SMALL)
    before = [m.weight.detach().clone() for m in model.sign_layers()]
    _one_step(model)
    for layer, w0 in zip(model.sign_layers(), before):
        assert not torch.equal(layer.weight, w0)
        assert layer.weight.abs().max() <= 1.0


def test_frozen_sign_flag_reproduces_the_released_code():
    model = BlinkNet(dataclasses.replace(SMALL, frozen_sign=True))
    before = [m.weight.detach().clone() for m in model.sign_layers()]
    bias = model.stages()[1].conv.bias.detach().clone()
    _one_step(model)
    assert all(torch.equal(m.weight, w0) for m, w0 in zip(model.sign_layers(), before))
    assert not torch.equal(model.stages()[1].conv.bias, bias)  # everything else still learns


def test_recipe_is_the_papers():
    from bnn2fpga.quantize.recipes import get_recipe

    specs = [registry.get_spec(n) for n in ("blinknet-fp", "blinknet-hybrid", "blinknet-binary")]
    assert {s.recipe for s in specs} == {"blinknet-cifar10"} and {s.dataset for s in specs} == {"cifar10"}
    r = get_recipe("blinknet-cifar10")
    assert (r.optimizer, r.lr, r.lr_final, r.batch_size, r.epochs, r.loss) == (
        "adam", 7.78e-5, None, 128, 50, "cross_entropy")
    assert r.augment == {"hflip": 0.5, "crop": 4, "rotation": 15}
    assert (HYBRID.pixel_mean, HYBRID.pixel_std) == (127.5, 127.5)  # Normalize(0.5, 0.5) on x / 255
    assert (HYBRID.dropout, BINARY.dropout, FP.dropout) == (0.45, 0.45, 0.5)  # authors' code


def test_flip_and_crop_augmentation():
    from bnn2fpga.quantize.train import augment

    x = _pixels(6)
    flipped = augment(x, hflip=1.0)
    assert torch.equal(flipped, x.flip(3))
    gen = torch.Generator().manual_seed(1)
    cropped = augment(x, crop=4, generator=gen)
    padded = F.pad(x, (4, 4, 4, 4))
    for img, src in zip(cropped, padded):
        # Each crop is a 32x32 window of the zero-padded image at some offset 0..8.
        assert any(torch.equal(img, src[:, dy:dy + 32, dx:dx + 32]) for dy in range(9) for dx in range(9))


# --- FINN ----------------------------------------------------------------------------------


def test_float_variant_is_refused_by_the_build():
    from bnn2fpga.flows.config import make_config
    from bnn2fpga.errors import UserError

    with pytest.raises(UserError, match="blinknet-hybrid") as err:
        make_config(model="blinknet-fp", board="pynq-z2")
    assert "\n" not in str(err.value) and "float" in str(err.value)


def test_join_adds_finds_residual_adds_only():
    from onnx import TensorProto, helper
    from qonnx.core.modelwrapper import ModelWrapper

    from bnn2fpga.flows.transforms.streamline_residual import join_adds

    t = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4]) for n in ("x", "y", "z")]
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "b"], ["y"], name="bias"), helper.make_node("Add", ["y", "x"], ["z"], name="res")],
        "g", [t[0]], [t[2]], [helper.make_tensor("b", TensorProto.FLOAT, [1, 4], [0.5] * 4)], value_info=[t[1]],
    )
    model = ModelWrapper(helper.make_model(graph))
    assert [n.name for n in join_adds(model)] == ["res"]


@pytest.fixture(scope="module")
def small_build(tmp_path_factory):
    """The narrow hybrid network exported and built for pynq-z2 up to the estimate."""
    from bnn2fpga.flows.config import make_config
    from bnn2fpga.flows.runner import run_build
    from bnn2fpga.quantize.export import export_qonnx

    out = tmp_path_factory.mktemp("blinknet")
    model = _calibrated(SMALL)
    spec = dataclasses.replace(registry.get_spec("blinknet-hybrid"), factory=lambda: BlinkNet(SMALL))
    exported = export_qonnx(model, spec, out / "blinknet.onnx", {"trained": False})
    # A fixed FPS target folds once instead of searching (the search is tested with CBCNN).
    cfg = make_config(onnx=exported.onnx, board="pynq-z2", fps=300, out_dir=out / "build", until="estimate")
    return model, exported, run_build(cfg, log=lambda m: None)


def test_hybrid_build_is_bit_exact_at_every_stage(small_build):
    from bnn2fpga.flows.verify import make_inputs, verify_build

    model, _, result = small_build
    inputs = make_inputs((3, 32, 32), 2, result.info.get("input_quant"), real=None, seed=3)
    with torch.no_grad():
        ref = np.stack([model.body(torch.from_numpy(inputs.x[i:i + 1])).numpy() for i in range(len(inputs.x))])
    verdict = verify_build(result, inputs, ref, log=lambda m: None, workers=1)
    by_name = {s.name: s for s in verdict.stages}
    for stage in ("qonnx", "finn-onnx", "tidy", "streamlined", "hw layers", "dataflow partition",
                  "specialized", "folded"):
        assert by_name[stage].status == "bit-exact", by_name[stage]
    assert verdict.verdict == "bit-exact"


def test_residual_blocks_and_classifier_are_inside_the_accelerator(small_build):
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper

    from bnn2fpga.flows.runner import model_file

    _, _, result = small_build
    hw = ModelWrapper(str(model_file(result.out_dir, "convert_to_hw")))
    ops = [n.op_type for n in hw.graph.node]
    assert ops.count("DuplicateStreams") == 3 and ops.count("ElementwiseAdd") == 3
    assert ops.count("MVAU") == 10 and ops[-1] == "MVAU"  # 9 convs and the classifier, last
    for add in hw.get_nodes_by_op_type("ElementwiseAdd"):
        # Two 4-bit codes of one scale: the sum is 5 bits, and so is what the next layer reads.
        assert [hw.get_tensor_datatype(t) for t in add.input] == [DataType["UINT4"]] * 2
        assert hw.get_tensor_datatype(add.output[0]) == DataType["UINT5"]
    assert result.info["host_post"] == []  # no float op after the classifier
    assert result.info["host_pre_graph"] == ["Transpose"]  # NCHW -> NHWC of the input, as for CBCNN
    assert result.info["host_pre"] == ["Quant (UINT8, scale 1, ROUND)", "Transpose"]  # the hoisted input quantizer


def test_estimate_and_sidecar(small_build):
    _, exported, result = small_build
    perf = json.loads((result.out_dir / "report" / "estimate_network_performance.json").read_text())
    assert perf["estimated_throughput_fps"] >= 300
    head = json.loads(exported.sidecar.read_text())["head"]
    assert len(head["bias"]) == 10 and _is_pow2(head["scale"][0])


def test_small_build_has_every_layer_in_rtl(small_build):
    """No HLS layer by default: the bitstream needs Vivado alone (pools, forks, joins and adds are ours)."""
    from build_checks import hls_layers

    _, _, result = small_build
    assert hls_layers(result.out_dir) == []

"""PresB-Net: architecture and parameter counts, binarization, training stages, and the deployable
build through FINN (channel shuffle, grouped convs as split/concat, half-channel adds, floor
average pool, global accumulating pool), bit-exact at every Vivado-free stage."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn as nn

from bnn2fpga.quantize.models import presb_net
from bnn2fpga.quantize.models.presb_net import BinConv, PresBConfig, PresBNet, block_plan, channel_shuffle
from bnn2fpga.quantize.preprocess import Preprocessing
from bnn2fpga.quantize.recipes import get_recipe
from bnn2fpga.quantize.registry import (
    ModelSpec,
    count_binary_weight_bits,
    count_brevitas_binary_bits,
    count_trainable,
    get_spec,
)

# One basic and one expand block on 16x16: every kind of join the full network has.
TINY = PresBConfig(in_shape=(3, 16, 16), num_classes=10, widths=(8, 16), blocks=(1, 1), deploy=True)


# Small tensors: one torch thread is faster, and much faster when the CPUs are shared.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _binary_weights(cfg: PresBConfig) -> int:
    """1-bit weights from the paper's block description: two groups per grouped conv, 1x1 expand shortcut."""
    total = 0
    for cin, cout in block_plan(cfg):
        mid = cin if cout != cin else cin // 2  # first grouped conv's output channels
        total += 2 * (cin // 2) * (mid // 2) * 9 + 2 * (cout // 2) * (cout // 4) * 9
        if cout != cin:
            total += cin * cout
    return total


def _faithful_params(cfg: PresBConfig) -> int:
    """Trainable parameters of the faithful model, counted layer by layer."""
    w0 = cfg.widths[0]
    total = 3 * w0 * 9 + 2 * w0  # stem conv + BN
    for cin, cout in block_plan(cfg):
        mid = cin if cout != cin else cin // 2
        # sign bias; per group: bias, PReLU, LN (2), bias, PReLU, BN (2) = 8 per channel
        total += cin + 8 * mid + cout + 8 * (cout // 2)
        total += 2 * 3 * cout  # two RPReLUs over the block width (shift in, slope, shift out)
        if cout != cin:
            total += cin + 2 * cout  # shortcut sign bias and BN
        total += 2 * cout  # output BN
    return total + _binary_weights(cfg) + cfg.widths[-1] * cfg.num_classes + cfg.num_classes


@pytest.mark.parametrize("name, blocks", [("presb-net-10", (1, 1, 1, 1)), ("presb-net-18", (2, 2, 2, 2)),
                                          ("presb-net-34", (3, 4, 6, 3))])
def test_faithful_variants_match_the_paper(name, blocks):
    spec = get_spec(name)
    model = spec.factory()
    assert model.cfg.blocks == blocks and model.cfg.widths == (128, 256, 512, 1024)
    assert spec.num_classes == 100 and spec.dataset == "cifar100" and not spec.deployable
    assert spec.deployable_variant == "presb-net-18-lite"
    assert count_trainable(model) == _faithful_params(model.cfg)
    assert count_binary_weight_bits(model) == _binary_weights(model.cfg)
    deploy = PresBNet(PresBConfig(blocks=blocks, deploy=True))
    assert count_brevitas_binary_bits(deploy) == _binary_weights(model.cfg)  # its 1-bit Brevitas layers
    assert any(isinstance(m, nn.GroupNorm) for m in model.modules())


def test_presb18_binary_weights_do_not_fit_a_pynq_z2():
    # MODELS.md: 11.7 Mbit of binary weights against 4.9 Mbit of BRAM on the xc7z020.
    bits = _binary_weights(get_spec("presb-net-18").factory().cfg)
    assert 11.6e6 < bits < 11.8e6
    lite = get_spec("presb-net-18-lite").factory()
    assert _binary_weights(lite.cfg) < 4.9e6 / 4  # room left for thresholds and FIFOs
    assert not any(isinstance(m, nn.GroupNorm) for m in lite.modules())  # BN replaces LN


def test_channel_shuffle_interleaves_the_two_halves():
    x = torch.arange(8.0).view(1, 8, 1, 1)
    assert channel_shuffle(x).flatten().tolist() == [0, 4, 1, 5, 2, 6, 3, 7]


def test_binary_conv_is_alpha_times_sign_and_stage_real_uses_real_weights():
    torch.manual_seed(0)
    conv = BinConv(4, 3, 3, 1, deploy=False)
    a = torch.randn(1, 4, 5, 5)
    w = conv.conv.weight
    alpha = w.abs().mean(dim=(1, 2, 3)).view(1, -1, 1, 1)
    want = torch.nn.functional.conv2d(a, torch.where(w >= 0, 1.0, -1.0), padding=1) * alpha
    assert torch.allclose(conv(a), want, atol=1e-6)
    conv.binary = False
    assert torch.allclose(conv(a), torch.nn.functional.conv2d(a, w, padding=1), atol=1e-6)


def test_training_stages_switch_signs_and_weights():
    torch.manual_seed(0)
    model = PresBNet(PresBConfig(widths=(8, 16), blocks=(1, 1), num_classes=10))
    model.eval()
    x = torch.randint(0, 256, (2, 3, 32, 32)).float()
    binary = model(x)
    model.set_training_stage("real")
    assert not any(m.binary for m in model.binary_convs())
    assert not torch.allclose(model(x), binary)
    model.set_training_stage("binary")
    assert torch.allclose(model(x), binary)
    with pytest.raises(ValueError, match="unknown training stage"):
        model.set_training_stage("ternary")


def test_sign_gradient_is_the_papers_estimator():
    x = torch.tensor([-2.0, -0.5, 0.0, 0.5, 2.0], requires_grad=True)
    sign = presb_net.Sign(5, deploy=False)
    y = sign(x.view(1, 5, 1, 1))
    assert y.flatten().tolist() == [-1, -1, 1, 1, 1]
    y.sum().backward()
    assert x.grad.tolist() == pytest.approx([0.01, 1, 1, 1, 0.01])


def test_recipe_is_two_stage_with_label_smoothing():
    r = get_recipe("presb-net")
    assert r.stage_names() == ("real", "binary")
    assert r.for_stage("real").weight_decay == 1e-5 and r.for_stage("binary").weight_decay == 0.0
    assert r.label_smoothing == 0.1 and r.lr_schedule == "linear" and r.lr == 5e-4 and r.batch_size == 256
    model = PresBNet(TINY)
    groups = model.param_groups(r.for_stage("real"))
    conv = {id(p) for p in groups[0]["params"]}
    assert conv == {id(m.weight) for m in model.modules() if isinstance(m, nn.Conv2d)}
    assert groups[1]["weight_decay"] == 0.0


def test_constrain_keeps_every_threshold_chain_monotone():
    model = PresBNet(TINY)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.PReLU, nn.BatchNorm2d)):
                m.weight.fill_(-0.5)
    model.constrain()
    assert all((m.weight >= 0).all() for m in model.modules() if isinstance(m, (nn.PReLU, nn.BatchNorm2d)))


# ------------------------------------------------------------------------- through FINN


def _randomize_like_trained(model: PresBNet, seed: int) -> None:
    """Trained-looking parameters: positive BN gammas, PReLU slopes in [0, 0.6], biases of both signs."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") and p.dim() == 1 and "bn" not in name and "norm" not in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(0.5 + torch.rand(m.num_features, generator=gen))
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.3)
            elif isinstance(m, nn.PReLU):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) * 0.6)


@pytest.fixture(scope="module")
def tiny_build(tmp_path_factory):
    """The tiny deployable PresB-Net exported and built up to the estimate."""
    from bnn2fpga.flows.config import make_config
    from bnn2fpga.flows.runner import run_build
    from bnn2fpga.quantize.export import calibrate_untrained, export_qonnx

    spec = ModelSpec(
        name="presb-tiny", factory=lambda: PresBNet(TINY), input_shape=TINY.in_shape, input_dtype="UINT8",
        class_names=tuple(str(i) for i in range(10)), dataset="cifar10", recipe="presb-net",
        preprocessing=Preprocessing(size=(16, 16), luma=False, equalize=False), description="tiny PresB-Net",
    )
    torch.manual_seed(5)
    model = PresBNet(TINY)
    _randomize_like_trained(model, seed=5)
    calibrate_untrained(model, spec, seed=5)
    tmp = tmp_path_factory.mktemp("presb_build")
    exported = export_qonnx(model, spec, tmp / "presb.onnx")
    cfg = make_config(onnx=exported.onnx, board="pynq-z2", out_dir=tmp / "build", until="estimate", fps=200)
    return model, run_build(cfg, log=lambda m: None)


def test_tiny_build_maps_every_join_to_dataflow(tiny_build):
    from qonnx.core.modelwrapper import ModelWrapper

    from bnn2fpga.flows.runner import model_file

    _, result = tiny_build
    hw = ModelWrapper(str(model_file(result.out_dir, "convert_to_hw")))
    assert hw.graph.node[0].op_type == "Transpose"  # NCHW -> NHWC of the input, on the host
    ops = {n.op_type for n in hw.graph.node[1:]}
    assert {"ChannelPermute", "StreamingSplit", "StreamingConcat", "ElementwiseAdd", "DuplicateStreams",
            "Pool", "GlobalAccPool", "MVAU", "Thresholding"} <= ops
    assert not ops & {"PRelu", "Mul", "Add", "MultiThreshold", "Transpose", "Reshape", "BatchNormalization"}
    assert result.info["fit"] and result.info["fit_message"] == ""


def test_tiny_build_is_bit_exact_at_every_stage(tiny_build):
    from bnn2fpga.flows.verify import make_inputs, verify_build

    model, result = tiny_build
    inputs = make_inputs(TINY.in_shape, 3, result.info.get("input_quant"), real=None, seed=6)
    body = model.body.eval()
    with torch.no_grad():
        ref = np.stack([body(torch.from_numpy(inputs.x[i:i + 1])).numpy() for i in range(len(inputs.x))])
    verdict = verify_build(result, inputs, ref, log=lambda m: None, workers=1)
    stages = {s.name: s for s in verdict.stages}
    for name in ("qonnx", "finn-onnx", "tidy", "streamlined", "hw layers", "dataflow partition",
                 "specialized", "folded"):
        assert stages[name].status == "bit-exact", (name, stages[name].detail)
    from bnn2fpga.hw.sim import verilator

    rtl = stages["rtlsim (Verilator)"]
    if verilator.missing_tools():
        assert rtl.status == "not run"
        return
    # our RTL for every node, splits and concats stitched as a DAG, under Verilator
    assert rtl.status == "bit-exact", rtl.detail
    measured, estimate = (float(v.replace(",", "")) for v in
                          re.search(r"([\d,]+) cycles/frame measured \(FINN estimate ([\d,]+)\)", rtl.detail).groups())
    # (at high foldings the joins' FIFOs and pipelines cost a few percent: 535 against 512)
    assert measured <= 1.05 * estimate, rtl.detail


# ------------------------------------------------------------------------- training


def _write_cifar100(root, n: int = 48) -> None:
    """A CIFAR-100 folder in the official python-pickle layout (random pixels, all 100 labels possible)."""
    import pickle

    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)

    def dump(name, rows, labels):
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": rows, b"fine_labels": labels, b"coarse_labels": [0] * len(labels)}, f)

    dump("train", rng.integers(0, 256, (n, 3072), dtype=np.uint8), [int(v) for v in rng.integers(0, 100, n)])
    dump("test", rng.integers(0, 256, (8, 3072), dtype=np.uint8), [int(v) for v in rng.integers(0, 100, 8)])
    with open(folder / "meta", "wb") as f:
        pickle.dump({b"fine_label_names": [n.encode() for n in presb_net.CIFAR100_CLASS_NAMES],
                     b"coarse_label_names": [b"x"] * 20}, f)


def test_lite_trains_in_two_stages_on_cifar100_and_exports_binary(tmp_path):
    from bnn2fpga.quantize.export import export_model
    from bnn2fpga.quantize.train import TrainConfig, load_checkpoint, train

    _write_cifar100(tmp_path / "data")
    lines = []
    result = train(TrainConfig(model="presb-net-18-lite", data_root=tmp_path / "data", out_dir=tmp_path / "run",
                               epochs=1, batch_size=16, progress=False), log=lines.append)
    assert result.stage == "binary"
    assert (tmp_path / "run" / "best-real.pt").exists() and (tmp_path / "run" / "best-binary.pt").exists()
    model, meta = load_checkpoint(result.checkpoint)
    assert meta["stage"] == "binary" and all(c.binary for c in model.binary_convs())
    # The deployable constraints held through training: every chain stays monotone.
    assert all((m.weight >= 0).all() for m in model.modules() if isinstance(m, (nn.PReLU, nn.BatchNorm2d)))
    exported = export_model("presb-net-18-lite", tmp_path / "lite.onnx", result.checkpoint)
    import onnx

    ops = {n.op_type for n in onnx.load(str(exported.onnx)).graph.node}
    assert {"BipolarQuant", "Split", "Concat", "Trunc"} <= ops


def test_tiny_build_has_every_layer_in_rtl(tiny_build):
    """No HLS layer by default: the bitstream needs Vivado alone (pools, forks, joins and adds are ours)."""
    from build_checks import hls_layers

    _, result = tiny_build
    assert hls_layers(result.out_dir) == []

"""Tests for the CBCNN zoo models, the registry and the shared BNN building blocks.

Expected numbers come from the CBCNN paper / MODELS.md or are computed by hand here.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from bnn2fpga.quantize import layers, registry
from bnn2fpga.quantize.models.cbcnn import CBCNN, ConvBlock


# Small tensors: one torch thread is faster, and much faster when the CPUs are shared.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _bns(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _randomize_bns(model: nn.Module, gen: torch.Generator, positive_gamma: bool = True) -> None:
    """Data-like BN statistics (scaled to each layer's fan-in) with random affine params."""
    with torch.no_grad():
        for bn in _bns(model):
            n = bn.num_features
            spread = 3.0 if bn is model.conv_blocks()[0].bn else 15.0
            bn.running_mean.copy_((torch.rand(n, generator=gen) * 2 - 1) * spread)
            bn.running_var.copy_(torch.rand(n, generator=gen) * spread**2 + 0.5)
            bn.bias.copy_(torch.rand(n, generator=gen) * 2 - 1)
            gamma = torch.rand(n, generator=gen) * 1.9 + 0.1  # uniform 0.1 .. 2
            bn.weight.copy_(gamma if positive_gamma else gamma * torch.where(torch.rand(n, generator=gen) < 0.5, -1, 1))


def _pixels(n: int, shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, *shape), generator=gen).float()


@pytest.fixture(scope="module")
def mnist_model() -> CBCNN:
    torch.manual_seed(0)
    return registry.create_model("cbcnn-mnist").eval()


# --- registry -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, expected",
    [("cbcnn-gtsrb", 587_222), ("cbcnn-mnist", 480_404), ("cbcnn-dcr", 832_726)],
)
def test_trainable_parameters_match_the_paper(name, expected):
    assert registry.count_trainable(registry.create_model(name)) == expected


def test_gtsrb_binary_weight_bits():
    # 1*128*9 + 3*128*128*9 + 512*256 + 256*43 (MODELS.md: 585,600)
    assert registry.count_binary_weight_bits(registry.create_model("cbcnn-gtsrb")) == 585_600


def test_binary_weight_bits_exclude_bn_parameters():
    # mnist: 1*128*9 + 3*128*128*9 + 128*256 + 256*10, all trainable params but the BNs.
    model = registry.create_model("cbcnn-mnist")
    assert registry.count_binary_weight_bits(model) == 1152 + 3 * 147_456 + 32_768 + 2_560
    bn_params = 2 * (4 * 128 + 256 + 10)
    assert registry.count_trainable(model) - registry.count_binary_weight_bits(model) == bn_params


def test_alias_resolves_to_gtsrb():
    spec = registry.get_spec("cbcnn")
    assert spec.name == "cbcnn-gtsrb"
    assert spec.num_classes == 43
    model = registry.create_model("cbcnn")
    assert model.cfg.in_shape == (1, 32, 32)
    assert model.cfg.num_classes == 43


def test_unknown_model_lists_valid_names():
    with pytest.raises(registry.UnknownModelError) as err:
        registry.create_model("cbcnn-imagenet")
    msg = str(err.value)
    assert "cbcnn-imagenet" in msg
    for name in ("cbcnn-gtsrb", "cbcnn-mnist", "cbcnn-dcr", "cbcnn"):
        assert name in msg
    assert isinstance(err.value, KeyError)  # still catchable as a failed lookup


# --- shapes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, shape, classes", [("cbcnn-gtsrb", (1, 32, 32), 43), ("cbcnn-mnist", (1, 28, 28), 10)]
)
def test_output_shape(name, shape, classes):
    model = registry.create_model(name).eval()
    with torch.no_grad():
        out = model(_pixels(3, shape))
    assert out.shape == (3, classes)
    assert torch.isfinite(out).all()


def test_input_too_small_for_the_pooling_blocks():
    from bnn2fpga.quantize.models.cbcnn import CBCNNConfig

    with pytest.raises(ValueError, match="too small"):
        CBCNN(CBCNNConfig(in_shape=(1, 8, 8), num_classes=10))  # 8 -> 4 -> 2 -> 1 -> 0


# --- deploy order ---------------------------------------------------------------------------


@pytest.mark.parametrize("name, shape", [("cbcnn-gtsrb", (1, 32, 32)), ("cbcnn-mnist", (1, 28, 28))])
def test_deploy_order_equals_paper_order(name, shape):
    torch.manual_seed(1)
    model = registry.create_model(name)
    _randomize_bns(model, torch.Generator().manual_seed(2))
    model.eval()
    x = _pixels(8, shape, seed=3)
    acts = []
    hook = model.conv_blocks()[1].act.register_forward_hook(lambda m, i, o: acts.append(o))
    with torch.no_grad():
        paper = model(x)
        model.set_deploy_order(True)
        assert all(b.deploy_order for b in model.conv_blocks())
        deploy = model(x)
    hook.remove()
    # not vacuous: the binary maps carry both signs
    assert (acts[0] == 1).any() and (acts[0] == -1).any()
    assert torch.equal(paper, deploy)
    assert torch.equal(paper.argmax(1), deploy.argmax(1))


def test_deploy_order_refuses_negative_gamma():
    model = registry.create_model("cbcnn-mnist")
    with torch.no_grad():
        model.conv_blocks()[2].bn.weight[5] = -0.3
    with pytest.raises(ValueError, match="not positive"):
        model.set_deploy_order(True)
    assert not any(b.deploy_order for b in model.conv_blocks())
    model.set_deploy_order(False)  # switching back needs no check


def test_deploy_order_refuses_zero_gamma():
    model = registry.create_model("cbcnn-mnist")
    with torch.no_grad():
        model.conv_blocks()[0].bn.weight[0] = 0.0
    with pytest.raises(ValueError):
        model.set_deploy_order(True)


def test_negative_gamma_breaks_the_equivalence():
    """With a negative BN scale the two orders really differ, so the check is needed."""
    torch.manual_seed(1)
    model = registry.create_model("cbcnn-mnist")
    _randomize_bns(model, torch.Generator().manual_seed(2), positive_gamma=False)
    assert any((b.bn.weight < 0).any() for b in model.conv_blocks())
    model.eval()
    x = _pixels(8, (1, 28, 28), seed=3)
    with torch.no_grad():
        paper = model(x)
        for b in model.conv_blocks():  # bypass the guard on purpose
            b.deploy_order = True
        deploy = model(x)
    assert not torch.equal(paper, deploy)


# --- folded standardization -------------------------------------------------------------------


def test_folded_standardize_equals_standardizing_the_image():
    torch.manual_seed(0)
    block = registry.create_model("cbcnn-mnist").eval().conv_blocks()[0]
    conv = block.conv
    mean, std = 33.3, 78.6  # zoo's MNIST standardization
    assert (block.standardize.mean, block.standardize.std) == (mean, std)
    with torch.no_grad():
        conv.weight[0, 0, 0, 0] = 0.0  # exercise the 0 -> +1 convention
        x = _pixels(4, (1, 28, 28), seed=7)
        got = block.standardize(block.conv(x))

        w = conv.weight.detach().double()
        w_bin = torch.where(w >= 0, 1.0, -1.0).double()
        assert torch.equal(conv.quant_weight().value.double(), w_bin)
        assert w_bin[0, 0, 0, 0] == 1.0
        x_std = (x.double() - mean) / std
        x_pad = F.pad(x_std, (1, 1, 1, 1), value=(0.0 - mean) / std)
        ref = F.conv2d(x_pad, w_bin)
    assert got.shape == ref.shape == (4, 128, 28, 28)
    assert torch.allclose(got.double(), ref, rtol=1e-6, atol=2e-5)
    # the border differs from a plain zero-padded standardized image: padding matters
    ref_zero = F.conv2d(F.pad(x_std, (1, 1, 1, 1), value=0.0), w_bin)
    assert not torch.allclose(got.double(), ref_zero, atol=1e-3)


def test_folded_standardize_follows_weight_updates():
    """The weight sum is refreshed from the current binary weights on every call."""
    torch.manual_seed(0)
    model = registry.create_model("cbcnn-mnist").eval()
    block = model.conv_blocks()[0]
    x = _pixels(2, (1, 28, 28), seed=8)
    with torch.no_grad():
        block.conv.weight.neg_()  # flips every binary weight
        got = block.standardize(block.conv(x))
        w_bin = torch.where(block.conv.weight >= 0, 1.0, -1.0).double()
        ref = F.conv2d(F.pad((x.double() - 33.3) / 78.6, (1,) * 4, value=-33.3 / 78.6), w_bin)
    assert torch.allclose(got.double(), ref, rtol=1e-6, atol=2e-5)


# --- training-time constraints ----------------------------------------------------------------


def test_constrain_clips_weights_and_keeps_gammas_positive():
    model = registry.create_model("cbcnn-gtsrb")
    binary = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(binary) == 6
    with torch.no_grad():
        for m in binary:
            m.weight.view(-1)[:5] = 3.0
            m.weight.view(-1)[5:8] = -2.5
        model.conv_blocks()[0].bn.weight[3] = -0.5
        model.conv_blocks()[3].bn.weight[0] = 0.0
        before = binary[1].weight.view(-1)[8:100].clone()
    model.constrain()
    for m in binary:
        assert m.weight.min() >= -1.0 and m.weight.max() <= 1.0
        assert torch.equal(m.weight.view(-1)[:5], torch.ones(5))  # clipped, not rescaled
        assert torch.equal(m.weight.view(-1)[5:8], -torch.ones(3))
    assert torch.equal(binary[1].weight.view(-1)[8:100], before)  # in-range weights untouched
    for b in model.conv_blocks():
        assert (b.bn.weight > 0).all()
    model.set_deploy_order(True)  # now allowed


# --- binary activations and padding -----------------------------------------------------------


def test_block_activations_are_bipolar(mnist_model):
    outs = []
    acts = [b.act for b in mnist_model.conv_blocks()]
    acts.append(mnist_model.body[-2])
    assert all(isinstance(a, nn.Module) for a in acts)
    hooks = [a.register_forward_hook(lambda m, i, o: outs.append(o)) for a in acts]
    try:
        with torch.no_grad():
            mnist_model(_pixels(4, (1, 28, 28), seed=9))
    finally:
        for h in hooks:
            h.remove()
    assert len(outs) == 5
    for o in outs:
        assert set(torch.unique(o).tolist()) <= {-1.0, 1.0}
    assert any((o == -1).any() for o in outs) and any((o == 1).any() for o in outs)


def test_binary_act_maps_zero_to_plus_one():
    act = layers.binary_act().eval()
    x = torch.tensor([-3.0, -0.2, 0.0, 1e-6, 0.7, 5.0])
    assert act(x).tolist() == [-1.0, -1.0, 1.0, 1.0, 1.0, 1.0]


def test_pad_binary_pads_with_minus_one():
    x = torch.ones(2, 3, 4, 5)
    y = layers.pad_binary(x, 1)
    assert y.shape == (2, 3, 6, 7)
    assert torch.equal(y[:, :, 1:-1, 1:-1], x)
    border = torch.ones_like(y, dtype=torch.bool)
    border[:, :, 1:-1, 1:-1] = False
    assert (y[border] == -1.0).all()
    assert border.sum() == 2 * 3 * (6 * 7 - 4 * 5)
    y2 = layers.pad_binary(x, 2)
    assert y2.shape == (2, 3, 8, 9)
    assert (y2[:, :, :2] == -1).all() and (y2[:, :, :, -2:] == -1).all()
    assert layers.pad_binary(x, 0) is x


def test_inner_blocks_pad_binary_maps_with_minus_one():
    """A block after the first sees -1 padding: conv of an all -1 map is uniform (-9 * sum)."""
    cfg = registry.create_model("cbcnn-mnist").cfg
    block = ConvBlock(2, 3, first=False, cfg=cfg).eval()
    x = -torch.ones(1, 2, 4, 4)
    with torch.no_grad():
        y = block.conv(layers.pad_binary(x, 1))
        w_bin = torch.where(block.conv.weight >= 0, 1.0, -1.0)
    expected = -w_bin.sum(dim=(1, 2, 3))  # every window holds only -1, borders included
    assert torch.equal(y, expected.view(1, 3, 1, 1).expand(1, 3, 4, 4))


def test_pixel_input_passes_integers_unchanged():
    q = layers.pixel_input().eval()
    x = torch.arange(256.0)
    assert torch.equal(q(x), x)
    # out of range clips to UINT8, fractions round half to even
    assert q(torch.tensor([-3.0, 300.0, 2.5, 3.5])).tolist() == [0.0, 255.0, 2.0, 4.0]


# --- straight-through estimator -------------------------------------------------------------------


def test_gradient_reaches_first_conv_latent_weights():
    torch.manual_seed(0)
    model = registry.create_model("cbcnn-mnist").train()
    x = _pixels(4, (1, 28, 28), seed=11)
    target = -torch.ones(4, 10)
    target[torch.arange(4), torch.tensor([1, 3, 5, 7])] = 1.0
    loss = torch.clamp(1 - target * model(x), min=0).pow(2).mean()  # squared hinge
    loss.backward()
    grad = model.conv_blocks()[0].conv.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    assert model.body[-1].weight.grad.abs().sum() > 0


def test_activation_ste_is_hard_tanh():
    """Paper's Algorithm 1: gradient 1 where |x| < 1, 0 elsewhere."""
    act = layers.binary_act().train()
    x = torch.tensor([-3.0, -0.9, -0.1, 0.4, 0.99, 1.5], requires_grad=True)
    act(x).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 0.0]

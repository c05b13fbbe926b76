"""PresB-Net: binarized ResNet with learnable activations and shuffled grouped convolution (seed paper 001).

Stem Conv3x3(3 -> w0) + BN, four stages of blocks at widths w0..w3 (the first block of
stages 2-4 halves the map and doubles the channels: an "expand" block), global average
pool, linear classifier. A block (C_in -> C_out) is, with ``shuffle`` the two-group
channel shuffle and ``gconv`` two binary 3x3 convolutions on the two channel halves:

    x = shuffle(r);  y = gconv(sign(x + b))               each group: +bias, PReLU, LN
    y = BN(PReLU(y + b))
    basic:  z = cat(y + x[:C/2], x[C/2:])                 expand: p = AvgPool2(x)
                                                                  z = cat(y + p, p)
    z = RPReLU(z);  x' = shuffle(z);  y' = gconv(sign(x' + b)) ... BN(PReLU(y' + b))
    w = RPReLU(cat(y' + x'[:C/2], x'[C/2:]))
    out = BN(w + r)          expand: out = BN(w + BN(BinConv1x1(sign(AvgPool2(r)))))

Binary weights are alpha_o * sign(W) with alpha_o = mean |W_o| per output channel
(detached); sign activations pass the gradient where |x| < 1 and 0.01 of it elsewhere.
Every op after a concatenation is per channel, so it is applied to each concatenated
part separately (the same numbers) and the hardware sees branch-local chains.

Two builds of one network (``PresBConfig.deploy``):

* faithful (``presb-net-10/18/34``): float activations, GroupNorm(1) ("LN") per group,
  zero padding, as the paper. Trains; not hardware.
* deployable (``presb-net-18-lite`` for a PYNQ-Z2, ``presb-net-18-deploy`` at full width
  for a ZCU104): BatchNorm in place of the per-group LN (the paper's ablation), PReLU
  slopes kept >= 0 (monotone, so they fold into thresholds), binary maps padded with -1,
  every tensor that is shuffled, sliced, concatenated or added holds k-bit integer codes
  at scale 1 (one quantizer type, so adds and concats join equal integers), average
  pools floor the mean (a shift in hardware), UINT8 input with the standardization folded
  behind the stem, the classifier's integer accumulator leaves the FPGA and the host adds
  its scale and bias.

Training is the paper's two stages: "real" (real-valued weights, no sign activations)
then "binary" from the real stage's best weights (``set_training_stage``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from brevitas.nn import QuantConv2d, QuantLinear, TruncAvgPool2d
from brevitas.quant.fixed_point import Int8WeightPerTensorFixedPoint
from brevitas.quant.scaled_int import TruncTo8bit
from brevitas.quant_tensor import QuantTensor

from bnn2fpga.quantize import layers
from bnn2fpga.quantize.models.dra_bnn import residual_quant
from bnn2fpga.quantize.preprocess import Preprocessing
from bnn2fpga.quantize.recipes import Recipe, TrainingStage, register_recipe
from bnn2fpga.quantize.registry import ModelSpec, register

# CIFAR-100's fine labels in label order (the dataset's meta file).
CIFAR100_CLASS_NAMES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle",
    "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar",
    "cattle", "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile",
    "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster",
    "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster",
    "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom", "oak_tree", "orange",
    "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree", "plain", "plate", "poppy",
    "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea", "seal",
    "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar",
    "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor",
    "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman",
    "worm",
)
# CIFAR-100 training-set statistics in 0..255 pixel units.
CIFAR100_MEAN = (129.3, 124.1, 112.4)
CIFAR100_STD = (68.2, 65.4, 70.4)
PRELU_INIT = 0.25
TIE_JITTER = 0.01  # see Bias
STAGES = ("real", "binary")


@dataclass(frozen=True)
class PresBConfig:
    """Shape and number formats of a PresB-Net."""

    in_shape: tuple[int, int, int] = (3, 32, 32)
    num_classes: int = 100
    widths: tuple[int, ...] = (128, 256, 512, 1024)
    blocks: tuple[int, ...] = (2, 2, 2, 2)
    deploy: bool = False
    stream_bits: int = 4  # deployable: bits of every shuffled / added / concatenated tensor
    stem_weight_bits: int = 8
    fc_weight_bits: int = 8

    def __post_init__(self) -> None:
        if len(self.widths) != len(self.blocks) or min(self.blocks, default=0) < 1:
            raise ValueError(f"widths {self.widths} and blocks {self.blocks} must pair up, >= 1 block each")
        for a, b in zip(self.widths, self.widths[1:]):
            if b != 2 * a:
                raise ValueError(f"each stage doubles the width (expand block), got {self.widths}")
        if self.widths[0] % 4:
            raise ValueError(f"widths must be multiples of 4 (two groups of half channels), got {self.widths}")
        if self.stream_bits < 2:
            raise ValueError("stream_bits must be >= 2")


# --- binarization --------------------------------------------------------------------


class _SignSTE(torch.autograd.Function):
    """sign(x) (0 -> +1); gradient 1 where |x| < 1 and 0.01 elsewhere (the paper's estimator)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad * torch.where(x.abs() < 1, 1.0, 0.01).to(grad.dtype)


class _SignWeight(torch.autograd.Function):
    """sign(W) with the gradient passed straight through."""

    @staticmethod
    def forward(ctx, w: torch.Tensor) -> torch.Tensor:
        return torch.where(w >= 0, 1.0, -1.0).to(w.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad


def _exporting() -> bool:
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()


class Sign(nn.Module):
    """sign(x + b) with a learnable per-channel bias; the identity (plus bias) in the real stage."""

    def __init__(self, channels: int, deploy: bool, gain: float = 1.0):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))
        self.binary = True
        # Deployable: Brevitas' sign (exported as a BipolarQuant). ``gain`` > 0 does not
        # change a sign; it brings integer codes into the estimator's |x| < 1 window.
        self.quant = layers.binary_act() if deploy else None
        self.gain = gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.bias.view(1, -1, 1, 1)
        if not self.binary:
            return x
        if self.quant is not None:
            return self.quant(x * self.gain)
        return _SignSTE.apply(x)


class BinConv(nn.Module):
    """alpha_o * (sign(W) conv sign(x)), alpha_o = mean |W_o| (detached), bias-free.

    The deployable build keeps alpha outside the {-1, +1} convolution (a positive per
    channel factor that folds into the next thresholds) and pads with -1.
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, deploy: bool):
        super().__init__()
        self.deploy, self.stride, self.pad = deploy, stride, kernel // 2
        self.conv = (layers.binary_conv(cin, cout, kernel, stride=stride) if deploy
                     else nn.Conv2d(cin, cout, kernel, stride=stride, bias=False))
        self.binary = True
        # Refreshed from the weights except while exporting (the exported graph then
        # holds the alpha of the exported weights as a constant).
        self.register_buffer("alpha", torch.ones(cout), persistent=False)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        w = self.conv.weight
        if not self.binary:
            return F.conv2d(a, w, stride=self.stride, padding=self.pad)
        if not _exporting():
            with torch.no_grad():
                self.alpha.copy_(w.abs().mean(dim=(1, 2, 3)))
        if self.deploy:
            y = self.conv(layers.pad_binary(a, self.pad))
        else:
            y = F.conv2d(a, _SignWeight.apply(w), stride=self.stride, padding=self.pad)
        return y * self.alpha.view(1, -1, 1, 1)


class Bias(nn.Module):
    """x + b, one learnable b per channel (zero-initialised as in the paper)."""

    def __init__(self, channels: int, jitter: float = 0.0):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))
        if jitter:
            # Deployable build: integer codes through a zero bias and a PReLU of slope
            # 1/4 land exactly on rounding ties (-6 -> -1.5), where PyTorch rounds half
            # to even and FINN's thresholds round half up; a tiny random start avoids it.
            nn.init.uniform_(self.bias, -jitter, jitter)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bias.view(1, -1, 1, 1)


def prelu(channels: int) -> nn.PReLU:
    """Per-channel PReLU (channel-separable, so it applies to each concatenated part alike)."""
    return nn.PReLU(channels, init=PRELU_INIT)


class RPReLU(nn.Module):
    """ReActNet's RPReLU: PReLU(x - gamma) + zeta, per channel."""

    def __init__(self, channels: int, jitter: float = 0.0):
        super().__init__()
        self.shift_in = Bias(channels, jitter)
        self.act = prelu(channels)
        self.shift_out = Bias(channels, jitter)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shift_out(self.act(self.shift_in(x)))


def channel_shuffle(x: torch.Tensor, groups: int = 2) -> torch.Tensor:
    """ShuffleNet's channel shuffle: channel g * C/groups + j moves to j * groups + g."""
    b, c, h, w = x.shape
    return x.reshape(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class GroupBranch(nn.Module):
    """One group of a grouped binary conv and every per-channel op that follows it.

    conv -> +bias -> PReLU -> norm (LN per group, or BN) -> +bias -> PReLU -> BN [-> Q].
    """

    def __init__(self, cin: int, cout: int, stride: int, cfg: PresBConfig):
        super().__init__()
        self.conv = BinConv(cin, cout, 3, stride, cfg.deploy)
        jitter = TIE_JITTER if cfg.deploy else 0.0
        self.bias1, self.act1 = Bias(cout, jitter), prelu(cout)
        self.norm = nn.BatchNorm2d(cout) if cfg.deploy else nn.GroupNorm(1, cout)
        self.bias2, self.act2, self.bn = Bias(cout, jitter), prelu(cout), nn.BatchNorm2d(cout)
        self.q = residual_quant(cfg.stream_bits) if cfg.deploy else nn.Identity()

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.act1(self.bias1(self.conv(a))))
        return self.q(self.bn(self.act2(self.bias2(y))))


class ShuffledGroupConv(nn.Module):
    """sign(x + b) -> two-group binary conv (split, two branches, concat)."""

    def __init__(self, cin: int, cout: int, stride: int, cfg: PresBConfig):
        super().__init__()
        self.sign = Sign(cin, cfg.deploy, gain=2.0 ** -cfg.stream_bits)
        self.groups = nn.ModuleList(GroupBranch(cin // 2, cout // 2, stride, cfg) for _ in range(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a0, a1 = torch.chunk(self.sign(x), 2, dim=1)
        return torch.cat([self.groups[0](a0), self.groups[1](a1)], dim=1)


class HalfJoin(nn.Module):
    """z = RPReLU(cat(y + s0, s1)) [-> Q], applied per concatenated part."""

    def __init__(self, c0: int, c1: int, cfg: PresBConfig):
        super().__init__()
        jitter = TIE_JITTER if cfg.deploy else 0.0
        self.act0, self.act1 = RPReLU(c0, jitter), RPReLU(c1, jitter)
        self.q = residual_quant(cfg.stream_bits) if cfg.deploy else nn.Identity()

    def forward(self, y: torch.Tensor, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.q(self.act0(y + s0)), self.q(self.act1(s1))], dim=1)


class Block(nn.Module):
    """A basic (stride 1, C -> C) or expand (stride 2, C -> 2C) PresB block."""

    def __init__(self, cin: int, cout: int, cfg: PresBConfig):
        super().__init__()
        self.expand = cout != cin
        if self.expand and cout != 2 * cin:
            raise ValueError(f"an expand block doubles the channels, got {cin} -> {cout}")
        self.deploy = cfg.deploy
        # The block input's quantizer (deployable): integer codes for the shuffle, the
        # shortcut add and the pool, which needs Brevitas' QuantTensor for its shift.
        self.q_in = residual_quant(cfg.stream_bits) if cfg.deploy else None
        if self.q_in is not None:
            self.q_in.return_quant_tensor = True
        mid = cin if self.expand else cin // 2
        self.gconv1 = ShuffledGroupConv(cin, mid, 2 if self.expand else 1, cfg)
        self.join1 = HalfJoin(mid, cin if self.expand else cin // 2, cfg)
        self.gconv2 = ShuffledGroupConv(cout, cout // 2, 1, cfg)
        self.join2 = HalfJoin(cout // 2, cout // 2, cfg)
        if self.expand:
            # floor of the mean of 2x2 codes in the deployable build (a right shift)
            self.pool = (TruncAvgPool2d(2, stride=2, trunc_quant=TruncTo8bit, bit_width=cfg.stream_bits,
                                        return_quant_tensor=False)
                         if cfg.deploy else nn.AvgPool2d(2))
            self.sc_sign = Sign(cin, cfg.deploy, gain=2.0 ** -cfg.stream_bits)
            self.sc_conv = BinConv(cin, cout, 1, 1, cfg.deploy)
            self.sc_bn = nn.BatchNorm2d(cout)
            self.sc_q = residual_quant(cfg.stream_bits) if cfg.deploy else nn.Identity()
        self.bn_out = nn.BatchNorm2d(cout)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        rq = self.q_in(r) if self.q_in is not None else r
        r = rq.value if isinstance(rq, QuantTensor) else rq  # plain while exporting
        x = channel_shuffle(r)
        y = self.gconv1(x)
        if self.expand:
            pooled = self.pool(rq)  # AvgPool2(shuffle(r)) == shuffle(AvgPool2(r)): one pool serves both
            p = channel_shuffle(pooled)
            z = self.join1(y, p, p)
            skip = self.sc_q(self.sc_bn(self.sc_conv(self.sc_sign(pooled))))
        else:
            x0, x1 = torch.chunk(x, 2, dim=1)
            z = self.join1(y, x0, x1)
            skip = r
        x2 = channel_shuffle(z)
        y2 = self.gconv2(x2)
        s0, s1 = torch.chunk(x2, 2, dim=1)
        return self.bn_out(self.join2(y2, s0, s1) + skip)


class Pow2IntWeight(Int8WeightPerTensorFixedPoint):
    """Signed k-bit weights with a power-of-two scale (exact products in float32)."""


class Classifier(nn.Module):
    """Global average pool -> linear, as its integer accumulator (deployable) or float logits.

    Deployable: the pooled codes (sums / HW, exact) times k-bit power-of-two weights,
    divided by (weight scale / HW): the integer dot product of the summed codes, which
    the FPGA computes; :class:`HostHead` multiplies the scale back and adds the bias.
    """

    def __init__(self, channels: int, classes: int, positions: int, cfg: PresBConfig):
        super().__init__()
        self.deploy = cfg.deploy
        self.positions = positions
        if cfg.deploy:
            self.q = residual_quant(cfg.stream_bits)
            self.fc = QuantLinear(channels, classes, bias=False, weight_quant=Pow2IntWeight,
                                  weight_bit_width=cfg.fc_weight_bits)
        else:
            self.q = nn.Identity()
            self.fc = nn.Linear(channels, classes)
        self.register_buffer("acc_scale", torch.ones(()), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.flatten(F.adaptive_avg_pool2d(self.q(x), 1), 1)
        if not self.deploy:
            return self.fc(pooled)
        if not _exporting():
            with torch.no_grad():
                self.acc_scale.fill_(float(self.fc.quant_weight().scale) / self.positions)
        return self.fc(pooled) / self.acc_scale


class HostHead(nn.Module):
    """Host side of the deployable classifier: logits = accumulator * scale + bias."""

    def __init__(self, classifier: Classifier, classes: int):
        super().__init__()
        self.classifier = [classifier]  # a list: registered once, in the body
        self.bias = nn.Parameter(torch.zeros(classes))

    def forward(self, acc: torch.Tensor) -> torch.Tensor:
        return acc * self.classifier[0].acc_scale + self.bias

    def affine(self) -> dict:
        """Per-class scale and bias (the export sidecar's ``head``)."""
        n = self.bias.numel()
        return {"scale": [float(self.classifier[0].acc_scale)] * n, "bias": self.bias.detach().tolist()}


class Stem(nn.Module):
    """Conv3x3(3 -> w0) + BN; deployable: k-bit weights on UINT8 pixels, standardization folded behind."""

    def __init__(self, cfg: PresBConfig):
        super().__init__()
        c, w0 = cfg.in_shape[0], cfg.widths[0]
        self.deploy = cfg.deploy
        if cfg.deploy:
            # Power-of-two weight scale: the products of pixels and weights are exact in
            # float32, so PyTorch and FINN's integer MVAU compute the same accumulator.
            self.conv = QuantConv2d(c, w0, 3, padding=1, bias=False, weight_quant=Pow2IntWeight,
                                    weight_bit_width=cfg.stem_weight_bits)
            self.standardize = layers.FoldedStandardize(self.conv, CIFAR100_MEAN[:c], sum(CIFAR100_STD[:c]) / c)
        else:
            self.conv = nn.Conv2d(c, w0, 3, padding=1, bias=False)
            self.register_buffer("mean", torch.tensor(CIFAR100_MEAN[:c]).view(1, -1, 1, 1), persistent=False)
            self.register_buffer("std", torch.tensor(CIFAR100_STD[:c]).view(1, -1, 1, 1), persistent=False)
        self.bn = nn.BatchNorm2d(w0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.deploy:
            return self.bn(self.standardize(self.conv(x)))
        return self.bn(self.conv((x - self.mean) / self.std))


def block_plan(cfg: PresBConfig) -> list[tuple[int, int]]:
    """(cin, cout) of every block, first to last."""
    plan, cin = [], cfg.widths[0]
    for width, n in zip(cfg.widths, cfg.blocks):
        for _ in range(n):
            plan.append((cin, width))
            cin = width
    return plan


class PresBNet(nn.Module):
    """PresB-Net (faithful or deployable, see the module docstring); raw 0..255 pixels in."""

    def __init__(self, cfg: PresBConfig = PresBConfig()):
        super().__init__()
        self.cfg = cfg
        h, w = cfg.in_shape[1:]
        positions = (h >> (len(cfg.widths) - 1)) * (w >> (len(cfg.widths) - 1))
        classifier = Classifier(cfg.widths[-1], cfg.num_classes, positions, cfg)
        parts = [Stem(cfg), *(Block(cin, cout, cfg) for cin, cout in block_plan(cfg)), classifier]
        if cfg.deploy:
            self.body = nn.Sequential(layers.pixel_input(), *parts)
            self.head = HostHead(classifier, cfg.num_classes)
        else:
            self.body = nn.Sequential(*parts)
            self.head = None
        self.stage = "binary"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits."""
        y = self.body(x)
        return self.head(y) if self.head is not None else y

    def set_training_stage(self, name: str) -> None:
        """'real': real-valued weights and no sign activations (paper's stage 1); 'binary': both binary."""
        if name not in STAGES:
            raise ValueError(f"unknown training stage {name!r}; valid: {', '.join(STAGES)}")
        self.stage = name
        for m in self.modules():
            if isinstance(m, (Sign, BinConv)):
                m.binary = name == "binary"

    def binary_convs(self) -> list[BinConv]:
        """The binary (alpha * sign(W)) convolutions."""
        return [m for m in self.modules() if isinstance(m, BinConv)]

    def binary_weight_bits(self) -> int:
        """Weights that are +-1 in the binary stage (one bit each), faithful or deployable."""
        return sum(m.conv.weight.numel() for m in self.binary_convs())

    def constrain(self) -> None:
        """After every step (deployable): PReLU slopes >= 0, BN gammas > 0, binary latent weights in [-1, 1]."""
        if not self.cfg.deploy:
            return
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, nn.PReLU):
                    m.weight.clamp_(min=0.0)  # monotone, so it folds into thresholds
                elif isinstance(m, nn.BatchNorm2d):
                    m.weight.clamp_(min=1e-3)  # increasing, so the chain stays one set of thresholds
            for m in self.binary_convs():
                m.conv.weight.clamp_(-1.0, 1.0)

    def param_groups(self, recipe: Recipe) -> list[dict]:
        """Weight decay (the recipe's) on the conv weights only, none on norms, biases, slopes."""
        conv = [m.weight for m in self.modules() if isinstance(m, nn.Conv2d)]
        ids = {id(p) for p in conv}
        rest = [p for p in self.parameters() if id(p) not in ids]
        return [{"name": "conv", "params": conv}, {"name": "other", "params": rest, "weight_decay": 0.0}]


# --- recipe and registry entries -------------------------------------------------------

# Paper and code: two stages of 400 epochs, "real" (real-valued weights, no sign
# activations) then "binary" from the real stage's best weights; Adam at 5e-4 decayed
# linearly, batch 256, cross entropy with label smoothing 0.1, RandomCrop(32, pad 4) +
# horizontal flip. Weight decay on the conv weights only (``param_groups``), 1e-5 in
# the real stage (the paper's text says 1e-4 for CIFAR; its code uses 1e-5), none once
# binary. We hold out 10 % of the training set to pick each stage's best weights.
PRESB_RECIPE = register_recipe(Recipe(
    name="presb-net",
    optimizer="adam",
    lr=5e-4,
    lr_final=None,
    lr_schedule="linear",
    epochs=400,
    batch_size=256,
    loss="cross_entropy",
    label_smoothing=0.1,
    val_fraction=0.1,
    seed=37,
    augment={"crop": 4, "hflip": 0.5},
    stages=(TrainingStage("real", weight_decay=1e-5), TrainingStage("binary", weight_decay=0.0)),
))

_CIFAR_PRE = Preprocessing(size=(32, 32), luma=False, equalize=False)

#: Reduced width that fits a PYNQ-Z2 (xc7z020: 4.9 Mbit of BRAM).
LITE = PresBConfig(widths=(32, 64, 128, 256), deploy=True)
FULL_DEPLOY = PresBConfig(deploy=True)


def _register(name: str, cfg: PresBConfig, description: str, **extra) -> None:
    register(ModelSpec(
        name=name,
        factory=lambda: PresBNet(cfg),
        input_shape=cfg.in_shape,
        input_dtype="UINT8",
        class_names=CIFAR100_CLASS_NAMES,
        dataset="cifar100",
        recipe=PRESB_RECIPE.name,
        preprocessing=_CIFAR_PRE,
        description=description,
        deployable=cfg.deploy,
        **extra,
    ))


for _depth, _blocks in ((10, (1, 1, 1, 1)), (18, (2, 2, 2, 2)), (34, (3, 4, 6, 3))):
    _register(f"presb-net-{_depth}", PresBConfig(blocks=_blocks),
              f"PresB-Net-{_depth} as published: float activations, LN per group, CIFAR-100 (not deployable)",
              deployable_variant="presb-net-18-lite")
_register("presb-net-18-lite", LITE,
          "PresB-Net-18 for FINN at quarter width (32..256): BN for LN, 4-bit integer streams (PYNQ-Z2)")
_register("presb-net-18-deploy", FULL_DEPLOY,
          "PresB-Net-18 for FINN at full width (128..1024): 11.7 Mbit of binary weights (ZCU104)")

"""DRA-BNN: dual-rate alpha binary ResNet-18 for waste classification (seed paper 000).

Binary ResNet-18 with a CIFAR-style stem (full-precision Conv3x3 -> BN -> PReLU, no max
pool), stages of two BasicBlocks at the given widths, the first block of stages 2-4 with
stride 2. Each binary conv computes with W_b = sign(W) * alpha, one learnable alpha per
layer (init 0.5, clamped to [0.1, 2.0] after every step and trained at its own learning
rate: the "dual rate"), followed by BN and a one-slope PReLU. Block: two binary 3x3 convs,
plus a shortcut (identity, or a binary 1x1 conv with its own BN and PReLU); no activation
after the add. Head: global average pool -> binary linear (with alpha), no bias.

Two builds of the same network:

* ``dra-bnn`` / ``dra-bnn-cifar10`` (faithful): float activations as in the authors' code,
  the float stem, ImageNet standardization on the input. Trainable, not deployable.
* ``dra-bnn-waste`` (deployable): what FINN maps to a pure dataflow graph. See
  :class:`DeployableDRABNN` for the mapping; the README's design notes say why.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from brevitas.core.scaling import ScalingImplType
from brevitas.nn import QuantIdentity, QuantLinear
from brevitas.quant.scaled_int import Int8ActPerTensorFloat

from bnn2fpga.quantize import layers
from bnn2fpga.quantize.data.folders import GARBAGE_CLASS_NAMES
from bnn2fpga.quantize.preprocess import Preprocessing
from bnn2fpga.quantize.recipes import Recipe, register_recipe
from bnn2fpga.quantize.registry import ModelSpec, register

#: alpha's range (paper eq. 5) and initial value.
ALPHA_MIN, ALPHA_MAX, ALPHA_INIT = 0.1, 2.0, 0.5
PRELU_INIT = 0.25
# ImageNet statistics in 0..255 pixel units (the paper's Garbage transform).
IMAGENET_MEAN = tuple(255.0 * m for m in (0.485, 0.456, 0.406))
IMAGENET_STD = tuple(255.0 * s for s in (0.229, 0.224, 0.225))

CIFAR10_CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer",
                       "dog", "frog", "horse", "ship", "truck")


@dataclass(frozen=True)
class DRABNNConfig:
    """Shape of a DRA-BNN instance (ResNet-18 at the paper's widths by default)."""

    in_shape: tuple[int, int, int] = (3, 224, 224)
    num_classes: int = 12
    widths: tuple[int, ...] = (64, 128, 256, 512)
    blocks: tuple[int, ...] = (2, 2, 2, 2)
    stem_stride: int = 1
    # Deployable only: bits of the residual stream and of the stem's integer weights.
    residual_bits: int = 4
    stem_weight_bits: int = 8

    def __post_init__(self) -> None:
        if len(self.widths) != len(self.blocks) or not self.widths or min(self.blocks) < 1:
            raise ValueError(f"widths {self.widths} and blocks {self.blocks} must pair up, >= 1 block each")
        if self.residual_bits < 2:
            raise ValueError("residual_bits must be >= 2 (a residual add of two sign maps is not binary)")

    def feature_size(self) -> tuple[int, int]:
        """Height and width of the last stage's feature map."""
        h, w = self.in_shape[1:]
        for s in [self.stem_stride] + [2] * (len(self.widths) - 1):
            h, w = (h - 1) // s + 1, (w - 1) // s + 1  # 3x3 (or 1x1) conv, padding 1 (0)
        return h, w


# --- shared pieces ---------------------------------------------------------------------


def alpha_parameter() -> nn.Parameter:
    """One learnable per-layer scale, initialised as the paper does."""
    return nn.Parameter(torch.tensor(ALPHA_INIT))


def prelu() -> nn.PReLU:
    """PReLU with one slope per layer (nn.PReLU() as in the authors' code)."""
    return nn.PReLU(num_parameters=1, init=PRELU_INIT)


def alpha_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Every per-layer alpha of a DRA-BNN (parameters named ``alpha``)."""
    return [p for n, p in model.named_parameters() if n.rsplit(".", 1)[-1] == "alpha"]


def dual_rate_groups(model: nn.Module, recipe: Recipe) -> list[dict]:
    """Optimizer groups: all weights at the recipe's rate, the alphas in their own group.

    The alpha group has its own rate (``recipe.group_lr["alpha"]``, the paper's eta_alpha)
    and no weight decay: decaying a scale towards 0 would fight the clamp to [0.1, 2].
    """
    alphas = {id(p) for p in alpha_parameters(model)}
    rest = [p for p in model.parameters() if id(p) not in alphas]
    groups = [{"name": "weights", "params": rest}]
    if alphas:
        groups.append({"name": "alpha", "params": alpha_parameters(model), "weight_decay": 0.0})
    return groups


def clamp_alphas(model: nn.Module) -> None:
    """alpha <- clamp(alpha, 0.1, 2.0) (paper eq. 5), after every optimizer step."""
    with torch.no_grad():
        for p in alpha_parameters(model):
            p.clamp_(ALPHA_MIN, ALPHA_MAX)


# --- faithful model --------------------------------------------------------------------


class _SignAlpha(torch.autograd.Function):
    """W_b = sign(W) * alpha; grad_W = grad (identity), grad_alpha = sum(grad * sign(W))."""

    @staticmethod
    def forward(ctx, w: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        s = torch.sign(w)
        ctx.save_for_backward(s)
        return s * alpha

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (s,) = ctx.saved_tensors
        return grad, (grad * s).sum().reshape(())


class AlphaBinaryConv2d(nn.Conv2d):
    """A bias-free conv computing with sign(W) * alpha (paper eqs. 3-4)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0):
        super().__init__(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.alpha = alpha_parameter()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolution with the binarized, alpha-scaled weights."""
        return self._conv_forward(x, _SignAlpha.apply(self.weight, self.alpha), None)


class AlphaBinaryLinear(nn.Linear):
    """A bias-free linear layer computing with sign(W) * alpha."""

    def __init__(self, cin: int, cout: int):
        super().__init__(cin, cout, bias=False)
        self.alpha = alpha_parameter()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Linear map with the binarized, alpha-scaled weights."""
        return F.linear(x, _SignAlpha.apply(self.weight, self.alpha))


class BinaryConvBN(nn.Sequential):
    """The paper's BinaryConv: alpha-binary conv -> BN -> PReLU (float activations)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int):
        super().__init__(
            AlphaBinaryConv2d(cin, cout, kernel, stride, padding=kernel // 2),
            nn.BatchNorm2d(cout),
            prelu(),
        )


class BasicBlock(nn.Module):
    """out = BinaryConv3x3(s) -> BinaryConv3x3(1), plus the (identity or 1x1) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = BinaryConvBN(cin, cout, 3, stride)
        self.conv2 = BinaryConvBN(cout, cout, 3, 1)
        self.shortcut = BinaryConvBN(cin, cout, 1, stride) if stride != 1 or cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual block without an activation after the add."""
        skip = x if self.shortcut is None else self.shortcut(x)
        return self.conv2(self.conv1(x)) + skip


def _stage_plan(cfg: DRABNNConfig) -> list[tuple[int, int, int]]:
    """(cin, cout, stride) of every block, first to last."""
    plan, cin = [], cfg.widths[0]
    for i, (width, n) in enumerate(zip(cfg.widths, cfg.blocks)):
        for j in range(n):
            plan.append((cin, width, 2 if (i > 0 and j == 0) else 1))
            cin = width
    return plan


class DRABNN(nn.Module):
    """The faithful DRA-BNN (float activations, as the authors' code); not deployable."""

    def __init__(self, cfg: DRABNNConfig = DRABNNConfig()):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        w0 = cfg.widths[0]
        self.stem = nn.Sequential(
            nn.Conv2d(cfg.in_shape[0], w0, 3, stride=cfg.stem_stride, padding=1, bias=False),
            nn.BatchNorm2d(w0),
            prelu(),
        )
        self.blocks = nn.Sequential(*(BasicBlock(*p) for p in _stage_plan(cfg)))
        self.fc = AlphaBinaryLinear(cfg.widths[-1], cfg.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for raw 0..255 RGB pixels (standardized here, as the paper's transform does)."""
        x = (x - self.mean) / self.std
        x = self.blocks(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    def binary_weight_bits(self) -> int:
        """The sign(W) * alpha layers' weights, one bit each (alpha is one float per layer)."""
        return sum(m.weight.numel() for m in self.modules() if isinstance(m, (AlphaBinaryConv2d, AlphaBinaryLinear)))

    def constrain(self) -> None:
        """After every step: alpha clamped to [0.1, 2.0] (the paper leaves PReLU and W free)."""
        clamp_alphas(self)

    def param_groups(self, recipe: Recipe) -> list[dict]:
        """The dual-rate optimizer groups (see :func:`dual_rate_groups`)."""
        return dual_rate_groups(self, recipe)


# --- deployable model ------------------------------------------------------------------


class Alpha(nn.Module):
    """y * alpha: the per-layer alpha of a binary conv, kept apart from its {-1, +1} weights.

    conv(x, sign(W) * alpha) == alpha * conv(x, sign(W)), so the conv stays an XNOR-popcount
    and alpha (> 0 by the clamp) is a positive scalar that FINN folds into the thresholds.
    """

    def __init__(self):
        super().__init__()
        self.alpha = alpha_parameter()

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """Scale by alpha."""
        return y * self.alpha


class ResidualQuant(Int8ActPerTensorFloat):
    """Signed k-bit integer codes at a constant scale of 1 (set ``bit_width``)."""

    scaling_impl_type = ScalingImplType.CONST


def residual_quant(bits: int) -> QuantIdentity:
    """The residual stream's quantizer: integers -2^(k-1) .. 2^(k-1) - 1 at scale 1.

    A constant unit scale makes every residual add an add of plain integers (no scale
    for FINN to move through adds and forks). A learned scale would add nothing: every
    quantized branch has a BatchNorm in front (whose gamma sets the scale; PReLU is
    positively homogeneous), and identity shortcuts must share the scale anyway.
    """
    # Brevitas divides the constant by 2^(k-1) for a signed, non-narrow quantizer.
    half = float(2 ** (bits - 1))
    return QuantIdentity(act_quant=ResidualQuant, bit_width=bits, scaling_const=half,
                         min_val=-half, max_val=half, return_quant_tensor=False)


class DeployStem(nn.Module):
    """UINT8 pixels -> k-bit-weight conv (zero padding) -> folded standardization -> BN -> PReLU -> Q."""

    def __init__(self, cfg: DRABNNConfig, q: nn.Module):
        super().__init__()
        c, w0 = cfg.in_shape[0], cfg.widths[0]
        self.conv = layers.int_conv(c, w0, 3, stride=cfg.stem_stride, padding=1,
                                    weight_bits=cfg.stem_weight_bits)
        self.standardize = layers.FoldedStandardize(self.conv, IMAGENET_MEAN[:c],
                                             sum(IMAGENET_STD[:c]) / c)
        self.bn = nn.BatchNorm2d(w0)
        self.act = prelu()
        self.q = q

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """k-bit integer feature map at scale 1."""
        return self.q(self.act(self.bn(self.standardize(self.conv(x)))))


class DeployConvBN(nn.Module):
    """sign input -> (-1 padding) -> XNOR conv -> alpha -> BN -> PReLU (no output quantizer)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int):
        super().__init__()
        self.pad = kernel // 2
        self.conv = layers.binary_conv(cin, cout, kernel, stride=stride)
        self.alpha = Alpha()
        self.bn = nn.BatchNorm2d(cout)
        self.act = prelu()

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        """Float pre-activation; the caller quantizes it (sign or residual quantizer)."""
        return self.act(self.bn(self.alpha(self.conv(layers.pad_binary(s, self.pad)))))


class DeployBlock(nn.Module):
    """The BasicBlock with binary activations and a k-bit integer residual stream.

    sign(x) feeds the 3x3 conv and, through its own sign module, the 1x1 shortcut conv
    (FINN's XNOR conversion rewrites the sign that feeds an XNOR layer, so each XNOR
    layer needs a sign of its own; both compute the same bits). Both add inputs pass the
    block's one quantizer ``q``, so the add sees two integer maps of equal scale (FINN:
    DuplicateStreams + ElementwiseAdd). An identity shortcut re-quantizes the block input
    (a sum of two k-bit codes) back to k bits, except right after the stem, whose output
    already is exactly such a code.
    """

    def __init__(self, cin: int, cout: int, stride: int, bits: int, after_stem: bool):
        super().__init__()
        self.sign = layers.binary_act()
        # sign(g * x) == sign(x) for g > 0; the gain brings the block input (a sum of two
        # k-bit codes, |x| <= 2^k) into the sign's straight-through window |x| <= 1, and
        # FINN folds it into the threshold. The shortcut's sign uses twice the gain only so
        # that the ONNX exporter does not merge the two identical sign nodes into one.
        self.sign_gain = 1.0 / 2 ** bits
        self.conv1 = DeployConvBN(cin, cout, 3, stride)
        self.sign2 = layers.binary_act()
        self.conv2 = DeployConvBN(cout, cout, 3, 1)
        self.shortcut = DeployConvBN(cin, cout, 1, stride) if stride != 1 or cin != cout else None
        self.sign_shortcut = layers.binary_act() if self.shortcut is not None else None
        self.requant_identity = not after_stem
        self.q = residual_quant(bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Integer sum of the two quantized branches."""
        h = self.q(self.conv2(self.sign2(self.conv1(self.sign(x * self.sign_gain)))))
        if self.shortcut is not None:
            skip = self.q(self.shortcut(self.sign_shortcut(x * (2 * self.sign_gain))))
        else:
            skip = self.q(x) if self.requant_identity else x
        return h + skip


class TiedPoolLinear(nn.Module):
    """Global sum pool -> binary linear (no alpha: it lives in the host head).

    Exported as flatten -> one binary linear over the whole map whose weights repeat
    each channel's weight at every position: sum_p W_oc x_cp == W_oc sum_p x_cp, exact in
    integers, and an ordinary FINN MVAU (a GlobalAveragePool would leave a float 1/HW
    scale inside the accelerator).
    """

    def __init__(self, channels: int, classes: int, positions: int):
        super().__init__()
        self.linear = layers.binary_linear(channels, classes)
        self.positions = positions
        self.expanded: QuantLinear | None = None

    def set_deploy(self, on: bool) -> None:
        """Build (or drop) the position-expanded copy the export uses."""
        if on:
            expanded = layers.binary_linear(self.linear.in_features * self.positions, self.linear.out_features)
            with torch.no_grad():
                expanded.weight.copy_(self.linear.weight.repeat_interleave(self.positions, dim=1))
            self.expanded = expanded
        else:
            self.expanded = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Integer class scores (sum over positions of the binary dot products)."""
        if self.expanded is not None:
            return self.expanded(torch.flatten(x, 1))  # NCHW flatten: index c * HW + p
        return self.linear(x.sum(dim=(2, 3)))


class AlphaHead(nn.Module):
    """Host head: logits = integer scores * alpha / HW (the binary FC's alpha and the mean).

    Exposes BatchNorm1d's eval-mode fields (weight, bias, running_mean, running_var, eps),
    so ``quantize.export.head_affine`` writes it to the sidecar as a per-class affine.
    """

    def __init__(self, classes: int, positions: int):
        super().__init__()
        self.classes = classes
        self.positions = positions
        self.alpha = alpha_parameter()
        self.eps = 0.0

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """Scale the accelerator's integer scores into the faithful model's logits."""
        return y * (self.alpha / self.positions)

    @property
    def weight(self) -> torch.Tensor:  # noqa: D102 - BatchNorm1d-like field, see class doc
        return (self.alpha / self.positions).detach().expand(self.classes).clone()

    @property
    def bias(self) -> torch.Tensor:  # noqa: D102
        return torch.zeros(self.classes)

    @property
    def running_mean(self) -> torch.Tensor:  # noqa: D102
        return torch.zeros(self.classes)

    @property
    def running_var(self) -> torch.Tensor:  # noqa: D102
        return torch.ones(self.classes)


class DeployableDRABNN(nn.Module):
    """DRA-BNN as FINN can build it: ``body`` on the FPGA, ``head`` on the host.

    * Input: UINT8 RGB pixels; the stem conv has k-bit integer weights, pads with 0 and
      takes the ImageNet standardization folded in behind it (:class:`quantize.layers.FoldedStandardize`).
    * Every binary conv sees sign(.) of its input (padded with -1) and XNOR-popcounts;
      alpha, BN and PReLU (slope >= 0, monotone) before a sign or a k-bit quantizer are a
      monotone map of the integer accumulator, i.e. thresholds.
    * The residual stream holds k-bit integers at scale 1 (:func:`residual_quant`).
    * Pool + FC: :class:`TiedPoolLinear` in hardware, alpha / HW in the host head.
    """

    def __init__(self, cfg: DRABNNConfig):
        super().__init__()
        self.cfg = cfg
        fh, fw = cfg.feature_size()
        plan = _stage_plan(cfg)
        stem = DeployStem(cfg, residual_quant(cfg.residual_bits))
        blocks = [DeployBlock(cin, cout, s, cfg.residual_bits, after_stem=(i == 0))
                  for i, (cin, cout, s) in enumerate(plan)]
        self.body = nn.Sequential(layers.pixel_input(), stem, *blocks,
                                  TiedPoolLinear(cfg.widths[-1], cfg.num_classes, fh * fw))
        self.head = AlphaHead(cfg.num_classes, fh * fw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for raw 0..255 RGB pixels."""
        return self.head(self.body(x))

    def binary_layers(self) -> list[nn.Module]:
        """The {-1, +1}-weight convs and linears."""
        return [m for m in self.body.modules()
                if isinstance(m, (nn.Conv2d, nn.Linear)) and m.weight_quant.is_quant_enabled
                and int(m.quant_weight().bit_width) == 1]

    def constrain(self) -> None:
        """After every step: latent binary weights in [-1, 1], alpha in [0.1, 2], PReLU slopes >= 0."""
        with torch.no_grad():
            for m in self.binary_layers():
                m.weight.clamp_(-1.0, 1.0)
            for m in self.modules():
                if isinstance(m, nn.PReLU):
                    m.weight.clamp_(min=0.0)  # monotone, so it folds into thresholds
        clamp_alphas(self)

    def param_groups(self, recipe: Recipe) -> list[dict]:
        """The dual-rate optimizer groups (see :func:`dual_rate_groups`)."""
        return dual_rate_groups(self, recipe)

    def set_deploy_order(self, on: bool = True) -> None:
        """Switch the pool + FC to its export form (see :class:`TiedPoolLinear`)."""
        for m in self.body.modules():
            if isinstance(m, TiedPoolLinear):
                m.set_deploy(on)


# --- recipe and registry entries -------------------------------------------------------

# The paper: Adam 1e-3, cross entropy, ReduceLROnPlateau on the training loss (x0.5 after 5
# epochs without improvement, down to 1e-4), early stopping after 10 epochs without an
# improvement > 0.001, up to 400 epochs; alpha at its own rate (code default 0.01).
# Code-only: weight decay 1e-4, batch 8. Augmentation: rotation 15, translate 0.1, horizontal
# flip (the paper's ColorJitter has no counterpart in the training loop's augment()).
register_recipe(Recipe(
    name="dra-bnn",
    optimizer="adam",
    lr=1e-3,
    lr_final=None,
    epochs=400,
    batch_size=8,
    loss="cross_entropy",
    weight_decay=1e-4,
    val_fraction=0.1,
    seed=37,
    augment={"rotation": 15, "shift": 0.1, "hflip": 0.5},
    group_lr={"alpha": 0.01},
    plateau_factor=0.5,
    plateau_patience=5,
    min_lr=1e-4,
    early_stop_patience=10,
    early_stop_delta=1e-3,
))

#: The deployable waste model's defaults (input 64x64, reduced widths: fits a PYNQ-Z2).
WASTE_CONFIG = DRABNNConfig(in_shape=(3, 64, 64), num_classes=12, widths=(32, 64, 128, 256))


def _rgb(size: int) -> Preprocessing:
    # RGB kept, no equalization: the paper only resizes and standardizes (folded in the model).
    return Preprocessing(size=(size, size), luma=False, equalize=False)


register(ModelSpec(
    name="dra-bnn",
    factory=lambda: DRABNN(DRABNNConfig(in_shape=(3, 224, 224), num_classes=12)),
    input_shape=(3, 224, 224),
    input_dtype="UINT8",
    class_names=tuple(GARBAGE_CLASS_NAMES),
    dataset="garbage",
    recipe="dra-bnn",
    preprocessing=_rgb(224),
    description="DRA-BNN as published: binary ResNet-18, float activations, Garbage 224x224 (not deployable)",
    deployable=False,
    deployable_variant="dra-bnn-waste",
))

register(ModelSpec(
    name="dra-bnn-cifar10",
    factory=lambda: DRABNN(DRABNNConfig(in_shape=(3, 32, 32), num_classes=10)),
    input_shape=(3, 32, 32),
    input_dtype="UINT8",
    class_names=CIFAR10_CLASS_NAMES,
    dataset="cifar10",
    recipe="dra-bnn",
    preprocessing=_rgb(32),
    description="DRA-BNN as published, CIFAR-10 32x32 (the paper's Table I; not deployable)",
    deployable=False,
    deployable_variant="dra-bnn-waste",
))

register(ModelSpec(
    name="dra-bnn-waste",
    factory=lambda: DeployableDRABNN(WASTE_CONFIG),
    input_shape=WASTE_CONFIG.in_shape,
    input_dtype="UINT8",
    class_names=tuple(GARBAGE_CLASS_NAMES),
    dataset="garbage",
    recipe="dra-bnn",
    preprocessing=_rgb(WASTE_CONFIG.in_shape[1]),
    description="DRA-BNN for FINN: binary activations, 4-bit residuals, 64x64 RGB waste (Garbage, 12 classes)",
))

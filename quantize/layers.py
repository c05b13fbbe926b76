"""Quantizers and building blocks shared by every model in the zoo.

One place decides how a BNN binarizes, pads and takes its input, so that all
models agree with each other and with the hardware:

* weights: sign(W) in {-1, +1} (scale 1); Brevitas' quantizer clips the latent
  weights to [-1, 1] in place on every forward and passes the gradient straight
  through, and ``clip_latent_weights`` clips them again after each optimizer step,
  as the paper does;
* activations: sign(x) in {-1, +1}; x == 0 maps to +1 (Brevitas' and QONNX'
  convention; the CBCNN paper maps 0 to -1. After a float BatchNorm an exact 0
  practically never occurs, and training and hardware use the same rule);
* padding of binary feature maps is -1, never 0: 0 is not a bipolar value and
  FINN's XNOR layers encode -1 as bit 0, so -1 padding is what the hardware does;
* the accelerator input is UINT8 pixels at scale 1: integers cannot land on a
  rounding tie, so the input quantizer is exact in every toolchain.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from brevitas.core.scaling import ScalingImplType
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
from brevitas.quant import SignedBinaryActPerTensorConst, SignedBinaryWeightPerTensorConst
from brevitas.quant.scaled_int import Uint8ActPerTensorFloat

#: The value binary feature maps are padded with (see module docstring).
BINARY_PAD_VALUE = -1.0


class BinaryWeight(SignedBinaryWeightPerTensorConst):
    """Weights sign(W) * 1 with in-place clipping of the latent weights to [-1, 1]."""

    scaling_const = 1.0


class BinaryAct(SignedBinaryActPerTensorConst):
    """Activations sign(x) in {-1, +1}; gradient passes only where |x| <= 1."""

    scaling_const = 1.0


class PixelInput(Uint8ActPerTensorFloat):
    """Unsigned 8-bit integers at scale 1: raw pixels 0..255 pass unchanged."""

    scaling_impl_type = ScalingImplType.CONST
    # Brevitas divides the constant by 2**8 - 1 to get the scale; 255 gives scale 1.
    scaling_const = 255.0
    max_val = 255.0


def pixel_input() -> QuantIdentity:
    """The model's input quantizer: exact on UINT8 pixels, exported as an 8-bit Quant."""
    return QuantIdentity(act_quant=PixelInput, return_quant_tensor=False)


def binary_act() -> QuantIdentity:
    """A sign activation module."""
    return QuantIdentity(act_quant=BinaryAct, return_quant_tensor=False)


def binary_conv(cin: int, cout: int, kernel: int = 3, stride: int = 1, padding: int = 0) -> QuantConv2d:
    """A bias-free binary-weight convolution.

    Implicit ``padding`` pads with 0, which is right only for integer (pixel) inputs;
    binary inputs go through :func:`pad_binary` and ``padding=0``.
    """
    return QuantConv2d(
        cin, cout, kernel, stride=stride, padding=padding, bias=False, weight_quant=BinaryWeight
    )


def binary_linear(cin: int, cout: int) -> QuantLinear:
    """A bias-free binary-weight fully connected layer."""
    return QuantLinear(cin, cout, bias=False, weight_quant=BinaryWeight)


def pad_binary(x: torch.Tensor, amount: int) -> torch.Tensor:
    """'Same' padding of a bipolar feature map with -1 (see module docstring)."""
    if amount == 0:
        return x
    return F.pad(x, (amount,) * 4, mode="constant", value=BINARY_PAD_VALUE)


def batch_norm(channels: int, dims: int = 2, eps: float = 1e-6, momentum: float = 0.1) -> nn.Module:
    """BatchNorm with the BNN papers' eps; dims 1 for dense layers, 2 for feature maps."""
    cls = nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d
    return cls(channels, eps=eps, momentum=momentum)


def clip_latent_weights(model: nn.Module, bound: float = 1.0) -> None:
    """Clip every binary layer's latent float weights to [-bound, bound] (paper: after each step)."""
    with torch.no_grad():
        for m in model.modules():
            # Only binary layers: k-bit layers learn their own scale and must not be clipped.
            if (isinstance(m, (QuantConv2d, QuantLinear)) and m.weight_quant.is_quant_enabled
                    and int(m.weight_quant.bit_width()) == 1):
                m.weight.clamp_(-bound, bound)


def keep_bn_scale_positive(bns: list[nn.Module], floor: float = 1e-3) -> None:
    """Clamp BatchNorm gammas to >= floor.

    A positive scale makes BN (and the sign after it) commute with max pooling, so the
    paper's conv -> pool -> BN order can be deployed as conv -> BN -> sign -> pool,
    which FINN streamlines into pure thresholds.
    """
    with torch.no_grad():
        for bn in bns:
            bn.weight.clamp_(min=floor)


# --- k-bit integer layers (for the non-binary parts of hybrid networks) ---------------


def int_conv(cin: int, cout: int, kernel: int = 3, stride: int = 1, padding: int = 0,
             weight_bits: int = 4, bias: bool = False) -> QuantConv2d:
    """A convolution with signed k-bit per-tensor weights (Brevitas' default int quantizer).

    Implicit zero padding is exact here: 0 is a code of every integer activation type.
    """
    return QuantConv2d(cin, cout, kernel, stride=stride, padding=padding, bias=bias,
                       weight_bit_width=weight_bits)


def int_linear(cin: int, cout: int, weight_bits: int = 4, bias: bool = False) -> QuantLinear:
    """A fully connected layer with signed k-bit per-tensor weights."""
    return QuantLinear(cin, cout, bias=bias, weight_bit_width=weight_bits)


def int_relu(bits: int = 4) -> QuantReLU:
    """ReLU followed by an unsigned k-bit quantizer with a learned scale."""
    return QuantReLU(bit_width=bits, return_quant_tensor=False)


def int_act(bits: int = 4, signed: bool = True) -> QuantIdentity:
    """A k-bit activation quantizer with a learned scale.

    Use ONE instance on both inputs of a residual add: FINN adds two streams only when
    they share a scale, which a shared quantizer guarantees.
    """
    from brevitas.quant.scaled_int import Int8ActPerTensorFloat, Uint8ActPerTensorFloat

    quant = Int8ActPerTensorFloat if signed else Uint8ActPerTensorFloat
    return QuantIdentity(act_quant=quant, bit_width=bits, return_quant_tensor=False)


class FoldedStandardize(nn.Module):
    """(conv(x) - sum_c mean_c * sum(W_oc)) / std: input standardization moved behind the first conv.

    Equal to convolving the standardized image (x - mean_c) / std when the raw integer
    image is zero-padded (the pad is then -mean_c / std in the standardized domain), so it
    is a per-output-channel affine and folds into the first layer's thresholds while the
    accelerator keeps taking UINT8 pixels. ``mean`` is one value or one per input channel;
    ``std`` is one value (a per-input-channel divisor cannot move behind the sum).
    """

    def __init__(self, conv: nn.Module, mean, std: float):
        super().__init__()
        self.conv = [conv]  # a list, so the conv is not registered (and counted) twice
        means = torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
        self.register_buffer("mean", means.expand(conv.in_channels).clone(), persistent=False)
        self.std = float(std)
        # Derived from the weights, so not saved in checkpoints.
        self.register_buffer("shift", torch.zeros(conv.out_channels), persistent=False)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """Subtract the mean's contribution to each output channel, divide by std."""
        # Refreshed from the weights in use except while exporting, so the exported
        # graph sees a constant that matches the exported weights.
        if not (torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()):
            conv = self.conv[0]
            with torch.no_grad():
                w = conv.quant_weight().value if conv.weight_quant.is_quant_enabled else conv.weight
                self.shift.copy_((w.sum(dim=(2, 3)) * self.mean.view(1, -1)).sum(dim=1))
        return (y - self.shift.view(1, -1, 1, 1)) / self.std

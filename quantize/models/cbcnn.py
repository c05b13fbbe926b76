"""CBCNN: the lightweight binarized CNN for traffic signs and digits (seed paper 002).

Binary Block 1 = BinaryConv3x3 (no bias) -> MaxPool 2x2 -> BatchNorm -> sign, four times
with 128 filters ("same" padding), then BinaryDense 256 -> BN -> sign and
BinaryDense classes -> BN (no sign; argmax). These widths are the only ones that give
both of the paper's parameter counts (587,222 on 32x32 GTSRB, 480,404 on 28x28 MNIST).

Deployment decisions (the README's design notes say more):

* The input is UINT8 pixels. The dataset-wise standardization (x - mu) / sigma is
  applied after the first convolution as a per-channel affine,
  (conv(x) - mu * sum(W_c)) / sigma, which equals convolving the standardized image
  when the raw image is zero-padded. It therefore folds into the first thresholds.
* Training uses the paper's order conv -> pool -> BN -> sign. BN gammas are kept
  positive, so BN and sign commute with max pooling and the exported graph uses
  conv -> BN -> sign -> pool, which FINN streamlines into thresholds. Both orders
  give identical outputs; a test checks it.
* The last BatchNorm is a per-class affine that changes the argmax: it is kept as the
  model's ``head`` and applied on the host to the accelerator's integer output.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from bnn2fpga.quantize import layers
from bnn2fpga.quantize.data.gtsrb import GTSRB_CLASS_NAMES
from bnn2fpga.quantize.data.idx import MNIST_CLASS_NAMES
from bnn2fpga.quantize.preprocess import Preprocessing
from bnn2fpga.quantize.registry import ModelSpec, register


@dataclass(frozen=True)
class CBCNNConfig:
    """Shape of a CBCNN instance."""

    in_shape: tuple[int, int, int] = (1, 32, 32)
    num_classes: int = 43
    conv_blocks: int = 4
    filters: int = 128
    dense: int = 256
    # Dataset-wise standardization of the (equalized) pixels; an equalized 8-bit
    # image is close to uniform on 0..255, whose mean and std these are.
    pixel_mean: float = 127.5
    pixel_std: float = 73.9


class ConvBlock(nn.Module):
    """Binary Block 1: conv -> max pool -> BN -> sign (paper order while training)."""

    def __init__(self, cin: int, cout: int, first: bool, cfg: CBCNNConfig):
        super().__init__()
        self.first = first
        self.conv = layers.binary_conv(cin, cout, 3, padding=1 if first else 0)
        self.standardize = layers.FoldedStandardize(self.conv, cfg.pixel_mean, cfg.pixel_std) if first else None
        self.pool = nn.MaxPool2d(2)  # floor: 7 -> 3 on 28x28 inputs, as in the paper
        self.bn = layers.batch_norm(cout)
        self.act = layers.binary_act()
        # Export flips this to the equivalent, FINN-friendly order (see module docstring).
        self.deploy_order = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.first:
            x = layers.pad_binary(x, 1)
        y = self.conv(x)
        if self.standardize is not None:
            y = self.standardize(y)
        if self.deploy_order:
            return self.pool(self.act(self.bn(y)))
        return self.act(self.bn(self.pool(y)))


class CBCNN(nn.Module):
    """The CBCNN network; ``body`` is what runs on the FPGA, ``head`` runs on the host."""

    def __init__(self, cfg: CBCNNConfig = CBCNNConfig()):
        super().__init__()
        self.cfg = cfg
        c, h, w = cfg.in_shape
        blocks: list[nn.Module] = [layers.pixel_input()]
        for i in range(cfg.conv_blocks):
            blocks.append(ConvBlock(c if i == 0 else cfg.filters, cfg.filters, i == 0, cfg))
            h, w = h // 2, w // 2
        if h < 1 or w < 1:
            raise ValueError(f"input {cfg.in_shape} is too small for {cfg.conv_blocks} pooling blocks")
        flat = cfg.filters * h * w
        blocks += [
            nn.Flatten(),
            layers.binary_linear(flat, cfg.dense),
            layers.batch_norm(cfg.dense, dims=1),
            layers.binary_act(),
            layers.binary_linear(cfg.dense, cfg.num_classes),
        ]
        self.body = nn.Sequential(*blocks)
        self.head = layers.batch_norm(cfg.num_classes, dims=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (the head's per-class affine of the integer accumulator)."""
        return self.head(self.body(x))

    def constrain(self) -> None:
        """Projections after every optimizer step: latent weight clipping, positive BN scale."""
        layers.clip_latent_weights(self)
        layers.keep_bn_scale_positive([b.bn for b in self.conv_blocks()])

    def conv_blocks(self) -> list[ConvBlock]:
        """The convolutional blocks, first to last."""
        return [m for m in self.body if isinstance(m, ConvBlock)]

    def set_deploy_order(self, on: bool = True) -> None:
        """Switch the conv blocks to conv -> BN -> sign -> pool (exact when BN scales are > 0)."""
        if on:
            for b in self.conv_blocks():
                scale = b.bn.weight / torch.sqrt(b.bn.running_var + b.bn.eps)
                if (scale <= 0).any():
                    raise ValueError(
                        "a BatchNorm scale is not positive, so max pooling does not commute with it; "
                        "train with CBCNN.constrain() after each step"
                    )
        for b in self.conv_blocks():
            b.deploy_order = on


# --- registry entries -------------------------------------------------------------

# GTSRB: the paper's Y channel + histogram equalization at 32x32.
_GTSRB_PRE = Preprocessing(size=(32, 32), luma=True, equalize=True)
# MNIST-style sets are already gray and high-contrast; the paper only standardizes them.
_MNIST_PRE = Preprocessing(size=(28, 28), luma=True, equalize=False)

register(
    ModelSpec(
        name="cbcnn-gtsrb",
        factory=lambda: CBCNN(CBCNNConfig(in_shape=(1, 32, 32), num_classes=43)),
        input_shape=(1, 32, 32),
        input_dtype="UINT8",
        class_names=tuple(GTSRB_CLASS_NAMES),
        dataset="gtsrb",
        recipe="cbcnn-gtsrb",
        preprocessing=_GTSRB_PRE,
        description="CBCNN, 4 binary conv blocks, traffic signs (GTSRB, 43 classes)",
        aliases=("cbcnn",),
    )
)

register(
    ModelSpec(
        name="cbcnn-mnist",
        factory=lambda: CBCNN(
            CBCNNConfig(in_shape=(1, 28, 28), num_classes=10, pixel_mean=33.3, pixel_std=78.6)
        ),
        input_shape=(1, 28, 28),
        input_dtype="UINT8",
        class_names=tuple(MNIST_CLASS_NAMES),
        dataset="mnist",
        datasets=("fashion-mnist", "digits"),
        recipe="cbcnn-mnist",
        preprocessing=_MNIST_PRE,
        description="CBCNN, 4 binary conv blocks, 28x28 digits (MNIST, Fashion-MNIST, sklearn digits)",
    )
)

register(
    ModelSpec(
        name="cbcnn-dcr",
        factory=lambda: CBCNN(CBCNNConfig(in_shape=(1, 32, 32), num_classes=43, conv_blocks=3)),
        input_shape=(1, 32, 32),
        input_dtype="UINT8",
        class_names=tuple(GTSRB_CLASS_NAMES),
        dataset="gtsrb",
        recipe="cbcnn-gtsrb",
        preprocessing=_GTSRB_PRE,
        description="CBCNN as in the authors' code (3 conv blocks; the paper's earlier DCR model)",
    )
)

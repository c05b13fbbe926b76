"""BlinkNet: a small residual network with binarized pre-activation convolutions (seed paper 003).

Three stages on 3x32x32 CIFAR-10 images, no pooling. Stage i is a "pre-activation"
(pre-residual) convolution conv_i -> BN -> ReLU followed by a residual block
y = ReLU(conv_b(ReLU(conv_a(x)))) + x (3x3 convolutions with bias, no BN, identity
shortcut); widths 32, 64, 128, the last two pre-activation convs with stride 2, dropout
after stage 2, then flatten 8192 -> Linear 10. 563,146 parameters in every variant.

* ``blinknet-fp``: the paper's full-precision reference (float weights and ReLUs). It
  trains, but cannot become hardware (``ModelSpec.deployable=False``).
* ``blinknet-hybrid``: the paper's BlinkNet. The pre-activation convs have sign weights
  (+-1, trained with a straight-through estimator); the paper's "full precision" parts
  become k-bit integer for FINN (residual convs, the classifier and every ReLU: 4 bits by
  default, set by :class:`BlinkNetConfig`).
* ``blinknet-binary``: the residual convs have sign weights too.

Deployment decisions (the README's design notes say more):

* Every scale is a power of two (weights, ReLU outputs) and sign weights have scale 1.
  Products and sums of such numbers are exact in float32, so Brevitas computes the same
  integer accumulators FINN's MVAUs do; only the biases and BNs round, and those become
  thresholds as in the binary models. With float scales Brevitas' convolution rounds
  where the hardware does not, and a near-threshold value can flip a 4-bit code.
* Both inputs of a residual add come out of ONE quantizer: a stage's pre-activation ReLU
  and its residual block's last ReLU are the same module. The two streams therefore
  share a scale, FINN moves that scale past the add, and the add becomes an integer
  ElementwiseAdd fed by a DuplicateStreams fork. The sum (one bit wider) feeds the next
  convolution or the classifier unchanged.
* The accelerator's output is the classifier's integer accumulator: the body divides
  the float output by the (power-of-two) product of input and weight scale, which
  FINN's streamlining collapses to nothing. The host head applies that scale and the
  classifier's bias per class (``head.affine()`` goes into the export sidecar).
* The input is UINT8 pixels. The paper's Normalize(mean 0.5, std 0.5) on [0, 1] pixels
  is (x - 127.5) / 127.5 on raw pixels; as in CBCNN it is applied after the first
  convolution, (conv(x) - 127.5 * sum(W_c)) / 127.5, which folds into the first
  thresholds. It equals convolving the normalized image when the raw image is
  zero-padded (the authors pad the normalized image with 0, i.e. raw 127.5: only conv1's
  border outputs differ).
* All feature maps are unsigned integers, so every convolution pads with 0, which is a
  code of the input type; no feature map of this network is bipolar.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
from brevitas.nn import QuantConv2d, QuantLinear, QuantReLU
from brevitas.quant.fixed_point import Int8WeightPerTensorFixedPoint, Uint8ActPerTensorFixedPoint

from bnn2fpga.quantize import layers
from bnn2fpga.quantize.preprocess import Preprocessing
from bnn2fpga.quantize.recipes import Recipe, register_recipe
from bnn2fpga.quantize.registry import ModelSpec, register

CIFAR10_CLASS_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)


@dataclass(frozen=True)
class BlinkNetConfig:
    """Shape and number formats of a BlinkNet instance.

    Weight bits: ``None`` float, ``1`` sign weights (+-1), ``k >= 2`` signed k-bit with a
    power-of-two scale. ``act_bits``: ReLU output bits (``None``: float ReLU).
    """

    in_shape: tuple[int, int, int] = (3, 32, 32)
    num_classes: int = 10
    widths: tuple[int, int, int] = (32, 64, 128)
    preact_bits: int | None = 1
    residual_bits: int | None = 4
    fc_bits: int | None = 4
    act_bits: int | None = 4
    dropout: float = 0.45  # authors' code: 0.45 for BlinkNet and Binary BlinkNet, 0.5 for FP
    # The authors' released code computes sign(W) once from the initial weights, so the
    # binary layers never learn (the paper describes trained sign weights). True
    # reproduces the release: sign-weight latents are frozen at their initial values.
    frozen_sign: bool = False
    pixel_mean: float = 127.5  # Normalize(0.5, 0.5) of x / 255, in raw pixel units
    pixel_std: float = 127.5

    def __post_init__(self) -> None:
        for name in ("preact_bits", "residual_bits", "fc_bits", "act_bits"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, int) and v >= 1):
                raise ValueError(f"{name} must be None or a positive int, got {v!r}")

    @property
    def is_integer(self) -> bool:
        """True when every tensor the accelerator computes is integer (FINN can build it)."""
        return None not in (self.preact_bits, self.residual_bits, self.fc_bits, self.act_bits)


class Pow2IntWeight(Int8WeightPerTensorFixedPoint):
    """Signed narrow-range k-bit weights, per-tensor power-of-two scale from max |W|."""


class Pow2UintAct(Uint8ActPerTensorFixedPoint):
    """Unsigned k-bit activations with a learned power-of-two scale, initialised from statistics."""


def _weight_quant(bits: int | None) -> dict:
    """Brevitas keyword arguments for float (None), sign (1) or k-bit weights."""
    if bits is None:
        return {"weight_quant": None}
    if bits == 1:
        return {"weight_quant": layers.BinaryWeight}
    return {"weight_quant": Pow2IntWeight, "weight_bit_width": bits}


def _mark(layer: nn.Module, bits: int | None) -> nn.Module:
    layer.sign_weights = bits == 1  # constrain() clips these layers' latent weights
    return layer


def _conv(cin: int, cout: int, bits: int | None, stride: int = 1, bias: bool = True) -> nn.Module:
    """A 3x3 'same' convolution (zero padding) with float, sign or k-bit weights."""
    return _mark(QuantConv2d(cin, cout, 3, stride=stride, padding=1, bias=bias, **_weight_quant(bits)), bits)


def _linear(cin: int, cout: int, bits: int | None) -> nn.Module:
    """A bias-free fully connected layer with float, sign or k-bit weights."""
    return _mark(QuantLinear(cin, cout, bias=False, **_weight_quant(bits)), bits)


def _relu(bits: int | None) -> nn.Module:
    """ReLU, followed by an unsigned k-bit power-of-two quantizer unless ``bits`` is None."""
    if bits is None:
        return nn.ReLU()
    return QuantReLU(act_quant=Pow2UintAct, bit_width=bits, return_quant_tensor=False)


def _scale(module: nn.Module) -> float:
    """Per-tensor scale of a quantized ReLU's output, 1.0 for a float ReLU."""
    if isinstance(module, QuantReLU):
        return float(module.act_quant.scale())
    return 1.0


def _exporting() -> bool:
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()


class Stage(nn.Module):
    """Pre-activation conv -> BN -> ReLU, then the residual block that adds to its output.

    ``act`` quantizes both inputs of the residual add (see module docstring).
    """

    def __init__(self, cin: int, cout: int, stride: int, cfg: BlinkNetConfig, first: bool):
        super().__init__()
        self.first = first
        # The first conv's bias follows the folded normalization, as it would follow the
        # convolution of a normalized image.
        self.conv = _conv(cin, cout, cfg.preact_bits, stride, bias=not first)
        self.conv_bias = nn.Parameter(torch.empty(cout)) if first else None
        self.standardize = layers.FoldedStandardize(self.conv, cfg.pixel_mean, cfg.pixel_std) if first else None
        self.bn = layers.batch_norm(cout, eps=1e-5)  # nn.BatchNorm2d's defaults, as in the paper's code
        self.act = _relu(cfg.act_bits)
        self.conv_a = _conv(cout, cout, cfg.residual_bits)
        self.act_a = _relu(cfg.act_bits)
        self.conv_b = _conv(cout, cout, cfg.residual_bits)
        if first:
            bound = 1 / math.sqrt(cin * 9)  # nn.Conv2d's bias initialisation
            nn.init.uniform_(self.conv_bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if self.first:
            y = self.standardize(y) + self.conv_bias.view(1, -1, 1, 1)
        x = self.act(self.bn(y))
        r = self.act(self.conv_b(self.act_a(self.conv_a(x))))  # the same quantizer as x
        return r + x


class IntegerClassifier(nn.Module):
    """Bias-free classifier whose output is its integer accumulator.

    The float output is divided by input scale x weight scale (powers of two, so the
    division is exact); :class:`ClassifierHead` multiplies it back on the host.
    """

    def __init__(self, fc: nn.Module, source_act: nn.Module):
        super().__init__()
        self.fc = fc
        self.source_act = [source_act]  # the quantizer feeding the classifier (owned by a Stage)
        self.register_buffer("acc_scale", torch.ones(()))

    def refresh_scale(self) -> None:
        """Recompute the accumulator scale from the current quantizers."""
        with torch.no_grad():
            w_scale = float(self.fc.quant_weight().scale) if self.fc.weight_quant.is_quant_enabled else 1.0
            self.acc_scale.fill_(_scale(self.source_act[0]) * w_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not _exporting():
            self.refresh_scale()
        return self.fc(x) / self.acc_scale


class ClassifierHead(nn.Module):
    """Host side of the classifier: logits = accumulator * scale + bias, per class."""

    def __init__(self, classifier: IntegerClassifier, num_classes: int):
        super().__init__()
        self.classifier = [classifier]
        fan_in = classifier.fc.in_features
        self.bias = nn.Parameter(torch.empty(num_classes).uniform_(-1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in)))

    def forward(self, acc: torch.Tensor) -> torch.Tensor:
        return acc * self.classifier[0].acc_scale + self.bias

    def affine(self) -> dict:
        """The head as per-class scale and bias lists (the export sidecar's ``head``)."""
        n = self.bias.numel()
        scale = float(self.classifier[0].acc_scale)
        return {"scale": [scale] * n, "bias": self.bias.detach().tolist()}


class BlinkNet(nn.Module):
    """The BlinkNet family; ``body`` runs on the FPGA, ``head`` on the host."""

    def __init__(self, cfg: BlinkNetConfig = BlinkNetConfig()):
        super().__init__()
        self.cfg = cfg
        c, h, w = cfg.in_shape
        w1, w2, w3 = cfg.widths
        stages = [Stage(c, w1, 1, cfg, first=True), Stage(w1, w2, 2, cfg, False), Stage(w2, w3, 2, cfg, False)]
        flat = w3 * math.ceil(h / 4) * math.ceil(w / 4)
        classifier = IntegerClassifier(_linear(flat, cfg.num_classes, cfg.fc_bits), stages[-1].act)
        self.body = nn.Sequential(
            layers.pixel_input(), stages[0], stages[1], nn.Dropout(cfg.dropout), stages[2], nn.Flatten(), classifier
        )
        self.head = ClassifierHead(classifier, cfg.num_classes)
        # A plain list: the layers are registered once, where they sit in the body.
        self._sign_layers = [m for m in self.modules() if getattr(m, "sign_weights", False)]
        if cfg.frozen_sign:
            for layer in self._sign_layers:
                layer.weight.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (the head's affine of the integer accumulator)."""
        return self.head(self.body(x))

    def stages(self) -> list[Stage]:
        """The three stages, first to last."""
        return [m for m in self.body if isinstance(m, Stage)]

    def sign_layers(self) -> list[nn.Module]:
        """Layers with +-1 weights."""
        return list(self._sign_layers)

    def constrain(self) -> None:
        """After every optimizer step: clip the sign layers' latent weights to [-1, 1].

        Beyond +-1 a latent weight's straight-through gradient is zero and its sign
        could never flip back (Courbariaux et al., whose binarization the paper uses).
        """
        with torch.no_grad():
            for layer in self._sign_layers:
                layer.weight.clamp_(-1.0, 1.0)


# --- the paper's training recipe -----------------------------------------------------

# Paper and authors' code: Adam at a constant 7.78e-5, batch 128, cross-entropy, ~50
# epochs, RandomHorizontalFlip + RandomCrop(32, padding=4) + RandomRotation(15). The
# rotation is the training loop's (bilinear, border pixels repeated) where torchvision
# uses nearest pixels and black corners. The paper mentions L1 regularization; the
# authors' code defines a coefficient but never adds the term, so neither do we. The
# authors validated on the test set; we hold out 10 % of the training set instead.
BLINKNET_RECIPE = register_recipe(
    Recipe(
        name="blinknet-cifar10",
        optimizer="adam",
        lr=7.78e-5,
        lr_final=None,
        epochs=50,
        batch_size=128,
        loss="cross_entropy",
        val_fraction=0.1,
        seed=37,
        augment={"hflip": 0.5, "crop": 4, "rotation": 15},
    )
)

# CIFAR-10 is RGB 32x32 already: no luma, no resize, no equalization.
_CIFAR_PRE = Preprocessing(size=(32, 32), luma=False, equalize=False)


def _spec(name: str, cfg: BlinkNetConfig, description: str, **extra) -> ModelSpec:
    return register(
        ModelSpec(
            name=name,
            factory=lambda: BlinkNet(cfg),
            input_shape=cfg.in_shape,
            input_dtype="UINT8",
            class_names=CIFAR10_CLASS_NAMES,
            dataset="cifar10",
            recipe=BLINKNET_RECIPE.name,
            preprocessing=_CIFAR_PRE,
            description=description,
            deployable=cfg.is_integer,
            **extra,
        )
    )


HYBRID = BlinkNetConfig()
BINARY = BlinkNetConfig(residual_bits=1)
FP = BlinkNetConfig(preact_bits=None, residual_bits=None, fc_bits=None, act_bits=None, dropout=0.5)

_spec("blinknet-hybrid", HYBRID,
      "BlinkNet: sign-weight pre-activation convs, 4-bit residual convs, ReLUs and classifier (CIFAR-10)",
      aliases=("blinknet",))
_spec("blinknet-binary", BINARY,
      "Binary BlinkNet: sign weights in every conv, 4-bit ReLUs and classifier (CIFAR-10)")
_spec("blinknet-fp", FP, "FP BlinkNet: the paper's full-precision reference (trains; not hardware)",
      deployable_variant="blinknet-hybrid")

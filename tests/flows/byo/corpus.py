"""Bring-your-own-BNN corpus: Brevitas networks the tool was not shaped for, built as a user would.

Each entry builds a ``torch.nn.Module`` with random weights and spread BatchNorm statistics
(random running mean / variance / gamma / beta, so the thresholds FINN derives are not trivial),
in eval mode. ``export(name, folder)`` writes its QONNX with ``brevitas.export.export_qonnx``,
the way a user exports their own model. FINN's reference networks (``brevitas_examples.bnn_pynq``)
are used as published where they are small enough for the test budget; CNV keeps its topology
and its 32x32 input but gets narrower layers (full-size CNV is in ``make bench``). The synthetic
models use Brevitas' float-scale quantizers with random learned-looking scales
(``float_act_scales``), as a trained model would have. ``BENCH_ONLY`` models (the 1024-wide LFCs,
CNV-1W2A) run in ``make bench`` only.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn


@dataclass(frozen=True)
class Entry:
    """One corpus model: how to build it, its input shape (no batch axis) and what it exercises."""

    name: str
    factory: Callable[[], nn.Module]
    input_shape: tuple[int, ...]
    covers: str
    input_range: tuple[float, float] = (0.0, 1.0)  # the float range real inputs come in
    # make test builds it for this many frames/s: at the default search these small MLPs fold to a
    # few cycles per frame, whose Verilator compile takes minutes; make bench runs both.
    test_fps: float | None = None


def spread_batchnorm(model: nn.Module, seed: int) -> nn.Module:
    """Random BN statistics and affine (gammas of both signs) so every threshold is different."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                n = m.num_features
                m.running_mean.copy_((torch.rand(n, generator=g) - 0.5) * 6)
                m.running_var.copy_(torch.rand(n, generator=g) * 20 + 2)
                m.weight.copy_((torch.rand(n, generator=g) + 0.2) * torch.where(
                    torch.rand(n, generator=g) < 0.8, 1.0, -1.0))
                m.bias.copy_((torch.rand(n, generator=g) - 0.5) * 2)
            elif type(m).__name__ == "TensorNorm":
                m.running_mean.fill_(0.7)
                m.running_var.fill_(9.0)
                m.weight.data.fill_(1.3)
                m.bias.data.fill_(-0.2)
    return model


def float_act_scales(model: nn.Module, seed: int, input_range: float = 1.0, act_range: float = 3.0) -> nn.Module:
    """Learned-looking float activation scales (not powers of two), per tensor or per channel.

    Brevitas' ``*ActPerTensorFloat`` quantizers start at scale 1.0 and learn theirs from runtime
    statistics while training; an untrained model would export 1.0 / levels everywhere. Each
    quantizer's learned range (Brevitas divides it by its integer levels to get the scale) becomes
    ``range`` times a random factor in [0.6, 1.4) per scale element, where ``range`` is
    ``input_range`` for the first quantizer (the input's) and ``act_range`` for the others.
    """
    from brevitas.core.scaling.standalone import ParameterFromRuntimeStatsScaling
    from brevitas.nn.quant_layer import QuantNonLinearActLayer

    g = torch.Generator().manual_seed(seed)
    first = True
    with torch.no_grad():
        for m in model.modules():
            if not isinstance(m, QuantNonLinearActLayer):
                continue
            for s in m.modules():
                if isinstance(s, ParameterFromRuntimeStatsScaling):
                    r = input_range if first else act_range
                    s.value.copy_(r * (0.6 + 0.8 * torch.rand(s.value.shape, generator=g)))
                    s.counter = s.collect_stats_steps + 1  # the scale is learned: use the parameter
            first = False
    return model


def _seeded(seed: int, build: Callable[[], nn.Module], float_scales: bool = False) -> nn.Module:
    torch.manual_seed(seed)
    model = spread_batchnorm(build(), seed)
    if float_scales:
        float_act_scales(model, seed)
    return model.eval()


# --- synthetic models, built from Brevitas' own quantizers as a user would --------------------


def _binary_act():
    from brevitas.nn import QuantIdentity
    from brevitas.quant import SignedBinaryActPerTensorConst

    return QuantIdentity(act_quant=SignedBinaryActPerTensorConst)


def mlp_sign() -> nn.Module:
    """784-64-64-64-10: Brevitas' default 8-bit input quantizer (learned float scale), binary weights, BN, sign."""
    from brevitas.nn import QuantIdentity, QuantLinear
    from brevitas.quant import SignedBinaryWeightPerTensorConst

    def build():
        layers: list[nn.Module] = [nn.Flatten(), QuantIdentity(bit_width=8, return_quant_tensor=False)]
        width = 784
        for out in (64, 64, 64):
            layers += [QuantLinear(width, out, bias=False, weight_quant=SignedBinaryWeightPerTensorConst),
                       nn.BatchNorm1d(out), _binary_act()]
            width = out
        layers.append(QuantLinear(width, 10, bias=True, weight_quant=SignedBinaryWeightPerTensorConst))
        return nn.Sequential(*layers)

    return _seeded(11, build)


def _small_cnn(act: Callable[[], nn.Module], seed: int, channels=(16, 16, 32), pool: str = "max",
               weight_quant=None, bias: bool = False) -> nn.Module:
    from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, TruncAvgPool2d
    from brevitas.quant import SignedBinaryWeightPerTensorConst

    wq = weight_quant or SignedBinaryWeightPerTensorConst

    def build():
        c_in = 1
        layers: list[nn.Module] = [QuantIdentity(bit_width=8, return_quant_tensor=True)]
        for i, c in enumerate(channels):
            layers += [QuantConv2d(c_in, c, 3, bias=bias, weight_quant=wq), nn.BatchNorm2d(c), act()]
            if i == 1:
                layers.append(nn.MaxPool2d(2) if pool == "max" else
                              TruncAvgPool2d(2, 2, bit_width=4, return_quant_tensor=True))
            c_in = c
        # 12x12 input: 10 -> 8 -> pool 4 -> 2
        layers += [nn.Flatten(), QuantLinear(c_in * 4, 32, bias=bias, weight_quant=wq), nn.BatchNorm1d(32), act(),
                   QuantLinear(32, 10, bias=True, weight_quant=wq)]
        return nn.Sequential(*layers)

    return _seeded(seed, build)


def cnn_sign() -> nn.Module:
    """conv 3x3 x3 + max pool + two linear layers; 8-bit float-scale input, binary weights, BN, sign."""
    return _small_cnn(lambda: _binary_act_qt(), 21)


def _binary_act_qt():
    from brevitas.nn import QuantIdentity
    from brevitas.quant import SignedBinaryActPerTensorConst

    return QuantIdentity(act_quant=SignedBinaryActPerTensorConst, return_quant_tensor=True)


def cnn_relu2() -> nn.Module:
    """The same CNN with 2-bit QuantReLU activations (learned float scale)."""
    from brevitas.nn import QuantReLU

    return _small_cnn(lambda: QuantReLU(bit_width=2, return_quant_tensor=True), 31)


def mlp_int8_bias() -> nn.Module:
    """144-32-32-10 with Brevitas' defaults: Int8WeightPerTensorFloat (narrow) weights, float biases,
    Int8ActPerTensorFloat (signed 8-bit, float scale) activations, no BatchNorm."""
    from brevitas.nn import QuantIdentity, QuantLinear

    def build():
        return nn.Sequential(nn.Flatten(), QuantIdentity(return_quant_tensor=True),
                             QuantLinear(144, 32, bias=True), QuantIdentity(return_quant_tensor=True),
                             QuantLinear(32, 32, bias=True), QuantIdentity(return_quant_tensor=True),
                             QuantLinear(32, 10, bias=True))

    return _seeded(41, build, float_scales=True)


def cnn_perchannel_int4() -> nn.Module:
    """4-bit weights with per-output-channel float scales and biases, a 4-bit QuantReLU with per-channel
    float scales (re-quantized per tensor after the pool, as the next conv needs one input scale),
    per-tensor float 4-bit signed activations, max pool."""
    from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU

    def conv(cin, cout):
        return QuantConv2d(cin, cout, 3, bias=True, weight_bit_width=4, weight_scaling_per_output_channel=True)

    def build():
        return nn.Sequential(
            QuantIdentity(bit_width=8, return_quant_tensor=True),
            conv(1, 8), nn.BatchNorm2d(8),
            QuantReLU(bit_width=4, scaling_per_output_channel=True, per_channel_broadcastable_shape=(1, 8, 1, 1),
                      scaling_stats_permute_dims=(1, 0, 2, 3), return_quant_tensor=True),
            nn.MaxPool2d(2), QuantIdentity(bit_width=4, return_quant_tensor=True),   # 10 -> 5
            conv(8, 16), nn.BatchNorm2d(16), QuantIdentity(bit_width=4, return_quant_tensor=True),  # 5 -> 3
            nn.Flatten(),
            QuantLinear(16 * 9, 10, bias=True, weight_bit_width=4, weight_scaling_per_output_channel=True))

    return _seeded(43, build, float_scales=True)


def cnn_xnor_alpha() -> nn.Module:
    """XNOR-Net: binary weights with a per-output-channel scale alpha = mean |W| (Brevitas' binary quantizer
    with AVE statistics per channel), sign activations, BN, max pool."""
    from brevitas.core.quant import BinaryQuant
    from brevitas.core.scaling import ScalingImplType
    from brevitas.core.stats import StatsOp
    from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear
    from brevitas.quant import SignedBinaryWeightPerTensorConst

    class XnorWeight(SignedBinaryWeightPerTensorConst):
        # BinaryQuant (sign * scale), not the parent's ClampedBinaryQuant: with a statistics scale the
        # clamped quantizer clips the weight parameter itself to +-scale on every call (Brevitas 0.13.4),
        # so each forward pass (the export included) would see different weights and a different alpha.
        tensor_quant = BinaryQuant
        scaling_impl_type = ScalingImplType.STATS
        scaling_stats_op = StatsOp.AVE
        scaling_per_output_channel = True

    def build():
        return nn.Sequential(
            QuantIdentity(bit_width=8, return_quant_tensor=True),
            QuantConv2d(1, 16, 3, bias=False, weight_quant=XnorWeight), nn.BatchNorm2d(16), _binary_act_qt(),
            nn.MaxPool2d(2),
            QuantConv2d(16, 32, 3, bias=False, weight_quant=XnorWeight), nn.BatchNorm2d(32), _binary_act_qt(),
            nn.Flatten(),
            QuantLinear(32 * 9, 32, bias=False, weight_quant=XnorWeight), nn.BatchNorm1d(32), _binary_act_qt(),
            QuantLinear(32, 10, bias=True, weight_quant=XnorWeight))

    return _seeded(47, build, float_scales=True)


def cnn_avgpool_unsigned() -> nn.Module:
    """Unsigned 8-bit input (Uint8ActPerTensorFloat), ternary weights (2-bit narrow range), 3-bit QuantReLU,
    Brevitas' TruncAvgPool2d with its default rounding truncation (RoundTo8bit, half to even) to 3 bits,
    flatten."""
    from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU, TruncAvgPool2d
    from brevitas.quant import Uint8ActPerTensorFloat

    def conv(cin, cout):
        return QuantConv2d(cin, cout, 3, bias=False, weight_bit_width=2)

    def build():
        return nn.Sequential(
            QuantIdentity(act_quant=Uint8ActPerTensorFloat, return_quant_tensor=True),
            conv(1, 16), nn.BatchNorm2d(16), QuantReLU(bit_width=3, return_quant_tensor=True),
            conv(16, 16), nn.BatchNorm2d(16), QuantReLU(bit_width=3, return_quant_tensor=True),
            TruncAvgPool2d(2, 2, bit_width=3, return_quant_tensor=True),          # 8 -> 4
            conv(16, 32), nn.BatchNorm2d(32), QuantReLU(bit_width=3, return_quant_tensor=True),  # 4 -> 2
            nn.Flatten(),
            QuantLinear(32 * 4, 10, bias=True, weight_bit_width=2))

    return _seeded(53, build, float_scales=True)


def cnn_reshape_int3() -> nn.Module:
    """Signed 3-bit narrow-range activations, 3-bit per-tensor float weights, max pool, and a
    ``x.reshape(len(x), -1)`` (an ONNX Reshape, not a Flatten) between conv and linear."""
    from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear

    def act():
        return QuantIdentity(bit_width=3, narrow_range=True, return_quant_tensor=False)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = QuantIdentity(bit_width=8)
            self.features = nn.Sequential(
                QuantConv2d(1, 16, 3, bias=False, weight_bit_width=3), nn.BatchNorm2d(16), act(),
                nn.MaxPool2d(2),
                QuantConv2d(16, 16, 3, bias=False, weight_bit_width=3), nn.BatchNorm2d(16), act())
            self.fc1 = QuantLinear(16 * 9, 32, bias=False, weight_bit_width=3)
            self.bn = nn.BatchNorm1d(32)
            self.act = act()
            self.fc2 = QuantLinear(32, 10, bias=True, weight_bit_width=3)

        def forward(self, x):
            x = self.features(self.inp(x))
            x = x.reshape(x.shape[0], -1)
            return self.fc2(self.act(self.bn(self.fc1(x))))

    return _seeded(59, Net, float_scales=True)


def resnet_add() -> nn.Module:
    """A residual block: two branches re-joined by an add, both quantized by one shared QuantIdentity
    (same scale, the Brevitas recipe for adds), 4-bit weights, 4-bit activations, a QuantReLU after."""
    from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU

    class Net(nn.Module):
        def __init__(self, c=16):
            super().__init__()
            self.inp = QuantIdentity(bit_width=8, return_quant_tensor=True)
            self.stem = QuantConv2d(1, c, 3, padding=1, bias=False, weight_bit_width=4)
            self.bn0 = nn.BatchNorm2d(c)
            self.shared = QuantIdentity(bit_width=4, return_quant_tensor=True)   # both add inputs
            self.conv1 = QuantConv2d(c, c, 3, padding=1, bias=False, weight_bit_width=4)
            self.bn1 = nn.BatchNorm2d(c)
            self.relu1 = QuantReLU(bit_width=4, return_quant_tensor=True)
            self.conv2 = QuantConv2d(c, c, 3, padding=1, bias=False, weight_bit_width=4)
            self.bn2 = nn.BatchNorm2d(c)
            self.relu_out = QuantReLU(bit_width=4, return_quant_tensor=True)
            self.pool = nn.MaxPool2d(4)
            self.fc = QuantLinear(c * 9, 10, bias=True, weight_bit_width=4)

        def forward(self, x):
            x = self.shared(self.bn0(self.stem(self.inp(x))))
            y = self.shared(self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x))))))
            x = self.pool(self.relu_out(x + y))   # 12 -> 3
            return self.fc(torch.flatten(x, 1))

    return _seeded(61, Net, float_scales=True)


# --- FINN's reference networks (brevitas_examples.bnn_pynq) ---------------------------------


#: The throughput make test builds FINN's TFC and SFC for (2,000 cycles per frame at 100 MHz).
FC_TEST_FPS = 50_000.0


def _bnn_pynq(name: str) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        from brevitas_examples.bnn_pynq import models

        return _seeded(7, lambda: getattr(models, name)(pretrained=False))

    make.__name__ = name
    return make


@contextlib.contextmanager
def _narrow_cnv(channels, fc):
    # CNV reads its layer widths from module constants when it is built; narrower ones keep
    # FINN's topology (6 convs, 2 pools, 3 linear layers, TensorNorm, the 2x - 1 input) at a
    # fraction of the test time.
    from brevitas_examples.bnn_pynq.models import CNV as cnv_mod

    old = (cnv_mod.CNV_OUT_CH_POOL, cnv_mod.INTERMEDIATE_FC_FEATURES, cnv_mod.LAST_FC_IN_FEATURES)
    cnv_mod.CNV_OUT_CH_POOL = [(channels[0], False), (channels[0], True), (channels[1], False),
                               (channels[1], True), (channels[2], False), (channels[2], False)]
    cnv_mod.INTERMEDIATE_FC_FEATURES = [(channels[2], fc), (fc, fc)]
    cnv_mod.LAST_FC_IN_FEATURES = fc
    try:
        yield
    finally:
        cnv_mod.CNV_OUT_CH_POOL, cnv_mod.INTERMEDIATE_FC_FEATURES, cnv_mod.LAST_FC_IN_FEATURES = old


def cnv_small(name: str = "cnv_1w1a", channels=(16, 32, 64), fc: int = 64) -> Callable[[], nn.Module]:
    """FINN's CNV (``name``'s bit widths, 32x32x3 input) with narrower convolutions and linear layers."""
    def make() -> nn.Module:
        from brevitas_examples.bnn_pynq import models

        with _narrow_cnv(channels, fc):
            return _seeded(5, lambda: getattr(models, name)(pretrained=False))

    make.__name__ = f"{name}_small"
    return make


CORPUS: dict[str, Entry] = {e.name: e for e in [
    Entry("mlp-sign", mlp_sign, (1, 28, 28), "default 8-bit input quantizer (float scale), binary weights, "
          "BN, sign, QuantLinear bias"),
    Entry("cnn-sign", cnn_sign, (1, 12, 12), "3 binary convs, max pool, 2 linear, sign"),
    Entry("cnn-relu2", cnn_relu2, (1, 12, 12), "3 binary convs, max pool, 2 linear, 2-bit QuantReLU"),
    Entry("mlp-int8-bias", mlp_int8_bias, (1, 12, 12), "Brevitas defaults: Int8WeightPerTensorFloat (narrow) "
          "weights, float biases, Int8ActPerTensorFloat signed 8-bit activations, no BN"),
    Entry("cnn-perchannel-int4", cnn_perchannel_int4, (1, 12, 12), "4-bit weights with per-channel float scales "
          "and biases, per-channel 4-bit QuantReLU, per-tensor 4-bit signed activations, max pool"),
    Entry("cnn-xnor-alpha", cnn_xnor_alpha, (1, 12, 12), "binary weights with a per-channel scale "
          "(XNOR-Net alpha = mean |W|), sign, BN, max pool"),
    Entry("cnn-avgpool-unsigned", cnn_avgpool_unsigned, (1, 12, 12), "unsigned 8-bit input, ternary (2-bit "
          "narrow) weights, 3-bit QuantReLU, TruncAvgPool2d (default rounding truncation)"),
    Entry("cnn-reshape-int3", cnn_reshape_int3, (1, 12, 12), "signed narrow 3-bit activations, 3-bit weights, "
          "max pool, Reshape between conv and linear"),
    Entry("resnet-add", resnet_add, (1, 12, 12), "residual add of two branches sharing one QuantIdentity, "
          "4-bit weights and activations, QuantReLU after the add"),
    Entry("tfc-1w1a", _bnn_pynq("tfc_1w1a"), (1, 28, 28), "FINN TFC-1W1A: 2x - 1 input, TensorNorm",
          test_fps=FC_TEST_FPS),
    Entry("tfc-1w2a", _bnn_pynq("tfc_1w2a"), (1, 28, 28), "FINN TFC-1W2A: binary weights, 2-bit activations",
          test_fps=FC_TEST_FPS),
    Entry("tfc-2w2a", _bnn_pynq("tfc_2w2a"), (1, 28, 28), "FINN TFC-2W2A: 2-bit weights and activations",
          test_fps=FC_TEST_FPS),
    Entry("sfc-1w1a", _bnn_pynq("sfc_1w1a"), (1, 28, 28), "FINN SFC-1W1A (256 wide): binary weights and "
          "activations, 1-bit input", test_fps=FC_TEST_FPS),
    Entry("sfc-1w2a", _bnn_pynq("sfc_1w2a"), (1, 28, 28), "FINN SFC-1W2A (256 wide): binary weights, 2-bit "
          "activations", test_fps=FC_TEST_FPS),
    Entry("sfc-2w2a", _bnn_pynq("sfc_2w2a"), (1, 28, 28), "FINN SFC-2W2A (256 wide): 2-bit weights and "
          "activations", test_fps=FC_TEST_FPS),
    Entry("lfc-1w1a", _bnn_pynq("lfc_1w1a"), (1, 28, 28), "FINN LFC-1W1A (1024 wide): binary weights and "
          "activations"),
    Entry("lfc-1w2a", _bnn_pynq("lfc_1w2a"), (1, 28, 28), "FINN LFC-1W2A (1024 wide): binary weights, 2-bit "
          "activations"),
    Entry("cnv-1w1a-small", cnv_small("cnv_1w1a"), (3, 32, 32), "FINN CNV-1W1A topology, narrower"),
    Entry("cnv-1w2a-small", cnv_small("cnv_1w2a", channels=(8, 16, 32), fc=32), (3, 32, 32),
          "FINN CNV-1W2A topology, narrower (8/16/32 channels): binary weights, 2-bit activations"),
    Entry("cnv-2w2a-small", cnv_small("cnv_2w2a", channels=(8, 16, 32), fc=32), (3, 32, 32),
          "FINN CNV-2W2A topology, narrower (8/16/32 channels): 2-bit weights and activations"),
]}

#: Corpus models too slow for ``make test`` (43-93 s each on 2 shared cores, measured; the rest take
#: 6-37 s); ``make bench`` runs them (pytest marker ``bench``, deselected unless ``-m`` names it).
BENCH_ONLY = ("lfc-1w1a", "lfc-1w2a", "cnv-1w2a-small")


def export(name: str, folder: Path) -> tuple[Path, nn.Module]:
    """Export corpus model ``name`` to ``folder/<name>.onnx`` with Brevitas' QONNX export."""
    from brevitas.export import export_qonnx

    entry = CORPUS[name]
    model = entry.factory()
    path = Path(folder) / f"{name}.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    export_qonnx(model, input_t=torch.zeros(1, *entry.input_shape), export_path=str(path))
    return path, model


def reference(model: nn.Module, x: np.ndarray) -> np.ndarray:
    """The PyTorch model's output for float inputs, one frame at a time (as the ladder runs)."""
    with torch.no_grad():
        outs = []
        for i in range(len(x)):
            y = model(torch.from_numpy(x[i:i + 1]))
            outs.append((y.value if hasattr(y, "value") else y).numpy())
        return np.stack(outs).astype(np.float32)

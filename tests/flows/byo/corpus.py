"""Bring-your-own-BNN corpus: Brevitas networks the tool was not shaped for, built as a user would.

Each entry builds a ``torch.nn.Module`` with random weights and spread BatchNorm statistics
(random running mean / variance / gamma / beta, so the thresholds FINN derives are not trivial),
in eval mode. ``export(name, folder)`` writes its QONNX with ``brevitas.export.export_qonnx``,
the way a user exports their own model. FINN's reference networks (``brevitas_examples.bnn_pynq``)
are used as published where they are small enough for the test budget; CNV keeps its topology
and its 32x32 input but gets narrower layers (full-size CNV is in ``make bench``).
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


def _seeded(seed: int, build: Callable[[], nn.Module]) -> nn.Module:
    torch.manual_seed(seed)
    return spread_batchnorm(build(), seed).eval()


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


# --- FINN's reference networks (brevitas_examples.bnn_pynq) ---------------------------------


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
    Entry("tfc-1w1a", _bnn_pynq("tfc_1w1a"), (1, 28, 28), "FINN TFC-1W1A: 2x - 1 input, TensorNorm"),
    Entry("tfc-2w2a", _bnn_pynq("tfc_2w2a"), (1, 28, 28), "FINN TFC-2W2A: 2-bit weights and activations"),
    Entry("cnv-1w1a-small", cnv_small("cnv_1w1a"), (3, 32, 32), "FINN CNV-1W1A topology, narrower"),
]}


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

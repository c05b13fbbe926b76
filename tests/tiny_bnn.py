"""The tiny BNN (2x6x6 input: binary conv, BN, sign, max pool, binary FC) that hardware tests build in seconds."""
from __future__ import annotations

import json
from pathlib import Path


def export_tiny(folder: Path, folding: dict) -> tuple[Path, Path]:
    """Export the tiny BNN with Brevitas into ``folder`` and write ``folding`` beside it; returns both paths."""
    import torch
    import torch.nn as nn
    from brevitas.export import export_qonnx

    from bnn2fpga.quantize import layers

    torch.manual_seed(0)
    model = nn.Sequential(layers.pixel_input(), layers.binary_conv(2, 8, 3), nn.BatchNorm2d(8), layers.binary_act(),
                          nn.MaxPool2d(2), nn.Flatten(), layers.binary_linear(2 * 2 * 8, 4))
    with torch.no_grad():  # thresholds inside the range of 3x3x2 pixel sums
        model[2].running_mean.uniform_(-300, 300)
        model[2].running_var.uniform_(1e3, 1e4)
    model.eval()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tiny.onnx"
    export_qonnx(model, input_t=torch.zeros(1, 2, 6, 6), export_path=str(path))
    (folder / "tiny_folding.json").write_text(json.dumps(folding))
    return path, folder / "tiny_folding.json"

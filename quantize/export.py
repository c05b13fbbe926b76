"""QONNX export of a zoo model plus the JSON sidecar the flow and the board read."""
from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path, PurePath

import torch
import torch.nn as nn

from bnn2fpga.errors import UserError
from bnn2fpga.quantize.registry import ModelSpec, create_model, get_spec

SIDECAR_SUFFIX = ".json"


class ExportError(UserError):
    """Export failed in a way the user can fix (message is one line)."""


@dataclass(frozen=True)
class Exported:
    """Where an export landed."""

    onnx: Path
    sidecar: Path


def head_affine(model: nn.Module) -> dict | None:
    """The host-side head (a BatchNorm1d in eval mode, or any module with ``affine()``)
    as per-class scale and bias lists."""
    head = getattr(model, "head", None)
    if head is None:
        return None
    # BatchNorm has a bool attribute called `affine`, so look for a method, not the name.
    if callable(getattr(head, "affine", None)):
        return head.affine()
    scale = (head.weight / torch.sqrt(head.running_var + head.eps)).detach()
    bias = (head.bias - head.running_mean * scale).detach()
    return {"scale": scale.tolist(), "bias": bias.tolist()}


def accelerator_part(model: nn.Module) -> nn.Module:
    """The module that becomes hardware: ``body`` when the model has a host head."""
    return getattr(model, "body", model)


def calibrate_untrained(model: nn.Module, spec: ModelSpec, seed: int = 0, batches: int = 4) -> None:
    """Give an untrained model realistic BatchNorm statistics from random pixels.

    Freshly initialised BNs (mean 0, var 1) make every threshold trivial, which would
    hide mapping errors; a few training-mode passes make them data-like instead.
    """
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batches
    model.train()
    with torch.no_grad():
        for _ in range(batches):
            x = torch.randint(0, 256, (32, *spec.input_shape), generator=gen).float()
            model(x)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = 0.1
            # Means of integer accumulators over a few batches are often exact
            # integers, which puts a sign threshold exactly on an integer input, where
            # float32 rounding decides the bit. Trained statistics are not like that;
            # an offset strictly between integers keeps the calibrated model realistic.
            offset = torch.rand(m.running_mean.shape, generator=gen) * 0.8 + 0.1
            m.running_mean.add_(offset)
    model.eval()


def load_for_export(name: str, ckpt: Path | None) -> tuple[nn.Module, dict]:
    """The model in eval mode with its checkpoint's weights (or calibrated random ones)."""
    spec = get_spec(name)
    if ckpt is None:
        # Seeded, so every call (export, the PyTorch reference) builds the same weights.
        with torch.random.fork_rng():
            torch.manual_seed(0)
            model = create_model(spec.name)
            calibrate_untrained(model, spec)
        return model, {"trained": False}
    from bnn2fpga.quantize.train import load_checkpoint

    model, meta = load_checkpoint(ckpt)
    if meta.get("model") != spec.name:
        raise ExportError(f"checkpoint {ckpt} holds model '{meta.get('model')}', not '{spec.name}'")
    model.eval()
    return model, {"trained": True, **{k: meta.get(k) for k in ("best_val_acc", "test_acc", "dataset", "epoch")}}


def _own_sidecar(path: Path) -> dict | None:
    """The sidecar an earlier export wrote at ``path``, or None (absent, or someone else's file)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("format") == "qonnx" and "model" in data else None


def export_qonnx(model: nn.Module, spec: ModelSpec, out: Path, info: dict | None = None) -> Exported:
    """Export ``model`` (eval mode) to ``out`` (.onnx) and write the sidecar next to it.

    Files are written in a temp folder and moved into place at the end, so a failed
    export never leaves a file that looks complete.
    """
    out = Path(out)
    if out.suffix != ".onnx":
        raise ExportError(f"output must end in .onnx: {out}")
    sidecar_path = out.with_suffix(SIDECAR_SUFFIX)
    for target in (out, sidecar_path):
        # Moving a file onto a directory would put it inside, not at the path reported.
        if target.is_dir():
            raise ExportError(f"{target}: is a directory; give a file path for the export")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ExportError(f"{out.parent}: cannot create the output folder ({e.strerror or e})") from None
    brevitas_export_qonnx = _brevitas_exporter()
    model.eval()
    if hasattr(model, "set_deploy_order"):
        model.set_deploy_order(True)
    example = torch.zeros(1, *spec.input_shape)
    with torch.no_grad():
        model(example)  # refreshes buffers derived from weights before tracing
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp, _quiet_torch_export():
        tmp_onnx = Path(tmp) / out.name
        brevitas_export_qonnx(accelerator_part(model), input_t=example, export_path=str(tmp_onnx))
        _drop_unreferenced_files(tmp_onnx)
        sidecar = {
            "format": "qonnx",
            "model": spec.name,
            "input_shape": [1, *spec.input_shape],
            "input_dtype": spec.input_dtype,
            "input_layout": "NCHW",
            "class_names": list(spec.class_names),
            "preprocessing": spec.preprocessing.to_dict(),
            "head": head_affine(model),
            "onnx_files": sorted(p.name for p in Path(tmp).iterdir()),
            **(info or {}),
        }
        (Path(tmp) / sidecar_path.name).write_text(json.dumps(sidecar, indent=2))
        written = sorted(Path(tmp).iterdir())
        for f in written:
            if (out.parent / f.name).is_dir():
                raise ExportError(f"{out.parent / f.name}: is a directory; cannot write the export's file there")
        previous = _own_sidecar(sidecar_path)
        if sidecar_path.exists() and previous is None:
            raise ExportError(f"{sidecar_path} exists and is not a sidecar of an earlier export; "
                              "refusing to overwrite it (choose another --out)")
        stale = out.with_name(out.name + ".data")
        # Only the external data an earlier export of this path wrote (its sidecar lists it).
        if previous and stale.name in previous.get("onnx_files", []) and stale.name not in sidecar["onnx_files"]:
            stale.unlink(missing_ok=True)
        for f in written:
            shutil.move(str(f), out.parent / f.name)
    return Exported(onnx=out, sidecar=sidecar_path)


# Warnings brevitas emits while importing its exporter, each harmless here:
# - brevitas.graph imports brevitas' own deprecated brevitas.fx module (its internals,
#   not a call of ours);
# - brevitas.graph.equalize looks for the optional CUDA kernel package
#   fast_hadamard_transform, used only by Hadamard-rotation equalization, which an
#   export never runs.
_HARMLESS_BREVITAS_WARNINGS = (
    (DeprecationWarning, r"brevitas\.fx is deprecated"),
    (UserWarning, r"fast_hadamard_transform package not found"),
)


def _brevitas_exporter():
    """brevitas' QONNX export function, imported without its known-harmless warnings."""
    with warnings.catch_warnings():
        for category, message in _HARMLESS_BREVITAS_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=category)
        from brevitas.export import export_qonnx

    return export_qonnx


def external_data_files(onnx_path: Path) -> set[str]:
    """Locations (relative to the file's folder) of the external data the ONNX file's tensors use."""
    import onnx
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    model = onnx.load(str(onnx_path), load_external_data=False)
    tensors: list = []
    graphs = [model.graph]
    nodes = [n for f in model.functions for n in f.node]
    while graphs or nodes:
        if graphs:
            g = graphs.pop()
            tensors += list(g.initializer)
            tensors += [t for sp in g.sparse_initializer for t in (sp.values, sp.indices)]
            nodes += list(g.node)
        for node in nodes:
            # Constants and subgraphs (If, Loop, Scan) hold tensors in attributes.
            for attr in node.attribute:
                tensors += ([attr.t] if attr.HasField("t") else []) + list(attr.tensors)
                graphs += ([attr.g] if attr.HasField("g") else []) + list(attr.graphs)
        nodes = []
    return {ExternalDataInfo(t).location for t in tensors if uses_external_data(t)}


def _drop_unreferenced_files(onnx_path: Path) -> None:
    """Delete what the exporter left next to ``onnx_path`` that the ONNX file does not use.

    torch writes the weights to ``<name>.onnx.data`` and brevitas re-saves the model
    with them embedded, leaving that file behind unused; a file the model does point to
    is kept, since loading it needs it.
    """
    keep = {onnx_path.name} | {PurePath(loc).parts[0] for loc in external_data_files(onnx_path) if loc}
    for f in onnx_path.parent.iterdir():
        if f.name in keep:
            continue
        if f.is_dir():
            shutil.rmtree(f)
        else:
            f.unlink()


@contextlib.contextmanager
def _quiet_torch_export():
    # torch's exporter warns about every torchvision op it cannot register; we use none.
    # Its progress lines ("[torch.onnx] ...") are printed; the CLI shows its own.
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


def export_model(name: str, out: Path, ckpt: Path | None = None) -> Exported:
    """Export a registered model (from a checkpoint, or calibrated random weights)."""
    spec = get_spec(name)
    model, info = load_for_export(spec.name, ckpt)
    return export_qonnx(model, spec, out, info)

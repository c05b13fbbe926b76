"""The board's deployment package: ``<build>/deploy/`` and, after a Vivado build, ``deploy.zip``.

``write_deploy`` (the Vivado-free ``package`` step) writes the I/O spec, the driver,
the class names and a README; ``add_bitstream`` (end of the Vivado ``driver`` step)
adds FINN's bitstream and hardware handoff, records the bitstream's sha256 and zips it.
The I/O spec is read from the dataflow model itself, so it describes exactly the
accelerator that FINN builds from that model.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from bnn2fpga.flows import ops
from bnn2fpga.hw.rtlgen.shell import DEFAULT_BAUD
from bnn2fpga.errors import UserError

FORMAT = "bnn2fpga-io/1"
DEPLOY_DIR = "deploy"
ZIP_NAME = "deploy.zip"
SPEC_FILE = "io_spec.json"
DRIVER_PACKAGE = "bnn2fpga_driver"
ROOT = Path(__file__).resolve().parent.parent
DRIVER_SRC = ROOT / "hw" / "driver"
# numpy-only modules that training and the board share byte for byte.
SHARED_MODULES = ("preprocess.py", "input_quant.py", "postprocess.py")
# FINN's vivado_zynq shell names its DMA engines by position.
DEFAULT_DMA = {"input": "idma0", "output": "odma0"}
_RESHAPE_OPS = ("Reshape", "Flatten", "Squeeze", "Unsqueeze")


def assemble_driver(dest: Path) -> Path:
    """Copy the board driver (hw/driver) and the shared numpy modules into ``dest/bnn2fpga_driver``."""
    pkg = Path(dest) / DRIVER_PACKAGE
    pkg.mkdir(parents=True, exist_ok=True)
    for f in sorted(DRIVER_SRC.glob("*.py")):
        shutil.copyfile(f, pkg / f.name)
    for name in SHARED_MODULES:
        shutil.copyfile(ROOT / "quantize" / name, pkg / name)
    return pkg


def _host_op(model, node) -> dict:
    from qonnx.util.basic import get_by_name

    op = {"op": node.op_type, "shape": list(model.get_tensor_shape(node.output[0]) or [])}
    if node.op_type == "Transpose":
        perm = get_by_name(node.attribute, "perm")
        op["perm"] = list(perm.ints) if perm is not None else None
    elif node.op_type in ("Mul", "Add", "Sub", "Div"):
        # The float head (a scale, a bias, a last BatchNorm's affine): the board applies it in float32.
        const = model.get_initializer(node.input[1])
        if const is None:
            raise UserError(f"node '{node.name}' ({node.op_type}) outside the accelerator has two data inputs; "
                            "the board driver applies ops by a constant only")
        op["value"] = [float(v) for v in np.asarray(const, dtype=np.float32).reshape(-1)]
        op["value_shape"] = [int(d) for d in np.shape(const)]
    elif node.op_type in ("TopK", "ArgMax"):
        axis = get_by_name(node.attribute, "axis")
        op["axis"] = int(axis.i) if axis is not None else -1
        k = model.get_initializer(node.input[1]) if node.op_type == "TopK" else None
        op["k"] = int(np.asarray(k).reshape(-1)[0]) if k is not None else 1
    return op


def host_ops(parent_path: Path) -> tuple[list[dict], list[dict], list[int]]:
    """Host ops before and after the accelerator, and the network's input shape, from dataflow_parent.onnx."""
    from qonnx.core.modelwrapper import ModelWrapper

    if not parent_path.exists():
        raise UserError(f"{parent_path} is missing; re-run the build from 'dataflow_partition'")
    parent = ModelWrapper(str(parent_path))
    nodes = list(parent.graph.node)
    sdp = [i for i, n in enumerate(nodes) if n.op_type == "StreamingDataflowPartition"]
    if len(sdp) != 1:
        raise UserError(f"{parent_path}: the board driver supports one accelerator partition, found {len(sdp)}")
    before = [_host_op(parent, n) for n in nodes[: sdp[0]]]
    after = [_host_op(parent, n) for n in nodes[sdp[0] + 1:]]
    return before, after, list(parent.get_tensor_shape(parent.graph.input[0].name))


def _side(model, tensor: str, node, is_input: bool) -> dict:
    from qonnx.custom_op.registry import getCustomOp
    from qonnx.util.basic import gen_finn_dt_tensor

    from finn.util.data_packing import finnpy_to_packed_bytearray

    inst = getCustomOp(node)
    dt = model.get_tensor_datatype(tensor)
    side = "input" if is_input else "output"
    try:
        node_dt = inst.get_input_datatype() if is_input else inst.get_output_datatype()
        normal = inst.get_normal_input_shape() if is_input else inst.get_normal_output_shape()
        folded = inst.get_folded_input_shape() if is_input else inst.get_folded_output_shape()
    except Exception as e:  # noqa: BLE001 - FINN asserts on foldings it cannot stream
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"node '{node.name}' ({node.op_type}): FINN cannot give the shape of its {side} stream "
                        f"({why}), so the accelerator's DMA layout is undefined") from None
    if dt != node_dt:
        raise UserError(f"tensor '{tensor}' is {dt.name} but node '{node.name}' uses {node_dt.name}")
    # The packed shape as FINN's own driver generator computes it, from a dummy tensor.
    packed = finnpy_to_packed_bytearray(gen_finn_dt_tensor(dt, folded), dt, reverse_inner=True,
                                        reverse_endian=True).shape
    return {"shape": [int(d) for d in normal], "folded_shape": [int(d) for d in folded],
            "packed_shape": [int(d) for d in packed], "datatype": dt.name, "bits": int(dt.bitwidth())}


def refuse_runtime_weights(model) -> None:
    """Refuse a design whose weights FINN expects the driver to write after programming."""
    # A folding file can set this FINN attribute on MVAU / Thresholding nodes; FINN's
    # driver then writes the weights from runtime_weights/, which the board driver does not.
    nodes = [n.name for n in model.graph.node
             if any(a.name == "runtime_writeable_weights" and a.i for a in n.attribute)]
    if nodes:
        raise UserError(f"node(s) {', '.join(nodes)} have runtime-writeable weights "
                        "(runtime_writeable_weights=1); the board driver does not load weights at run time, "
                        "so set it to 0 (e.g. in the folding file)")


def io_spec(model, ctx) -> dict:
    """The I/O spec of the dataflow model ``model`` (the build's folded, bit-width-minimized model)."""
    ops.prepare()
    refuse_runtime_weights(model)
    graph = model.graph
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise UserError(f"the board driver supports one input and one output; the accelerator has "
                        f"{len(graph.input)} and {len(graph.output)}")
    first, last = graph.node[0], graph.node[-1]
    before, after, host_shape = host_ops(ctx.out_dir / "dataflow_parent.onnx")
    names_before = [o["op"] for o in before]
    recorded = ctx.info.get("host_pre_graph", ctx.info.get("host_pre"))
    if recorded is not None and names_before != list(recorded):
        raise UserError(f"dataflow_parent.onnx has host ops {names_before}, the build recorded {recorded}")
    inp = _side(model, graph.input[0].name, first, True)
    out = _side(model, graph.output[0].name, last, False)
    sidecar = ctx.info.get("sidecar") or {}
    n_classes = int(np.prod(after[-1]["shape"][1:] if after and after[-1]["shape"] else out["shape"][1:]))
    board = ctx.cfg.board
    return {
        "format": FORMAT,
        "model": ctx.info.get("model") or ctx.cfg.source.label,
        "board": board.name, "part": board.part, "finn_board": board.finn_board, "arch": board.arch,
        "clock_mhz": board.clock_mhz,
        "input": {"host_shape": host_shape, "layout": "NCHW", "float_ops": list(ctx.info.get("input_float_ops") or []),
                  "quant": ctx.info.get("input_quant"), "host_ops": before, **inp},
        "output": {**out, "host_ops": after},
        "head": sidecar.get("head"),
        "class_names": list(sidecar.get("class_names") or [str(i) for i in range(n_classes)]),
        "preprocessing": sidecar.get("preprocessing"),
        # How the host reaches the accelerator: PYNQ's DMA engines, or the ECP5 shell's UART.
        "link": {"kind": "serial", "baud": DEFAULT_BAUD} if board.is_ecp5 else {"kind": "axi-dma"},
        "dma": dict(DEFAULT_DMA),
        "dataflow_sha256": dataflow_digest(model),
        "estimate": _estimate(ctx.out_dir),
        "bitfile": None,
    }


def dataflow_digest(model) -> str:
    """sha256 of the serialized dataflow model: ties a package to the build it describes."""
    return hashlib.sha256(model.model.SerializeToString()).hexdigest()


def _estimate(out_dir: Path) -> dict | None:
    from bnn2fpga.flows.report import load_report

    try:
        perf = load_report(out_dir, missing_ok=True).get("performance") or {}
    except UserError:
        return None
    return {"fps": perf.get("fps"), "latency_ms": perf.get("latency_ms")}


def board_readme(spec: dict) -> str:
    """The package's README.md: what it is and how to run it on the board."""
    n = len(spec["class_names"])
    est = spec.get("estimate") or {}
    fps = f", estimated {est['fps']:,.0f} images/s at {spec['clock_mhz']:g} MHz" if est.get("fps") else ""
    return f"""# {spec['model']} on {spec['board']}

A FINN accelerator for `{spec['model']}` ({n} classes) on the {spec['board']} (part `{spec['part']}`){fps}.
Built by bnn2fpga. `io_spec.json` describes its input and output; `class_names.txt` lists the classes
(line *i* is class *i*). The bitstream (`*.bit` + `*.hwh`) is added by a Vivado build; while
`io_spec.json` says `"bitfile": null` the package can only run simulated, off the board.

## Copy it to the board (PYNQ 3.x image)

```bash
scp deploy.zip xilinx@<board>:~ && ssh xilinx@<board>
unzip -o deploy.zip && cd deploy
sudo -i   # PYNQ needs root; the login shell activates PYNQ's Python environment
cd /home/xilinx/deploy
```

## Run

```bash
python3 -m bnn2fpga_driver classify photo.jpg more_images/ [--batch 16]   # label, score, FPS
python3 -m bnn2fpga_driver classify --camera 0 [--frames 100]              # USB camera (needs OpenCV)
python3 -m bnn2fpga_driver validate labeled/ [--csv confusion.csv]         # one sub-folder per class
python3 -m bnn2fpga_driver benchmark [--n 1000] [--batch 100]              # images/s and latency
```

Options for every command: `--package DIR` (default: this folder), `--board NAME` (refuse to run if
the package is for another board), `--debug` (tracebacks). The driver checks that the bitstream's
sha256 and part match `io_spec.json` and that `$BOARD` names this board. Images are preprocessed by
the same code as in training (`bnn2fpga_driver/preprocess.py`).

## Off the board

From the bnn2fpga checkout that built it, the same commands run against a simulation of the
accelerator (FINN executing the same dataflow model):

```bash
PYTHONPATH=build/<name>/deploy .venv/bin/python -m bnn2fpga_driver classify img.png --simulate build/<name>
```
"""


def write_deploy(model, ctx) -> Path:
    """Write ``<out_dir>/deploy``: io_spec.json, bnn2fpga_driver/, class_names.txt, README.md."""
    spec = io_spec(model, ctx)
    dest = ctx.out_dir / DEPLOY_DIR
    with tempfile.TemporaryDirectory(dir=ctx.out_dir) as tmp:
        staging = Path(tmp) / DEPLOY_DIR
        staging.mkdir()
        assemble_driver(staging)
        (staging / SPEC_FILE).write_text(json.dumps(spec, indent=2))
        (staging / "class_names.txt").write_text("".join(f"{n}\n" for n in spec["class_names"]), encoding="utf-8")
        (staging / "README.md").write_text(board_readme(spec), encoding="utf-8")
        # A zip from an earlier build would hold a bitstream of another design.
        remove_deploy(ctx.out_dir)
        shutil.move(str(staging), dest)
    return dest


def remove_deploy(out_dir: Path) -> None:
    """Delete deploy/ and deploy.zip, so no package of an earlier design is left behind."""
    shutil.rmtree(Path(out_dir) / DEPLOY_DIR, ignore_errors=True)
    (Path(out_dir) / ZIP_NAME).unlink(missing_ok=True)


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file (the board-side driver recomputes it the same way)."""
    from bnn2fpga.flows.config import file_digest

    return file_digest(path)


def _finn_dt(name: str) -> str:
    m = re.search(r"DataType\[['\"](\w+)['\"]\]", str(name))
    return m.group(1) if m else str(name)


def check_finn_settings(spec: dict, settings_path: Path) -> dict:
    """Compare io_spec with FINN's own driver settings (when present); return FINN's DMA names."""
    if not settings_path.exists():
        return dict(spec.get("dma") or DEFAULT_DMA)
    try:
        info = json.loads(settings_path.read_text())["driver_information"]
        shapes = info["io_shape_dict"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"{settings_path}: cannot read FINN's driver settings ({e})") from None
    # Weights FINN's driver would write after programming (runtime-writeable layers, DRAM
    # weights, MLO weights in DDR): the board driver writes none, so the design would run
    # without them.
    needs = [what for what, flag in (("runtime-writeable weights", info.get("runtime_weights")),
                                     ("external (DRAM) weights", info.get("external_weights")),
                                     ("MLO weights in DDR", shapes.get("mlo_weight_config")))
             if flag]
    if needs:
        raise UserError(f"FINN's driver settings ({settings_path}) say the design needs {' and '.join(needs)} "
                        "loaded at run time; the board driver does not load weights, so the bitstream is "
                        "not packaged")
    checks = [("input datatype", _finn_dt(shapes["idt"][0]), spec["input"]["datatype"]),
              ("output datatype", _finn_dt(shapes["odt"][0]), spec["output"]["datatype"])]
    for side, key in (("input", "ishape"), ("output", "oshape")):
        for kind in ("normal", "folded", "packed"):
            ours = spec[side]["shape" if kind == "normal" else f"{kind}_shape"]
            checks.append((f"{side} {kind} shape", list(shapes[f"{key}_{kind}"][0])[1:], list(ours)[1:]))
    for what, finn, ours in checks:
        if finn != ours:
            raise UserError(f"FINN's driver settings ({settings_path}) and {SPEC_FILE} disagree on the {what}: "
                            f"{finn} != {ours}")
    return {"input": shapes["idma_names"][0], "output": shapes["odma_names"][0]}


def add_bitstream(out_dir: Path, finn_output_dir: Path) -> Path:
    """Put FINN's bitstream and .hwh into deploy/, record its sha256 in io_spec.json, zip deploy/."""
    deploy = Path(out_dir) / DEPLOY_DIR
    spec_path = deploy / SPEC_FILE
    if not spec_path.exists():
        raise UserError(f"{spec_path} is missing; re-run the build from the 'package' step")
    bitdir = Path(finn_output_dir) / "bitfile"
    bits = sorted(bitdir.glob("*.bit"))
    if len(bits) != 1:
        raise UserError(f"expected one bitstream in {bitdir}, found {len(bits)}")
    bit, hwh = bits[0], bits[0].with_suffix(".hwh")
    if not hwh.exists():
        raise UserError(f"{hwh} is missing next to the bitstream (PYNQ needs it)")
    spec = json.loads(spec_path.read_text())
    spec["dma"] = check_finn_settings(spec, Path(finn_output_dir) / "driver" / "settings.json")
    for f in (bit, hwh):
        shutil.copyfile(f, deploy / f.name)
    spec["bitfile"] = {"file": bit.name, "hwh": hwh.name, "sha256": sha256_of(deploy / bit.name)}
    spec_path.write_text(json.dumps(spec, indent=2))
    return zip_deploy(Path(out_dir))


def zip_deploy(out_dir: Path) -> Path:
    """Zip ``deploy/`` to ``deploy.zip`` (entries under ``deploy/``), replacing any older zip."""
    deploy, dest = out_dir / DEPLOY_DIR, out_dir / ZIP_NAME
    tmp = dest.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(deploy.rglob("*")):
            if f.is_file() and "__pycache__" not in f.parts:
                z.write(f, Path(DEPLOY_DIR) / f.relative_to(deploy))
    tmp.replace(dest)
    return dest

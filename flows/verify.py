"""The cosim harness: the same inputs through every stage, compared bit for bit.

Stages: Brevitas (reference) -> QONNX -> FINN-ONNX -> tidy -> streamlined -> hardware
layers -> dataflow partition -> specialized -> folded -> rtlsim (Verilator: the folded
graph as our RTL), then HLS cppsim and stitched-IP rtlsim where their tools exist. A
stage whose tools are absent is "not run", never "passed". Outputs are the accelerator's integer outputs, so equality is exact.
"""
from __future__ import annotations

import copy
import json
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from bnn2fpga.flows import ops
from bnn2fpga.flows.compare import StageResult, compare

from bnn2fpga.hw import finn_env
from bnn2fpga.flows.runner import BuildResult, model_file

# (stage label, build step whose saved model it executes, executes inside the parent graph)
ONNX_STAGES = [
    ("qonnx", "export", False),
    ("finn-onnx", "qonnx_to_finn", False),
    ("tidy", "tidy_up", False),
    ("streamlined", "streamline", False),
    ("hw layers", "convert_to_hw", False),
    ("dataflow partition", "dataflow_partition", True),
    ("specialized", "specialize_layers", True),
    ("folded", "minimize_bit_width", True),
]


@dataclass
class Verdict:
    """Verdict of the whole ladder."""

    inputs: int
    stages: list[StageResult] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        """'mismatch' if any stage differs, else 'bit-exact' if any stage ran."""
        if any(s.status == "mismatch" for s in self.stages):
            return "mismatch"
        return "bit-exact" if any(s.status == "bit-exact" for s in self.stages) else "not run"

    def to_dict(self) -> dict:
        """JSON-friendly form (the report's 'verification' section)."""
        return {"inputs": self.inputs, "verdict": self.verdict, "stages": [asdict(s) for s in self.stages]}


@dataclass
class InputSet:
    """Verification inputs: float values as a user would feed them, and their origin."""

    x: np.ndarray  # (N, C, H, W) float32
    kinds: list[str]


def make_inputs(shape: tuple[int, ...], n: int, input_quant: dict | None, real: np.ndarray | None,
                seed: int = 0) -> InputSet:
    """n random inputs, n real ones (when given) and n inputs exactly on rounding ties."""
    rng = np.random.default_rng(seed)
    q = input_quant or {"scale": 1.0, "zero_point": 0.0, "bits": 8, "signed": False, "narrow": False}
    lo = -(2 ** (q["bits"] - 1)) if q["signed"] else 0
    hi = (2 ** (q["bits"] - 1) - 1) if q["signed"] else 2 ** q["bits"] - 1
    ints = rng.integers(lo, hi + 1, size=(n, *shape)).astype(np.float32)
    rand = (ints - q["zero_point"]) * q["scale"]
    # Ties: halfway between two integer codes, where half-up and half-even disagree.
    tie_ints = rng.integers(lo, hi, size=(n, *shape)).astype(np.float32) + 0.5
    ties = (tie_ints - q["zero_point"]) * q["scale"]
    parts, kinds = [rand.astype(np.float32)], ["random"] * n
    if real is not None and len(real):
        parts.append(real[:n].astype(np.float32))
        kinds += ["real"] * min(n, len(real))
    parts.append(ties.astype(np.float32))
    kinds += ["tie"] * n
    return InputSet(x=np.concatenate(parts), kinds=kinds)


def _execute(model, x: np.ndarray, full: bool = False):
    from qonnx.core.onnx_exec import execute_onnx

    iname, oname = model.graph.input[0].name, model.graph.output[0].name
    ctx = execute_onnx(model, {iname: x}, return_full_exec_context=full)
    return ctx if full else ctx[oname]


def _run_chunk(path: str, xs: np.ndarray) -> np.ndarray:
    from qonnx.core.modelwrapper import ModelWrapper

    ops.prepare()
    with finn_env.exact_execution():
        model = ModelWrapper(path)
        return np.stack([np.asarray(_execute(model, xs[i: i + 1]), dtype=np.float32) for i in range(len(xs))])


def _run_stage(path: Path, xs: np.ndarray, workers: int) -> np.ndarray:
    # FINN's python execution runs one frame at a time (its HW ops assume batch 1), so
    # the frames are spread over processes instead.
    if workers <= 1 or len(xs) < 2 * workers:
        return _run_chunk(str(path), xs)
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    chunks = np.array_split(xs, workers)
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as pool:
        return np.concatenate(list(pool.map(_run_chunk, [str(path)] * workers, chunks)))


def default_workers() -> int:
    """Processes for the ladder: one per core, at most four."""
    import os

    return max(1, min(4, len(os.sched_getaffinity(0))))


def _first_diverging_node(prev, cur, x: np.ndarray) -> str:
    # Tensor names survive most FINN transformations, so the first node of the current
    # graph whose output differs from the same-named tensor of the last good stage is
    # where the divergence starts.
    try:
        a, b = _execute(prev, x, full=True), _execute(cur, x, full=True)
    except Exception:  # noqa: BLE001 - diagnosis is best effort
        return "?"
    for node in cur.graph.node:
        for t in node.output:
            if t in a and t in b and np.shape(a[t]) == np.shape(b[t]) and not np.array_equal(a[t], b[t]):
                return f"{node.name} ({node.op_type})"
    return "(no common intermediate tensor differs; see the stage output)"


def _parent_with(build: BuildResult, child: Path, tmp: Path):
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp

    from bnn2fpga.flows.transforms.despecialize import DespecializeForPython

    # Specialized layers execute only in cppsim/rtlsim; a python-executable copy stands in.
    runnable = tmp / f"python_{child.name}"
    ModelWrapper(str(child)).transform(DespecializeForPython()).save(str(runnable))
    parent = ModelWrapper(str(build.out_dir / "dataflow_parent.onnx"))
    for node in parent.get_nodes_by_op_type("StreamingDataflowPartition"):
        getCustomOp(node).set_nodeattr("model", str(runnable))
    path = tmp / f"parent_{child.name}"
    parent.save(str(path))
    return path


def verify_build(build: BuildResult, inputs: InputSet, reference: np.ndarray | None,
                 log: Callable[[str], None] = print, workers: int | None = None) -> Verdict:
    """Run the stage ladder of a finished (Vivado-free) build and compare every stage."""
    ops.prepare()
    from qonnx.core.modelwrapper import ModelWrapper

    from bnn2fpga.quantize.input_quant import InputQuantSpec

    workers = default_workers() if workers is None else workers
    iq = build.info.get("input_quant")
    host_x = InputQuantSpec(**iq).quantize(inputs.x) if iq else inputs.x
    verdict = Verdict(inputs=len(inputs.x))
    ref = reference
    if ref is not None:
        verdict.stages.append(StageResult("brevitas", "reference", "PyTorch/Brevitas model", len(ref), len(ref)))
    prev_model, prev_x = None, None
    with tempfile.TemporaryDirectory() as tmp, finn_env.exact_execution():
        for label, step, in_parent in ONNX_STAGES:
            path = model_file(build.out_dir, step)
            if not path.exists():
                verdict.stages.append(StageResult(label, "not run", f"build stopped before '{step}'"))
                continue
            if in_parent:
                path = _parent_with(build, path, Path(tmp))
            model = ModelWrapper(str(path))
            # The exported QONNX still has the input quantizer; later stages take host-quantized integers.
            xs = inputs.x if step == "export" else host_x
            log(f"verify: {label} ({len(xs)} inputs)")
            out = _run_stage(path, xs, workers)
            if ref is None:
                ref = out
                verdict.stages.append(StageResult(label, "reference", "no PyTorch model; QONNX is the reference",
                                                  len(out), len(out)))
                prev_model, prev_x = model, xs
                continue
            res = compare(label, ref, out, inputs.kinds)
            if res.status == "mismatch" and prev_model is not None and prev_x is xs:
                i = int(res.detail.split("input ")[1].split(" ")[0])
                res.detail += f"; first diverging node: {_first_diverging_node(prev_model, model, xs[i:i + 1])}"
            verdict.stages.append(res)
            prev_model, prev_x = model, xs
        # The folded dataflow graph as our stitched RTL under Verilator (hw/sim/ladder.py).
        from bnn2fpga.flows.rtlsim_stage import rtlsim_stage

        verdict.stages.append(rtlsim_stage(build, host_x, ref, inputs.kinds, log))
    verdict.stages += tool_stages()
    return verdict


def tool_stages() -> list[StageResult]:
    """Stages that need Xilinx tools or finn-hlslib: reported as not run when those are absent."""
    tools = finn_env.detect_tools()
    out = []
    missing = tools.missing_for(("hlslib", "vitis_hls"))
    out.append(StageResult("hls cppsim", "not run",
                           f"needs {' and '.join(missing)} (present in the Docker image)" if missing
                           else "run it with 'make docker-bitstream' (cppsim in the image)"))
    missing = tools.missing_for(("vivado",))
    out.append(StageResult("stitched-ip rtlsim", "not run",
                           f"needs {' and '.join(missing)} (mount it into the Docker image)" if missing
                           else "runs as part of the Vivado build"))
    return out


def brevitas_reference(model_name: str, ckpt: Path | None, x: np.ndarray) -> np.ndarray:
    """The zoo model's accelerator output (integers) for float inputs, in PyTorch."""
    import torch

    from bnn2fpga.quantize.export import accelerator_part, load_for_export

    model, _ = load_for_export(model_name, ckpt)
    if hasattr(model, "set_deploy_order"):
        model.set_deploy_order(True)
    body = accelerator_part(copy.deepcopy(model)).eval()
    with torch.no_grad():
        return np.stack([body(torch.from_numpy(x[i: i + 1])).numpy() for i in range(len(x))]).astype(np.float32)


def save_verdict(out_dir: Path, verdict: Verdict) -> Path:
    """Write verify.json next to the report."""
    path = Path(out_dir) / "report" / "verify.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(verdict.to_dict(), indent=2))
    return path

"""The cosim harness: the same inputs through every stage, compared bit for bit.

Stages: Brevitas (reference) -> QONNX -> FINN-ONNX -> tidy -> streamlined -> hardware
layers -> dataflow partition -> specialized -> folded -> rtlsim (Verilator: the folded
graph as our RTL), then HLS cppsim and stitched-IP rtlsim where their tools exist. A
stage whose tools are absent is "not run", never "passed". Every stage runs the whole network
(host pre-processing and quantizer, accelerator, host head) on the same float inputs. Where the
network ends in integers, equality is exact; where it ends in a float host head, outputs are
compared in the accelerator's integer units (``HeadCodes``), which is exact for the accelerator.
"""
from __future__ import annotations

import logging
import copy
import json
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from bnn2fpga.boards import get_board
from bnn2fpga.flows import build_dir, ecp5, ops
from bnn2fpga.flows.compare import StageResult, compare
from bnn2fpga.flows.runner import BuildResult, model_file
from bnn2fpga.flows.steps import ladder_stages
from bnn2fpga.hw import finn_env

logger = logging.getLogger(__name__)



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


def _invert_float_ops(ops, y: np.ndarray) -> np.ndarray:
    # The float input that the host's pre-processing (e.g. 2x - 1) maps to y, in float64.
    x = np.asarray(y, dtype=np.float64)
    for op in reversed(ops or []):
        v = op.get("value")
        x = {"Mul": lambda a: a / v, "Div": lambda a: a * v, "Add": lambda a: a - v, "Sub": lambda a: a + v,
             "Sign": lambda a: a}[op["op"]](x)
    return x


def make_inputs(shape: tuple[int, ...], n: int, input_quant: dict | None, real: np.ndarray | None,
                seed: int = 0, float_ops: list[dict] | None = None, value_range: tuple[float, float] | None = None
                ) -> InputSet:
    """n random inputs, n real ones (when given) and n inputs exactly on rounding ties.

    Random inputs sit on the input quantizer's grid; ties halfway between two codes, where
    half-up and half-even disagree. ``float_ops`` is the network's own float pre-processing in
    front of its quantizer (e.g. ``2x - 1``): inputs are mapped back through it, so they land on
    the grid (and the ties on ties) after it. Without real data, ``value_range`` gives n
    "range" inputs: uniform floats over the range real data comes in, mostly off the grid.
    """
    rng = np.random.default_rng(seed)
    q = input_quant or {"scale": 1.0, "zero_point": 0.0, "bits": 8, "signed": False, "narrow": False}
    bipolar = any(op["op"] == "Sign" for op in float_ops or [])
    lo = -(2 ** (q["bits"] - 1)) + int(q.get("narrow", False)) if q["signed"] else 0
    hi = (2 ** (q["bits"] - 1) - 1) if q["signed"] else 2 ** q["bits"] - 1 - int(q.get("narrow", False))
    if bipolar:
        lo, hi, q = -1, 1, {**q, "scale": 1.0, "zero_point": 0.0}
    ints = rng.integers(lo, hi + 1, size=(n, *shape)).astype(np.float32)
    if bipolar:
        ints = np.where(ints == 0, 1.0, ints).astype(np.float32)
    rand = _invert_float_ops(float_ops, (ints - q["zero_point"]) * q["scale"])
    # Ties: halfway between two integer codes, where half-up and half-even disagree
    # (for a bipolar input: exactly 0, where sign() must give +1).
    tie_ints = rng.integers(lo, hi, size=(n, *shape)).astype(np.float32) + 0.5
    if bipolar:
        tie_ints = np.zeros((n, *shape), np.float32)
    ties = _invert_float_ops(float_ops, (tie_ints - q["zero_point"]) * q["scale"])
    parts, kinds = [rand.astype(np.float32)], ["random"] * n
    if real is not None and len(real):
        parts.append(real[:n].astype(np.float32))
        kinds += ["real"] * min(n, len(real))
    elif value_range is not None:
        parts.append(rng.uniform(value_range[0], value_range[1], size=(n, *shape)).astype(np.float32))
        kinds += ["range"] * n
    parts.append(ties.astype(np.float32))
    kinds += ["tie"] * n
    return InputSet(x=np.concatenate(parts), kinds=kinds)


def host_inputs(info: dict, x: np.ndarray) -> np.ndarray:
    """What the host hands the accelerator's graph for float network inputs ``x``: the network's float
    pre-processing, then its input quantizer, both as the board driver applies them."""
    from bnn2fpga.hw.driver.host_ops import float_pre
    from bnn2fpga.quantize.input_quant import InputQuantSpec

    y = float_pre(info.get("input_float_ops") or [], x)
    iq = info.get("input_quant")
    return InputQuantSpec(**iq).quantize(y) if iq else y


class HeadCodes:
    """Outputs of a network with a float host head, in the accelerator's integer units.

    Why: the head (``y = gain * acc + offset`` per output element: the last layer's scale and
    bias, a last BatchNorm or TensorNorm) is float work that PyTorch, QONNX and the streamlined
    graph order differently, so their float outputs differ in the last bits while the
    accelerator's integers agree. Mapped back to ``acc`` and rounded, every stage is compared
    exactly; an output more than a quarter step off the integer grid is reported, not rounded away.
    """

    def __init__(self, head: dict):
        self.gain = np.asarray(head["gain"], np.float64)
        self.offset = np.asarray(head["offset"], np.float64)

    def codes(self, y: np.ndarray) -> tuple[np.ndarray, float]:
        """Rounded accumulator codes for outputs ``y`` and the largest distance from the grid."""
        z = (np.asarray(y, np.float64).reshape(len(y), -1) - self.offset) / self.gain
        r = np.round(z)
        return r.astype(np.float32), float(np.abs(z - r).max()) if z.size else 0.0


def _compare(label: str, ref: np.ndarray, out: np.ndarray, kinds: list[str], head: HeadCodes | None) -> StageResult:
    if head is None or ref.reshape(len(ref), -1).shape[1] != head.gain.size \
            or out.reshape(len(out), -1).shape[1] != head.gain.size:
        return compare(label, ref, out, kinds)
    ref_codes, _ = head.codes(ref)
    codes, off = head.codes(out)
    if off > 0.25:
        return StageResult(label, "mismatch", f"outputs are {off:.2f} steps off the accelerator's integer grid "
                           "(the float head is not what the build recorded)", 0, len(ref))
    res = compare(label, ref_codes, codes, kinds)
    ulp = float(np.abs(np.asarray(ref, np.float64) - np.asarray(out, np.float64)).max())
    if res.status == "bit-exact":
        res.detail += f" (accelerator integers; float host head within {ulp:.1e})"
    return res


def _reference_codes(build: BuildResult, ref: np.ndarray, head: HeadCodes | None, tmp: Path) -> np.ndarray:
    # The Verilator stage compares its own float head (the parent graph's ops) exactly; the
    # reference it gets is that same head applied to the reference's accelerator integers.
    if head is None:
        return ref
    from qonnx.core.modelwrapper import ModelWrapper

    from bnn2fpga.flows.rtlsim_stage import _apply, _host_part

    parent = ModelWrapper(str(build.out_dir / "dataflow_parent.onnx"))
    names = [n.op_type for n in parent.graph.node]
    if names.count("StreamingDataflowPartition") != 1:
        return ref
    k = names.index("StreamingDataflowPartition")
    sdp = parent.graph.node[k]
    post = _host_part(parent, parent.graph.node[k + 1:], sdp.output[0], parent.graph.output[0].name)
    codes, _ = head.codes(ref)
    shape = parent.get_tensor_shape(sdp.output[0])
    return _apply(post, codes.reshape(len(codes), *shape[1:]).astype(np.float32)).reshape(ref.shape)


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


def _chunks(xs: np.ndarray, workers: int) -> list[np.ndarray]:
    # FINN's python execution runs one frame at a time (its HW ops assume batch 1), so
    # the frames are spread over processes instead.
    return [xs] if workers <= 1 or len(xs) < 2 * workers else np.array_split(xs, workers)


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


class _StageRunner:
    """Runs stages' frames: in worker processes (all stages queued at once), or here with one worker."""

    def __init__(self, workers: int):
        self.workers = workers
        self.parallel = workers > 1
        self._pool = None

    def __enter__(self):
        if self.parallel:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(self.workers, mp_context=mp.get_context("fork"))
        return self

    def __exit__(self, *exc):
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        return False

    def submit(self, path: Path, xs: np.ndarray):
        """Queue a stage; its outputs come from ``result``."""
        if self._pool is None:
            return (path, xs)
        return [self._pool.submit(_run_chunk, str(path), c) for c in _chunks(xs, self.workers)]

    def result(self, job) -> np.ndarray:
        """The stage's outputs, frames in order."""
        if self._pool is None:
            return _run_chunk(str(job[0]), job[1])
        return np.concatenate([f.result() for f in job])


class _RtlStage:
    """The Verilator stage, run as soon as the reference outputs are known (or at the end)."""

    def __init__(self, build: BuildResult, host_x: np.ndarray, head, kinds: list[str], log, tmp: Path):
        self.build, self.host_x, self.head, self.kinds, self.log, self.tmp = build, host_x, head, kinds, log, tmp
        self._res: StageResult | None = None

    def run_if_ready(self, ref: np.ndarray | None) -> None:
        """Run the stage now if ``ref`` is known and it has not run."""
        if ref is not None and self._res is None:
            self._res = self._run(ref)

    def result(self, ref: np.ndarray | None) -> StageResult:
        """The stage's result (run now if it has not run)."""
        if self._res is None:
            self._res = self._run(ref)
        return self._res

    def _run(self, ref: np.ndarray | None) -> StageResult:
        from bnn2fpga.flows.rtlsim_stage import rtlsim_stage

        rtl_ref = _reference_codes(self.build, ref, self.head, self.tmp) if ref is not None else None
        return rtlsim_stage(self.build, self.host_x, rtl_ref, self.kinds, self.log)


def verify_build(build: BuildResult, inputs: InputSet, reference: np.ndarray | None,
                 log: Callable[[str], None] | None = None, workers: int | None = None,
                 synth: bool = False, synth_workers: int | None = None) -> Verdict:
    """Run the stage ladder of a finished (Vivado-free) build and compare every stage.

    ``synth`` adds the "synthesis (Yosys)" stage (off by default here: it is minutes on a
    cold cache; ``bnn2fpga verify`` turns it on).
    """
    log = log or logger.info
    ops.prepare()
    from qonnx.core.modelwrapper import ModelWrapper

    workers = default_workers() if workers is None else workers
    host_x = host_inputs(build.info, inputs.x)
    head = HeadCodes(build.info["host_head"]) if (build.info.get("host_head") or {}).get("gain") else None
    verdict = Verdict(inputs=len(inputs.x))
    ref = reference
    if ref is not None:
        verdict.stages.append(StageResult("brevitas", "reference", "PyTorch/Brevitas model", len(ref), len(ref)))
    prev_model, prev_x = None, None
    with tempfile.TemporaryDirectory() as tmp, finn_env.exact_execution(), _StageRunner(workers) as runner:
        # Every stage's frames go to the worker processes at once (issue #19): stages are
        # independent, so no stage waits for the slowest chunk of the one before, and the
        # Verilator stage compiles and simulates here meanwhile. Results are compared, and
        # logged, in ladder order.
        stages = []
        for label, step, in_parent in ladder_stages():
            path = model_file(build.out_dir, step)
            if not path.exists():
                stages.append((label, step, None, None, None))
                continue
            if in_parent:
                path = _parent_with(build, path, Path(tmp))
            # The exported QONNX still has the input quantizer; later stages take host-quantized integers.
            xs = inputs.x if step == "export" else host_x
            log(f"verify: {label} ({len(xs)} inputs)")
            stages.append((label, step, path, xs, runner.submit(path, xs)))
        rtl = _RtlStage(build, host_x, head, inputs.kinds, log, Path(tmp))
        if runner.parallel:
            rtl.run_if_ready(ref)
        for label, step, path, xs, job in stages:
            if path is None:
                verdict.stages.append(StageResult(label, "not run", f"build stopped before '{step}'"))
                continue
            model = ModelWrapper(str(path))
            out = runner.result(job)
            if ref is None:
                ref = out
                verdict.stages.append(StageResult(label, "reference", "no PyTorch model; QONNX is the reference",
                                                  len(out), len(out)))
                prev_model, prev_x = model, xs
                if runner.parallel:
                    rtl.run_if_ready(ref)
                continue
            res = _compare(label, ref, out, inputs.kinds, head)
            if res.status == "mismatch" and prev_model is not None and prev_x is xs:
                i = int(res.detail.split("input ")[1].split(" ")[0])
                res.detail += f"; first diverging node: {_first_diverging_node(prev_model, model, xs[i:i + 1])}"
            verdict.stages.append(res)
            prev_model, prev_x = model, xs
        # The folded dataflow graph as our stitched RTL under Verilator (hw/sim/ladder.py).
        verdict.stages.append(rtl.result(ref))
        if ecp5.board_is_ecp5(build.info):
            # The bitstream's whole top (UART shell around the same RTL), fed over its pins.
            from bnn2fpga.flows.serial_stage import serial_stage

            rtl_ref = _reference_codes(build, ref, head, Path(tmp)) if ref is not None else None
            verdict.stages.append(serial_stage(build, host_x, rtl_ref, inputs.kinds,
                                               board=get_board(build.info["board"]), log=log))
    verdict.stages.append(_synth_stage(build, synth, log, synth_workers))
    verdict.stages += tool_stages(build.info)
    return verdict


def _synth_stage(build: BuildResult, run: bool, log, workers: int | None) -> StageResult:
    # Resources and logic depth, not outputs: the stage never makes the verdict a mismatch.
    from bnn2fpga.flows.synth import STAGE, synth_stage

    if ecp5.board_is_ecp5(build.info):
        return StageResult(STAGE, "not run", "the open flow's place and route reports the whole design")
    if not run:
        return StageResult(STAGE, "not run", "skipped (bnn2fpga synth BUILD runs it)")
    return synth_stage(build, log, workers)


def tool_stages(info: dict | None = None) -> list[StageResult]:
    """Stages that need Xilinx tools or finn-hlslib: reported as not run when those are absent.

    None on an ECP5 board: its bitstream comes from the open flow, which the serial stage checks.
    """
    info = info or {}
    if ecp5.board_is_ecp5(info):
        return []
    tools = finn_env.detect_tools()
    out = []
    missing = tools.missing_for(("hlslib", "vitis_hls"))
    if info.get("hls_layers") == []:
        out.append(StageResult("hls cppsim", "not run", "no HLS layer in this design: every layer is RTL"))
    else:
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
    path = build_dir.report_dir(out_dir) / build_dir.VERIFY_JSON
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(verdict.to_dict(), indent=2))
    return path

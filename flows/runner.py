"""Runs the build steps in order, saving every step's model so a build resumes where it stopped.

Each step has a key: a hash of the previous step's key and of the part of the config
that step depends on. A step whose saved key matches is skipped, so changing only the
FPS target re-runs folding onwards but reuses export, streamlining and conversion.
"""
from __future__ import annotations

import logging
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from bnn2fpga.flows import build_dir, ops
from bnn2fpga.flows.build_dir import STATE_FILE
from bnn2fpga.flows.config import BuildConfig, file_digest
from bnn2fpga.flows.ecp5 import STEP as ECP5_STEP
from bnn2fpga.flows.steps import LAST_VIVADO_FREE, STEPS, Context, make_finn_config, not_for_board, require_tools

logger = logging.getLogger(__name__)


def code_fingerprint() -> str:
    """Hash of the build code, so a changed step implementation never reuses stale results."""
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    # hw/finn_ops and hw/rtlgen choose and estimate our RTL layers from 'specialize_layers' on.
    for pkg in ("flows", "quantize", "hw/driver", "hw/finn_ops", "hw/rtlgen", "hw/finn_env.py"):
        path = root / pkg
        for f in [path] if path.is_file() else sorted(path.rglob("*.py")):
            if f.name not in ("cli.py", "report_html.py", "demo.py", "train.py"):
                h.update(f.read_bytes())
    return h.hexdigest()[:16]


def step_keys(cfg: BuildConfig) -> dict[str, str]:
    """The chained key of every step for this config."""
    keys, prev = {}, code_fingerprint()
    for step in STEPS:
        prev = hashlib.sha256(f"{prev}|{step.name}|{step.key_inputs(cfg)}".encode()).hexdigest()[:16]
        keys[step.name] = prev
    return keys


@dataclass
class BuildResult:
    """What a build did."""

    out_dir: Path
    done: list[str]
    ran: list[str]
    skipped: list[str]
    stopped_at: str | None
    times: dict[str, float] = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    def model_path(self, step: str) -> Path:
        """The saved model after ``step``."""
        return model_file(self.out_dir, step)


def model_file(out_dir: Path, step: str) -> Path:
    """Where a step's output model is saved."""
    idx = [s.name for s in STEPS].index(step)
    return build_dir.steps_dir(out_dir) / f"{idx:02d}_{step}.onnx"


def hardware_model_file(out_dir: Path) -> Path | None:
    """The dataflow model the hardware is made from: with the measured FIFO depths once the build
    sized them, else the folded one; None before the build got that far."""
    from bnn2fpga.flows.steps import FOLDED_MODEL_STEP, SIZED_MODEL_STEP

    for step in (SIZED_MODEL_STEP, FOLDED_MODEL_STEP):
        if model_file(out_dir, step).exists():
            return model_file(out_dir, step)
    return None


def load_state(out_dir: Path) -> dict:
    """The saved build state (empty when there is none, or it is unreadable or of another shape)."""
    try:
        state = json.loads((Path(out_dir) / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(state, dict):
        return {}
    for key in ("keys", "times", "info", "files"):
        if not isinstance(state.get(key, {}), dict):
            return {}
    return state


def _save_state(out_dir: Path, state: dict) -> None:
    tmp = Path(out_dir) / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(Path(out_dir) / STATE_FILE)


def _intact(out: Path, step: str, digests: dict) -> str | None:
    """None when the step's saved model is the file the build wrote; else why not."""
    path = model_file(out, step)
    if not path.is_file():
        return f"{path.name} is missing"
    want = digests.get(step)
    if want is None:
        return f"{path.name} has no recorded checksum"
    if file_digest(path) != want:
        return f"{path.name} changed since the build wrote it"
    return None


def _drop_stale_outputs(out: Path, valid: int, names: list[str]) -> None:
    """Remove the reports and the board package when the steps that wrote them are no longer valid.

    A report, io_spec.json or bitstream of an earlier design must never be shown for this one.
    """
    import shutil

    from bnn2fpga.flows.package import remove_deploy

    if valid <= names.index("estimate"):
        shutil.rmtree(build_dir.report_dir(out), ignore_errors=True)
    if valid <= names.index("package"):
        remove_deploy(out)
    if valid <= names.index(ECP5_STEP):
        # A bitstream of an earlier design must never be flashed as this one's.
        (out / build_dir.BITSTREAM).unlink(missing_ok=True)
        shutil.rmtree(out / build_dir.ECP5_DIR, ignore_errors=True)


def run_build(cfg: BuildConfig, log: Callable[[str], None] | None = None, until: str | None = None) -> BuildResult:
    """Run (or resume) the build up to ``until`` (default: cfg.until, else every step).

    Progress goes to this module's logger, or to ``log`` when given.
    """
    log = log or logger.info
    from qonnx.core.modelwrapper import ModelWrapper

    from bnn2fpga.flows.fast_apply import qonnx_tables

    ops.prepare()
    out = Path(cfg.out_dir)
    # Every input is read (and hashed) before anything in the build folder is touched.
    keys = step_keys(cfg)
    build_dir.claim(out)
    build_dir.steps_dir(out).mkdir(exist_ok=True)
    state = load_state(out)
    saved, digests = state.get("keys", {}), state.get("files", {})
    passed_through = state.get("not_for_board", [])
    until = until or cfg.until
    names = [s.name for s in STEPS]
    last = names.index(until) if until else len(STEPS) - 1

    # The longest prefix of steps whose keys match and whose saved models are intact; the
    # build reuses it up to ``until``. Outputs of steps after it describe another design.
    valid = 0
    for s in STEPS:
        if saved.get(s.name) != keys[s.name]:
            break
        problem = _intact(out, s.name, digests)
        if problem:
            if valid <= last:
                log(f"notice: {problem}; re-running from '{s.name}'")
            break
        valid += 1
    reusable = min(valid, last + 1)
    _drop_stale_outputs(out, valid, names)
    done = names[:reusable]
    times = {k: v for k, v in state.get("times", {}).items() if k in done}
    info = state.get("info", {}) if reusable else {}
    state = {"config": cfg.to_dict(), "keys": {n: keys[n] for n in done}, "times": times, "info": info,
             "files": {n: digests[n] for n in done}}
    ctx = Context(cfg=cfg, finn_cfg=make_finn_config(cfg, out), out_dir=out, info=info)
    ran: list[str] = []
    skipped_for_board = [n for n in passed_through if n in done]
    state["not_for_board"] = skipped_for_board
    with qonnx_tables():  # the constructor's shape check, by a table too
        model = ModelWrapper(str(model_file(out, done[-1]))) if done else None
    if done:
        log(f"resuming after '{done[-1]}' ({len(done)} step(s) reused)")
    for i, step in enumerate(STEPS[reusable: last + 1], start=reusable):
        require_tools(step, done, ctx.info)
        log(f"[{i + 1}/{last + 1}] {step.name} ...")
        t0 = time.time()
        # A failed step must not leave a newer-looking state behind.
        state["keys"].pop(step.name, None)
        state["files"].pop(step.name, None)
        _save_state(out, state)
        with qonnx_tables():  # QONNX's lookups answered by tables: same models, without the quadratic scans (issue #19)
            model = step.fn(model, ctx)
        path = model_file(out, step.name)
        tmp = path.with_name(path.name + ".tmp")
        model.save(str(tmp))
        tmp.replace(path)  # an interrupted save never leaves a half-written model under the real name
        dt = time.time() - t0
        other = not_for_board(step, ctx.info)
        if other:
            skipped_for_board.append(step.name)
        else:
            times[step.name] = round(dt, 2)
        done.append(step.name)
        ran.append(step.name)
        state["keys"][step.name] = keys[step.name]
        state["files"][step.name] = file_digest(path)
        state["times"], state["info"] = times, ctx.info
        state["not_for_board"] = skipped_for_board
        _save_state(out, state)
        log(f"[{i + 1}/{last + 1}] {step.name} {other or f'done in {dt:.1f} s'}")
    return BuildResult(out_dir=out, done=done, ran=ran, skipped=names[: reusable], stopped_at=names[last],
                       times=times, info=ctx.info)


def vivado_free_until(until: str | None) -> str:
    """The requested stop step, capped at the last step that needs no Xilinx tool."""
    names = [s.name for s in STEPS]
    if until is None:
        return LAST_VIVADO_FREE
    return names[min(names.index(until), names.index(LAST_VIVADO_FREE))]

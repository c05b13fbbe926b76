"""Design-space sweeps: models x boards x folding targets x binary-layer backend, on Ray.

A sweep file (YAML) names the axes; every combination is a point, built by the ordinary
resumable runner into its own build folder. Points share build prefixes the way their
step keys say they do: everything up to ``dataflow_partition`` depends on the network
only, ``specialize_layers`` adds the board and backend, ``folding`` the target. Each
shared prefix is built once, in a build folder of its own, and every point that shares it
starts from a copy (the copy's step keys match, so the runner resumes after it).

The levels run one after the other, the builds inside a level in parallel: Ray tasks on
a local Ray runtime (default) or on a cluster (``--address``), or one by one in this
process (``--engine serial``). A failed build is recorded with its error and never stops
the sweep; its dependants record the same error. A rerun resumes every folder.
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bnn2fpga.errors import ToolMissing, UserError

logger = logging.getLogger(__name__)

#: The last step of each shared level: network, then board and backend, then the point itself.
LEVELS = ("dataflow_partition", "specialize_layers")


class SweepSpec(BaseModel):
    """A sweep file: the axes of the design space and where the results go."""

    model_config = ConfigDict(extra="forbid")

    models: list[str] = Field(default_factory=list, description="zoo model names")
    onnx: list[str] = Field(default_factory=list, description="QONNX files (paths relative to the sweep file)")
    checkpoints: list[Union[str, None]] = Field(default=[None], description="checkpoints for zoo models (null: untrained)")
    boards: list[str] = Field(description="board names (bnn2fpga boards)")
    targets: list[Union[Literal["search"], float]] = Field(default=["search"],
                                                           description="'search' (fastest that fits) or an FPS goal")
    binary_mvau: list[Literal["rtl", "hls"]] = Field(default=["rtl"], description="binary-layer backend")
    ceiling: float = Field(default=0.85, gt=0, le=1, description="resource ceiling of the search")
    until: str = Field(default="estimate", description="last step of every point")
    out: str = Field(default="build/sweep", description="sweep folder (relative to the sweep file)")

    @field_validator("targets")
    @classmethod
    def _positive(cls, v):
        for t in v:
            if t != "search" and not t > 0:
                raise ValueError(f"an FPS target must be positive, got {t}")
        return v


@dataclass(frozen=True)
class Point:
    """One design of the sweep."""

    source: str  # model name or ONNX path
    ckpt: str | None
    board: str
    target: Union[str, float]
    binary_mvau: str

    @property
    def label(self) -> str:
        """A readable, unique folder name."""
        src = Path(self.source).stem if self.source.endswith(".onnx") else self.source
        ck = f"-{Path(self.ckpt).stem}" if self.ckpt else ""
        tgt = "search" if self.target == "search" else f"{float(self.target):g}fps"
        return f"{src}{ck}-{self.board}-{tgt}-{self.binary_mvau}"


@dataclass
class Outcome:
    """What a build (a point or a shared prefix) gave."""

    label: str
    status: str  # "done", "failed"
    seconds: float = 0.0
    error: str = ""
    info: dict = field(default_factory=dict)
    reused: list[str] = field(default_factory=list)


def load_spec(path: Path) -> tuple[SweepSpec, Path]:
    """Read and validate a sweep file; one line naming the file and the field on error."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise UserError(f"sweep file {path}: cannot read ({e.strerror or e})") from None
    except yaml.YAMLError as e:
        raise UserError(f"sweep file {path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise UserError(f"sweep file {path} must hold a mapping of axes")
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top)"
        raise UserError(f"sweep file {path}: field '{where}': {err['msg']}") from None
    if not spec.models and not spec.onnx:
        raise UserError(f"sweep file {path}: give at least one of 'models' or 'onnx'")
    return spec, path.parent


def points(spec: SweepSpec, base: Path) -> list[Point]:
    """Every combination of the axes."""
    sources = [(m, c) for m in spec.models for c in spec.checkpoints]
    sources += [(str((base / o).resolve()), None) for o in spec.onnx]
    return [Point(src, str((base / ck).resolve()) if ck else None, b, t, mv)
            for src, ck in sources for b in spec.boards for mv in spec.binary_mvau for t in spec.targets]


def _config(p: Point, spec: SweepSpec, out_dir: Path, until: str):
    from bnn2fpga.flows.config import make_config

    is_onnx = p.source.endswith(".onnx")
    return make_config(model=None if is_onnx else p.source, onnx=p.source if is_onnx else None, ckpt=p.ckpt,
                       board=p.board, fps=None if p.target == "search" else float(p.target),
                       ceiling=spec.ceiling, out_dir=out_dir, until=until, binary_mvau=p.binary_mvau)


def build_one(cfg_args: dict, start_from: str | None) -> dict:
    """Build one folder (a point or a prefix), starting from a copy of ``start_from``; never raises.

    Runs wherever the engine puts it (a Ray worker, or this process).
    """
    from bnn2fpga.flows.config import make_config
    from bnn2fpga.flows.runner import run_build

    label = Path(cfg_args["out_dir"]).name
    t0 = time.time()
    try:
        cfg = make_config(**cfg_args)
        out = Path(cfg.out_dir)
        if start_from and not (out / "build_state.json").exists():
            shutil.copytree(start_from, out, dirs_exist_ok=True)
        result = run_build(cfg, log=lambda m: None)
        return asdict(Outcome(label, "done", time.time() - t0, info=_summary(result.info), reused=result.skipped))
    except Exception as e:  # noqa: BLE001 - a failed point is a row of the table, not the end of the sweep
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        return asdict(Outcome(label, "failed", time.time() - t0, error=f"{type(e).__name__}: {msg}"))


def _summary(info: dict) -> dict:
    fold, fit = info.get("folding") or {}, info.get("fit") or {}
    used = fit.get("used") or {}
    return {"fps": fold.get("fps"), "cycles": fold.get("cycles"), "fits": fit.get("fits"),
            "LUT": used.get("LUT"), "BRAM_18K": used.get("BRAM_18K"), "DSP": used.get("DSP"),
            "target_missed": fold.get("target_missed")}


def _key(cfg, step: str) -> str:
    from bnn2fpga.flows.runner import step_keys

    return step_keys(cfg)[step]


class _Engine:
    """Runs a list of independent builds; results in the same order."""

    def map(self, jobs: list[tuple[dict, str | None]]) -> list[dict]:  # pragma: no cover - interface
        raise NotImplementedError


class SerialEngine(_Engine):
    """One build after the other in this process."""

    def map(self, jobs):
        """Build each job in turn."""
        return [build_one(*job) for job in jobs]


class RayEngine(_Engine):
    """Builds as Ray tasks: a local runtime, or the cluster at ``address``."""

    def __init__(self, address: str | None = None, cpus_per_build: float = 1.0):
        try:
            import ray
        except ImportError:
            raise ToolMissing("the Ray engine needs the cluster extra (make cluster-setup, or "
                              "pip install -r requirements/cluster.txt); or run with --engine serial") from None
        self.ray = ray
        if not ray.is_initialized():
            # A local runtime by default; a cluster's head when an address is given.
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     configure_logging=False, ignore_reinit_error=True)
        self.task = ray.remote(num_cpus=cpus_per_build)(build_one)

    def map(self, jobs):
        """Submit every job, then gather them."""
        return self.ray.get([self.task.remote(*job) for job in jobs])


def run_sweep(spec: SweepSpec, base: Path, engine: _Engine, log: Callable[[str], None] | None = None) -> list[dict]:
    """Build every point (shared prefixes once); writes results.json/.csv and index.html; returns the rows."""
    log = log or logger.info
    out = (base / spec.out).resolve()
    (out / "points").mkdir(parents=True, exist_ok=True)
    (out / "prefixes").mkdir(parents=True, exist_ok=True)
    every = points(spec, base)
    log(f"sweep: {len(every)} point(s) into {out}")
    cfgs, invalid = {}, {}
    for p in every:
        try:
            cfgs[p] = _config(p, spec, out / "points" / p.label, spec.until)
        except UserError as e:  # a bad input fails its own points, not the sweep
            invalid[p] = f"{type(e).__name__}: {e}"
    pts = [p for p in every if p in cfgs]
    parent: dict[Point, str | None] = {p: None for p in pts}
    broken: dict[str, str] = {}  # prefix folder -> the error that stopped it (or its own prefix)
    t0 = time.time()
    for level in LEVELS:
        groups: dict[str, list[Point]] = {}
        for p in pts:
            groups.setdefault(_key(cfgs[p], level), []).append(p)
        todo, jobs = [], []
        for key, members in groups.items():
            folder = str(out / "prefixes" / f"{level}-{key}")
            src = parent[members[0]]
            if src in broken:
                broken[folder] = broken[src]  # nothing to build on
            else:
                todo.append(folder)
                jobs.append((_cfg_args(_config(members[0], spec, Path(folder), level)), src))
            for p in members:
                parent[p] = folder
        log(f"sweep: {len(jobs)} shared prefix build(s) up to '{level}'")
        for folder, res in zip(todo, engine.map(jobs)):
            if res["status"] != "done":
                broken[folder] = res["error"]
    ready = [p for p in pts if parent[p] not in broken]
    log(f"sweep: {len(ready)} point build(s)")
    results = dict(zip(ready, engine.map([(_cfg_args(cfgs[p]), parent[p]) for p in ready])))
    rows = []
    for p in every:
        res = results.get(p) or asdict(Outcome(p.label, "failed", error=invalid.get(p) or broken[parent[p]]))
        rows.append({"point": p.label, "model": p.source, "ckpt": p.ckpt, "board": p.board,
                     "target": p.target, "binary_mvau": p.binary_mvau, "status": res["status"],
                     "seconds": round(res["seconds"], 2), "error": res["error"], "reused_steps": len(res["reused"]),
                     **(res["info"] or {})})
    log(f"sweep: done in {time.time() - t0:.1f} s, {sum(r['status'] == 'done' for r in rows)}/{len(rows)} built")
    write_results(out, rows)
    return rows


def _cfg_args(cfg) -> dict:
    """The make_config arguments that rebuild ``cfg`` in another process."""
    s = cfg.source
    return {"model": s.model, "onnx": str(s.onnx) if s.onnx else None, "ckpt": str(s.ckpt) if s.ckpt else None,
            "board": cfg.board.name, "fps": cfg.target.fps, "ceiling": cfg.target.ceiling,
            "out_dir": str(cfg.out_dir), "until": cfg.until, "binary_mvau": cfg.binary_mvau}


COLUMNS = ["point", "model", "board", "target", "binary_mvau", "status", "fps", "LUT", "BRAM_18K", "DSP", "fits",
           "target_missed", "seconds", "reused_steps", "error"]


def pareto(rows: list[dict], resource: str = "LUT") -> list[dict]:
    """The points no other point beats on both FPS (higher) and ``resource`` (lower)."""
    done = [r for r in rows if r["status"] == "done" and r.get("fps") and r.get(resource) is not None]
    return [r for r in done if not any(o is not r and o["fps"] >= r["fps"] and o[resource] <= r[resource]
                                       and (o["fps"] > r["fps"] or o[resource] < r[resource]) for o in done)]


def write_results(out: Path, rows: list[dict]) -> None:
    """results.json, results.csv, a Pareto plot (PNG) and index.html in the sweep folder."""
    (out / "results.json").write_text(json.dumps(rows, indent=2, default=str))
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    front = pareto(rows)
    _plot(rows, front, out / "pareto.png")
    from jinja2 import Environment, select_autoescape

    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    html = env.from_string(_PAGE).render(rows=rows, columns=COLUMNS, front={r["point"] for r in front})
    (out / "index.html").write_text(html, encoding="utf-8")


def _plot(rows: list[dict], front: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in rows if r["status"] == "done" and r.get("fps") and r.get("LUT") is not None]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for board in sorted({r["board"] for r in done}):
        pts = [r for r in done if r["board"] == board]
        ax.scatter([r["LUT"] for r in pts], [r["fps"] for r in pts], label=board)
    best = sorted(front, key=lambda r: r["LUT"])
    if best:
        ax.step([r["LUT"] for r in best], [r["fps"] for r in best], where="post", color="k", lw=1, label="Pareto front")
    ax.set_xlabel("LUT (estimate)")
    ax.set_ylabel("frames per second (estimate)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>bnn2fpga sweep</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;
padding:3px 6px;font-size:13px}tr.front{background:#eef7ee}tr.failed{color:#a00}</style></head><body>
<h1>Design-space sweep</h1><p>{{ rows|length }} points; the Pareto front (FPS against LUT) is highlighted.</p>
<img src="pareto.png" alt="Pareto front"><table><tr>{% for c in columns %}<th>{{ c }}</th>{% endfor %}</tr>
{% for r in rows %}<tr class="{{ 'front' if r.point in front else '' }} {{ r.status }}">
{% for c in columns %}<td>{{ r.get(c, '') if r.get(c) is not none else '' }}</td>{% endfor %}</tr>{% endfor %}
</table></body></html>"""


def fingerprint(rows: list[dict]) -> str:
    """A digest of the figures of a sweep (for comparing two runs of the same points)."""
    keep = [{k: r.get(k) for k in ("point", "status", "fps", "LUT", "BRAM_18K", "DSP", "fits")} for r in rows]
    return hashlib.sha256(json.dumps(sorted(keep, key=lambda r: r["point"]), default=str).encode()).hexdigest()


def engine_for(name: str, address: str | None) -> _Engine:
    """The engine the CLI asked for."""
    if name == "serial":
        return SerialEngine()
    return RayEngine(address)



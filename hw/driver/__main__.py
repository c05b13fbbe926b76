"""``python -m bnn2fpga_driver``: classify, validate and benchmark on the board (or simulated).

Errors a user can fix are one line on stderr and exit code 2; ``--debug`` shows tracebacks.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from . import io_spec
from .errors import DriverError, printable

PROG = "bnn2fpga_driver"


def _default_package() -> Path:
    # The driver is shipped inside the package it drives: deploy/bnn2fpga_driver/.
    return Path(__file__).resolve().parent.parent


#: The build side's simulated accelerator, found by name: the driver depends on no build code
#: (it runs on the board with numpy alone); off the board the installed bnn2fpga provides it.
SIMULATOR_MODULE = "bnn2fpga.flows.simulated_accelerator"


def _simulated(build_dir: str):
    # The only place the board side may reach into the build side, and only when asked.
    import importlib

    try:
        SimulatedAccelerator = importlib.import_module(SIMULATOR_MODULE).SimulatedAccelerator  # noqa: N806
    except ImportError:
        raise DriverError("--simulate needs the bnn2fpga build environment (run with the project's "
                          ".venv/bin/python)") from None
    try:
        return SimulatedAccelerator(build_dir)
    except Exception as e:  # noqa: BLE001 - the build side's own errors are one line too
        raise DriverError(str(e).splitlines()[0] if str(e) else type(e).__name__) from None


def open_classifier(args):
    """The package's Classifier on the FPGA, or on the simulated accelerator with --simulate."""
    from .accelerator import PynqAccelerator, pynq_available
    from .runtime import Classifier

    spec = io_spec.load(args.package)
    if args.simulate and args.serial:
        raise DriverError("give --simulate or --serial, not both")
    if args.simulate:
        io_spec.check_board(spec, args.board, on_board=False)
        return Classifier(spec, _simulated(args.simulate))
    if args.serial:
        from .serial_link import SerialAccelerator

        if spec.serial_baud is None:
            raise DriverError(f"package {spec.package_dir} was built for {spec.board}, whose accelerator is "
                              "reached by DMA on the board, not over a serial line; run without --serial there")
        io_spec.check_board(spec, args.board, on_board=False)  # the host is a PC, the board a USB device
        return Classifier(spec, SerialAccelerator(spec, args.serial, baud=spec.serial_baud))
    if spec.serial_baud is not None:
        raise DriverError(f"package {spec.package_dir} was built for {spec.board}, whose accelerator sits behind "
                          f"a serial line: give its port, e.g. --serial /dev/ttyUSB0 (or --simulate BUILD_DIR)")
    io_spec.check_board(spec, args.board, on_board=pynq_available())
    return Classifier(spec, PynqAccelerator(spec))


def _fmt(p) -> str:
    return f"{p.label} ({p.score:.2f})"


def check_writable(path: Path, option: str) -> None:
    """Refuse an output file that cannot be written, before any work is done for it."""
    if path.is_dir():
        raise DriverError(f"{option} {printable(path)} is a folder; give a file name")
    if not path.parent.is_dir():
        raise DriverError(f"{option} {printable(path)}: the folder {printable(path.parent)} does not exist")
    existed = path.exists()
    try:
        # Opening is the only test that holds for root, read-only mounts and ACLs alike.
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as e:
        raise DriverError(f"{option} {printable(path)}: cannot write it ({e.strerror or e})") from None
    if not existed:
        os.unlink(path)


def cmd_classify(args) -> int:
    """Label images given as files or folders, or camera frames."""
    from .images import Camera, list_images, read_image

    if args.camera is None and not args.paths:
        raise DriverError("give image files or folders, or --camera N")
    if args.camera is not None:
        with Camera(args.camera) as cam:  # opened first: no FPGA work when the camera is absent
            clf = open_classifier(args)
            return _classify_camera(clf, cam, args.frames)
    paths = list_images(args.paths)
    clf = open_classifier(args)
    done, t0 = 0, time.perf_counter()
    for start in range(0, len(paths), args.batch):
        chunk = paths[start:start + args.batch]
        images = [read_image(p) for p in chunk]
        t = time.perf_counter()
        preds = clf.classify(images, args.batch)
        fps = len(chunk) / max(time.perf_counter() - t, 1e-9)
        for p, pred in zip(chunk, preds):
            print(f"{printable(p)}: {_fmt(pred)}  [{fps:.1f} FPS]", flush=True)
        done += len(chunk)
    total = time.perf_counter() - t0
    print(f"{done} image(s) in {total:.2f} s: {done / max(total, 1e-9):.1f} images/s (batch {args.batch}, "
          f"including file reading)")
    return 0


def _classify_camera(clf, cam, frames: int | None) -> int:
    n, t0 = 0, time.perf_counter()
    try:
        for frame in cam.frames():
            t = time.perf_counter()
            pred = clf.classify([frame])[0]
            n += 1
            print(f"frame {n}: {_fmt(pred)}  [{1 / max(time.perf_counter() - t, 1e-9):.1f} FPS]", flush=True)
            if frames is not None and n >= frames:
                break
    except KeyboardInterrupt:
        pass
    total = time.perf_counter() - t0
    print(f"{n} frame(s) in {total:.2f} s: {n / max(total, 1e-9):.1f} frames/s including capture")
    return 0


def cmd_validate(args) -> int:
    """Top-1 accuracy and confusion matrix on a folder with one sub-folder per class."""
    from .images import labeled_images, read_image
    from .metrics import accuracy, confusion_matrix, format_matrix, write_csv

    check_writable(Path(args.csv), "--csv")
    spec = io_spec.load(args.package)
    items = labeled_images(args.folder, spec.class_names)
    if args.limit:
        items = items[: args.limit]
    clf = open_classifier(args)
    true, pred, t0 = [], [], time.perf_counter()
    for start in range(0, len(items), args.batch):
        chunk = items[start:start + args.batch]
        preds = clf.classify([read_image(p) for p, _ in chunk], args.batch)
        true += [t for _, t in chunk]
        pred += [p.index for p in preds]
    total = time.perf_counter() - t0
    names = list(spec.class_names)
    matrix = confusion_matrix(true, pred, len(names))
    print(f"top-1 accuracy: {accuracy(matrix):.2%} ({int(matrix.trace())}/{len(true)}), "
          f"{len(true) / max(total, 1e-9):.1f} images/s (batch {args.batch})")
    for line in format_matrix(matrix, names):
        print(line)
    try:
        written = write_csv(args.csv, matrix, names)
    except OSError as e:
        raise DriverError(f"--csv {printable(args.csv)}: cannot write it ({e.strerror or e})") from None
    print(f"confusion matrix written to {printable(written)}")
    return 0


def cmd_benchmark(args) -> int:
    """Throughput and latency with random inputs."""
    clf = open_classifier(args)
    res = clf.benchmark(args.n, args.batch)
    print(f"accelerator: {res['accelerator_images_per_s']:.1f} images/s, {res['accelerator_latency_ms']:.3f} ms "
          f"per call of {res['batch']} frame(s) ({res['frames']} frames)")
    if "images_per_s" in res:
        print(f"host (preprocess, quantize, pack; unpack, head, top-1): {res['host_ms_per_image']:.3f} ms per image")
        print(f"whole pipeline: {res['images_per_s']:.1f} images/s, {res['latency_ms']:.3f} ms per batch")
    est = clf.spec.estimate or {}
    if est.get("fps"):
        print(f"build estimate for the accelerator: {est['fps']:.0f} images/s at {clf.spec.clock_mhz:g} MHz")
    return 0


def parser() -> argparse.ArgumentParser:
    """Arguments of every subcommand."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--package", type=Path, default=_default_package(),
                        help="deployment package folder (default: the one this driver is in)")
    common.add_argument("--simulate", metavar="BUILD_DIR",
                        help="off the board: run the build's dataflow model in FINN instead of the FPGA")
    common.add_argument("--serial", metavar="PORT",
                        help="ECP5 packages: the board's USB serial port (/dev/ttyUSB0, COM3), via pyserial")
    common.add_argument("--board", help="check that the package was built for this board (e.g. pynq-z2)")
    common.add_argument("--batch", type=int, default=1, help="frames per accelerator call (default 1)")
    common.add_argument("--debug", action="store_true", help="show tracebacks")
    ap = argparse.ArgumentParser(prog=PROG, description="Run a bnn2fpga accelerator on its board.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("classify", parents=[common], help="label image files, folders or camera frames")
    p.add_argument("paths", nargs="*", help="image files or folders")
    p.add_argument("--camera", type=int, metavar="N", help="classify frames of camera N (needs OpenCV)")
    p.add_argument("--frames", type=int, help="with --camera: stop after this many frames")
    p.set_defaults(fn=cmd_classify)
    p = sub.add_parser("validate", parents=[common], help="top-1 accuracy and confusion matrix on a labeled folder")
    p.add_argument("folder", help="folder with one sub-folder per class (class name or number)")
    p.add_argument("--csv", default="confusion_matrix.csv", help="where to write the matrix (confusion_matrix.csv)")
    p.add_argument("--limit", type=int, help="use at most this many images")
    p.set_defaults(fn=cmd_validate)
    p = sub.add_parser("benchmark", parents=[common], help="throughput and latency")
    p.add_argument("--n", type=int, default=1000, help="frames to run (default 1000)")
    p.set_defaults(fn=cmd_benchmark)
    return ap


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors become one line on stderr and a non-zero exit code."""
    args = parser().parse_args(argv)
    try:
        if args.batch < 1:
            raise DriverError("--batch must be at least 1")
        return args.fn(args) or 0
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except DriverError as e:
        if args.debug:
            raise
        print(f"{PROG}: {printable(str(e).splitlines()[0]) if str(e) else 'error'}", file=sys.stderr)
        return e.exit_code
    except Exception as e:  # noqa: BLE001 - the one place that turns errors into exit codes
        if args.debug:
            raise
        msg = printable(str(e).splitlines()[0]) if str(e) else ""
        print(f"{PROG}: internal error: {type(e).__name__}: {msg} (run with --debug for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

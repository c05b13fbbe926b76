"""``make demo``: the whole path on data that ships with scikit-learn, no Vivado needed.

Train CBCNN (28x28 variant) on the bundled 8x8 digits upsampled to 28x28, export it to
QONNX, build it for the PYNQ-Z2 up to FINN's estimates, check every stage bit for bit
and write the report.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from bnn2fpga.flows import cli

DEMO_MODEL = "cbcnn-mnist"
DEMO_BOARD = "pynq-z2"


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the process exit code."""
    ap = argparse.ArgumentParser(prog="python -m bnn2fpga.flows.demo", description=__doc__)
    ap.add_argument("--out", default="build/demo")
    ap.add_argument("--epochs", type=int, default=6, help="training epochs (about 10 s each on 2 cores)")
    ap.add_argument("--inputs", type=int, default=20, help="verification inputs of each kind")
    args = ap.parse_args(argv)
    out = Path(args.out)
    t0 = time.time()
    print(f"demo 1/2: training {DEMO_MODEL} on scikit-learn digits ({args.epochs} epochs)", flush=True)
    code = cli.main(["train", DEMO_MODEL, "--dataset", "digits", "--epochs", str(args.epochs),
                     "--out", str(out / "train")])
    if code:
        return code
    print(f"demo 2/2: build for {DEMO_BOARD} up to the estimates, then bit-exact verification", flush=True)
    # Without the Yosys stage: minutes of synthesis would triple the demo; the last line says how.
    code = cli.main(["verify", DEMO_MODEL, "--ckpt", str(out / "train" / "best.pt"), "--board", DEMO_BOARD,
                     "--out", str(out / DEMO_BOARD), "--inputs", str(args.inputs), "--no-synth"])
    print(f"demo finished in {time.time() - t0:.0f} s (exit {code}); report: {out / DEMO_BOARD / 'report' / 'report.html'}",
          flush=True)
    if code == 0:
        print(f"next: synthesis of every layer with Yosys (minutes, cached): .venv/bin/bnn2fpga synth {out / DEMO_BOARD}",
              flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())

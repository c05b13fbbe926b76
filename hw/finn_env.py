"""The one module that knows FINN's environment quirks and which Xilinx tools exist.

Import FINN only after :func:`prepare` (or through :func:`finn_steps`), never directly.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

_prepared = False


def prepare(scratch: str | Path | None = None) -> Path:
    """Make FINN importable and usable without Vivado; returns FINN's scratch folder.

    * ``FINN_BUILD_DIR`` is FINN's scratch space and must exist.
    * ``finn.builder.build_dataflow_steps`` imports ``SimEngine`` from ``finn.xsi`` at
      import time, and that lazy attribute insists on Vivado's XSI library. Setting it
      first lets the builder import; only rtlsim steps use it, and those are gated on
      :func:`detect_tools` finding Vivado.
    * FINN writes caches under ``$HOME/.finn``; a read-only home gets a temp one.
    * FINN's global settings must be initialised before most calls.
    Our op types are registered by ``bnn2fpga.hw.finn_ops.register`` (the flow calls it
    right after this), not here: this module sits below them.
    """
    global _prepared
    build_dir = Path(
        scratch or os.environ.get("FINN_BUILD_DIR") or Path(tempfile.gettempdir()) / "bnn2fpga-finn"
    )
    build_dir.mkdir(parents=True, exist_ok=True)
    os.environ["FINN_BUILD_DIR"] = str(build_dir)
    home = Path(os.environ.get("HOME", tempfile.gettempdir()))
    if not os.access(home, os.W_OK):
        os.environ["HOME"] = tempfile.mkdtemp(prefix="bnn2fpga-home-")
    (Path(os.environ["HOME"]) / ".finn").mkdir(exist_ok=True)
    if not _prepared:
        import finn.xsi

        if not os.environ.get("XILINX_VIVADO"):
            finn.xsi.SimEngine = None
        from finn.util import settings

        settings.initialize_dummy_settings()
        _prepared = True
    return build_dir


@contextmanager
def exact_execution():
    """Execute ONNX graphs without QONNX's value sanitization.

    By default QONNX rounds any tensor whose values do not fit its integer annotation,
    with only a warning; in a bit-exactness check that would hide the very errors we
    look for (and it dominates execution time). Off inside this block.
    """
    old = os.environ.get("SANITIZE_QUANT_TENSORS")
    os.environ["SANITIZE_QUANT_TENSORS"] = "0"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("SANITIZE_QUANT_TENSORS", None)
        else:
            os.environ["SANITIZE_QUANT_TENSORS"] = old


def finn_steps():
    """FINN's builder step module, imported safely."""
    prepare()
    import finn.builder.build_dataflow_steps as steps

    return steps


@dataclass(frozen=True)
class Tools:
    """Which Xilinx tools and FINN dependencies this machine has (None = absent)."""

    vivado: str | None
    vitis_hls: str | None
    hlslib: str | None

    def missing_for(self, need: tuple[str, ...]) -> list[str]:
        """Names of the tools in ``need`` that are absent."""
        labels = {"vivado": "Vivado", "vitis_hls": "Vitis HLS", "hlslib": "finn-hlslib"}
        return [labels[n] for n in need if getattr(self, n) is None]


def detect_tools() -> Tools:
    """Look for Vivado / Vitis HLS (env vars, then PATH) and finn-hlslib (under FINN_DEPS)."""

    def find(env: str, exe: str) -> str | None:
        root = os.environ.get(env)
        if root and (Path(root) / "bin" / exe).exists():
            return str(Path(root) / "bin" / exe)
        return shutil.which(exe)

    hlslib = None
    for root in (os.environ.get("FINN_DEPS"), os.environ.get("FINN_HLSLIB")):
        if root:
            for cand in (Path(root) / "finn-hlslib", Path(root)):
                if (cand / "mvau.hpp").exists():
                    hlslib = str(cand)
                    break
    return Tools(
        vivado=find("XILINX_VIVADO", "vivado"),
        # Up to 2024.1 HLS is vitis_hls; from 2024.2 on it is `vitis-run --mode hls`.
        vitis_hls=find("XILINX_HLS", "vitis_hls") or find("XILINX_VITIS", "vitis-run")
        or find("XILINX_VITIS", "vitis_hls"),
        hlslib=hlslib,
    )

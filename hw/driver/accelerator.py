"""Accelerators behind one interface: bytes in, bytes out, a batch at a time.

``PynqAccelerator`` drives the bitstream on a PYNQ board. Off the board the build side
provides ``bnn2fpga.flows.simulated_accelerator.SimulatedAccelerator``, which executes the same
dataflow model in FINN, so everything above this interface is tested without hardware.
"""
from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

import numpy as np

from .errors import DriverError
from .io_spec import IOSpec, check_bitfile

__all__ = ["Accelerator", "PynqAccelerator", "pynq_available"]

# Register map of FINN's IODMA (an HLS block with AXI-Lite control), the same for
# the input and the output DMA: control/status, buffer address (low, high), frames.
_CTRL, _ADDR_LO, _ADDR_HI, _REPS = 0x00, 0x10, 0x14, 0x1C
_START, _DONE, _IDLE = 0x1, 0x2, 0x4
# FINN's Zynq shell (finn-plus 1.6.1, make_zynq_proj's block design) feeds PS FCLK0 (pl_clk0
# on UltraScale+) at 100 MHz into a clocking wizard whose output is the design clock; the
# wizard's ratio is fixed in the bitstream, so any other FCLK0 would scale the design clock
# away from what it was timed for. FINN's own driver sets the same 100 MHz.
FCLK0_REFERENCE_MHZ = 100.0


@runtime_checkable
class Accelerator(Protocol):
    """Runs ``batch`` frames: packed input bytes in DMA layout -> packed output bytes."""

    def execute(self, packed_in: bytes, batch: int) -> bytes:
        """Run the accelerator on ``batch`` frames."""
        ...


def pynq_available() -> bool:
    """True when the ``pynq`` package can be imported (i.e. on a PYNQ image)."""
    import importlib.util

    return importlib.util.find_spec("pynq") is not None


class PynqAccelerator:
    """The bitstream of a deployment package, programmed and driven through PYNQ."""

    def __init__(self, spec: IOSpec, timeout_s: float = 10.0, download: bool = True):
        bit = check_bitfile(spec)
        try:
            from pynq import Overlay
        except ImportError:
            raise DriverError("the 'pynq' package is not installed: run on a PYNQ image (its venv, as root), "
                              "or off the board use --simulate BUILD_DIR") from None
        self.spec = spec
        self.timeout_s = timeout_s
        try:
            self.overlay = Overlay(str(bit), download=download)
        except Exception as e:  # noqa: BLE001 - PYNQ raises many types; one line is what the user needs
            first = str(e).splitlines()[0] if str(e) else ""
            raise DriverError(f"cannot load {bit.name} onto the FPGA: {type(e).__name__}: {first}") from None
        names = spec.dma.get("input", "idma0"), spec.dma.get("output", "odma0")
        missing = [n for n in names if n not in self.overlay.ip_dict]
        if missing:
            have = ", ".join(sorted(self.overlay.ip_dict)) or "none"
            raise DriverError(f"{bit.name} has no IP named {', '.join(missing)} (it has: {have}); "
                              "it is not the FINN accelerator of this package")
        self.idma, self.odma = (getattr(self.overlay, n) for n in names)
        self.design_clock_mhz = spec.clock_mhz  # made by the clocking wizard; information only
        self._set_clock()
        self._in_buf = self._out_buf = None
        self._capacity = 0

    @staticmethod
    def _set_clock() -> None:
        # PYNQ leaves FCLK0 as the previous overlay set it; the wizard needs its reference.
        from pynq.ps import Clocks

        Clocks.fclk0_mhz = FCLK0_REFERENCE_MHZ

    def _buffers(self, batch: int):
        if batch > self._capacity:
            from pynq import allocate

            n_in = int(np.prod(self.spec.input.packed_shape[1:]))
            n_out = int(np.prod(self.spec.output.packed_shape[1:]))
            self._in_buf = allocate(shape=(batch, n_in), dtype=np.uint8, cacheable=True)
            self._out_buf = allocate(shape=(batch, n_out), dtype=np.uint8, cacheable=True)
            self._capacity = batch
        return self._in_buf, self._out_buf

    @staticmethod
    def _launch(dma, address: int, batch: int) -> None:
        dma.write(_ADDR_LO, address & 0xFFFFFFFF)
        dma.write(_ADDR_HI, (address >> 32) & 0xFFFFFFFF)
        dma.write(_REPS, batch)
        dma.write(_CTRL, _START)

    def execute(self, packed_in: bytes, batch: int) -> bytes:
        """Copy the batch to a DMA buffer, run both DMAs, wait for the output DMA, return its bytes."""
        in_buf, out_buf = self._buffers(batch)
        src = np.frombuffer(packed_in, dtype=np.uint8)
        if src.size != batch * in_buf.shape[1]:
            raise DriverError(f"input is {src.size} bytes, expected {batch * in_buf.shape[1]} for {batch} frame(s)")
        in_buf[:batch] = src.reshape(batch, -1)
        in_buf.flush()
        if not self.odma.read(_CTRL) & _IDLE:
            raise DriverError("the output DMA is busy; a previous run did not finish (reload the bitstream)")
        # The output DMA must be listening before the input starts streaming.
        self._launch(self.odma, out_buf.device_address, batch)
        self._launch(self.idma, in_buf.device_address, batch)
        deadline = time.monotonic() + self.timeout_s + 1e-3 * batch
        while not self.odma.read(_CTRL) & _DONE:
            if time.monotonic() > deadline:
                raise DriverError(f"the accelerator did not finish {batch} frame(s) within {self.timeout_s:g} s; "
                                  "is the bitstream the one this package was built with?")
        out_buf.invalidate()
        return np.asarray(out_buf[:batch]).tobytes()

"""The accelerator behind a USB serial line: an ECP5 board's bitstream from the open flow, driven with pyserial.

Protocol (``hw/rtl/uart_shell.sv``, README "Open-source bitstream (ECP5)"): 8N1 at
3,000,000 baud; a frame in is the input exactly as packed for a PYNQ DMA buffer (the
package's ``input.packed_shape``), a frame out likewise (``output.packed_shape``); no
header; a break resets the shell. So ``SerialAccelerator`` takes and gives the same
bytes as ``PynqAccelerator`` and the rest of the driver is unchanged.
"""
from __future__ import annotations

import time

import numpy as np

from .errors import DriverError
from .io_spec import IOSpec

__all__ = ["SerialAccelerator", "DEFAULT_BAUD"]

DEFAULT_BAUD = 3_000_000


def _frame_bytes(packed_shape) -> int:
    return int(np.prod(packed_shape[1:]))


class SerialAccelerator:
    """``execute(packed_in, batch) -> packed_out`` over a serial port.

    ``port`` is a device (``/dev/ttyUSB0``, ``COM3``), opened with pyserial, or an open
    port-like object with ``write``, ``read``, ``in_waiting``, ``send_break`` and
    ``reset_input_buffer`` (the build side's simulated port runs the bitstream's top
    in Verilator behind that interface).
    """

    def __init__(self, spec: IOSpec, port, baud: int = DEFAULT_BAUD, timeout_s: float = 5.0):
        self.spec = spec
        self.in_frame = _frame_bytes(spec.input.packed_shape)
        self.out_frame = _frame_bytes(spec.output.packed_shape)
        self.timeout_s = timeout_s
        if isinstance(port, str):
            try:
                import serial
            except ImportError:
                raise DriverError("the serial link needs pyserial (pip install pyserial)") from None
            try:
                port = serial.Serial(port, baudrate=baud, timeout=0.1, write_timeout=timeout_s)
            except (serial.SerialException, ValueError) as e:
                raise DriverError(f"cannot open serial port {port}: {' '.join(str(e).split())}") from None
        self.port = port
        self.reset()

    def reset(self) -> None:
        """A break (the shell resets itself and the accelerator), then an empty input buffer."""
        self.port.send_break(0.001)  # 1 ms: 3,000 bit times, far over the shell's 20
        time.sleep(0.001)
        self.port.reset_input_buffer()

    def execute(self, packed_in: bytes, batch: int) -> bytes:
        """Send ``batch`` frames, collect their results; the answers overlap the sending."""
        data = bytes(packed_in)
        if len(data) != batch * self.in_frame:
            raise ValueError(f"serial accelerator: got {len(data)} input bytes, expected {batch * self.in_frame}")
        want = batch * self.out_frame
        got = bytearray()
        # Frame by frame, picking up answers in between, so the host's receive buffer never
        # has to hold a whole batch of results.
        for i in range(batch):
            self.port.write(data[i * self.in_frame:(i + 1) * self.in_frame])
            waiting = self.port.in_waiting
            if waiting:
                got += self.port.read(min(waiting, want - len(got)))
        deadline = time.monotonic() + self.timeout_s
        while len(got) < want and time.monotonic() < deadline:
            got += self.port.read(want - len(got))
        if len(got) < want:
            self.reset()  # a lost byte would shift every later frame: start clean
            raise DriverError(f"the board answered {len(got)} of {want} bytes within {self.timeout_s:g} s "
                              "(wrong port, bitstream not loaded, or another package's bitstream)")
        return bytes(got)

    def close(self) -> None:
        """Close the port."""
        self.port.close()

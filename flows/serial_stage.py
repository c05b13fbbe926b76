"""The ladder stage "serial shell": the open ECP5 flow's board top in Verilator, frames over its UART pins.

Like ``rtlsim_stage`` (host parts in numpy, the dataflow partition as RTL), but the
partition is the whole top that becomes the bitstream (``flows/ecp5.py``): bytes in
the shell's protocol, sent bit by bit at its baud rate, decoded from ``uart_tx``.
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Callable

from bnn2fpga.boards import Board, get_board
from bnn2fpga.errors import UserError
from bnn2fpga.flows.ecp5 import folded_model_path, shell_design
from bnn2fpga.hw.rtlgen.base import LayerRTL
from bnn2fpga.hw.rtlgen.shell import ShellSpec

logger = logging.getLogger(__name__)

STAGE = "serial shell (Verilator, UART pins)"


def frames_to_bytes(frames, dtype, design: LayerRTL, spec: ShellSpec) -> bytes:
    """FINN values of N input frames -> the bytes the host sends (the shell's protocol)."""
    import numpy as np

    from bnn2fpga.hw.rtlgen.streams import pack
    from bnn2fpga.hw.sim.graph_sim import encode

    elems = encode(np.asarray(frames), dtype).reshape(-1, design.in_elems)
    words = pack(elems, design.in_elem_bits)
    return np.ascontiguousarray(words).view(np.uint8)[:, : spec.in_bytes_per_beat].tobytes()


def bytes_to_frames(data: bytes, dtype, design: LayerRTL, spec: ShellSpec):
    """The bytes the shell sends back -> FINN values, one row per output beat."""
    import numpy as np

    from bnn2fpga.hw.rtlgen.streams import unpack
    from bnn2fpga.hw.sim.graph_sim import decode

    beats = np.frombuffer(data, np.uint8).reshape(-1, spec.out_bytes_per_beat)
    padded = np.zeros((len(beats), 4 * ((spec.out_bytes_per_beat + 3) // 4)), np.uint8)
    padded[:, : spec.out_bytes_per_beat] = beats
    signed = dtype.signed() and dtype.name != "BIPOLAR"
    return decode(unpack(padded.view("<u4"), design.out_elems, design.out_elem_bits, signed), dtype)


def board_top_simulation(model, board: Board, folder: Path):
    """The bitstream's whole top for the folded ``model`` and its Verilator build: (design, spec, exe, mems)."""
    from bnn2fpga.hw.sim import uart_sim

    design, spec = shell_design(model, board, folder)
    exe, mems = uart_sim.build(design, folder)
    return design, spec, exe, mems


def serial_stage(build, host_x, ref, kinds: list[str], board: Board | None = None, log: Callable | None = None):
    """A ladder stage: the bitstream's whole top in Verilator, frames over the UART pins.

    Like ``rtlsim_stage`` (host parts in numpy, the partition as RTL), but the partition
    is the board top of the open ECP5 flow, driven bit by bit at the shell's baud rate.
    Returns a ``flows.compare.StageResult``.
    """
    log = log or logger.info
    import numpy as np
    from qonnx.core.modelwrapper import ModelWrapper

    from bnn2fpga.flows import ops
    from bnn2fpga.flows.compare import StageResult, compare
    from bnn2fpga.flows.rtlsim_stage import _apply, around_partition
    from bnn2fpga.hw import finn_env
    from bnn2fpga.hw.sim import uart_sim, verilator

    missing = verilator.missing_tools()
    if missing:
        return StageResult(STAGE, "not run", f"needs {' and '.join(missing)}")
    if ref is None:
        return StageResult(STAGE, "not run", "no reference output to compare with")
    out_dir = Path(build.out_dir)
    ops.prepare()
    try:
        model = ModelWrapper(str(folded_model_path(out_dir)))
    except UserError as e:
        return StageResult(STAGE, "not run", str(e))
    parent = ModelWrapper(str(out_dir / "dataflow_parent.onnx"))
    split = around_partition(parent)
    if split is None:
        return StageResult(STAGE, "not run", "needs exactly one dataflow partition")
    pre, part, post = split
    board = board or get_board("ulx3s-85f")
    with tempfile.TemporaryDirectory(prefix="serial-stage-") as tmp:
        log(f"verify: {STAGE} ({len(host_x)} inputs): compiling the board top")
        try:
            design, spec, exe, mems = board_top_simulation(model, board, Path(tmp))
        except UserError as e:
            return StageResult(STAGE, "not run", str(e))
        idt = model.get_tensor_datatype(model.graph.input[0].name)
        odt = model.get_tensor_datatype(model.graph.output[0].name)
        out_shape = model.get_tensor_shape(model.graph.node[-1].output[0])
        try:
            with finn_env.exact_execution():
                frames = _apply(pre, host_x)
                data = frames_to_bytes(frames, idt, design, spec)
                run = uart_sim.run(exe, mems, spec, data, len(host_x) * spec.out_frame_bytes)
                y = bytes_to_frames(run.out, odt, design, spec).astype(np.float32)
                # The host ops after the partition take its output as the parent graph shapes it.
                shape = out_shape[1:] if post is None else parent.get_tensor_shape(part.output[0])[1:]
                out = _apply(post, y.reshape(len(host_x), *shape))
        except RuntimeError as e:
            return StageResult(STAGE, "mismatch", f"the serial top did not answer: {e}", 0, len(host_x))
    res = compare(STAGE, ref, out, kinds)
    res.detail += (f"; {spec.in_frame_bytes} bytes in, {spec.out_frame_bytes} out per frame at {spec.baud:,} baud, "
                   f"{run.cycles:,} cycles at {spec.clk_hz / 1e6:g} MHz")
    return res


class SimulatedSerialPort:
    """A serial port whose far end is the bitstream's top in Verilator (the build side's test backend).

    Port-like for ``bnn2fpga.hw.driver.serial_link.SerialAccelerator``: ``write`` queues
    bytes; ``read`` sends the whole frames queued so far over ``uart_rx`` (from the
    shell's power-on state) and returns what ``uart_tx`` answered; ``send_break`` drops
    everything queued, as the shell's reset does.
    """

    def __init__(self, build_dir, board: Board | None = None, baud_error_pct: float = 0.0):
        from qonnx.core.modelwrapper import ModelWrapper

        from bnn2fpga.flows import ops

        ops.prepare()
        self._tmp = tempfile.TemporaryDirectory(prefix="serial-port-")
        model = ModelWrapper(str(folded_model_path(Path(build_dir))))
        self.design, self.spec, self._exe, self._mems = board_top_simulation(
            model, board or get_board("ulx3s-85f"), Path(self._tmp.name))
        self.baud_error_pct = baud_error_pct
        self._queued, self._answer = bytearray(), bytearray()

    @property
    def in_waiting(self) -> int:
        """Bytes ready to read (the simulation runs lazily, on ``read``)."""
        return len(self._answer)

    def write(self, data: bytes) -> int:
        """Queue bytes for the line."""
        self._queued += data
        return len(data)

    def read(self, n: int) -> bytes:
        """Up to ``n`` answered bytes, simulating the queued whole frames first."""
        from bnn2fpga.hw.sim import uart_sim

        frames = len(self._queued) // self.spec.in_frame_bytes
        if frames:
            send = bytes(self._queued[: frames * self.spec.in_frame_bytes])
            del self._queued[: len(send)]
            run = uart_sim.run(self._exe, self._mems, self.spec, send, frames * self.spec.out_frame_bytes,
                               baud_error_pct=self.baud_error_pct)
            self._answer += run.out
        out = bytes(self._answer[:n])
        del self._answer[:n]
        return out

    def send_break(self, duration: float = 0.25) -> None:
        """The shell resets: nothing queued or half-sent survives."""
        self._queued.clear()

    def reset_input_buffer(self) -> None:
        """Drop answers not read yet."""
        self._answer.clear()

    def close(self) -> None:
        """Remove the generated sources (the compiled simulation stays cached)."""
        self._tmp.cleanup()

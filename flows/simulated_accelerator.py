"""A stand-in for the FPGA: the build's dataflow model executed by FINN, behind the driver's interface.

Bytes are unpacked and packed with FINN's own code, not the driver's, so driving this
accelerator tests the driver's packing against an independent implementation. Frames
run one at a time (FINN's python execution of HW layers assumes batch 1).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from bnn2fpga.errors import UserError
from bnn2fpga.flows import ops
from bnn2fpga.flows.steps import FOLDED_MODEL_STEP
from bnn2fpga.hw import finn_env

# The dataflow model the package step described, or the same graph from an earlier save.
_MODEL_STEPS = ("package", "estimate", FOLDED_MODEL_STEP)


class SimulatedAccelerator:
    """``execute(packed_in, batch) -> packed_out`` by FINN python execution of a build's dataflow model."""

    def __init__(self, build_dir):
        from bnn2fpga.flows.runner import model_file

        build_dir = Path(build_dir)
        if not build_dir.is_dir():
            raise UserError(f"--simulate: no build folder at {build_dir}")
        path = next((model_file(build_dir, s) for s in _MODEL_STEPS if model_file(build_dir, s).exists()), None)
        if path is None:
            raise UserError(f"--simulate: {build_dir} has no dataflow model yet (run 'bnn2fpga build' first)")
        ops.prepare()
        from qonnx.core.modelwrapper import ModelWrapper
        from qonnx.custom_op.registry import getCustomOp

        from bnn2fpga.flows.transforms.despecialize import DespecializeForPython

        from bnn2fpga.flows.package import dataflow_digest

        model = ModelWrapper(str(path))
        digest = dataflow_digest(model)
        self.model = model.transform(DespecializeForPython())
        graph = self.model.graph
        if not graph.node or not graph.node[0].domain.startswith("finn.custom_op.fpgadataflow"):
            raise UserError(f"--simulate: {path} is not a dataflow model")
        self.iname, self.oname = graph.input[0].name, graph.output[0].name
        self.idt = self.model.get_tensor_datatype(self.iname)
        self.odt = self.model.get_tensor_datatype(self.oname)
        first, last = getCustomOp(graph.node[0]), getCustomOp(graph.node[-1])
        self.ishape, self.ifolded = tuple(first.get_normal_input_shape()), tuple(first.get_folded_input_shape())
        self.oshape, self.ofolded = tuple(last.get_normal_output_shape()), tuple(last.get_folded_output_shape())
        self.io_signature = {"input_datatype": self.idt.name, "input_folded_shape": list(self.ifolded),
                             "output_datatype": self.odt.name, "output_folded_shape": list(self.ofolded),
                             "dataflow_sha256": digest}

    def execute(self, packed_in: bytes, batch: int) -> bytes:
        """Unpack with FINN, execute each frame, pack the outputs with FINN."""
        from qonnx.core.onnx_exec import execute_onnx

        from finn.util.data_packing import finnpy_to_packed_bytearray, packed_bytearray_to_finnpy

        frame_bytes = (int(np.prod(self.ifolded[1:-1])) * ((self.ifolded[-1] * self.idt.bitwidth() + 7) // 8))
        buf = np.frombuffer(packed_in, dtype=np.uint8)
        if buf.size != batch * frame_bytes:
            raise ValueError(f"simulated accelerator: got {buf.size} input bytes, expected {batch * frame_bytes}")
        folded_in = (batch, *self.ifolded[1:])
        packed = buf.reshape(*folded_in[:-1], -1)
        x = packed_bytearray_to_finnpy(packed, self.idt, folded_in, reverse_inner=True, reverse_endian=True)
        x = np.asarray(x, dtype=np.float32).reshape(batch, *self.ishape[1:])
        outs = []
        with finn_env.exact_execution():
            for i in range(batch):
                outs.append(execute_onnx(self.model, {self.iname: x[i: i + 1]})[self.oname])
        y = np.concatenate(outs).astype(np.float32).reshape(batch, *self.ofolded[1:])
        out = finnpy_to_packed_bytearray(y, self.odt, reverse_inner=True, reverse_endian=True)
        return np.ascontiguousarray(out).tobytes()

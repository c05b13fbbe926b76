"""ChannelPermute as a FINN HW layer (domain ``finn.custom_op.fpgadataflow``): a pixel stream in NHWC.

Each pixel's C channels arrive as C/SIMD beats of SIMD elements and leave in the order
``perm`` (output channel i = input channel perm[i]), same datatype, same folding.

Latency/throughput model (``get_exp_cycles``), the one hw/rtl/channel_permute.sv
implements: any output beat may need the pixel's last input channel, so the layer
holds one whole pixel before it emits; a second pixel buffer lets the next pixel fill
while the previous one drains, so after the first pixel it moves one beat per cycle in
and out. A frame of P pixels therefore takes P * C/SIMD cycles at steady state, and
its last output leaves one pixel (C/SIMD cycles) plus two register stages after the
first input: exp_cycles = (P + 1) * C/SIMD (FINN's estimates omit constant pipeline
stages).
"""
from __future__ import annotations

import math

import numpy as np
from qonnx.core.datatype import DataType

from finn.custom_op.fpgadataflow.hwcustomop import HWCustomOp


class ChannelPermute(HWCustomOp):
    """Streaming channel permutation of NHWC pixels, SIMD channels per beat (SIMD divides C)."""

    def get_nodeattr_types(self):
        """FINN's HW attributes plus NumChannels, perm, SIMD, inputDataType and numInputVectors."""
        attrs = {
            "NumChannels": ("i", True, 0),
            "perm": ("ints", True, []),
            "SIMD": ("i", False, 1),
            "inputDataType": ("s", True, ""),
            # every axis before the channels, e.g. [1, H, W]
            "numInputVectors": ("ints", False, [1]),
        }
        attrs.update(super().get_nodeattr_types())
        return attrs

    # ---- shapes and streams --------------------------------------------------------------

    def _channels(self) -> int:
        return int(self.get_nodeattr("NumChannels"))

    def _fold(self) -> int:
        c, simd = self._channels(), int(self.get_nodeattr("SIMD"))
        if simd < 1 or c % simd:
            raise ValueError(f"{self.onnx_node.name}: SIMD {simd} must divide NumChannels {c}")
        return c // simd

    def pixels(self) -> int:
        """Pixels per frame (the product of numInputVectors)."""
        return int(np.prod(self.get_nodeattr("numInputVectors")))

    def get_normal_input_shape(self, ind=0):
        """numInputVectors + [C]."""
        return tuple(list(self.get_nodeattr("numInputVectors")) + [self._channels()])

    def get_normal_output_shape(self, ind=0):
        """Same as the input."""
        return self.get_normal_input_shape()

    def get_folded_input_shape(self, ind=0):
        """numInputVectors + [C/SIMD, SIMD]."""
        return tuple(list(self.get_nodeattr("numInputVectors")) + [self._fold(), int(self.get_nodeattr("SIMD"))])

    def get_folded_output_shape(self, ind=0):
        """Same as the input."""
        return self.get_folded_input_shape()

    def get_input_datatype(self, ind=0):
        """The stream's element type."""
        return DataType[self.get_nodeattr("inputDataType")]

    def get_output_datatype(self, ind=0):
        """Unchanged from the input."""
        return self.get_input_datatype()

    def get_instream_width(self, ind=0):
        """SIMD elements per beat."""
        return int(self.get_nodeattr("SIMD")) * self.get_input_datatype().bitwidth()

    def get_outstream_width(self, ind=0):
        """SIMD elements per beat."""
        return self.get_instream_width()

    def get_number_output_values(self):
        """Output beats per frame."""
        return self.pixels() * self._fold()

    # ---- model, estimates ----------------------------------------------------------------

    def infer_node_datatype(self, model):
        """Take the input tensor's datatype; the output gets the same."""
        node = self.onnx_node
        dt = model.get_tensor_datatype(node.input[0])
        self.set_nodeattr("inputDataType", dt.name)
        model.set_tensor_datatype(node.output[0], dt)

    def execute_node(self, context, graph):
        """numpy: gather the last axis in perm order."""
        node = self.onnx_node
        x = context[node.input[0]]
        perm = np.asarray(self.get_nodeattr("perm"), dtype=np.int64)
        context[node.output[0]] = np.take(x, perm, axis=-1).reshape(context[node.output[0]].shape)

    def verify_node(self):
        """Messages about perm, SIMD and the datatype."""
        perm, c = list(self.get_nodeattr("perm")), self._channels()
        msgs = []
        if sorted(perm) != list(range(c)):
            msgs.append(f"perm is not a permutation of 0..{c - 1}")
        if c % int(self.get_nodeattr("SIMD")):
            msgs.append(f"SIMD {self.get_nodeattr('SIMD')} does not divide NumChannels {c}")
        if not self.get_input_datatype().is_integer():
            msgs.append(f"inputDataType {self.get_input_datatype().name} is not an integer type")
        return msgs or ["ChannelPermute attributes are valid"]

    def get_exp_cycles(self):
        """(P + 1) * C/SIMD: P pixels at one beat per cycle plus one pixel of buffering (module doc)."""
        return (self.pixels() + 1) * self._fold()

    def bram_estimation(self, fpgapart):
        """No BRAM: both pixel buffers are registers, which the read multiplexers need in parallel."""
        return 0

    def lut_estimation(self, fpgapart):
        """The read multiplexers, the write decoder and the counters.

        Output lane s only reads the C/SIMD channels perm[j*SIMD+s], so each output bit
        is an F:1 multiplexer (F = C/SIMD; a LUT6 with the F7/F8 muxes does 4:1 per LUT);
        each of the F input words needs a write enable. The 2*C*bits flip-flops of the
        two pixel buffers are not LUTs (FINN's estimate has no FF field).
        """
        f, bits = self._fold(), self.get_input_datatype().bitwidth()
        mux = int(self.get_nodeattr("SIMD")) * bits * math.ceil(f / 4) if f > 1 else 0
        counters = 2 * max(1, math.ceil(math.log2(f))) if f > 1 else 0
        return mux + f + counters + 4

    def get_op_and_param_counts(self):
        """No arithmetic and no parameters beyond the permutation itself."""
        return {}

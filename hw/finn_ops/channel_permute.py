"""ChannelPermute (generic, pre-hardware): reorder the channels of a tensor by a fixed permutation.

Output channel i is input channel ``perm[i]`` along ``axis`` (1 for NCHW, before FINN
lowers convolutions; the last axis for NHWC, after). It stands for a ShuffleNet-style
channel shuffle (Reshape -> Transpose -> Reshape in torch's export, see
flows/transforms/channel_shuffle_to_permute.py), which FINN cannot stream, and becomes
the hardware layer of the same name (hw/finn_ops/channel_permute_hw.py).
Domain: ``bnn2fpga.hw.finn_ops.general`` (the module that lists it, so QONNX finds it by
domain). Models saved before the project had one namespace say ``hw.finn_ops.general``;
:func:`bnn2fpga.hw.finn_ops.register` maps that name here, so those files still load.
"""
from __future__ import annotations

import numpy as np
from onnx import helper
from qonnx.custom_op.base import CustomOp

DOMAIN = "bnn2fpga.hw.finn_ops.general"
#: The domain stored in ONNX files written before the move into the bnn2fpga namespace.
LEGACY_DOMAIN = "hw.finn_ops.general"
DOMAINS = (DOMAIN, LEGACY_DOMAIN)


class ChannelPermute(CustomOp):
    """``y = np.take(x, perm, axis)``; shape and datatype pass through unchanged."""

    def get_nodeattr_types(self):
        """perm: output channel i takes input channel perm[i]; axis: the channel axis."""
        return {"perm": ("ints", True, []), "axis": ("i", False, 1)}

    def channel_axis(self, ndim: int) -> int:
        """The channel axis as a non-negative index for a tensor of ``ndim`` dimensions."""
        axis = int(self.get_nodeattr("axis"))
        return axis + ndim if axis < 0 else axis

    def make_shape_compatible_op(self, model):
        """An Identity: the output has the input's shape."""
        node = self.onnx_node
        return helper.make_node("Identity", [node.input[0]], [node.output[0]])

    def infer_node_datatype(self, model):
        """Moving values between channels keeps their datatype."""
        node = self.onnx_node
        model.set_tensor_datatype(node.output[0], model.get_tensor_datatype(node.input[0]))

    def execute_node(self, context, graph):
        """Gather the channels in ``perm`` order."""
        node = self.onnx_node
        x = context[node.input[0]]
        perm = np.asarray(self.get_nodeattr("perm"), dtype=np.int64)
        context[node.output[0]] = np.take(x, perm, axis=self.channel_axis(x.ndim))

    def verify_node(self):
        """Messages about the attributes: perm must be a permutation of 0..C-1."""
        perm = list(self.get_nodeattr("perm"))
        if sorted(perm) != list(range(len(perm))):
            return [f"perm of {self.onnx_node.name} is not a permutation of 0..{len(perm) - 1}"]
        return ["ChannelPermute attributes are valid"]

"""InferChannelPermuteLayer: generic NHWC ChannelPermute nodes become FINN HW layers."""
from __future__ import annotations

from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation

from bnn2fpga.flows.transforms.move_transpose_past_channel_permute import is_channel_permute

HW_DOMAIN = "finn.custom_op.fpgadataflow"


class InferChannelPermuteLayer(Transformation):
    """Convert ``ChannelPermute`` (hw.finn_ops.general) on the last axis with integer input to the HW op.

    The HW layer streams pixels with channels innermost, so only channels-last nodes
    (NHWC after FINN's LowerConvsToMatMul, or NC) qualify; an NCHW node is left for the
    Transpose moves to turn into one first. The new node (domain
    finn.custom_op.fpgadataflow, SIMD 1, preferred_impl_style "rtl") is specialized by
    FINN's SpecializeLayers to ChannelPermute_rtl; import hw.finn_ops first so FINN knows
    both. Run it with FINN's other convert-to-HW transformations.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        """Convert every eligible node; one pass converts all."""
        from bnn2fpga.hw.finn_ops import register

        register()

        changed = False
        for idx, node in enumerate(list(model.graph.node)):
            if not is_channel_permute(node):
                continue
            shape = list(model.get_tensor_shape(node.input[0]))
            dt = model.get_tensor_datatype(node.input[0])
            inst = getCustomOp(node)
            if inst.channel_axis(len(shape)) != len(shape) - 1 or not dt.is_integer():
                continue
            perm = [int(p) for p in inst.get_nodeattr("perm")]
            if len(perm) != shape[-1]:
                raise ValueError(f"{node.name}: perm has {len(perm)} entries for {shape[-1]} channels")
            new = helper.make_node(
                "ChannelPermute", [node.input[0]], [node.output[0]], domain=HW_DOMAIN, backend="fpgadataflow",
                NumChannels=shape[-1], perm=perm, SIMD=1, inputDataType=dt.name,
                numInputVectors=shape[:-1] or [1], preferred_impl_style="rtl", name=node.name,
            )
            model.graph.node.insert(idx, new)
            model.graph.node.remove(node)
            changed = True
        return model, changed

"""MoveTransposePastChannelPermute: Transpose(p) -> ChannelPermute(a) becomes ChannelPermute(p[a]) -> Transpose(p)."""
from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation
from qonnx.util.basic import get_by_name

from bnn2fpga.hw.finn_ops.channel_permute import DOMAINS


def is_channel_permute(node) -> bool:
    """Whether ``node`` is our generic ChannelPermute."""
    return node is not None and node.op_type == "ChannelPermute" and node.domain in DOMAINS


class MoveTransposePastChannelPermute(Transformation):
    """Swap a Transpose and the ChannelPermute that reads it, so the Transpose comes second.

    Axis a of the Transpose's output is axis p[a] of its input, so permuting channels on
    axis a after the Transpose equals permuting them on axis p[a] before it. FINN's
    LowerConvsToMatMul wraps convs in NCHW<->NHWC Transposes; after this move the
    Transpose in front of a ChannelPermute meets the one behind it and FINN's
    AbsorbConsecutiveTransposes removes both, leaving ChannelPermute on NHWC (last axis).
    The Transpose must feed only the ChannelPermute.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        """Swap the first such pair and ask to be re-run."""
        for cp in model.graph.node:
            if not is_channel_permute(cp):
                continue
            tr = model.find_producer(cp.input[0])
            if tr is None or tr.op_type != "Transpose" or len(model.find_consumers(tr.output[0]) or []) != 1:
                continue
            if any(o.name == tr.output[0] for o in model.graph.output):
                continue
            p = list(get_by_name(tr.attribute, "perm").ints)
            inst = getCustomOp(cp)
            a = inst.channel_axis(len(p))
            x, mid, y = tr.input[0], tr.output[0], cp.output[0]
            dt = model.get_tensor_datatype(mid)
            # x -> ChannelPermute(p[a]) -> mid -> Transpose(p) -> y: mid now has x's shape and layout.
            cp.input[0], cp.output[0] = x, mid
            tr.input[0], tr.output[0] = mid, y
            inst.set_nodeattr("axis", int(p[a]))
            model.set_tensor_shape(mid, model.get_tensor_shape(x))
            model.set_tensor_datatype(mid, dt)
            if model.get_tensor_layout(x) is not None:
                model.set_tensor_layout(mid, model.get_tensor_layout(x))
            nodes = list(model.graph.node)
            model.graph.node.remove(cp)
            model.graph.node.insert(nodes.index(tr), cp)
            return model, True
        return model, False

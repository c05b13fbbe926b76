"""MoveChannelPermutePastTranspose: ChannelPermute(a) -> Transpose(p) becomes Transpose(p) -> ChannelPermute(i), p[i] = a."""
from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation
from qonnx.util.basic import get_by_name

from bnn2fpga.flows.transforms.move_transpose_past_channel_permute import is_channel_permute


class MoveChannelPermutePastTranspose(Transformation):
    """Swap a ChannelPermute and the Transpose that reads it, so the ChannelPermute comes second.

    The reverse of MoveTransposePastChannelPermute: channel axis a before the Transpose is
    axis i with p[i] == a after it. Useful when the Transpose behind a ChannelPermute
    should meet a later node (e.g. an Im2Col's NHWC input) or another Transpose. The
    ChannelPermute must feed only the Transpose. Do not run both moves together: they
    undo each other.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        """Swap the first such pair and ask to be re-run."""
        for cp in model.graph.node:
            if not is_channel_permute(cp):
                continue
            consumers = model.find_consumers(cp.output[0]) or []
            if len(consumers) != 1 or consumers[0].op_type != "Transpose":
                continue
            if any(o.name == cp.output[0] for o in model.graph.output):
                continue
            tr = consumers[0]
            p = list(get_by_name(tr.attribute, "perm").ints)
            inst = getCustomOp(cp)
            a = inst.channel_axis(len(p))
            x, mid, y = cp.input[0], cp.output[0], tr.output[0]
            dt = model.get_tensor_datatype(mid)
            # x -> Transpose(p) -> mid -> ChannelPermute(p.index(a)) -> y: mid now has y's shape and layout.
            tr.input[0], tr.output[0] = x, mid
            cp.input[0], cp.output[0] = mid, y
            inst.set_nodeattr("axis", p.index(a))
            model.set_tensor_shape(mid, model.get_tensor_shape(y))
            model.set_tensor_datatype(mid, dt)
            if model.get_tensor_layout(y) is not None:
                model.set_tensor_layout(mid, model.get_tensor_layout(y))
            nodes = list(model.graph.node)
            model.graph.node.remove(tr)
            model.graph.node.insert(nodes.index(cp), tr)
            return model, True
        return model, False

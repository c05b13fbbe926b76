"""MoveTransposePastQuantAvgPool: NHWC->NCHW Transpose -> QuantAvgPool2d(NCHW) becomes QuantAvgPool2d(NHWC) -> Transpose."""
from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation
from qonnx.util.basic import get_by_name

_TO_NCHW = [0, 3, 1, 2]


class MoveTransposePastQuantAvgPool(Transformation):
    """Let an average pool (Brevitas' TruncAvgPool2d) work on the NHWC map it gets from a lowered conv.

    FINN's MakeMaxPoolNHWC does this for max pools only; a QuantAvgPool2d left in NCHW
    keeps a Transpose on each side that nothing cancels. The pool has a data_layout
    attribute, so the move only flips it and swaps the two nodes. The Transpose must feed
    only the pool.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        """Swap the first such pair and ask to be re-run."""
        for pool in model.graph.node:
            if pool.op_type != "QuantAvgPool2d":
                continue
            tr = model.find_producer(pool.input[0])
            if tr is None or tr.op_type != "Transpose" or len(model.find_consumers(tr.output[0])) != 1:
                continue
            perm = get_by_name(tr.attribute, "perm")
            inst = getCustomOp(pool)
            if perm is None or list(perm.ints) != _TO_NCHW or inst.get_nodeattr("data_layout") != "NCHW":
                continue
            n, c, h, w = model.get_tensor_shape(pool.output[0])
            nhwc_out = model.make_new_valueinfo_name()
            model.set_tensor_shape(nhwc_out, [n, h, w, c])
            model.set_tensor_datatype(nhwc_out, model.get_tensor_datatype(pool.output[0]))
            old_out = pool.output[0]
            pool.input[0] = tr.input[0]
            pool.output[0] = nhwc_out
            inst.set_nodeattr("data_layout", "NHWC")
            tr.input[0], tr.output[0] = nhwc_out, old_out
            # Keep the graph topologically sorted: the pool now runs before the Transpose.
            nodes = model.graph.node
            nodes.remove(tr)
            nodes.insert(list(nodes).index(pool) + 1, tr)
            return model, True
        return model, False

"""GlobalPoolToAccPool: a global average pool over an integer map becomes FINN's GlobalAccPool and a scale."""
from __future__ import annotations

import numpy as np
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.util.basic import get_by_name


def _reduce_axes(model: ModelWrapper, node) -> list[int] | None:
    axes = get_by_name(node.attribute, "axes")
    if axes is not None:
        return list(axes.ints)
    if len(node.input) > 1:
        init = model.get_initializer(node.input[1])
        return None if init is None else [int(a) for a in np.asarray(init).reshape(-1)]
    return None


class GlobalPoolToAccPool(Transformation):
    """Replace ReduceMean over H and W (keepdims) and GlobalAveragePool by GlobalAccPool -> Mul(1/HW).

    The mean of integer codes is not an integer, so a classifier behind it would see a
    float input and never become an MVAU. The sum is an integer (FINN's GlobalAccPool)
    and 1/HW is a scalar, moved here past the classifier's MatMul into the host's output
    scale (where it cancels against the classifier's accumulator scale). Run after
    streamlining, when the pooled map is the thresholds' integer output; FINN's own
    conversion (InferGlobalAccPoolLayer) runs in convert_to_hw, too late for the scale.
    PyTorch's exporter writes adaptive_avg_pool2d(x, 1) as ReduceMean, which FINN does
    not pool.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        """Rewrite the pools whose input is integer; never asks to be re-run."""
        from qonnx.transformation.infer_shapes import InferShapes

        changed = False
        for node in list(model.graph.node):
            if node.op_type == "ReduceMean":
                axes, keep = _reduce_axes(model, node), get_by_name(node.attribute, "keepdims")
                if axes is None or sorted(a % 4 for a in axes) != [2, 3] or (keep is not None and keep.i == 0):
                    continue
            elif node.op_type != "GlobalAveragePool":
                continue
            shape = model.get_tensor_shape(node.input[0])
            if shape is None or len(shape) != 4 or not model.get_tensor_datatype(node.input[0]).is_integer():
                continue
            _, c, h, w = shape
            # The map comes NHWC out of a lowered conv through a Transpose to NCHW; the
            # accumulating pool reads the NHWC stream (FINN's layout) directly.
            src = model.find_producer(node.input[0])
            perm = get_by_name(src.attribute, "perm") if src is not None and src.op_type == "Transpose" else None
            idx = list(model.graph.node).index(node)
            new = []
            if perm is not None and list(perm.ints) == [0, 3, 1, 2]:
                nhwc = src.input[0]
            else:
                nhwc = model.make_new_valueinfo_name()
                new.append(helper.make_node("Transpose", [node.input[0]], [nhwc], perm=[0, 2, 3, 1]))
                model.set_tensor_shape(nhwc, [1, h, w, c])
            pooled, scale = model.make_new_valueinfo_name(), model.make_new_valueinfo_name()
            model.set_initializer(scale, np.asarray(1.0 / (h * w), dtype=np.float32))
            new.append(helper.make_node(
                "GlobalAccPool", [nhwc], [pooled], domain="finn.custom_op.fpgadataflow",
                backend="fpgadataflow", NumChannels=c, PE=1,
                inputDataType=model.get_tensor_datatype(node.input[0]).name, numInputVectors=[1, h, w],
                name="GlobalAccPool_" + node.name))
            new.append(helper.make_node("Mul", [pooled, scale], [node.output[0]]))
            # (1, 1, 1, C) holds the same elements in the same order as (1, C, 1, 1).
            model.set_tensor_shape(node.output[0], [1, 1, 1, c])
            model.graph.node.remove(node)
            for k, n in enumerate(new):
                model.graph.node.insert(idx + k, n)
            if src is not None and perm is not None and not model.find_consumers(src.output[0]):
                model.graph.node.remove(src)
            changed = True
        if not changed:
            return model, False
        from qonnx.transformation.infer_datatypes import InferDataTypes

        model = model.transform(InferShapes()).transform(InferDataTypes())
        from bnn2fpga.flows.transforms.fixpoint import apply_until_stable

        return apply_until_stable(model, _scale_moves()), False


def _scale_moves() -> list:
    from finn.transformation.streamline.absorb import AbsorbConsecutiveTransposes
    from finn.transformation.streamline.collapse_repeated import CollapseRepeatedMul
    from finn.transformation.streamline.reorder import MoveScalarLinearPastInvariants, MoveScalarMulPastMatMul
    from qonnx.transformation.remove import RemoveIdentityOps

    return [MoveScalarLinearPastInvariants(), MoveScalarMulPastMatMul(), CollapseRepeatedMul(),
            RemoveIdentityOps(), AbsorbConsecutiveTransposes()]

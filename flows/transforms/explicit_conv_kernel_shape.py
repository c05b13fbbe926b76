"""ExplicitConvKernelShape: every Conv states its kernel_shape attribute."""
from __future__ import annotations

from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.util.basic import get_by_name

from bnn2fpga.errors import UserError


class ExplicitConvKernelShape(Transformation):
    """Write ``kernel_shape`` from the weight tensor where a Conv leaves it out.

    The attribute is optional in ONNX (the weights' trailing dimensions define it), but
    QONNX's and FINN's lowering read it unconditionally and fail with a KeyError.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        """Add the attribute where missing; a Conv whose weight shape is unknown is a user error."""
        for node in model.graph.node:
            if node.op_type != "Conv" or get_by_name(node.attribute, "kernel_shape") is not None:
                continue
            shape = model.get_tensor_shape(node.input[1]) if len(node.input) > 1 else None
            if not shape or len(shape) < 3:
                raise UserError(f"Conv node '{node.name}' has no kernel_shape and its weight "
                                f"'{node.input[1] if len(node.input) > 1 else '?'}' has no known shape")
            node.attribute.append(helper.make_attribute("kernel_shape", [int(d) for d in shape[2:]]))
        return model, False

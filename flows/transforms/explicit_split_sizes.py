"""ExplicitSplitSizes: every Split names its part sizes as a constant input."""
from __future__ import annotations

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.util.basic import get_by_name


class ExplicitSplitSizes(Transformation):
    """Give each ONNX Split without a sizes input (opset 18 ``num_outputs``, or equal parts) one.

    PyTorch exports ``torch.chunk`` as a Split with ``num_outputs``; FINN's Split handling
    (InferSplitLayer, MoveTransposePastSplit) reads the sizes from the second input.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        """Add the sizes input where it is missing; never asks to be re-run."""
        for node in model.graph.node:
            if node.op_type != "Split" or (len(node.input) > 1 and node.input[1]):
                continue
            shape = model.get_tensor_shape(node.input[0])
            axis = get_by_name(node.attribute, "axis")
            axis = 0 if axis is None else axis.i
            n = len(node.output)
            total = shape[axis]
            # ONNX: equal parts, the last one smaller when the axis does not divide.
            part = -(-total // n)
            sizes = [part] * (n - 1) + [total - part * (n - 1)]
            name = model.make_new_valueinfo_name()
            model.set_initializer(name, np.asarray(sizes, dtype=np.int64))
            if len(node.input) > 1:
                node.input[1] = name
            else:
                node.input.append(name)
            for attr in list(node.attribute):
                if attr.name == "num_outputs":
                    node.attribute.remove(attr)
        return model, False

"""InferSplitDataTypes: a Split's outputs carry its input's datatype."""
from __future__ import annotations

from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation


class InferSplitDataTypes(Transformation):
    """Give every output of an ONNX ``Split`` the datatype of the split tensor.

    QONNX's datatype inference does not know Split and types its outputs FLOAT32, which
    hides from streamlining that a half of a sign map is bipolar (no XNOR conversion,
    no -1 padding absorption) or that a half of an integer stream is integer. QONNX
    keeps a non-float datatype of an op it does not know, so setting it once sticks;
    run it again after anything that changes a Split's input type.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        """Copy input datatypes to Split outputs; never asks to be re-run."""
        for node in model.graph.node:
            if node.op_type != "Split":
                continue
            dt = model.get_tensor_datatype(node.input[0])
            if dt == DataType["FLOAT32"]:
                continue
            for out in node.output:
                model.set_tensor_datatype(out, dt)
        return model, False

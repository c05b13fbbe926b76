"""DetachInputLayout: keep a flatten right at the graph input on the host, not in the accelerator."""
from __future__ import annotations

import copy

from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

__all__ = ["DetachInputLayout", "reattach_input"]

_LAYOUT = ("Reshape", "Flatten")


class DetachInputLayout(Transformation):
    """Remove Reshape/Flatten nodes that directly follow the graph input (an MLP's flatten).

    Why: on the integer input such a node only renames the axes of the frame; in the
    accelerator it would be a hardware Reshape layer (one more stream stage, and one our
    Verilator stage has no RTL for), on the host it is a free numpy reshape. ``reattach_input``
    puts the nodes back in front of the converted graph, where the dataflow partition leaves
    them to the host and the board driver applies them (``io_spec.json`` ``input.host_ops``).
    """

    def __init__(self):
        super().__init__()
        self.nodes: list = []
        self.input_vi = None
        self.initializers: dict = {}

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        """Detach the leading layout nodes, if the input is integer and they are its only consumer."""
        inp = model.graph.input[0]
        if model.get_tensor_datatype(inp.name) == DataType["FLOAT32"]:
            return model, False
        tensor = inp.name
        while True:
            consumers = model.find_consumers(tensor) or []
            if len(consumers) != 1 or consumers[0].op_type not in _LAYOUT:
                break
            self.nodes.append(copy.deepcopy(consumers[0]))
            for i in consumers[0].input[1:]:
                if model.get_initializer(i) is not None:  # a Reshape's target shape
                    self.initializers[i] = model.get_initializer(i)
            tensor = consumers[0].output[0]
        if not self.nodes:
            return model, False
        self.input_vi = copy.deepcopy(inp)
        dt = model.get_tensor_datatype(inp.name)
        shape = model.get_tensor_shape(tensor)
        for n in list(model.graph.node):
            if any(n.output[0] == m.output[0] for m in self.nodes):
                model.graph.node.remove(n)
        vi = next((v for v in model.graph.value_info if v.name == tensor), None)
        if vi is not None:
            model.graph.value_info.remove(vi)
        else:
            from onnx import TensorProto, helper

            vi = helper.make_tensor_value_info(tensor, TensorProto.FLOAT, shape)
        del model.graph.input[:]
        model.graph.input.append(vi)
        model.set_tensor_datatype(tensor, dt)
        return model, False


def reattach_input(model: ModelWrapper, detached: DetachInputLayout) -> ModelWrapper:
    """Put detached input layout nodes back in front of the graph's (possibly renamed) input tensor."""
    if not detached.nodes:
        return model
    new_in = model.graph.input[0]
    dt = model.get_tensor_datatype(new_in.name)
    nodes = [copy.deepcopy(n) for n in detached.nodes]
    nodes[-1].output[0] = new_in.name
    model.graph.value_info.append(copy.deepcopy(new_in))
    del model.graph.input[:]
    model.graph.input.append(copy.deepcopy(detached.input_vi))
    for i, n in enumerate(nodes):
        model.graph.node.insert(i, n)
    for name, value in detached.initializers.items():
        model.set_initializer(name, value)
    from qonnx.transformation.infer_shapes import InferShapes

    model = model.transform(InferShapes())
    for n in nodes:
        for t in [n.input[0]] + list(n.output):
            model.set_tensor_datatype(t, dt)
    return model

"""DetachHostHead: cut the float tail after the last integer layer off the graph (it runs on the host)."""
from __future__ import annotations

import copy

import numpy as np
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

__all__ = ["DetachHostHead", "HEAD_OPS", "reattach"]

#: Ops a host head may hold: elementwise by a constant (scale Mul, bias Add, the affine of a last
#: BatchNorm or BNN-PYNQ's TensorNorm after streamlining), layout changes, and a final TopK/ArgMax.
HEAD_OPS = ("Mul", "Add", "Sub", "Div", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze",
            "Identity", "TopK", "ArgMax")
_ELEMENTWISE = ("Mul", "Add", "Sub", "Div")


class DetachHostHead(Transformation):
    """Remove the float ops between the last integer tensor and the graph output.

    Why: after streamlining, a network ends in its last integer layer's accumulator followed by
    float work (the layer's scale and bias, a last BatchNorm / TensorNorm affine, TopK). FINN's
    conversion would turn those Mul/Add into ElementwiseMul/Add hardware layers on float tensors,
    which cannot be built. Cut off here, they run on the host (``reattach`` puts them back after
    the hardware conversion, outside the dataflow partition). The removed nodes and their
    constants are kept in ``self.nodes`` / ``self.initializers``; ``self.gain`` and ``self.offset``
    give the head as ``y = gain * acc + offset`` per output element when it is affine (None
    otherwise), which lets the verification compare outputs in accelerator integers.
    """

    def __init__(self):
        super().__init__()
        self.nodes: list = []
        self.initializers: dict[str, np.ndarray] = {}
        self.cut: str | None = None  # the integer tensor that becomes the accelerator's output
        self.output: str | None = None
        self.gain: np.ndarray | None = None
        self.offset: np.ndarray | None = None
        self.output_vi = None

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        """Detach the head (if the output is float and the tail consists of host-head ops)."""
        out = model.graph.output[0].name
        if len(model.graph.output) != 1 or model.get_tensor_datatype(out) != DataType["FLOAT32"]:
            return model, False
        tail, tensor = [], out
        while True:
            node = model.find_producer(tensor)
            if node is None or node.op_type not in HEAD_OPS:
                break
            if node.op_type in _ELEMENTWISE and model.get_initializer(node.input[1]) is None:
                break  # two data operands (a residual add): not a head
            data_in = node.input[0]
            if len(model.find_consumers(data_in) or []) != 1:
                break
            tail.insert(0, node)
            tensor = data_in
            if model.get_tensor_datatype(tensor) != DataType["FLOAT32"]:
                break
        if not tail or model.get_tensor_datatype(tensor) == DataType["FLOAT32"]:
            return model, False
        if all(self._integer_op(model, n) for n in tail):
            # Integer constants only (e.g. an XNOR layer's 2 * popcount - N): FINN maps these to
            # integer elementwise layers, so the accelerator keeps computing the network's output.
            return model, False
        self.cut, self.output = tensor, out
        self.nodes = [copy.deepcopy(n) for n in tail]
        for n in tail:
            for i in n.input[1:]:
                init = model.get_initializer(i)
                if init is not None:
                    self.initializers[i] = init
        self._affine(model, tail)
        for n in tail:
            model.graph.node.remove(n)
        # The accelerator's output is now the integer tensor in front of the head.
        self.output_vi = copy.deepcopy(model.graph.output[0])
        vi = next((v for v in model.graph.value_info if v.name == tensor), None)
        if vi is None:
            from onnx import TensorProto, helper

            vi = helper.make_tensor_value_info(tensor, TensorProto.FLOAT, model.get_tensor_shape(tensor))
        else:
            model.graph.value_info.remove(vi)
        del model.graph.output[:]
        model.graph.output.append(vi)
        return model, False

    @staticmethod
    def _integer_op(model: ModelWrapper, node) -> bool:
        if node.op_type in ("Mul", "Add", "Sub"):
            c = np.asarray(model.get_initializer(node.input[1]))
            return bool(np.all(c == np.round(c)))
        return node.op_type in ("Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Identity")

    def _affine(self, model: ModelWrapper, tail) -> None:
        # The head as gain * acc + offset per output element, found by running it on 0 and 1
        # (exact for Mul/Add/Sub/Div by constants and layout ops; TopK/ArgMax are not affine).
        if any(n.op_type in ("TopK", "ArgMax") for n in tail):
            return
        shape = model.get_tensor_shape(self.cut)
        zero = self._run(tail, np.zeros(shape, np.float64))
        one = self._run(tail, np.ones(shape, np.float64))
        if zero is not None and one is not None:
            self.gain, self.offset = (one - zero).reshape(-1), zero.reshape(-1)

    def _run(self, tail, x: np.ndarray) -> np.ndarray | None:
        for n in tail:
            c = self.initializers.get(n.input[1]) if len(n.input) > 1 else None
            if n.op_type == "Mul":
                x = x * c
            elif n.op_type == "Add":
                x = x + c
            elif n.op_type == "Sub":
                x = x - c
            elif n.op_type == "Div":
                x = x / c
            elif n.op_type == "Transpose":
                perm = next((list(a.ints) for a in n.attribute if a.name == "perm"), None)
                x = np.transpose(x, perm)
            elif n.op_type in ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"):
                x = x.reshape(len(x), -1)  # only the element order matters, and these keep it
            else:
                return None
        return x


def reattach(model: ModelWrapper, head: DetachHostHead) -> ModelWrapper:
    """Put a detached head back behind the graph's (possibly renamed) output tensor, outside the accelerator."""
    if not head.nodes:
        return model
    acc = model.graph.output[0].name
    nodes = [copy.deepcopy(n) for n in head.nodes]
    for n in nodes:
        if n.input[0] == head.cut:
            n.input[0] = acc
    for name, value in head.initializers.items():
        model.set_initializer(name, value)
    model.graph.node.extend(nodes)
    # The accelerator's output tensor becomes an inner tensor again, keeping its type and shape.
    old = model.graph.output[0]
    model.graph.value_info.append(copy.deepcopy(old))
    del model.graph.output[:]
    model.graph.output.append(copy.deepcopy(head.output_vi))
    from qonnx.transformation.infer_shapes import InferShapes

    model = model.transform(InferShapes())
    for n in nodes:
        for o in n.output:
            model.set_tensor_datatype(o, DataType["FLOAT32"])
    return model

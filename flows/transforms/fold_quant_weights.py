"""FoldAllQuantWeights: FINN's FoldQuantWeights in one pass over the graph (issue #19).

FINN's ``FoldQuantWeights`` folds one constant-input Quant / BipolarQuant (a weight
quantizer) per call of ``apply``, then re-infers every shape of the graph (with QONNX's
five-pass clean-up) and returns, so ``ModelWrapper.transform`` calls it again: one full
shape inference, clean-up and exec-context allocation per weight, O(nodes^2) in all.
This transformation makes the same edits for every weight quantizer, in graph order,
in one pass, and infers shapes once at the end. Run it right before FINN's pass, which
then finds nothing left to fold.

Anything this pass does not handle exactly as FINN does (a non-zero zero point, a
forking or consumer-less quantizer, a DebugMarker, a successor FINN refuses, a shape
FINN would only know after its shape inference) ends the pass early: FINN's own pass
folds (or rejects) what is left, with its own errors.
"""
from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

_MUL_LIKE = ("Mul", "Div", "Conv", "MatMul", "Gather", "ConvTranspose")
_ADD_LIKE = ("Add", "Sub")


class FoldAllQuantWeights(Transformation):
    """Fold every weight quantizer (all inputs constant) into its initializer; scales move behind the consumer.

    ``folded`` counts the quantizers folded by the last ``apply``.
    """

    def __init__(self):
        super().__init__()
        self.folded = 0

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        from qonnx.transformation.infer_shapes import InferShapes

        self.folded = 0
        for n in list(model.graph.node):
            if n.op_type not in ("Quant", "BipolarQuant"):
                continue
            if any(model.get_initializer(t) is None for t in n.input):
                continue  # an activation quantizer
            if not self._fold(model, n):
                break  # FINN's own pass takes over from here
            self.folded += 1
        if self.folded:
            # FINN re-infers shapes (with the clean-up) after each fold; once is enough.
            model = model.transform(InferShapes())
        return model, False

    @staticmethod
    def _fold(model: ModelWrapper, n) -> bool:
        """Fold quantizer ``n`` as FINN's pass would; False (graph untouched) when it is left to FINN."""
        import qonnx.core.onnx_exec as oxe
        from qonnx.custom_op.registry import getCustomOp
        from qonnx.util.basic import get_preferred_qonnx_opset

        graph = model.graph
        if n.op_type == "Quant" and not model.get_initializer(n.input[2]) == 0:
            return False
        if model.is_fork_node(n):
            return False
        succ = model.find_consumers(n.output[0])
        if not succ or len(succ) != 1 or succ[0].op_type == "DebugMarker":
            return False
        target = succ[0]
        scale = model.get_initializer(n.input[1])
        unity = bool((scale.flatten() == 1.0).all())
        if not unity:
            if target.op_type not in _MUL_LIKE + _ADD_LIKE:
                return False
            if target.op_type in ("Conv", "ConvTranspose"):
                if len(target.input) > 2 and target.input[2] == n.output[0]:
                    return False  # a conv bias: FINN asserts
                if len(scale.shape) > 0 and model.get_tensor_shape(target.output[0]) is None:
                    return False  # FINN would know the shape from its last shape inference
        opsets = model.get_opset_imports()
        opset = opsets[n.domain] if n.domain in opsets else get_preferred_qonnx_opset()
        ctx = {t: model.get_initializer(t) for t in n.input}
        ctx[n.output[0]] = None
        oxe.execute_node(n, ctx, graph, opset)
        q = ctx[n.output[0]]
        out = n.output[0]
        pos = list(graph.node).index(n) + 1  # new nodes go right after the quantizer, which then goes
        if unity:
            model.set_initializer(out, q)
        else:
            if len(scale.shape) > 1 and target.op_type == "Conv" and np.prod(scale.shape[1:]) != 1:
                return False
            if len(scale.shape) > 1 and target.op_type == "ConvTranspose" and not (
                    np.prod(scale.shape[2:]) == 1 and scale.shape[0] == 1):
                return False
            model.set_initializer(out, np.round(q / scale))
            model.set_tensor_datatype(out, getCustomOp(n).get_integer_datatype(model))
            if target.op_type in ("Conv", "ConvTranspose") and len(scale.shape) > 0:
                shape = [1] * len(model.get_tensor_shape(target.output[0]))
                shape[1] = -1  # one scale per output channel
                scale = scale.reshape(shape)
            if scale.shape == (1,):
                scale, mul_shape = scale[0], ()
            else:
                mul_shape = scale.shape
            mul_name = _new_value_info(model, mul_shape)
            model.set_initializer(mul_name, scale)
            result = target.output[0]
            pre_mul = _new_value_info(model, None)
            target.output[0] = pre_mul
            graph.node.insert(pos, helper.make_node("Mul", [pre_mul, mul_name], [result]))
            if target.op_type in _ADD_LIKE:
                # the other summand is divided by the scale before the add
                div_name = _new_value_info(model, None)
                model.set_initializer(div_name, scale)
                k = 1 if target.input[0] == out else 0
                other = target.input[k]
                divided = _new_value_info(model, None)
                target.input[k] = divided
                graph.node.insert(pos, helper.make_node("Div", [other, div_name], [divided]))
        graph.node.remove(n)
        return True


def _new_value_info(model: ModelWrapper, shape) -> str:
    vi = helper.make_tensor_value_info(model.make_new_valueinfo_name(), TensorProto.FLOAT, shape)
    model.graph.value_info.append(vi)
    return vi.name

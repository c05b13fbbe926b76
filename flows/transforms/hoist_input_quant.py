"""HoistInputQuantToHost: move the graph input's float pre-processing and quantizer out of the accelerator."""
from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.util.basic import get_by_name

from bnn2fpga.quantize.input_quant import ROUNDING, InputQuantSpec

__all__ = ["HoistInputQuantToHost", "InputQuantSpec", "FLOAT_PRE_OPS", "LAYOUT_OPS"]

#: Float elementwise ops by a constant that may precede the input quantizer (``2x - 1``, ``x / 255``).
FLOAT_PRE_OPS = ("Mul", "Add", "Sub", "Div")
#: Layout ops that may sit between the input and its quantizer; they commute with per-tensor
#: elementwise ops and quantization, so they stay in the graph and act on the integer codes.
LAYOUT_OPS = ("Reshape", "Flatten")


class HoistInputQuantToHost(Transformation):
    """Replace the float pre-processing and ``Quant`` after the graph input by an integer graph input.

    Why: FINN turns such a Quant into a MultiThreshold that rounds ties up, while
    Brevitas and QONNX round them to even, so inputs on a tie would differ by one LSB
    (TOOLCHAIN.md's trap). With the quantizer on the host, in numpy, with the same
    rounding, the accelerator only ever sees integers and no tie can reach it. Float
    elementwise ops by a per-tensor constant in front of the quantizer (BNN-PYNQ's
    ``2x - 1``, a ``/ 255``) are float work too and go to the host with it, in
    ``self.float_ops`` (applied first). A ``BipolarQuant`` input quantizer (sign) becomes
    a ``Sign`` float op and an INT2 input of -1 / +1 codes. The removed quantizer is kept in ``self.spec``
    and must be applied by the host. A scale other than 1 or a zero point becomes a
    Mul / Sub that streamlining absorbs.
    """

    def __init__(self):
        super().__init__()
        self.spec: InputQuantSpec | None = None
        self.float_ops: list[dict] = []
        self.bipolar = False

    def _chain(self, model: ModelWrapper):
        # Walk from the graph input over single-consumer float ops to the first quantizer.
        inp = model.graph.input[0].name
        nodes, tensor = [], inp
        while True:
            consumers = model.find_consumers(tensor) or []
            if len(consumers) != 1:
                return None
            node = consumers[0]
            if node.op_type in ("Quant", "BipolarQuant"):
                return nodes, node
            if node.op_type in LAYOUT_OPS:
                pass
            elif node.op_type in FLOAT_PRE_OPS:
                const = model.get_initializer(node.input[1]) if node.input[0] == tensor else None
                if const is None or np.asarray(const).size != 1:
                    return None  # a tensor operand or a per-channel constant: not plain pre-processing
            else:
                return None
            nodes.append(node)
            tensor = node.output[0]

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        """Hoist the input pre-processing and quantizer (if there is one); annotate the input's integer type."""
        found = self._chain(model)
        if found is None:
            return model, False
        pre, node = found
        if node.op_type == "BipolarQuant":
            scale = model.get_initializer(node.input[1])
            if scale is None or np.asarray(scale).size != 1:
                return model, False
            self.bipolar, qscale, zp = True, float(np.asarray(scale).reshape(-1)[0]), 0.0
        else:
            scale, zp, bits = (model.get_initializer(node.input[i]) for i in (1, 2, 3))
            if scale is None or zp is None or bits is None:
                return model, False
            if np.asarray(scale).size != 1 or np.asarray(zp).size != 1:
                return model, False  # per-channel input scales: leave to FINN
            attr = lambda name, default: (  # noqa: E731
                get_by_name(node.attribute, name).i if get_by_name(node.attribute, name) else default
            )
            rounding = get_by_name(node.attribute, "rounding_mode")
            mode = rounding.s.decode().upper() if rounding else "ROUND"
            if mode not in ROUNDING or int(np.asarray(bits).reshape(-1)[0]) < 2:
                return model, False  # a mode the host cannot reproduce: leave it to FINN
            self.spec = InputQuantSpec(
                scale=float(np.asarray(scale).reshape(-1)[0]),
                zero_point=float(np.asarray(zp).reshape(-1)[0]),
                bits=int(np.asarray(bits).reshape(-1)[0]),
                signed=bool(attr("signed", 1)),
                narrow=bool(attr("narrow", 0)),
                rounding=mode,
            )
            qscale, zp = self.spec.scale, self.spec.zero_point
        for p in pre:
            if p.op_type in FLOAT_PRE_OPS:
                value = float(np.asarray(model.get_initializer(p.input[1])).reshape(-1)[0])
                self.float_ops.append({"op": p.op_type, "value": value})
        if self.bipolar:
            self.float_ops.append({"op": "Sign", "scale": qscale})
        out = node.output[0]
        for o in model.graph.output:
            if o.name == out:
                raise ValueError("the input quantizer feeds the graph output directly")
        # Remove the float ops and the quantizer; layout ops stay and now move integer codes.
        inp = model.graph.input[0].name
        current = inp
        for p in pre:
            if p.op_type in LAYOUT_OPS:
                p.input[0] = current
                current = p.output[0]
            else:
                model.graph.node.remove(p)
        idx = list(model.graph.node).index(node)
        model.graph.node.remove(node)
        # Dequantize in the graph: x_float = scale * (q - zp); both steps are exact no-ops when trivial.
        if zp != 0.0:
            current = self._insert(model, idx, "Sub", current, zp)
            idx += 1
        if qscale != 1.0:
            current = self._insert(model, idx, "Mul", current, qscale)
        # Rewire the Quant's consumers to the dequantized (or raw integer) tensor.
        for consumer in model.find_consumers(out) or []:
            for i, name in enumerate(consumer.input):
                if name == out:
                    consumer.input[i] = current
        # A bipolar input travels as INT2 codes (-1, +1): FINN's XNOR conversion needs a BIPOLAR input to come
        # from a threshold layer, while integer inputs times +-1 weights map like any first layer.
        dt = DataType["INT2"] if self.bipolar else DataType[self.spec.datatype]
        model.set_tensor_datatype(inp, dt)
        for p in pre:
            if p.op_type in LAYOUT_OPS:
                model.set_tensor_datatype(p.output[0], dt)
        return model, False

    @staticmethod
    def _insert(model: ModelWrapper, idx: int, op: str, src: str, value: float) -> str:
        const = model.make_new_valueinfo_name()
        model.set_initializer(const, np.asarray(value, dtype=np.float32))
        dst = model.make_new_valueinfo_name()
        vi = helper.make_tensor_value_info(dst, TensorProto.FLOAT, model.get_tensor_shape(src))
        model.graph.value_info.append(vi)
        model.graph.node.insert(idx, helper.make_node(op, [src, const], [dst]))
        return dst

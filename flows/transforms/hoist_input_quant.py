"""HoistInputQuantToHost: move the graph input's quantizer out of the accelerator."""
from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.util.basic import get_by_name

from bnn2fpga.quantize.input_quant import ROUNDING, InputQuantSpec

__all__ = ["HoistInputQuantToHost", "InputQuantSpec"]


class HoistInputQuantToHost(Transformation):
    """Replace the ``Quant`` right after the graph input by an integer graph input.

    Why: FINN turns such a Quant into a MultiThreshold that rounds ties up, while
    Brevitas and QONNX round them to even, so inputs on a tie would differ by one LSB
    (TOOLCHAIN.md's trap). With the quantizer on the host, in numpy, with the same
    rounding, the accelerator only ever sees integers and no tie can reach it. The
    removed quantizer is kept in ``self.spec`` and must be applied by the host.
    A scale other than 1 or a zero point becomes a Mul / Sub that streamlining absorbs.
    """

    def __init__(self):
        super().__init__()
        self.spec: InputQuantSpec | None = None

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        """Hoist the input Quant (if there is one) and annotate the input's integer type."""
        inp = model.graph.input[0].name
        node = model.find_consumer(inp)
        if node is None or node.op_type != "Quant" or len(model.find_consumers(inp)) != 1:
            return model, False
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
        out = node.output[0]
        current = inp
        idx = list(model.graph.node).index(node)
        model.graph.node.remove(node)
        # Dequantize in the graph: x_float = scale * (q - zp); both steps are exact no-ops when trivial.
        if self.spec.zero_point != 0.0:
            current = self._insert(model, idx, "Sub", current, self.spec.zero_point)
            idx += 1
        if self.spec.scale != 1.0:
            current = self._insert(model, idx, "Mul", current, self.spec.scale)
        # Rewire the Quant's consumers to the dequantized (or raw integer) tensor.
        for consumer in model.find_consumers(out) or []:
            for i, name in enumerate(consumer.input):
                if name == out:
                    consumer.input[i] = current
        for o in model.graph.output:
            if o.name == out:
                raise ValueError("the input quantizer feeds the graph output directly")
        model.set_tensor_datatype(inp, DataType[self.spec.datatype])
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

"""AbsorbBipolarPadIntoConv: turn an explicit -1 padding of a binary map into conv padding."""
from __future__ import annotations

import numpy as np
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.util.basic import get_by_name


class AbsorbBipolarPadIntoConv(Transformation):
    """Fold ``Pad(value=-1)`` on a BIPOLAR tensor into the padding of the XNOR conv after it.

    Binary feature maps are padded with -1 (0 is not a bipolar value). FINN lowers a
    conv's own padding to zero padding, which after the switch to the XNOR encoding
    (bit 0 = -1) is exactly -1 padding; an explicit Pad node would instead keep the
    literal value -1, which is not a valid bit. So the Pad disappears into the conv.
    Only valid when the conv is sure to become an XnorPopcountMatMul (bipolar input
    and weights), which is checked; run it right before FINN's streamlining.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        """Absorb the first matching Pad and report whether the graph changed."""
        for node in model.graph.node:
            if node.op_type != "Pad":
                continue
            conv = model.find_consumer(node.output[0])
            if conv is None or conv.op_type != "Conv" or len(model.find_consumers(node.output[0])) != 1:
                continue
            if model.get_tensor_datatype(node.input[0]) != DataType["BIPOLAR"]:
                continue
            if model.get_tensor_datatype(conv.input[1]) != DataType["BIPOLAR"]:
                continue
            mode = get_by_name(node.attribute, "mode")
            if mode is not None and mode.s.decode() != "constant":
                continue
            value = model.get_initializer(node.input[2]) if len(node.input) > 2 and node.input[2] else None
            if value is None or float(np.asarray(value).reshape(-1)[0]) != -1.0:
                continue
            if len(node.input) > 3 and node.input[3]:
                continue  # explicit axes: not what the exporter writes for F.pad
            pads = model.get_initializer(node.input[1])
            if pads is None or len(pads) != 8:
                continue
            pads = [int(p) for p in pads]
            # ONNX order: begins of N, C, H, W then ends of N, C, H, W.
            if pads[0] or pads[1] or pads[4] or pads[5]:
                continue
            conv_pads = get_by_name(conv.attribute, "pads")
            if conv_pads is not None and any(conv_pads.ints):
                continue
            new_pads = [pads[2], pads[3], pads[6], pads[7]]
            if conv_pads is None:
                from onnx import helper

                conv.attribute.append(helper.make_attribute("pads", new_pads))
            else:
                del conv_pads.ints[:]
                conv_pads.ints.extend(new_pads)
            conv.input[0] = node.input[0]
            model.graph.node.remove(node)
            return model, True
        return model, False

"""FixReshapeFolding: keep a Reshape layer's PE a divisor of both of its stream axes."""
from __future__ import annotations

import math

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation


class FixReshapeFolding(Transformation):
    """Lower ``PE`` of Reshape layers to the largest valid value not above the current one.

    FINN's SetFolding bounds a Reshape's PE by the output's last axis only, but the
    layer folds its input's last axis by the same PE (e.g. 8 -> 16 after a flatten gives
    PE 16 for an input axis of 8, which FINN itself then rejects). PE must divide both.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        """Clamp every Reshape layer's PE."""
        for node in model.graph.node:
            if not node.op_type.startswith("Reshape") or not node.domain.startswith("finn.custom_op"):
                continue
            inst = getCustomOp(node)
            if "PE" not in inst.get_nodeattr_types():
                continue
            axes = math.gcd(int(inst.get_normal_input_shape()[-1]), int(inst.get_normal_output_shape()[-1]))
            pe = int(inst.get_nodeattr("PE"))
            if axes % pe:
                inst.set_nodeattr("PE", max(d for d in range(1, min(pe, axes) + 1) if axes % d == 0))
        return model, False

"""DespecializeForPython: run HLS/RTL-specialized layers with their Python models."""
from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

_SUFFIXES = ("_hls", "_rtl")


class DespecializeForPython(Transformation):
    """Turn ``MVAU_hls``, ``Thresholding_rtl`` ... back into their generic HW ops.

    Specialized FINN layers only execute in cppsim or rtlsim; their generic parents
    carry the same attributes (folding, datatypes, rounded thresholds) and execute in
    numpy. This lets the ladder check everything the folding and bit-width steps
    changed without Xilinx tools. It is for execution only: never build from the result.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        """Rewrite op types and domains of every specialized node."""
        for node in model.graph.node:
            for suffix in _SUFFIXES:
                if node.op_type.endswith(suffix) and node.domain.startswith("finn.custom_op.fpgadataflow"):
                    node.op_type = node.op_type[: -len(suffix)]
                    node.domain = "finn.custom_op.fpgadataflow"
        return model, False

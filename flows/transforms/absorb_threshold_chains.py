"""AbsorbThresholdChains: fold chains of per-channel affine ops and PReLUs into the thresholds behind them."""
from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation


class AbsorbThresholdChains(Transformation):
    """Absorb Add, positive Mul, BatchNorm and monotone PReLU chains into the next MultiThreshold.

    FINN's streamlining absorbs affine ops into thresholds but stops at a PReLU, and a
    second PReLU further up (PresB-Net: conv -> +b -> PReLU -> BN -> +b -> PReLU -> BN -> Q)
    is never reached. Working backwards from each MultiThreshold, this alternates our
    PReLU absorption with FINN's Add/Mul absorption until nothing changes, so a whole
    chain of per-channel monotone maps becomes one set of thresholds. BatchNorms become
    Mul/Add first. A negative scale stops the chain (it would need inverted thresholds),
    and what is left is handled by FINN's streamlining as before.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        """Run the absorptions to a fixed point; never asks to be re-run."""
        from finn.transformation.streamline.absorb import (
            AbsorbAddIntoMultiThreshold,
            AbsorbMulIntoMultiThreshold,
        )
        from qonnx.transformation.batchnorm_to_affine import BatchNormToAffine
        from qonnx.transformation.infer_shapes import InferShapes

        from bnn2fpga.flows.fast_apply import Applier
        from bnn2fpga.flows.transforms.absorb_prelu import AbsorbPReLUIntoMultiThreshold

        if not any(n.op_type == "PRelu" for n in model.graph.node):
            return model, False
        # Through an applier: the absorptions that find nothing skip the clean-up (issue #19).
        a = Applier()
        model = a.transform(a.transform(model, BatchNormToAffine()), InferShapes())
        while True:
            before = len(model.graph.node)
            for t in (AbsorbPReLUIntoMultiThreshold(), AbsorbAddIntoMultiThreshold(), AbsorbMulIntoMultiThreshold()):
                model = a.transform(model, t)
            if len(model.graph.node) == before:
                return model, False

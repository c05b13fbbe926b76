"""StreamlineResiduals: streamline quantizer scales through residual forks and adds."""
from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation


def join_adds(model: ModelWrapper) -> list:
    """Add nodes whose two inputs are both computed (residual joins), not constant biases."""
    return [n for n in model.graph.node
            if n.op_type == "Add" and len(n.input) == 2
            and all(model.get_initializer(t) is None for t in n.input)]


def _moves() -> list:
    # The residual moves of finn-plus' StreamlinePlus plus the chain moves that absorb
    # what they free. StreamlinePlus itself does the same but re-runs its ~50
    # transformations until nothing changes, about ten times slower on BlinkNet.
    from finn.transformation.streamline.absorb import (
        AbsorbConsecutiveTransposes,
        AbsorbMulIntoMultiThreshold,
        AbsorbTransposeIntoMultiThreshold,
    )
    from finn.transformation.streamline.collapse_repeated import CollapseRepeatedMul
    from qonnx.transformation.remove import RemoveIdentityOps
    from finn.transformation.streamline.reorder import (
        MoveLinearPastEltwiseAdd,
        MoveMulPastFork,
        MoveScalarLinearPastInvariants,
        MoveScalarMulPastMatMul,
        MoveScalesPastIm2Col,
        MoveTransposePastFork,
        MoveTransposePastJoinAdd,
    )

    return [
        MoveMulPastFork(), MoveTransposePastFork(),  # one copy of the scale per branch
        MoveLinearPastEltwiseAdd(), MoveTransposePastJoinAdd(),  # equal scales leave the add
        MoveScalarLinearPastInvariants(), MoveScalesPastIm2Col(), MoveScalarMulPastMatMul(),
        CollapseRepeatedMul(), AbsorbMulIntoMultiThreshold(),
        AbsorbConsecutiveTransposes(), AbsorbTransposeIntoMultiThreshold(), RemoveIdentityOps(),
    ]


class StreamlineResiduals(Transformation):
    """Move the quantizer scales of residual blocks past their forks and adds.

    FINN's default streamlining only moves scales along chains: a scale whose tensor
    forks (shortcut and residual branch) or that meets another stream at an add stays
    put, and everything behind it stays float. When both inputs of an add carry the
    same scalar scale (one quantizer feeds both, as in BlinkNet's stages), the scale is
    copied into both branches of the fork, moved past the add, and absorbed downstream
    like any chain scale. The add then sums integer streams (FINN's ElementwiseAdd
    behind a DuplicateStreams fork). Graphs without a residual add are left alone.
    Run it after FINN's streamlining.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        """Apply the moves until nothing changes; never asks to be re-run itself."""
        if not join_adds(model):
            return model, False
        from bnn2fpga.flows.fast_apply import round_and_clip_thresholds
        from bnn2fpga.flows.transforms.fixpoint import apply_until_stable

        model = apply_until_stable(model, _moves())
        # Thresholds that now see integer inputs are rounded as FINN's streamlining does
        # (= model.transform(RoundAndClipThresholds()), without one pass per threshold).
        return round_and_clip_thresholds(model), False

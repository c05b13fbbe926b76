"""StreamlineLayouts: move the NCHW<->NHWC Transposes out of graphs that split, permute and concatenate channels."""
from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation


def _moves() -> list:
    from finn.transformation.streamline.absorb import (
        AbsorbConsecutiveTransposes,
        AbsorbTransposeIntoMultiThreshold,
    )
    from finn.transformation.streamline.reorder import (
        MoveTransposePastFork,
        MoveTransposePastJoinAdd,
        MoveTransposePastJoinConcat,
        MoveTransposePastSplit,
    )

    from bnn2fpga.flows.transforms.move_transpose_past_avg_pool import MoveTransposePastQuantAvgPool
    from bnn2fpga.flows.transforms.move_transpose_past_channel_permute import MoveTransposePastChannelPermute

    return [
        MoveTransposePastFork(), MoveTransposePastSplit(), MoveTransposePastChannelPermute(),
        MoveTransposePastJoinConcat(), MoveTransposePastJoinAdd(), MoveTransposePastQuantAvgPool(),
        AbsorbTransposeIntoMultiThreshold(), AbsorbConsecutiveTransposes(),
    ]


class StreamlineLayouts(Transformation):
    """Push every Transpose that FINN's conv lowering leaves behind downstream until it cancels.

    FINN's streamlining makes a chain of convs NHWC: the Transpose behind one lowered conv
    meets the one in front of the next and both vanish. Between them PresB-Net has
    channel splits, channel shuffles, concatenations and adds, which stay NCHW and keep
    their Transposes, and FINN cannot turn NCHW splits and concats into streams. Moving
    the Transposes past forks, splits, channel permutations, concats and adds (each move
    rewrites the op's axis) lets them meet their inverses. Graphs without Split, Concat or
    ChannelPermute are left alone, so the CNN flows do not change.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        """Apply the moves until nothing changes; never asks to be re-run."""
        if not any(n.op_type in ("Split", "Concat", "ChannelPermute") for n in model.graph.node):
            return model, False
        from bnn2fpga.flows.transforms.fixpoint import apply_until_stable

        return apply_until_stable(model, _moves()), False

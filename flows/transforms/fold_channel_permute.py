"""FoldChannelPermute: give ChannelPermute layers the smallest SIMD that keeps them off the critical path."""
from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation


def _is_permute_layer(node) -> bool:
    return node.op_type in ("ChannelPermute", "ChannelPermute_rtl") and node.domain.startswith(
        "finn.custom_op.fpgadataflow")


class FoldChannelPermute(Transformation):
    """Set each ChannelPermute layer's SIMD to the smallest divisor of C whose cycles fit the budget.

    FINN's SetFolding does not know the op and leaves SIMD at 1: C cycles per pixel,
    usually the slowest layer of the design. The budget is the slowest other HW layer's
    cycle estimate (or ``cycles`` if given); SIMD = C when nothing smaller fits, so
    ``cycles=1`` makes every ChannelPermute as fast as it can be (flows/folding.py does
    that before SetFolding, whose relaxation would otherwise slow every other layer down
    to a SIMD-1 permute). Smaller SIMD means fewer multiplexer LUTs, so the smallest that
    fits is the cheapest.
    """

    def __init__(self, cycles: int | None = None):
        super().__init__()
        self.cycles = cycles

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        """Fold every ChannelPermute layer; never asks to be re-run."""
        from bnn2fpga.hw.finn_ops import register

        register()

        layers = [n for n in model.graph.node if _is_permute_layer(n)]
        if not layers:
            return model, False
        budget = self.cycles
        if budget is None:
            others = [int(getCustomOp(n).get_exp_cycles()) for n in model.graph.node
                      if n.domain.startswith("finn.custom_op.fpgadataflow") and not _is_permute_layer(n)]
            budget = max(others, default=1)
        for node in layers:
            inst = getCustomOp(node)
            c = int(inst.get_nodeattr("NumChannels"))
            for simd in (d for d in range(1, c + 1) if c % d == 0):
                inst.set_nodeattr("SIMD", simd)
                if inst.get_exp_cycles() <= budget:
                    break
        return model, False

"""SetFIFODepths: write measured FIFO depths where FINN's InsertFIFO reads them."""
from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation

from bnn2fpga.hw.sim.graph_sim import FIFOS_SIZED

__all__ = ["SetFIFODepths"]

#: FINN's default for both attributes; InsertFIFO makes a FIFO of max(producer's, consumer's).
DEFAULT_DEPTH = 2


class SetFIFODepths(Transformation):
    """Set each stream's FIFO depth on the producer's ``outFIFODepths`` or the consumer's ``inFIFODepths``.

    Why: FINN's InsertFIFO (step_set_fifo_depths with ``auto_fifo_depths=False``) makes the FIFO
    of a stream max(producer's outFIFODepths, consumer's inFIFODepths) deep, and between two
    widths it puts one FIFO on each side of the width converter: the end named here carries the
    depth, the other keeps FINN's default 2. Every list is reset first, so sizing again replaces
    all depths. The model is marked (``FIFOS_SIZED``) so our Verilator stage stitches exactly these.

    ``depths``: (tensor name, "out" or "in", depth) per stream; ``cycles_per_frame``: the rate
    they were measured to sustain (kept with the mark, for the Verilator stage to check).
    """

    def __init__(self, depths: list[tuple[str, str, int]], cycles_per_frame: int):
        super().__init__()
        self.depths = depths
        self.cycles_per_frame = cycles_per_frame

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        """Write the depths; runs once (returns unchanged)."""
        for node in model.graph.node:
            inst = getCustomOp(node)
            inst.set_nodeattr("inFIFODepths", [DEFAULT_DEPTH] * len(node.input))
            inst.set_nodeattr("outFIFODepths", [DEFAULT_DEPTH] * len(node.output))
        for tensor, side, depth in self.depths:
            node = model.find_producer(tensor) if side == "out" else model.find_consumer(tensor)
            if node is None:
                raise ValueError(f"no {'producer' if side == 'out' else 'consumer'} of tensor {tensor!r}")
            ports = node.output if side == "out" else node.input
            attr = f"{side}FIFODepths"
            inst = getCustomOp(node)
            depths = list(inst.get_nodeattr(attr))
            depths[list(ports).index(tensor)] = int(depth)
            inst.set_nodeattr(attr, depths)
        model.set_metadata_prop(FIFOS_SIZED, str(int(self.cycles_per_frame)))
        return model, False

"""MergeIdenticalSplits: two Splits of one tensor into the same parts become one."""
from __future__ import annotations

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.util.basic import get_by_name


def _key(model: ModelWrapper, node) -> tuple | None:
    axis = get_by_name(node.attribute, "axis")
    sizes = model.get_initializer(node.input[1]) if len(node.input) > 1 else None
    if sizes is None:
        return None
    return node.input[0], 0 if axis is None else axis.i, tuple(int(s) for s in np.asarray(sizes).reshape(-1))


class MergeIdenticalSplits(Transformation):
    """Keep one of several Splits that cut the same tensor at the same places; rewire the others' readers.

    PresB-Net slices the shuffled stream twice (once for the grouped conv's sign
    thresholds, once for the half-channel shortcut), which would become two hardware
    splits behind a DuplicateStreams; one split whose parts fork costs less.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        """Merge the first duplicate found and ask to be re-run."""
        seen = {}
        for node in model.graph.node:
            if node.op_type != "Split":
                continue
            key = _key(model, node)
            if key is None:
                continue
            if key not in seen:
                seen[key] = node
                continue
            keep = seen[key]
            for old, new in zip(node.output, keep.output):
                for consumer in model.find_consumers(old) or []:
                    for i, t in enumerate(consumer.input):
                        if t == old:
                            consumer.input[i] = new
            model.graph.node.remove(node)
            return model, True
        return model, False

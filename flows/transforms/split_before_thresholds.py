"""SplitBeforeThresholds: split the integer stream before its thresholds, not the thresholded map."""
from __future__ import annotations

import numpy as np
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.util.basic import get_by_name


def _split_sizes(model: ModelWrapper, node, channels: int) -> list[int] | None:
    if len(node.input) > 1 and node.input[1]:
        sizes = model.get_initializer(node.input[1])
        return None if sizes is None else [int(s) for s in np.asarray(sizes).reshape(-1)]
    attr = get_by_name(node.attribute, "split")
    if attr is not None:
        return list(attr.ints)
    n = len(node.output)
    return [channels // n] * n if channels % n == 0 else None


class SplitBeforeThresholds(Transformation):
    """MultiThreshold -> Split(channels) becomes Split -> one MultiThreshold per part.

    Per-channel thresholds commute with a channel split (each part keeps its rows). A
    sign map split into the two groups of a grouped convolution otherwise reaches two
    XNOR layers through one MultiThreshold, which QONNX's XNOR conversion cannot handle
    (it rewrites the shared MultiThreshold for the first layer and then finds no bipolar
    producer for the second); after the move each XNOR layer has its own thresholds, as
    in a plain chain, and the split carries integer codes. NCHW (axis 1) graphs, before
    convolutions are lowered. Run after the thresholds have absorbed their affine inputs.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        """Move one threshold node per call; asks to be re-run while it finds one."""
        for split in model.graph.node:
            if split.op_type != "Split":
                continue
            mt = model.find_producer(split.input[0])
            axis = get_by_name(split.attribute, "axis")
            if mt is None or mt.op_type != "MultiThreshold" or axis is None or axis.i not in (1, -3):
                continue
            if len(model.find_consumers(mt.output[0]) or []) != 1:
                continue
            thresholds = model.get_initializer(mt.input[1])
            shape = model.get_tensor_shape(mt.input[0])
            sizes = _split_sizes(model, split, shape[1]) if shape and len(shape) == 4 else None
            if thresholds is None or sizes is None:
                continue
            in_dt = model.get_tensor_datatype(mt.input[0])
            out_dt = model.get_tensor_datatype(mt.output[0])
            new_split_outs = [model.make_new_valueinfo_name() for _ in sizes]
            start = 0
            idx = list(model.graph.node).index(split)
            new_nodes = []
            for k, (size, out) in enumerate(zip(sizes, split.output)):
                rows = thresholds if thresholds.shape[0] == 1 else thresholds[start:start + size]
                tname = model.make_new_valueinfo_name()
                model.set_initializer(tname, rows.astype(np.float32))
                part_mt = helper.make_node("MultiThreshold", [new_split_outs[k], tname], [out],
                                           domain=mt.domain, name=f"{mt.name}_part{k}")
                part_mt.attribute.extend(a for a in mt.attribute)
                new_nodes.append(part_mt)
                model.set_tensor_shape(new_split_outs[k], [shape[0], size, *shape[2:]])
                model.set_tensor_datatype(new_split_outs[k], in_dt)
                model.set_tensor_datatype(out, out_dt)
                start += size
            new_split = helper.make_node("Split", [mt.input[0], *split.input[1:]], new_split_outs,
                                         name=split.name)
            new_split.attribute.extend(a for a in split.attribute)
            model.graph.node.remove(split)
            model.graph.node.remove(mt)
            for offset, n in enumerate([new_split, *new_nodes]):
                model.graph.node.insert(idx - 1 + offset, n)
            return model, True
        return model, False

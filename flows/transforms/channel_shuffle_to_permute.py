"""ChannelShuffleToPermute: a Reshape -> Transpose -> Reshape that only reorders channels becomes one ChannelPermute."""
from __future__ import annotations

import numpy as np
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.util.basic import get_by_name

from bnn2fpga.hw.finn_ops.channel_permute import DOMAIN


def _reshape_target(model: ModelWrapper, node, in_shape: tuple) -> tuple | None:
    """The shape a Reshape node produces from ``in_shape`` (None: not a constant reshape)."""
    shape = model.get_initializer(node.input[1]) if len(node.input) > 1 else None
    if shape is None:
        return None
    allowzero = get_by_name(node.attribute, "allowzero")
    shape = [int(s) for s in np.asarray(shape).reshape(-1)]
    if not (allowzero and allowzero.i):
        # ONNX: 0 copies the input's size on that axis unless allowzero is set.
        shape = [in_shape[i] if s == 0 else s for i, s in enumerate(shape)]
    try:
        return np.empty(in_shape, dtype=np.int8).reshape(shape).shape
    except ValueError:
        return None


def channel_permutation(model: ModelWrapper, first, transpose, last) -> list[int] | None:
    """The channel permutation the three nodes compute on a 4-D NCHW tensor, or None if they do more.

    An index tensor (each element's flat position) is pushed through the chain; the chain
    only permutes channels when every output element comes from the same batch, row and
    column and its source channel depends on the output channel alone.
    """
    in_shape = tuple(model.get_tensor_shape(first.input[0]) or ())
    if len(in_shape) != 4:
        return None
    mid = _reshape_target(model, first, in_shape)
    perm_attr = get_by_name(transpose.attribute, "perm")
    if mid is None or perm_attr is None or len(perm_attr.ints) != len(mid):
        return None
    moved = tuple(mid[p] for p in perm_attr.ints)
    out_shape = _reshape_target(model, last, moved)
    if out_shape != in_shape:
        return None
    idx = np.arange(int(np.prod(in_shape)), dtype=np.int64).reshape(in_shape)
    src = idx.reshape(mid).transpose(list(perm_attr.ints)).reshape(in_shape)
    n, c, h, w = np.unravel_index(src, in_shape)
    grid = np.indices(in_shape)
    if not (np.array_equal(n, grid[0]) and np.array_equal(h, grid[2]) and np.array_equal(w, grid[3])):
        return None
    perm = c[0, :, 0, 0]
    if not (c == perm[None, :, None, None]).all():
        return None
    return [int(p) for p in perm]


class ChannelShuffleToPermute(Transformation):
    """Replace every channel-only Reshape -> Transpose -> Reshape chain on NCHW by ``ChannelPermute`` (axis 1).

    torch exports a channel shuffle, ``x.view(B, g, C//g, H, W).transpose(1, 2).reshape(B, C, H, W)``,
    as exactly this chain, which FINN cannot stream. Any group count and any other chain
    that moves whole channels qualifies (the permutation is computed, not pattern-matched);
    the intermediate tensors must feed nothing else. The output keeps the input's
    datatype. Run it on the QONNX/FINN-ONNX graph before streamlining, after shapes are known.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        """Replace the first matching chain and ask to be re-run."""
        outputs = {o.name for o in model.graph.output}
        for first in model.graph.node:
            if first.op_type != "Reshape" or first.output[0] in outputs:
                continue
            consumers = model.find_consumers(first.output[0]) or []
            if len(consumers) != 1 or consumers[0].op_type != "Transpose":
                continue
            transpose = consumers[0]
            if transpose.output[0] in outputs:
                continue
            consumers = model.find_consumers(transpose.output[0]) or []
            if len(consumers) != 1 or consumers[0].op_type != "Reshape":
                continue
            last = consumers[0]
            perm = channel_permutation(model, first, transpose, last)
            if perm is None:
                continue
            src, dst = first.input[0], last.output[0]
            node = helper.make_node("ChannelPermute", [src], [dst], domain=DOMAIN, perm=perm, axis=1,
                                    name=f"ChannelPermute_{first.name or dst}")
            idx = list(model.graph.node).index(first)
            for old in (first, transpose, last):
                model.graph.node.remove(old)
            for shape in (first.input[1], last.input[1]):
                if model.get_initializer(shape) is not None and not model.find_consumers(shape):
                    model.del_initializer(shape)
            model.graph.node.insert(idx, node)
            model.set_tensor_datatype(dst, model.get_tensor_datatype(src))
            layout = model.get_tensor_layout(src)
            if layout is not None:
                model.set_tensor_layout(dst, layout)
            return model, True
        return model, False

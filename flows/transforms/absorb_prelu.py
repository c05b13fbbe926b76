"""AbsorbPReLUIntoMultiThreshold: fold a monotone PReLU into the thresholds that read it."""
from __future__ import annotations

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation


class AbsorbPReLUIntoMultiThreshold(Transformation):
    """Remove ``PRelu`` nodes whose every consumer is a ``MultiThreshold``, moving their thresholds.

    With slope a >= 0, PReLU(z) = z for z > 0 and a*z otherwise is non-decreasing, so
    counting thresholds t with PReLU(z) >= t is counting thresholds t' in z with
    t' = t for t > 0 and t' = t / a for t <= 0 (a > 0); with a = 0 every t <= 0 is always
    passed, so t' = -inf. The order of thresholds is kept. FINN's streamlining cannot absorb
    the affine ops (BatchNorm, scales) in front of a PRelu into the thresholds, so this runs
    right before it. A negative slope makes the map non-monotone and is an error.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        """Absorb the first absorbable PRelu and report whether the graph changed."""
        outputs = {o.name for o in model.graph.output}
        for node in model.graph.node:
            if node.op_type != "PRelu" or node.output[0] in outputs:
                continue
            slope = model.get_initializer(node.input[1])
            consumers = model.find_consumers(node.output[0]) or []
            if slope is None or not consumers or any(c.op_type != "MultiThreshold" for c in consumers):
                continue
            slope = np.asarray(slope, dtype=np.float64).reshape(-1)
            if (slope < 0).any():
                raise ValueError(
                    f"PRelu '{node.name}' has a negative slope ({slope.min():g}): it is not monotone and "
                    "cannot become thresholds; keep PReLU slopes >= 0 while training"
                )
            new = [_thresholds_through_prelu(model.get_initializer(c.input[1]), slope, node.name) for c in consumers]
            if any(t is None for t in new):
                continue
            for consumer, thresholds in zip(consumers, new):
                tname = model.make_new_valueinfo_name()
                model.set_initializer(tname, thresholds)
                consumer.input[0] = node.input[0]
                consumer.input[1] = tname
            model.graph.node.remove(node)
            return model, True
        return model, False


def _thresholds_through_prelu(thresholds: np.ndarray | None, slope: np.ndarray, name: str) -> np.ndarray | None:
    """Thresholds on the PReLU's input equivalent to ``thresholds`` on its output (None: cannot)."""
    if thresholds is None:
        return None
    t = np.asarray(thresholds, dtype=np.float64)
    if slope.size > 1:  # per-channel slope: one row of thresholds per channel
        if t.shape[0] == 1:
            t = np.repeat(t, slope.size, axis=0)
        if t.shape[0] != slope.size:
            return None
    a = slope.reshape(-1, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        below = np.where(a > 0, t / np.where(a > 0, a, 1.0), -np.inf)
    return np.where(t > 0, t, below).astype(np.float32)

"""RoundingTruncToThresholds: an average pool's rounding Trunc as a flooring sum pool plus thresholds."""
from __future__ import annotations

import numpy as np
from onnx import helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.util.basic import get_by_name


def trunc_codes(sums: np.ndarray, scale: float, in_bits: int, out_scale: float, out_bits: int, signed: bool,
                narrow: bool, mode: str) -> np.ndarray:
    """The output codes QONNX's Trunc (v2) gives for integer window sums ``sums`` (input ``sums * scale``)."""
    from qonnx.custom_op.general.trunc import trunc_v2

    y = trunc_v2(sums.astype(np.float64) * scale, np.float64(scale), np.float64(0.0), np.float64(in_bits),
                 int(narrow), int(signed), np.float64(out_scale), np.float64(out_bits), mode)
    return np.round(y / out_scale)


def code_thresholds(sums: np.ndarray, codes: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Thresholds t_j (j = lo+1 .. hi) with code(S) = lo + #{j: S >= t_j}, half-way between integer sums.

    ``codes`` must not decrease along the ascending ``sums``. A code never reached gets a threshold
    above every sum; a code every sum reaches one below them all.
    """
    out = []
    for j in range(lo + 1, hi + 1):
        reach = np.nonzero(codes >= j)[0]
        first = sums[reach[0]] if len(reach) else sums[-1] + 1
        out.append(first - 0.5)  # S >= first <=> S >= first - 0.5 for integer S: robust to float scales
    return np.asarray(out, dtype=np.float64)


class RoundingTruncToThresholds(Transformation):
    """Rewrite ``AveragePool -> Trunc(rounding_mode != FLOOR)`` so FINN can map it.

    Brevitas' TruncAvgPool2d rounds by default (``trunc_quant=RoundTo8bit``: half to even);
    FINN's average pool (QuantAvgPool2d, then a Pool layer) only shifts, i.e. floors, and its
    converter refuses any other mode. The window sum S is an integer and every rounding mode
    makes the output code a non-decreasing function of S, so the rounding is a threshold step:
    ``AveragePool -> Trunc(FLOOR, no shift) -> MultiThreshold -> Mul(output scale)``. The
    flooring Trunc keeps the exact sum (FINN's sum pool), the MultiThreshold holds one
    threshold per output code (computed with QONNX's own Trunc, so clamping and the rounding
    mode are exactly QONNX's), and streamlining absorbs the sum's scale into it as for any
    activation. Only Trunc v2 (what Brevitas 0.13 exports) with constant inputs and zero point 0 is
    rewritten; any other Trunc is left to the flow's check, which names it.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        """Rewrite the first matching Trunc; asks to be re-run while any is left."""
        for node in model.graph.node:
            if node.op_type != "Trunc" or len(node.input) != 6:
                continue
            mode = get_by_name(node.attribute, "rounding_mode")
            mode = mode.s.decode().upper() if mode is not None else "FLOOR"
            prod = model.find_producer(node.input[0])
            if mode == "FLOOR" or prod is None or prod.op_type != "AveragePool":
                continue
            consts = [model.get_initializer(t) for t in node.input[1:]]
            if any(c is None or np.asarray(c).size != 1 for c in consts) or float(consts[1]) != 0.0:
                continue
            scale, _, in_bits, out_scale, out_bits = (float(np.asarray(c).flatten()[0]) for c in consts)
            signed = bool(get_by_name(node.attribute, "signed").i) if get_by_name(node.attribute, "signed") else True
            narrow = bool(get_by_name(node.attribute, "narrow").i) if get_by_name(node.attribute, "narrow") else False
            in_bits, out_bits = int(in_bits), int(out_bits)
            self._rewrite(model, node, scale, in_bits, out_scale, out_bits, signed, narrow, mode)
            # The new tensors need shapes before anything executes the graph (the ladder's qonnx stage).
            from qonnx.transformation.infer_shapes import InferShapes

            return model.transform(InferShapes()), True
        return model, False

    @staticmethod
    def _rewrite(model, node, scale, in_bits, out_scale, out_bits, signed, narrow, mode) -> None:
        from qonnx.custom_op.general.intquant import max_int, min_int

        lo_s, hi_s = (-(2 ** (in_bits - 1)), 2 ** (in_bits - 1) - 1) if signed else (0, 2 ** in_bits - 1)
        sums = np.arange(lo_s, hi_s + 1, dtype=np.int64)
        codes = trunc_codes(sums, scale, in_bits, out_scale, out_bits, signed, narrow, mode)
        odt = DataType[f"{'INT' if signed else 'UINT'}{out_bits}"]
        lo, hi = int(min_int(signed, narrow, out_bits)), int(max_int(signed, narrow, out_bits))
        thresholds = code_thresholds(sums, codes, lo, hi) * scale  # on the float sum tensor S * scale

        g = model.graph
        name = node.name or "Trunc"
        floor_out = model.make_new_valueinfo_name()
        mt_out = model.make_new_valueinfo_name()
        same_scale = model.make_new_valueinfo_name()
        same_bits = model.make_new_valueinfo_name()
        thres = model.make_new_valueinfo_name()
        oscale = model.make_new_valueinfo_name()
        model.set_initializer(same_scale, np.asarray(scale, dtype=np.float32))
        model.set_initializer(same_bits, np.asarray(float(in_bits), dtype=np.float32))
        model.set_initializer(thres, thresholds.astype(np.float32).reshape(1, -1))
        model.set_initializer(oscale, np.asarray(out_scale, dtype=np.float32))
        floor = helper.make_node(
            "Trunc", [node.input[0], node.input[1], node.input[2], node.input[3], same_scale, same_bits], [floor_out],
            domain=node.domain, name=f"{name}_sum", rounding_mode="FLOOR", signed=int(signed), narrow=0)
        mt = helper.make_node("MultiThreshold", [floor_out, thres], [mt_out], domain="qonnx.custom_op.general",
                              name=f"{name}_round", out_dtype=odt.name, out_bias=float(lo), data_layout="NCHW")
        mul = helper.make_node("Mul", [mt_out, oscale], [node.output[0]], name=f"{name}_scale")
        idx = list(g.node).index(node)
        g.node.remove(node)
        for k, n in enumerate((floor, mt, mul)):
            g.node.insert(idx + k, n)
        model.set_tensor_datatype(mt_out, odt)

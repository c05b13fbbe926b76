"""The host's share of the network, in numpy: float pre-processing before the input quantizer and
the ops around the accelerator (layout changes, the float head after the last integer layer).

The build describes each op in ``io_spec.json`` as a small dict (``{"op": "Mul", "value": [...],
"value_shape": [...]}``); these functions apply them exactly as the exported graph does (float32,
same order), so the board computes what the verification ladder checked. The build's
verification imports this module too, so there is one implementation of the host ops.
"""
from __future__ import annotations

import numpy as np

from .errors import DriverError

__all__ = ["FLOAT_OPS", "LAYOUT_OPS", "HEAD_OPS", "float_pre", "host_op", "check_float_op"]

#: Elementwise float ops by a constant (x op value), in ONNX's broadcasting.
FLOAT_OPS = ("Mul", "Add", "Sub", "Div")
LAYOUT_OPS = ("Identity", "Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze")
#: Ops that turn scores into labels at the very end of the network.
HEAD_OPS = ("TopK", "ArgMax")


def _const(op: dict, where: str) -> np.ndarray:
    value = op.get("value")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return np.float32(value)
    if not isinstance(value, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                              for v in value):
        raise DriverError(f"io_spec.json: {where} {op['op']} needs a number or a list of numbers as 'value'")
    shape = op.get("value_shape") or [len(value)]
    try:
        return np.asarray(value, dtype=np.float32).reshape(shape)
    except ValueError:
        raise DriverError(f"io_spec.json: {where} {op['op']} value of {len(value)} numbers does not have "
                          f"shape {shape}") from None


def _elementwise(name: str, c: np.ndarray):
    # float32 on both sides, as onnxruntime / numpy execute the exported graph.
    return {"Mul": lambda x: (x.astype(np.float32) * c).astype(np.float32),
            "Add": lambda x: (x.astype(np.float32) + c).astype(np.float32),
            "Sub": lambda x: (x.astype(np.float32) - c).astype(np.float32),
            "Div": lambda x: (x.astype(np.float32) / c).astype(np.float32)}[name]


def check_float_op(op: dict, where: str):
    """The numpy function of one float pre-processing op (Mul/Add/Sub/Div by a constant, or Sign)."""
    name = op.get("op")
    if name in FLOAT_OPS:
        return _elementwise(name, _const(op, where))
    if name == "Sign":
        # Brevitas' BipolarQuant: sign with sign(0) = +1, times its scale; the accelerator takes the codes.
        return lambda x: np.where(np.asarray(x, dtype=np.float32) >= 0, 1.0, -1.0).astype(np.float32)
    raise DriverError(f"io_spec.json: the float op {name} {where} the input quantizer is not supported by the "
                      f"board driver (supported: {', '.join(FLOAT_OPS)}, Sign)")


def float_pre(ops, x: np.ndarray) -> np.ndarray:
    """Apply the float pre-processing ops (before the input quantizer) to float network inputs."""
    x = np.asarray(x, dtype=np.float32)
    for op in ops or ():
        x = check_float_op(op, "before")(x)
    return x


def host_op(op: dict, where: str):
    """The numpy function of one host op ``where`` ('before' / 'after') the accelerator."""
    name = op["op"]
    if name == "Identity":
        return lambda x: x
    if name == "Transpose":
        perm = [int(p) for p in op.get("perm") or []]
        if not perm or perm[0] != 0 or sorted(perm) != list(range(len(perm))):
            raise DriverError(f"io_spec.json: {where} Transpose has permutation {perm}, which moves the batch axis")
        return lambda x: np.ascontiguousarray(np.transpose(x, perm))
    if name in LAYOUT_OPS:
        shape = [int(d) for d in op.get("shape") or []]
        if not shape:
            raise DriverError(f"io_spec.json: {where} {name} has no output 'shape'")
        return lambda x: x.reshape(len(x), *shape[1:])
    if name in FLOAT_OPS:
        return _elementwise(name, _const(op, where))
    if name in HEAD_OPS:
        axis = int(op.get("axis", -1))
        k = int(op.get("k", 1))
        # ONNX TopK: the k largest, earliest index first among equals (np.argsort is stable on -x).
        return lambda x: np.argsort(-np.asarray(x), axis=axis, kind="stable").take(range(k), axis=axis) \
            .astype(np.float32)
    raise DriverError(f"io_spec.json: the host op {name} {where} the accelerator is not supported by the "
                      f"board driver (supported: {', '.join(LAYOUT_OPS + FLOAT_OPS + HEAD_OPS)})")

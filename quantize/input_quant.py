"""The host-side input quantizer (numpy only: the board imports it too).

The accelerator takes integers; whatever float-to-integer step the exported network
had at its input runs here, with exactly QONNX's Quant semantics.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


def _half_up(x):
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def _half_down(x):
    return np.sign(x) * np.ceil(np.abs(x) - 0.5)


def _up(x):
    return np.sign(x) * np.ceil(np.abs(x))


# QONNX's rounding modes; ROUND and HALF_EVEN are round-half-to-even (numpy's np.round).
ROUNDING = {
    "ROUND": np.round, "HALF_EVEN": np.round, "CEIL": np.ceil, "FLOOR": np.floor,
    "UP": _up, "DOWN": np.fix, "HALF_UP": _half_up, "HALF_DOWN": _half_down,
}


@dataclass(frozen=True)
class InputQuantSpec:
    """q = round(clip(x / scale + zero_point)), as QONNX's Quant node computes it."""

    scale: float
    zero_point: float
    bits: int
    signed: bool
    narrow: bool
    rounding: str = "ROUND"

    def __post_init__(self):
        if self.rounding.upper() not in ROUNDING:
            raise ValueError(f"unknown rounding mode {self.rounding!r}; known: {', '.join(ROUNDING)}")
        if self.bits < 2 or not self.scale > 0:
            raise ValueError("input quantizer needs >= 2 bits and a positive scale")

    @property
    def datatype(self) -> str:
        """The FINN DataType name of the quantized input."""
        return f"{'INT' if self.signed else 'UINT'}{self.bits}"

    @property
    def limits(self) -> tuple[int, int]:
        """Smallest and largest integer code."""
        if self.signed:
            return -(2 ** (self.bits - 1)) + int(self.narrow), 2 ** (self.bits - 1) - 1
        return 0, 2**self.bits - 1 - int(self.narrow)

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """Integer codes (as float32) for float inputs, in QONNX's order: scale, clip, round."""
        y = np.asarray(x, dtype=np.float32) / np.float32(self.scale) + np.float32(self.zero_point)
        lo, hi = self.limits
        y = np.clip(y, lo, hi)
        return ROUNDING[self.rounding.upper()](y).astype(np.float32)

    def to_dict(self) -> dict:
        """JSON-friendly form for the sidecar and the board's I/O spec."""
        return asdict(self)

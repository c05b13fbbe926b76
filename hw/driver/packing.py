"""Packing between integer tensors and the byte buffers the accelerator's DMA engines move.

The layout is FINN's for its PYNQ driver (``reverse_inner`` and ``reverse_endian``):
the innermost axis of the *folded* tensor forms one word in which element ``i``
occupies bits ``i*b .. i*b+b-1`` counted from the least significant bit, negative
values in two's complement; each word is zero-padded to whole bytes and stored
little-endian. Every other axis is plain C order. Tests compare these bytes with
FINN's own packing code.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

__all__ = ["DType", "datatype", "packed_shape", "pack", "unpack"]

MAX_BITS = 32  # widest element handled (accumulator outputs stay far below)


@dataclass(frozen=True)
class DType:
    """A FINN integer datatype: its name, width and value range."""

    name: str
    bits: int
    min: int
    max: int

    @property
    def signed(self) -> bool:
        """True when negative values exist (stored in two's complement, or 0 for -1 if bipolar)."""
        return self.min < 0


def datatype(name: str) -> DType:
    """The datatype called ``name``: UINTn, INTn (n <= 32), BINARY, BIPOLAR or TERNARY."""
    key = str(name).strip().upper()
    fixed = {"BINARY": DType("BINARY", 1, 0, 1), "BIPOLAR": DType("BIPOLAR", 1, -1, 1),
             "TERNARY": DType("TERNARY", 2, -1, 1)}
    if key in fixed:
        return fixed[key]
    m = re.fullmatch(r"(U?)INT(\d+)", key)
    if m:
        bits = int(m.group(2))
        unsigned = bool(m.group(1))
        if 1 <= bits <= MAX_BITS and (unsigned or bits >= 2):
            if unsigned:
                return DType(key, bits, 0, 2**bits - 1)
            return DType(key, bits, -(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    raise ValueError(f"datatype {name!r} is not supported by the board driver "
                     f"(UINT1..UINT{MAX_BITS}, INT2..INT{MAX_BITS}, BINARY, BIPOLAR, TERNARY)")


def _word_bytes(n: int, bits: int) -> int:
    return (n * bits + 7) // 8


def packed_shape(folded_shape, dtype_name: str) -> tuple[int, ...]:
    """Shape of the packed uint8 buffer for a folded tensor: the innermost axis becomes bytes."""
    folded_shape = tuple(int(d) for d in folded_shape)
    return folded_shape[:-1] + (_word_bytes(folded_shape[-1], datatype(dtype_name).bits),)


def _codes(values: np.ndarray, dt: DType) -> np.ndarray:
    # Bit patterns (uint64) of the values, after checking every value is allowed.
    v = np.asarray(values)
    if v.dtype.kind == "f":
        if not np.all(np.isfinite(v)) or not np.all(v == np.floor(v)):
            raise ValueError(f"{dt.name} values must be integers")
    elif v.dtype.kind not in "iub":
        raise ValueError(f"cannot pack an array of {v.dtype} as {dt.name}")
    ints = v.astype(np.int64)
    if ints.size and (ints.min() < dt.min or ints.max() > dt.max):
        bad = ints[(ints < dt.min) | (ints > dt.max)].flat[0]
        raise ValueError(f"value {bad} does not fit {dt.name} ({dt.min}..{dt.max})")
    if dt.name == "BIPOLAR":
        if np.any(ints == 0):
            raise ValueError("BIPOLAR values must be -1 or +1, got 0")
        ints = (ints + 1) // 2
    return (ints & ((1 << dt.bits) - 1)).astype(np.uint64)


def pack(folded: np.ndarray, dtype_name: str) -> np.ndarray:
    """Pack a folded integer tensor into the DMA byte layout (uint8, shape ``packed_shape``)."""
    dt = datatype(dtype_name)
    folded = np.asarray(folded)
    if folded.ndim < 1:
        raise ValueError("pack needs at least one axis")
    codes = _codes(folded, dt)
    lead, n = folded.shape[:-1], folded.shape[-1]
    if dt.bits in (8, 16, 32):
        # Whole-byte elements: the layout is each element little-endian, in order.
        le = codes.astype(f"<u{dt.bits // 8}")
        return np.ascontiguousarray(le).view(np.uint8).reshape(*lead, n * dt.bits // 8)
    shifts = np.arange(dt.bits, dtype=np.uint64)
    bits = ((codes[..., None] >> shifts) & np.uint64(1)).astype(np.uint8).reshape(*lead, n * dt.bits)
    pad = _word_bytes(n, dt.bits) * 8 - n * dt.bits
    if pad:
        bits = np.concatenate([bits, np.zeros((*lead, pad), np.uint8)], axis=-1)
    return np.packbits(bits, axis=-1, bitorder="little")


def unpack(packed, dtype_name: str, folded_shape) -> np.ndarray:
    """Integer tensor (int64, ``folded_shape``) from DMA bytes (bytes or a uint8 array)."""
    dt = datatype(dtype_name)
    folded_shape = tuple(int(d) for d in folded_shape)
    want = packed_shape(folded_shape, dt.name)
    raw = np.frombuffer(packed, np.uint8) if isinstance(packed, (bytes, bytearray, memoryview)) \
        else np.asarray(packed, dtype=np.uint8)
    if raw.size != int(np.prod(want)):
        raise ValueError(f"expected {int(np.prod(want))} bytes for {dt.name} {folded_shape}, got {raw.size}")
    raw = raw.reshape(want)
    lead, n = folded_shape[:-1], folded_shape[-1]
    if dt.bits in (8, 16, 32):
        codes = np.ascontiguousarray(raw).view(f"<u{dt.bits // 8}").reshape(*lead, n).astype(np.int64)
    else:
        bits = np.unpackbits(raw, axis=-1, bitorder="little")[..., : n * dt.bits]
        bits = bits.reshape(*lead, n, dt.bits).astype(np.int64)
        codes = (bits << np.arange(dt.bits, dtype=np.int64)).sum(axis=-1)
    if dt.name == "BIPOLAR":
        return 2 * codes - 1
    if dt.signed:
        return np.where(codes >= 2 ** (dt.bits - 1), codes - 2**dt.bits, codes)
    return codes

"""FINN's stream packing: elements of a beat side by side, element 0 in the lowest bits.

A beat of E elements of b bits is E*b bits wide, padded to whole bytes on the
AXI-Stream port; the simulator exchanges beats as little-endian 32-bit words.
"""
from __future__ import annotations

import numpy as np


def padded(bits: int) -> int:
    """AXI-Stream TDATA width: ``bits`` rounded up to whole bytes."""
    return max(8, (bits + 7) // 8 * 8)


def pack(values: np.ndarray, bits: int, words: int | None = None) -> np.ndarray:
    """(n_beats, E) integers (two's complement when negative) -> (n_beats, words) uint32."""
    v = np.asarray(values)
    n, e = v.shape
    u = v.astype(np.int64) & ((1 << bits) - 1)
    bit = ((u[:, :, None] >> np.arange(bits)) & 1).astype(np.uint8).reshape(n, e * bits)
    words = words or (e * bits + 31) // 32
    full = np.zeros((n, words * 32), np.uint8)
    full[:, : e * bits] = bit
    return np.packbits(full, axis=1, bitorder="little").view("<u4").reshape(n, words)


def unpack(words: np.ndarray, elems: int, bits: int, signed: bool) -> np.ndarray:
    """(n_beats, words) uint32 -> (n_beats, elems) int64, sign-extended when ``signed``."""
    w = np.ascontiguousarray(words, dtype="<u4")
    n = w.shape[0]
    allbits = np.unpackbits(w.view(np.uint8).reshape(n, -1), axis=1, bitorder="little")
    b = allbits[:, : elems * bits].reshape(n, elems, bits).astype(np.int64)
    v = (b << np.arange(bits)).sum(axis=2)
    if signed:
        v = np.where(v >= 1 << (bits - 1), v - (1 << bits), v)
    return v

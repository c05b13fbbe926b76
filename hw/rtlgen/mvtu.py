"""The matrix-vector-threshold unit (hw/rtl/xnor_mvtu.sv) for one layer: XNOR, bipolar or k-bit weights.

:class:`MVTU` holds one layer's matrices in FINN's conventions (weights (MW, MH),
thresholds (MH, n)), writes the memory files and wrapper, and is its own numpy
reference model of the hardware.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bnn2fpga.hw.rtlgen.base import RTL_DIR, LayerRTL, bits_to_int, hex_lines, stream_wrapper


def signed_bits(lo: int, hi: int) -> int:
    """Two's complement width holding every integer in [lo, hi]."""
    need = max(hi + 1, -lo, 1)
    return max(2, math.ceil(math.log2(need)) + 1)


@dataclass
class MVTU:
    """One binary-weight matrix-vector(-threshold) layer.

    weights: (MW, MH); in XNOR mode bits {0, 1} (1 = +1), else bipolar {-1, +1} or any integers.
    thresholds: (MH, n) or (1, n) integers (None = noActivation, output the sum).
    in_bits/in_signed: the input element type (XNOR mode: 1, unsigned).
    out_bits/out_bias: output element width and the value added to the threshold count.
    """

    weights: np.ndarray
    thresholds: np.ndarray | None
    pe: int
    simd: int
    xnor: bool = True
    in_bits: int = 1
    in_signed: bool = False
    out_bits: int = 1
    out_bias: int = 0
    n_vectors: int = 1
    ram_style: str = "auto"
    ram_style_thresh: str = "distributed"

    def __post_init__(self):
        w = np.asarray(self.weights).astype(np.int64)
        self.mw, self.mh = w.shape
        if self.mw % self.simd or self.mh % self.pe:
            raise ValueError(f"SIMD {self.simd} must divide MW {self.mw} and PE {self.pe} must divide MH {self.mh}")
        values = set(np.unique(w).tolist())
        if self.xnor and not values <= {0, 1}:
            raise ValueError("XNOR weights must be in [0, 1]")
        # Bipolar weights travel as one bit (1 = +1); anything else as signed k-bit integers.
        self.w_bits = 1 if self.xnor or values <= {-1, 1} else signed_bits(int(w.min()), int(w.max()))
        self.wint = w
        self.wbits = (w > 0).astype(np.int64) if self.w_bits == 1 else w & ((1 << self.w_bits) - 1)
        lo, hi = self.acc_range()
        if self.thresholds is not None:
            t = np.asarray(self.thresholds, dtype=np.float64)
            if t.shape[0] == 1:
                t = np.tile(t, (self.mh, 1))
            # acc >= t <=> acc >= ceil(t) for an integer acc; thresholds outside the
            # reachable range act the same clipped to one step beyond it.
            self.thr = np.clip(np.ceil(t), lo, hi + 1).astype(np.int64)
            self.acc_bits = signed_bits(lo, hi + 1)
        else:
            self.thr = None
            self.acc_bits = signed_bits(lo, hi)

    @property
    def sf(self) -> int:
        """Input beats per vector."""
        return self.mw // self.simd

    @property
    def nf(self) -> int:
        """Output beats per vector."""
        return self.mh // self.pe

    def acc_range(self) -> tuple[int, int]:
        """Smallest and largest reachable accumulator value."""
        if self.xnor:
            return 0, self.mw
        xlo = -(1 << (self.in_bits - 1)) if self.in_signed else 0
        xhi = (1 << (self.in_bits - 1)) - 1 if self.in_signed else (1 << self.in_bits) - 1
        m = max(abs(xlo), abs(xhi)) * int(np.abs(self.wint).max(initial=1))
        return -self.mw * m, self.mw * m

    # ---- reference model --------------------------------------------------------------

    def accumulate(self, x: np.ndarray) -> np.ndarray:
        """(N, MW) input elements (XNOR mode: bits) -> (N, MH) accumulator values."""
        x = np.asarray(x, dtype=np.int64)
        if self.xnor:
            return (x[:, :, None] == self.wbits[None]).sum(axis=1)
        return x @ self.wint

    def reference(self, x: np.ndarray) -> np.ndarray:
        """(N, MW) -> (N, MH) output elements as the hardware encodes them."""
        acc = self.accumulate(x)
        if self.thr is None:
            y = acc
        else:
            y = (acc[:, :, None] >= self.thr[None]).sum(axis=2) + self.out_bias
        # The output port is out_bits wide: values wrap as they do in hardware.
        m = 1 << self.out_bits
        y = y % m
        return np.where(y >= m // 2, y - m, y) if self.out_signed else y

    @property
    def out_signed(self) -> bool:
        """Whether output elements are two's complement."""
        if self.thr is None:
            return True
        return self.out_bias < 0

    # ---- hardware files ---------------------------------------------------------------

    def weight_words(self) -> list[int]:
        """WEIGHT_FILE words: address nf*SF+sf, lane (pe*SIMD+s) at W_BITS bits each."""
        w = self.wbits.T  # (MH, MW): row r, column c, hardware encoding
        words = []
        for nf in range(self.nf):
            for sf in range(self.sf):
                lanes = []
                for pe in range(self.pe):
                    lanes.extend(w[nf * self.pe + pe, sf * self.simd:(sf + 1) * self.simd].tolist())
                if self.w_bits == 1:
                    words.append(bits_to_int(lanes))
                else:
                    words.append(sum(int(v) << (i * self.w_bits) for i, v in enumerate(lanes)))
        return words

    def threshold_words(self) -> list[int]:
        """THRESH_FILE words: address nf, threshold i of PE pe at (pe*n+i)*ACC_BITS."""
        n, ab = self.thr.shape[1], self.acc_bits
        words = []
        for nf in range(self.nf):
            word = 0
            for pe in range(self.pe):
                for i in range(n):
                    word |= (int(self.thr[nf * self.pe + pe, i]) & ((1 << ab) - 1)) << ((pe * n + i) * ab)
            words.append(word)
        return words

    def params(self, prefix: str) -> dict:
        """Parameters of xnor_mvtu for this layer (memory files named ``<prefix>_*.dat``)."""
        return {
            "MW": self.mw, "MH": self.mh, "PE": self.pe, "SIMD": self.simd, "XNOR": int(self.xnor),
            "IN_BITS": self.in_bits, "IN_SIGNED": int(self.in_signed), "W_BITS": self.w_bits,
            "ACC_BITS": self.acc_bits,
            "N_THRES": 0 if self.thr is None else self.thr.shape[1], "OUT_BITS": self.out_bits,
            "OUT_BIAS": self.out_bias, "WEIGHT_FILE": f"{prefix}_weights.dat",
            "THRESH_FILE": f"{prefix}_thresholds.dat", "RAM_STYLE": self.ram_style,
            "RAM_STYLE_THRESH": self.ram_style_thresh,
        }

    def layer(self, name: str, exp_cycles: int | None = None, mem_dir=None) -> LayerRTL:
        """The layer as RTL: wrapper module ``<name>`` around xnor_mvtu, and its memories.

        The wrapper names its memory files bare (found in the simulation's working
        folder) or, with ``mem_dir``, by absolute path there (for Vivado).
        """
        top = name
        prefix = str(mem_dir / name) if mem_dir else name
        in_bits, out_bits = self.simd * self.in_bits, self.pe * self.out_bits
        mems = {f"{name}_weights.dat": hex_lines(self.weight_words(), self.pe * self.simd * self.w_bits)}
        if self.thr is not None:
            mems[f"{name}_thresholds.dat"] = hex_lines(self.threshold_words(),
                                                       self.pe * self.thr.shape[1] * self.acc_bits)
        cycles = self.nf * self.sf * self.n_vectors
        return LayerRTL(
            name=name, top=top, op="xnor_mvtu" if self.xnor else
            ("binary-weight mvtu" if self.w_bits == 1 else f"{self.w_bits}-bit-weight mvtu"),
            in_bits=in_bits, out_bits=out_bits, in_elems=self.simd, in_elem_bits=self.in_bits,
            out_elems=self.pe, out_elem_bits=self.out_bits,
            in_beats=self.sf * self.n_vectors, out_beats=self.nf * self.n_vectors,
            exp_cycles=cycles if exp_cycles is None else exp_cycles,
            sources={f"{top}.v": stream_wrapper(top, "xnor_mvtu", self.params(prefix), in_bits, out_bits)},
            library=[RTL_DIR / "bnn_rom.sv", RTL_DIR / "xnor_mvtu.sv"],
            mem_files=mems,
        )

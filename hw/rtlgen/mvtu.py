"""The matrix-vector-threshold unit (hw/rtl/xnor_mvtu.sv) for one layer: XNOR, bipolar or k-bit weights.

:class:`MVTU` holds one layer's matrices in FINN's conventions (weights (MW, MH),
thresholds (MH, n)), writes the memory files and wrapper, and is its own numpy
reference model of the hardware.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bnn2fpga.hw.rtlgen.base import RTL_DIR, LayerRTL, VerilogLiteral, bits_to_int, hex_lines, stream_wrapper
from bnn2fpga.hw.rtlgen.timing import DEFAULT_MAX_LEVELS, adder_levels, count_levels

#: Levels a block-RAM read costs beyond a flip-flop's: its clock-to-out without the output
#: register (~2 ns on a -1 part, DS187) against ~0.5 ns. Yosys' depth count starts a path at
#: the RAM at 0, so this margin is the generator's only.
BRAM_READ_LEVELS = 2
#: Weight ROMs up to this depth stay in LUTs with ram_style auto (Yosys and Vivado alike).
BRAM_MIN_DEPTH = 64


def _may_be_bram(ram_style: str, depth: int) -> bool:
    return ram_style == "block" or (ram_style == "auto" and depth > BRAM_MIN_DEPTH)


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
    max_levels: LUT levels one pipeline stage may have (the clock's limit, hw/rtlgen/timing.py).
    lut_products: k-bit products in LUTs (FINN's resType "lut"), never in DSP slices.
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
    max_levels: int = DEFAULT_MAX_LEVELS
    lut_products: bool = False

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

    # ---- pipelining -------------------------------------------------------------------

    @property
    def weights_may_be_bram(self) -> bool:
        """Whether the weight ROM may land in block RAM: asked for, or left to the tool and deeper
        than a few LUT6 (Yosys keeps shallow ROMs in LUTs)."""
        return _may_be_bram(self.ram_style, self.nf * self.sf)

    def stage_levels(self) -> tuple[list[float], list[float]]:
        """Estimated LUT levels of the datapath's blocks, in path order: the accumulating part
        (products, adder tree levels 1..TL, accumulator) and the threshold part (compare, count)."""
        tl = (self.simd - 1).bit_length()
        if self.xnor:
            pw, product = 2, 1.0
        elif self.w_bits == 1:
            # +-x: a negation (an adder) and the select.
            pw, product = self.in_bits + 1, adder_levels(self.in_bits + 1) + 1
        elif self.lut_products:
            # One shifted partial product per weight bit (a select), summed as a balanced tree.
            pw = self.in_bits + self.w_bits
            product = 1 + math.ceil(math.log2(self.w_bits)) * adder_levels(pw)
        else:
            # A multiplier (DSP slices from some width on): as a LUT multiplier, one shifted
            # partial product added per weight bit.
            pw, product = self.in_bits + self.w_bits, self.w_bits * adder_levels(self.in_bits + self.w_bits)
        tree = [adder_levels(min(pw + k, self.acc_bits)) for k in range(1, tl + 1)]
        n = 0 if self.thr is None else self.thr.shape[1]
        thresh = [adder_levels(self.acc_bits), count_levels(n)] if n else []
        return [product, *tree, adder_levels(self.acc_bits)], thresh

    def pipeline(self) -> tuple[int, bool]:
        """PIPE and THRESH_PIPE of xnor_mvtu: the fewest registers that keep every stage within max_levels.

        Greedy from the weight ROM on, each register as late as the limit allows, where the
        tree has fewest and narrowest sums. PIPE bit k sits behind block k (0: the products,
        k: tree level k; bit TL in front of the accumulator).
        """
        acc_path, thresh = self.stage_levels()
        cur = (BRAM_READ_LEVELS if self.weights_may_be_bram else 0) + acc_path[0]
        pipe = 0
        for k, nxt in enumerate(acc_path[1:]):
            if cur + nxt > self.max_levels:
                pipe |= 1 << k
                cur = 0
            cur += nxt
        start = BRAM_READ_LEVELS if _may_be_bram(self.ram_style_thresh, self.nf) else 0
        return pipe, bool(thresh) and start + sum(thresh) > self.max_levels

    def params(self, prefix: str) -> dict:
        """Parameters of xnor_mvtu for this layer (memory files named ``<prefix>_*.dat``)."""
        pipe, thresh_pipe = self.pipeline()
        return {
            "MW": self.mw, "MH": self.mh, "PE": self.pe, "SIMD": self.simd, "XNOR": int(self.xnor),
            "IN_BITS": self.in_bits, "IN_SIGNED": int(self.in_signed), "W_BITS": self.w_bits,
            "ACC_BITS": self.acc_bits,
            "N_THRES": 0 if self.thr is None else self.thr.shape[1], "OUT_BITS": self.out_bits,
            "OUT_BIAS": self.out_bias, "WEIGHT_FILE": f"{prefix}_weights.dat",
            "THRESH_FILE": f"{prefix}_thresholds.dat", "RAM_STYLE": self.ram_style,
            "RAM_STYLE_THRESH": self.ram_style_thresh,
            "PIPE": VerilogLiteral(f"32'h{pipe:x}"), "THRESH_PIPE": int(thresh_pipe),
            "LUT_PRODUCTS": int(self.lut_products),
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

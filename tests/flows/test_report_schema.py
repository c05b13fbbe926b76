"""report.json has one shape: real reports round-trip, bad fields are named, old extras survive."""
from __future__ import annotations

import copy
import json
import shutil

import pytest
from pydantic import BaseModel, ValidationError

from bnn2fpga.errors import UserError
from bnn2fpga.flows.cli import main
from bnn2fpga.flows.report import add_section, add_yosys, load_report, read_report, save_report
from bnn2fpga.flows.report_schema import SECTIONS, Report, StepRow

# A report as `bnn2fpga verify cbcnn-mnist` writes it, cut to two layers, three steps and three stages.
REAL = {
    "model": "cbcnn-mnist",
    "board": {"name": "pynq-z2", "part": "xc7z020clg400-1", "clock_mhz": 100.0,
              "resources": {"LUT": 53200, "FF": 106400, "BRAM36": 140, "URAM": 0, "DSP": 220}},
    "created": "2026-12-06T10:59:08Z",
    "folding": {"mode": "search", "fits": True, "cycles": 6272, "fps": 15943.877551020409, "ceiling": 0.85,
                "wwidth_max": 36, "mvau_res_type": "lut", "source": "search (fastest that fits)",
                "target_fps": None},
    "layers": [
        {"name": "ConvolutionInputGenerator_rtl_0", "op": "ConvolutionInputGenerator_rtl", "PE": None, "SIMD": 1,
         "cycles": 902, "LUT": 316.0, "BRAM_18K": 0.0, "URAM": 0.0, "DSP": 0.0},
        {"name": "MVAUXnor_rtl_0", "op": "MVAUXnor_rtl", "PE": 16, "SIMD": 9, "cycles": 6272, "LUT": 3791.0,
         "BRAM_18K": 0.0, "URAM": 0.0, "DSP": 0.0},
    ],
    "totals": {"LUT": 43536.0, "BRAM_18K": 11.0, "URAM": 0.0, "DSP": 0.0},
    "performance": {"max_cycles": 6272, "bottleneck": "MVAUXnor_rtl_0", "critical_path_cycles": 81285,
                    "fps": 15943.877551020409, "latency_ms": 0.81285},
    "fit": {"used": {"LUT": 43536.0, "BRAM_18K": 11.0, "URAM": 0.0, "DSP": 0.0},
            "available": {"LUT": 53200.0, "BRAM_18K": 280.0, "URAM": 0.0, "DSP": 220.0},
            "ceiling": 0.85, "fits": True, "over": {},
            "largest": {"LUT": [["MVAUXnor_rtl_1", 26450.0], ["MVAUXnor_rtl_2", 7989.0]], "BRAM_18K": [],
                        "URAM": [], "DSP": []}},
    "host": {"input_quant": {"scale": 1.0, "zero_point": 0.0, "bits": 8, "signed": False, "narrow": False,
                             "rounding": "ROUND"},
             "pre": ["Transpose"], "post": []},
    "steps": [
        {"name": "estimate", "seconds": 0.73, "status": "done", "detail": ""},
        {"name": "package", "seconds": 0.01, "status": "done", "detail": ""},
        {"name": "hw_codegen", "seconds": None, "status": "not run", "detail": "HLS code generation and IP synthesis"},
    ],
    "verification": {"inputs": 12, "verdict": "bit-exact", "stages": [
        {"name": "brevitas", "status": "reference", "detail": "PyTorch/Brevitas model", "equal": 12, "total": 12},
        {"name": "rtlsim (Verilator)", "status": "bit-exact", "detail": "12/12 outputs equal", "equal": 12,
         "total": 12},
        {"name": "hls cppsim", "status": "not run", "detail": "needs finn-hlslib and Vitis HLS", "equal": 0,
         "total": 0},
    ]},
}


def _write(out, report) -> None:
    (out / "report").mkdir(parents=True, exist_ok=True)
    (out / "report" / "report.json").write_text(json.dumps(report))


def _on_disk(out) -> dict:
    return json.loads((out / "report" / "report.json").read_text())


def test_a_real_report_round_trips_unchanged(tmp_path):
    assert Report.model_validate(REAL).to_json() == REAL
    _write(tmp_path, REAL)
    save_report(tmp_path, read_report(tmp_path))
    assert _on_disk(tmp_path) == REAL
    assert load_report(tmp_path) == REAL


def test_a_freshly_built_report_round_trips_unchanged(mnist_build, tmp_path):
    from bnn2fpga.flows.compare import StageResult
    from bnn2fpga.flows.verify import Verdict

    cfg, _ = mnist_build
    shutil.copytree(cfg.out_dir / "report", tmp_path / "report")
    verdict = Verdict(inputs=3, stages=[StageResult("brevitas", "reference"),
                                        StageResult("qonnx", "bit-exact", "3/3 outputs equal", 3, 3)])
    add_section(tmp_path, "verification", verdict.to_dict())
    written = _on_disk(tmp_path)
    assert {"board", "layers", "totals", "performance", "fit", "host", "verification"} <= set(written)
    report = read_report(tmp_path)
    assert report.to_json() == written
    assert report.performance.bottleneck in [layer.name for layer in report.layers]
    save_report(tmp_path, report)
    assert _on_disk(tmp_path) == written


@pytest.mark.parametrize("path, value, field", [
    (("layers", 1, "cycles"), "many", "layers.1.cycles"),
    (("board", "resources", "LUT"), [1], "board.resources.LUT"),
    (("verification", "stages", 0, "status"), None, "verification.stages.0.status"),
    (("performance", "fps"), {"value": 1}, "performance.fps"),
])
def test_an_invalid_field_is_named_in_one_line(tmp_path, capsys, path, value, field):
    report = copy.deepcopy(REAL)
    node = report
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    _write(tmp_path, report)
    with pytest.raises(UserError, match=rf"report\.json does not match the report schema: field '{field}'"):
        read_report(tmp_path)
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert field in err and "report.json" in err and err.count("\n") == 1
    # A build rewriting its own report starts afresh instead.
    assert read_report(tmp_path, replace_corrupt=True).to_json() == {}


def test_a_missing_required_field_is_named(tmp_path):
    report = copy.deepcopy(REAL)
    del report["layers"][0]["op"]
    _write(tmp_path, report)
    with pytest.raises(UserError, match=r"field 'layers\.0\.op': Field required"):
        read_report(tmp_path)


def test_an_old_report_with_extra_keys_loads_and_keeps_them(tmp_path):
    old = copy.deepcopy(REAL)
    old["schema_note"] = "written by bnn2fpga 0.1"
    old["board"]["vendor"] = "TUL"
    old["layers"][0]["II"] = 4
    old["verification"]["stages"][1]["max_abs_diff"] = 0
    old["notes"] = "one note as a string"
    _write(tmp_path, old)
    report = read_report(tmp_path)
    assert report.layers[0].II == 4 and report.notes == ["one note as a string"]
    html = save_report(tmp_path, report).read_text(encoding="utf-8")
    assert "one note as a string" in html
    back = _on_disk(tmp_path)
    assert back["schema_note"] == "written by bnn2fpga 0.1" and back["board"]["vendor"] == "TUL"
    assert back["layers"][0]["II"] == 4 and back["verification"]["stages"][1]["max_abs_diff"] == 0


def test_the_page_shows_the_key_figures(tmp_path):
    _write(tmp_path, REAL)
    html = save_report(tmp_path, read_report(tmp_path)).read_text(encoding="utf-8")
    assert "15,943.9 FPS" in html and "0.813 ms" in html
    assert "43,536" in html and "53,200" in html and "81.8%" in html  # LUT total against the board
    assert 'class="card ok"' in html and 'class="badge ok">bit-exact' in html
    assert "Each stage runs the same 12 inputs" in html
    assert '<tr class="bottleneck">' in html


def test_sections_are_typed_and_a_wrong_one_is_refused(tmp_path):
    _write(tmp_path, REAL)
    add_section(tmp_path, "steps", [StepRow(name="export", status="done", seconds=1.5)])
    assert _on_disk(tmp_path)["steps"] == [{"name": "export", "status": "done", "seconds": 1.5}]
    with pytest.raises(ValidationError):
        add_section(tmp_path, "steps", [{"name": "export"}])  # no status
    with pytest.raises(ValueError, match="unknown report section 'stpes'"):
        add_section(tmp_path, "stpes", [])
    with pytest.raises(ValidationError):
        save_report(tmp_path, {"layers": ["junk"]})
    assert _on_disk(tmp_path)["steps"][0]["seconds"] == 1.5  # nothing invalid was written


def test_yosys_counts_are_typed_beside_the_estimates(tmp_path):
    _write(tmp_path, REAL)
    add_yosys(tmp_path, {"MVAUXnor_rtl_0": {"LUT": 3000, "FF": 900, "BRAM_18K": 0, "DSP": 0, "seconds": 2.0},
                         "ConvolutionInputGenerator_rtl_0": {"error": "no RTL"}}, "Yosys test")
    report = read_report(tmp_path)
    assert report.layers[1].yosys_LUT == 3000 and report.layers[0].yosys_LUT is None
    assert report.yosys.totals["LUT"] == 3000 and report.yosys.estimate_totals["LUT"] == 3791.0
    assert report.yosys.layers["ConvolutionInputGenerator_rtl_0"].error == "no RTL"
    assert "yosys_LUT" in (tmp_path / "report" / "report.html").read_text(encoding="utf-8")


def _fields(model: type[BaseModel], seen: set):
    if model in seen:
        return
    seen.add(model)
    for name, info in model.model_fields.items():
        yield model, name, info
        for arg in _types(info.annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                yield from _fields(arg, seen)


def _types(annotation):
    yield annotation
    for arg in getattr(annotation, "__args__", ()):
        yield from _types(arg)


def test_every_field_is_documented():
    fields = list(_fields(Report, set()))
    assert len(fields) > 60 and {name for model, name, _ in fields if model is Report} == set(SECTIONS)
    undocumented = [f"{model.__name__}.{name}" for model, name, info in fields if not info.description]
    assert not undocumented

"""Design-space sweeps: shared prefixes built once, the same figures as points built alone,
failures recorded, Ray and one-by-one engines agree."""
from __future__ import annotations

import json

import pytest
import yaml

from bnn2fpga.errors import UserError
from bnn2fpga.flows.config import make_config
from bnn2fpga.flows.runner import run_build
from bnn2fpga.flows.sweep import SerialEngine, load_spec, pareto, points, run_sweep

pytestmark = pytest.mark.slow


def _mlp(folder):
    import torch
    import torch.nn as nn
    from brevitas.export import export_qonnx

    from bnn2fpga.quantize import layers

    torch.manual_seed(0)
    model = nn.Sequential(layers.pixel_input(), nn.Flatten(), layers.binary_linear(16, 8), nn.BatchNorm1d(8),
                          layers.binary_act(), layers.binary_linear(8, 4))
    with torch.no_grad():
        model[3].running_mean.uniform_(-3, 3)
    folder.mkdir(parents=True, exist_ok=True)
    export_qonnx(model.eval(), input_t=torch.zeros(1, 1, 4, 4), export_path=str(folder / "mlp.onnx"))
    return folder / "mlp.onnx"


def _sweep_file(tmp_path, **extra):
    _mlp(tmp_path / "models")
    data = {"onnx": ["models/mlp.onnx"], "boards": ["pynq-z2"], "targets": ["search", 1000000],
            "until": "estimate", "out": "sweep", **extra}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_sweep_matches_its_points_built_alone_and_shares_prefixes(tmp_path):
    spec, base = load_spec(_sweep_file(tmp_path))
    rows = run_sweep(spec, base, SerialEngine(), log=lambda m: None)
    assert [r["status"] for r in rows] == ["done", "done"], rows
    # Both points start from the shared prefix: everything up to specialize_layers is reused.
    assert all(r["reused_steps"] >= 7 for r in rows)
    for p, row in zip(points(spec, base), rows):
        alone = run_build(make_config(onnx=p.source, board=p.board, out_dir=tmp_path / "alone" / p.label,
                                      fps=None if p.target == "search" else p.target, until="estimate"),
                          log=lambda m: None)
        assert row["fps"] == pytest.approx(alone.info["folding"]["fps"])
        assert row["LUT"] == pytest.approx(alone.info["fit"]["used"]["LUT"])
    assert (tmp_path / "sweep" / "results.csv").read_text().count("\n") == 3
    html = (tmp_path / "sweep" / "index.html").read_text()
    assert "Pareto" in html and (tmp_path / "sweep" / "pareto.png").stat().st_size > 1000
    # A rerun resumes every folder: nothing is built again.
    again = run_sweep(spec, base, SerialEngine(), log=lambda m: None)
    assert [r["fps"] for r in again] == [r["fps"] for r in rows]


def test_a_failing_point_is_recorded_and_the_sweep_goes_on(tmp_path):
    path = _sweep_file(tmp_path, boards=["pynq-z2", "zcu104"])
    spec, base = load_spec(path)
    bad = tmp_path / "models" / "broken.onnx"
    bad.write_bytes(b"not an onnx file")
    spec = spec.model_copy(update={"onnx": ["models/mlp.onnx", "models/broken.onnx"], "targets": ["search"]})
    rows = run_sweep(spec, base, SerialEngine(), log=lambda m: None)
    by = {r["point"]: r for r in rows}
    assert by["mlp-pynq-z2-search-rtl"]["status"] == "done" and by["mlp-zcu104-search-rtl"]["status"] == "done"
    assert by["broken-pynq-z2-search-rtl"]["status"] == "failed"
    assert "cannot read ONNX file" in by["broken-zcu104-search-rtl"]["error"]
    saved = json.loads((tmp_path / "sweep" / "results.json").read_text())
    assert len(saved) == 4


def test_ray_engine_gives_the_same_results(tmp_path):
    ray = pytest.importorskip("ray", reason="the cluster extra (make cluster-setup) is not installed")
    from bnn2fpga.flows.sweep import RayEngine, fingerprint

    spec, base = load_spec(_sweep_file(tmp_path))
    serial = run_sweep(spec.model_copy(update={"out": "serial"}), base, SerialEngine(), log=lambda m: None)
    try:
        on_ray = run_sweep(spec.model_copy(update={"out": "ray"}), base, RayEngine(), log=lambda m: None)
    finally:
        ray.shutdown()
    assert fingerprint(on_ray) == fingerprint(serial)


@pytest.mark.parametrize("content, needle", [
    ("boards: [pynq-z2]\n", "give at least one of 'models' or 'onnx'"),
    ("models: [cbcnn-mnist]\nboards: [pynq-z2]\ntargets: [-5]\n", "field 'targets"),
    ("models: [cbcnn-mnist]\nboards: [pynq-z2]\ncolour: blue\n", "field 'colour'"),
    ("[1, 2", "not valid YAML"),
])
def test_bad_sweep_files_are_one_line_errors(tmp_path, content, needle):
    path = tmp_path / "s.yaml"
    path.write_text(content)
    with pytest.raises(UserError, match=needle) as e:
        load_spec(path)
    assert "\n" not in str(e.value) and "s.yaml" in str(e.value)


def test_pareto_front():
    rows = [{"point": "a", "status": "done", "fps": 100, "LUT": 10}, {"point": "b", "status": "done", "fps": 50, "LUT": 20},
            {"point": "c", "status": "done", "fps": 200, "LUT": 30}, {"point": "d", "status": "failed"}]
    assert [r["point"] for r in pareto(rows)] == ["a", "c"]

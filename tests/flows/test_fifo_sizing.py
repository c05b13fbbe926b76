"""FIFO depths measured in Verilator (issue #18 item 5): written where FINN's InsertFIFO reads them,
simulated exactly by the Verilator stage at the estimated rate, and a FIFO below its peak is caught."""
from __future__ import annotations

import pytest
from tiny_bnn import export_tiny

from bnn2fpga.flows.runner import model_file, run_build

from tool_markers import needs_verilator  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

_MVAU = {"ram_style": "auto", "ram_style_thresholds": "auto", "resType": "lut", "mem_mode": "internal_embedded"}
# A folding whose FIFOs matter: the pool's 1-bit stream feeds a binary FC (SIMD 1, PE 1) that reads
# its 32 inputs in the first of 4 output folds and replays them for the other 3. Only a FIFO that
# keeps the pool going during the replay lets the FC run at its rate.
FOLDING = {
    "Defaults": {},
    "ConvolutionInputGenerator_rtl_0": {"SIMD": 2, "parallel_window": 1, "ram_style": "distributed"},
    "MVAUXnor_rtl_0": {"PE": 2, "SIMD": 18, **_MVAU},
    "ConvolutionInputGenerator_rtl_1": {"SIMD": 1, "parallel_window": 0, "ram_style": "distributed"},
    "Pool_rtl_0": {"PE": 1},
    "MVAUXnor_rtl_1": {"PE": 1, "SIMD": 1, **_MVAU},
}


@pytest.fixture(scope="module")
def sized(tmp_path_factory):
    """The tiny BNN built through fifo_sizing: (build result, sized model)."""
    from qonnx.core.modelwrapper import ModelWrapper

    from bnn2fpga.flows.config import make_config

    tmp = tmp_path_factory.mktemp("fifo-sizing")
    onnx_path, folding = export_tiny(tmp / "src", FOLDING)
    result = run_build(make_config(onnx=onnx_path, board="pynq-z2", folding=folding, out_dir=tmp / "build",
                                   until="fifo_sizing"), log=lambda m: None)
    return result, ModelWrapper(str(model_file(result.out_dir, "fifo_sizing")))


def _rows(result):
    return result.info["fifos"]["fifos"]


def _end_depth(model, row):
    from qonnx.custom_op.registry import getCustomOp

    if row["side"] == "out":
        node = model.find_producer(row["tensor"])
        return getCustomOp(node).get_nodeattr("outFIFODepths")[list(node.output).index(row["tensor"])]
    node = model.find_consumer(row["tensor"])
    return getCustomOp(node).get_nodeattr("inFIFODepths")[list(node.input).index(row["tensor"])]


@needs_verilator
def test_measured_depths_are_written_where_finn_inserts_its_fifos(sized):
    from finn.transformation.fpgadataflow.insert_dwc import InsertDWC
    from finn.transformation.fpgadataflow.insert_fifo import InsertFIFO
    from qonnx.custom_op.registry import getCustomOp

    result, model = sized
    info = result.info["fifos"]
    assert info["method"] == "verilator"
    # The peaks stopped growing well before the paced run ended (the steady state was reached).
    assert info["settled_frame"] < info["frames"] - 2
    rows = _rows(result)
    assert len(rows) == len(model.graph.node) - 1  # one FIFO per stream of this linear chain
    fc_in = next(r for r in rows if r["consumer"] == "MVAUXnor_rtl_1")
    assert fc_in["peak"] > 4  # the replaying FC makes the pool's stream pile up
    for row in rows:
        assert row["depth"] >= row["peak"] + 2 and row["depth"] & (row["depth"] - 1) == 0, row
        assert _end_depth(model, row) == row["depth"], row
    # What FINN's step_set_fifo_depths (auto_fifo_depths=False) does to the model: its FIFOs
    # on each stream's tensor, as deep as measured.
    finn = model.transform(InsertDWC()).transform(InsertFIFO(create_shallow_fifos=True))
    for row in rows:
        if row["side"] == "out":
            fifo = finn.find_consumer(row["tensor"])
        else:
            consumer = next(n for n in finn.graph.node if n.name == row["consumer"])
            fifo = finn.find_producer(consumer.input[0])
        assert fifo.op_type == "StreamingFIFO", row
        assert getCustomOp(fifo).get_nodeattr("depth") == row["depth"], row


@needs_verilator
def test_finn_gets_a_fifo_config_restating_the_measured_depths(sized, tmp_path):
    """The fifo_depths step turns FINN's own sizing off and hands it this file (FINN insists on one)."""
    import json

    from bnn2fpga.flows.steps import finn_fifo_config

    result, model = sized
    depths = json.loads(finn_fifo_config(model, "xc7z020clg400-1", tmp_path / "f.json").read_text())["fifo_depths"]
    assert all(name.startswith("StreamingFIFO_rtl_") for name in depths)
    # Every measured depth, plus FINN's depth-2 FIFOs at the graph's ends and across width converters.
    sized_depths = sorted(r["depth"] for r in _rows(result))
    assert sorted(d for d in depths.values() if d > 2) == [d for d in sized_depths if d > 2]
    assert set(depths.values()) - set(sized_depths) <= {2}


@needs_verilator
def test_verilator_runs_exactly_the_measured_depths_at_the_estimated_rate(sized):
    from bnn2fpga.flows.fifo_sizing import _random_frames
    from bnn2fpga.hw.sim.graph_sim import build_design, run_frames

    result, model = sized
    design = build_design(model)
    try:
        inner = [e for e in design.edges if e.src is not None and e.dst is not None]
        assert [e.depth for e in inner] == [r["depth"] for r in _rows(result)]
        run = run_frames(design, _random_frames(model, 8))
    finally:
        design.close()
    assert run.cycles_per_frame <= max(layer.exp_cycles for layer in design.layers)
    # ... and exactly the rate it had with FIFOs too deep to fill.
    assert run.cycles_per_frame == result.info["fifos"]["sized_for"]


def _verify(result):
    from bnn2fpga.flows.verify import make_inputs, verify_build

    inputs = make_inputs((2, 6, 6), 2, result.info.get("input_quant"), real=None, seed=4)
    verdict = verify_build(result, inputs, None, log=lambda m: None)
    return next(s for s in verdict.stages if s.name == "rtlsim (Verilator)")


@needs_verilator
def test_the_stage_passes_the_sized_design_and_catches_a_fifo_below_its_peak(sized):
    from bnn2fpga.flows.transforms.set_fifo_depths import SetFIFODepths

    result, model = sized
    stage = _verify(result)
    assert stage.status == "bit-exact" and "measured depths" in stage.detail, stage.detail
    # The FC's input FIFO at FINN's minimal depth 2, below its measured peak: the pool stalls
    # while the FC replays, and the design misses its rate.
    rows = _rows(result)
    depths = [(r["tensor"], r["side"], 2 if r["consumer"] == "MVAUXnor_rtl_1" else r["depth"]) for r in rows]
    path = model_file(result.out_dir, "fifo_sizing")
    model.transform(SetFIFODepths(depths, result.info["fifos"]["cycles_per_frame"])).save(str(path))
    stage = _verify(result)
    assert stage.status == "mismatch" and stage.detail.startswith("throughput:"), stage.detail
    assert "Pool_rtl_0->MVAUXnor_rtl_1 (2)" in stage.detail


@needs_verilator
def test_the_free_running_check_deepens_a_fifo_that_slows_the_design(sized):
    """A FIFO sized below what the free-running design needs (the pool's, at FINN's minimal 2) is
    doubled by ``confirm`` until the design runs at the rate measured with deep FIFOs again."""
    from dataclasses import replace

    from qonnx.core.modelwrapper import ModelWrapper

    from bnn2fpga.flows import fifo_sizing
    from bnn2fpga.hw.sim.graph_sim import build_design, run_frames

    result, _ = sized

    model = ModelWrapper(str(model_file(result.out_dir, "minimize_bit_width")))
    info = result.info["fifos"]
    rows = [fifo_sizing.FifoRow(**r) for r in info["fifos"]]
    short = [replace(r, depth=2) if r.consumer == "MVAUXnor_rtl_1" else r for r in rows]
    assert short != rows
    sizing = fifo_sizing.Sizing("verilator", info["cycles_per_frame"], fifos=short, sized_for=info["sized_for"])
    logged = []
    sized_model, checked = fifo_sizing.confirm(model, sizing, "xc7z020clg400-1", log=logged.append)
    fc_in = next(r for r in checked.fifos if r.consumer == "MVAUXnor_rtl_1")
    assert fc_in.depth > 2 and checked.widened and logged, (fc_in, checked.note)
    # Only the FIFO that ran full changed, and the checked design keeps the rate.
    assert [r.depth for r in checked.fifos if r.consumer != "MVAUXnor_rtl_1"] == \
           [r.depth for r in short if r.consumer != "MVAUXnor_rtl_1"]
    design = build_design(sized_model)
    try:
        run = run_frames(design, fifo_sizing._random_frames(sized_model, 8))
    finally:
        design.close()
    assert run.cycles_per_frame <= info["sized_for"]


def test_the_rate_is_taken_past_the_pipeline_fill(monkeypatch):
    """blinknet-hybrid's sized design, measured: the first intervals include the pipeline filling
    (98,786, 98,432, 98,432), then 98,304 for good. The median of 6 frames (5 intervals) said
    98,432, and the Verilator stage called the sized FIFOs too short; the steady state is 98,304."""
    import types

    import numpy as np

    from bnn2fpga.flows import fifo_sizing
    from bnn2fpga.hw.sim import graph_sim

    asked = []

    def fake_run(design, frames, **kw):
        n = len(frames)
        asked.append(n)
        gaps = ([98_786, 98_432, 98_432] + [98_304] * n)[:n - 1]
        ends = 225_672 + np.concatenate([[0], np.cumsum(gaps)])
        median = float(np.median(np.diff(ends)))
        return types.SimpleNamespace(frame_ends=ends, latency_cycles=225_672, cycles_per_frame=median)

    monkeypatch.setattr(graph_sim, "run_frames", fake_run)
    monkeypatch.setattr(fifo_sizing, "_random_frames", lambda model, n, seed=0: np.zeros((n, 1)))
    assert fake_run(None, np.zeros((6, 1))).cycles_per_frame == 98_432  # what the stage judged by
    rate, run = fifo_sizing.steady_run(None, None)
    assert rate == 98_304
    # Latency of about 3 frames: twice (3 + SETTLE_FRAMES) frames, so the second half is settled.
    assert asked[-1] >= 2 * (3 + fifo_sizing.SETTLE_FRAMES)

"""flows.folding: the search's memos (per-layer estimates, SetFolding per budget) give FINN's results (issue #19)."""
from __future__ import annotations

import copy

import pytest


@pytest.fixture(scope="module")
def hw_model(mnist_build):
    from qonnx.core.modelwrapper import ModelWrapper

    _, result = mnist_build
    return ModelWrapper(str(result.model_path("specialize_layers"))), result


def test_layer_estimates_equal_finns_analyses_after_refolding(hw_model):
    from finn.analysis.fpgadataflow.exp_cycles_per_layer import exp_cycles_per_layer
    from finn.analysis.fpgadataflow.res_estimation import res_estimation

    from bnn2fpga.boards import get_board
    from bnn2fpga.flows import folding

    model, _ = hw_model
    board = get_board("pynq-z2")
    folded = folding.fold_to_cycles(model, 10**12)
    for m in (folded, folding.fold_to_cycles(model, 2000)):  # the second re-folds: other attributes, other keys
        assert folding.estimate_resources(m, board) == res_estimation(m, board.part)
        assert folding.max_cycles(m) == max(exp_cycles_per_layer(m).values())
        assert folding.estimate_resources(m, board) == res_estimation(m, board.part)  # from the memo now
    assert folding.max_cycles(folded) != folding.max_cycles(m)


def test_folder_reuses_setfolding_per_budget_with_the_same_result(hw_model, monkeypatch):
    from bnn2fpga.flows import folding

    model, _ = hw_model
    folder = folding._Folder(model)
    lut = folder.fold(5000, 36, "lut")
    assert folder._folded  # kept for the dsp twin
    monkeypatch.setattr(folder, "_set_folding", lambda *a: pytest.fail("SetFolding ran again for the same budget"))
    dsp = folder.fold(5000, 36, "dsp")
    fresh_dsp = folding._Folder(copy.deepcopy(model)).fold(5000, 36, "dsp")
    ser = lambda m: m.model.SerializeToString(deterministic=True)  # noqa: E731
    assert ser(dsp) == ser(fresh_dsp)
    assert ser(lut) == ser(folding._Folder(copy.deepcopy(model)).fold(5000, 36, "lut"))
    if any(n.op_type.startswith("MVAU") and not n.op_type.startswith("MVAUXnor") for n in model.graph.node):
        assert ser(lut) != ser(dsp)

"""Checks shared by the tests that build networks (zoo models and the bring-your-own corpus)."""
from __future__ import annotations

from pathlib import Path


def hls_layers(out_dir: Path) -> list[str]:
    """'name (op)' of every HLS layer in a build's folded dataflow graph (empty: all RTL)."""
    from qonnx.core.modelwrapper import ModelWrapper

    from bnn2fpga.flows import ops
    from bnn2fpga.flows.runner import model_file
    from bnn2fpga.flows.steps import FOLDED_MODEL_STEP

    ops.prepare()
    model = ModelWrapper(str(model_file(Path(out_dir), FOLDED_MODEL_STEP)))
    return [f"{n.name} ({n.op_type})" for n in model.graph.node if n.op_type.endswith("_hls")]

"""Apply a list of graph transformations until none of them changes the graph, cheaply."""
from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper


def apply_until_stable(model: ModelWrapper, transforms: list, max_rounds: int = 1000) -> ModelWrapper:
    """Run ``transforms`` in order, each to its own fixed point, and repeat the list until nothing changes.

    QONNX's ComposedTransformation does the same but deep-copies the model and renames
    every tensor after each transformation, which is quadratic in the graph size and
    took minutes on a small PresB-Net. Here shapes and datatypes are re-inferred only
    after a transformation changed something, and the clean-up (sorting, unique and
    readable names) runs once at the end, and not at all on a graph this function returned
    before when nothing is left to do (issue #19).
    """
    from qonnx.transformation.general import GiveReadableTensorNames, GiveUniqueNodeNames

    from bnn2fpga.flows.fast_apply import infer_datatypes, infer_shapes

    changed_any = False
    for _ in range(max_rounds):
        changed = False
        for t in transforms:
            while True:
                model, modified = t.apply(model)
                if not modified:
                    break
                changed = changed_any = True
                model = infer_shapes(model)  # = model.transform(InferShapes(), cleanup=False), faster
                model = infer_datatypes(model)  # = model.transform(InferDataTypes(), cleanup=False), faster
        if not changed:
            break
    else:
        raise RuntimeError(f"graph transformations did not settle after {max_rounds} rounds")
    if not changed_any:
        from bnn2fpga.flows.fast_apply import digest

        if digest(model) in _SETTLED:  # its own output: the clean-up and the names below change nothing
            return model
    model = model.cleanup()
    model = model.transform(GiveUniqueNodeNames(), make_deepcopy=False, cleanup=False)
    model = model.transform(GiveReadableTensorNames(), make_deepcopy=False, cleanup=False)
    _remember_settled(model)
    return model


#: Digests of graphs this function returned: clean, with unique node and readable tensor
#: names, so the clean-up and naming at its end leave them as they are.
_SETTLED: set = set()


def _remember_settled(model: ModelWrapper) -> None:
    from bnn2fpga.flows.fast_apply import digest

    if len(_SETTLED) > 10_000:
        _SETTLED.clear()
    _SETTLED.add(digest(model))

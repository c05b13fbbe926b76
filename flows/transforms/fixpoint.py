"""Apply a list of graph transformations until none of them changes the graph, cheaply."""
from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper


def apply_until_stable(model: ModelWrapper, transforms: list, max_rounds: int = 1000) -> ModelWrapper:
    """Run ``transforms`` in order, each to its own fixed point, and repeat the list until nothing changes.

    QONNX's ComposedTransformation does the same but deep-copies the model and renames
    every tensor after each transformation, which is quadratic in the graph size and
    took minutes on a small PresB-Net. Here shapes and datatypes are re-inferred only
    after a transformation changed something, and the clean-up (sorting, unique and
    readable names) runs once at the end.
    """
    from qonnx.transformation.general import GiveReadableTensorNames, GiveUniqueNodeNames
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes

    for _ in range(max_rounds):
        changed = False
        for t in transforms:
            while True:
                model, modified = t.apply(model)
                if not modified:
                    break
                changed = True
                model = model.transform(InferShapes(), make_deepcopy=False, cleanup=False)
                model = model.transform(InferDataTypes(), make_deepcopy=False, cleanup=False)
        if not changed:
            break
    else:
        raise RuntimeError(f"graph transformations did not settle after {max_rounds} rounds")
    model = model.cleanup()
    model = model.transform(GiveUniqueNodeNames(), make_deepcopy=False, cleanup=False)
    return model.transform(GiveReadableTensorNames(), make_deepcopy=False, cleanup=False)

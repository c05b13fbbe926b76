"""One stage of the verification ladder against the reference: its verdict and the comparison.

Shared by the Python stages (``verify``) and the Verilator stage (``rtlsim_stage``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class StageResult:
    """Verdict of one stage."""

    name: str
    status: str  # "reference", "bit-exact", "mismatch", "not run"
    detail: str = ""
    equal: int = 0
    total: int = 0


def compare(name: str, ref: np.ndarray, out: np.ndarray, kinds: list[str]) -> StageResult:
    """Compare outputs input by input; a mismatch names the first differing input and element."""
    ref, out = ref.reshape(len(ref), -1), out.reshape(len(out), -1)
    if ref.shape != out.shape:
        return StageResult(name, "mismatch", f"output shape {out.shape[1:]} != reference {ref.shape[1:]}", 0, len(ref))
    same = np.all(ref == out, axis=1)
    if same.all():
        return StageResult(name, "bit-exact", f"{len(ref)}/{len(ref)} outputs equal", len(ref), len(ref))
    i = int(np.argmin(same))
    j = int(np.argmax(ref[i] != out[i]))
    return StageResult(
        name, "mismatch",
        f"{int(same.sum())}/{len(ref)} equal; first: input {i} ({kinds[i]}), output[{j}] {out[i, j]:g} != {ref[i, j]:g}",
        int(same.sum()), len(ref),
    )

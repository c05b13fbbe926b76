"""Host-side post-processing of the accelerator's output (numpy only: the board imports it)."""
from __future__ import annotations

import numpy as np


def apply_head(acc: np.ndarray, head: dict | None) -> np.ndarray:
    """Logits from the accelerator's integer output: the per-class affine of the host head."""
    acc = np.asarray(acc, dtype=np.float32)
    if head is None:
        return acc
    return acc * np.asarray(head["scale"], np.float32) + np.asarray(head["bias"], np.float32)


def top1(logits: np.ndarray) -> np.ndarray:
    """Predicted class per row (first maximum wins, as torch.argmax does)."""
    return np.argmax(np.asarray(logits), axis=-1)

"""scikit-learn's bundled 8x8 handwritten digits (1,797 images, no download)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import ImageSet, check_split, stratified_split

__all__ = ["DIGITS_CLASS_NAMES", "load_digits"]

DIGITS_CLASS_NAMES = [str(d) for d in range(10)]


def load_digits(
    root: str | Path | None = None,
    split: str = "train",
    *,
    test_fraction: float = 0.25,
    seed: int = 0,
) -> ImageSet:
    """Load the sklearn digits as uint8 (N, 8, 8); ``root`` is ignored.

    Values 0..16 are scaled by ``round(v * 255 / 16)`` (ties up, so 8 -> 128).
    "train"/"test" come from :func:`quantize.data.stratified_split` with
    ``test_fraction`` and ``seed``, so they are disjoint, class-balanced and
    the same on every call.
    """
    check_split(split)
    from sklearn import datasets  # deferred: importing sklearn takes about a second

    bunch = datasets.load_digits()
    raw = np.rint(bunch.images).astype(np.int64)
    images = ((raw * 255 + 8) // 16).astype(np.uint8)
    labels = np.asarray(bunch.target, dtype=np.int64)
    train_idx, test_idx = stratified_split(labels, test_fraction, seed)
    keep = train_idx if split == "train" else test_idx
    return ImageSet(images[keep], labels[keep], list(DIGITS_CLASS_NAMES))

"""CIFAR-10 and CIFAR-100 in their "python version" pickle batches."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from . import DatasetError, ImageSet, check_split, read_pickled_dict, regular_file

__all__ = ["load_cifar10", "load_cifar100"]

_ROW_BYTES = 32 * 32 * 3


def _unpickle(path: Path, root: Path) -> dict:
    regular_file(path, root, missing=f"{path}: CIFAR file missing")
    # The batches were pickled by Python 2: keys and names are bytes.
    return read_pickled_dict(path, root)


def _get(d: dict, key: str, path: Path) -> Any:
    for k in (key.encode(), key):
        if k in d:
            return d[k]
    raise DatasetError(f"{path}: key {key!r} missing")


def _names(meta_path: Path, key: str, root: Path) -> list[str]:
    names = _get(_unpickle(meta_path, root), key, meta_path)
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def _find_dir(root: Path, folder: str, marker: str) -> Path:
    # Accept both the extraction parent and the extracted folder itself.
    for candidate in (root / folder, root):
        # lexists, not is_file: a marker that is a FIFO or a directory gets named by
        # regular_file later instead of being reported as missing.
        if os.path.lexists(candidate / marker):
            return candidate
    raise DatasetError(f"{root}: {folder}/{marker} not found (nor {marker} in {root})")


def _batches(paths: list[Path], label_key: str, n_classes: int, root: Path) -> tuple[np.ndarray, np.ndarray]:
    data_parts, label_parts = [], []
    for path in paths:
        d = _unpickle(path, root)
        try:
            data = np.asarray(_get(d, "data", path))
            labels = np.asarray(_get(d, label_key, path), dtype=np.int64).reshape(-1)
        except (TypeError, ValueError, OverflowError) as e:
            raise DatasetError(f"{path}: 'data' or {label_key!r} is not an array ({e})") from None
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _ROW_BYTES:
            raise DatasetError(
                f"{path}: 'data' must be uint8 (N, {_ROW_BYTES}), got {data.dtype} {data.shape}"
            )
        if len(labels) != len(data):
            raise DatasetError(f"{path}: {len(data)} rows but {len(labels)} labels")
        if len(labels) and not (labels.min() >= 0 and labels.max() < n_classes):
            raise DatasetError(f"{path}: labels outside 0..{n_classes - 1}")
        data_parts.append(data)
        label_parts.append(labels)
    data = np.concatenate(data_parts)
    # Each row is the R plane, then G, then B, each 32x32 row-major.
    images = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return images, np.concatenate(label_parts)


def load_cifar10(root: str | Path, split: str) -> ImageSet:
    """Load CIFAR-10 as uint8 (N, 32, 32, 3) from ``root/cifar-10-batches-py`` or ``root``."""
    check_split(split)
    root = Path(root)
    base = _find_dir(root, "cifar-10-batches-py", "batches.meta")
    names = _names(base / "batches.meta", "label_names", root)
    if split == "train":
        files = [base / f"data_batch_{i}" for i in range(1, 6)]
    else:
        files = [base / "test_batch"]
    images, labels = _batches(files, "labels", len(names), root)
    return ImageSet(images, labels, names)


def load_cifar100(root: str | Path, split: str) -> ImageSet:
    """Load CIFAR-100 as uint8 (N, 32, 32, 3) with its 100 fine labels.

    Reads ``root/cifar-100-python`` or ``root`` being that folder.
    """
    check_split(split)
    root = Path(root)
    base = _find_dir(root, "cifar-100-python", "meta")
    names = _names(base / "meta", "fine_label_names", root)
    images, labels = _batches([base / split], "fine_labels", len(names), root)
    return ImageSet(images, labels, names)

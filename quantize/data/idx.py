"""MNIST and Fashion-MNIST in their IDX file format, gzipped or not."""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from . import DatasetError, ImageSet, check_split, regular_file

__all__ = [
    "MNIST_CLASS_NAMES",
    "FASHION_MNIST_CLASS_NAMES",
    "read_idx",
    "load_mnist",
    "load_fashion_mnist",
]

MNIST_CLASS_NAMES = [str(d) for d in range(10)]
FASHION_MNIST_CLASS_NAMES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]

_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dims
_LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dim


def read_idx(path: Path, magic: int, root: Path | None = None) -> np.ndarray:
    """Read an unsigned-byte IDX file (``.gz`` decompressed) whose header magic must be ``magic``.

    The payload must be exactly as large as the header's big-endian
    dimensions say; anything else (e.g. a truncated download) is a DatasetError.
    The file must be a regular file, inside ``root`` when that is given.
    """
    path = regular_file(path, root, missing=f"{path}: IDX file missing")
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            data = path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        raise DatasetError(f"{path}: cannot read IDX file ({e})") from None
    if len(data) < 4:
        raise DatasetError(f"{path}: too short for an IDX header")
    (found,) = struct.unpack(">I", data[:4])
    if found != magic:
        raise DatasetError(f"{path}: IDX magic 0x{found:08x}, expected 0x{magic:08x}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(f"{path}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(dims, dtype=np.int64))
    if len(data) - header != expected:
        raise DatasetError(
            f"{path}: {len(data) - header} data bytes but header {dims} needs {expected} "
            "(truncated?)"
        )
    # Copy: frombuffer over bytes is read-only, which surprises callers.
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()


def _find(root: Path, stem: str) -> Path:
    # Prefer the uncompressed file: it is read without decompression.
    for folder in (root, root / "raw"):
        for name in (stem, stem + ".gz"):
            # lexists: a FIFO or directory by that name is refused by read_idx, not skipped.
            if os.path.lexists(folder / name):
                return folder / name
    raise DatasetError(f"{root}: {stem}[.gz] not found in {root} or {root / 'raw'}")


def _load(root: str | Path, split: str, class_names: list[str]) -> ImageSet:
    check_split(split)
    root = Path(root)
    images_stem, labels_stem = _FILES[split]
    images_path, labels_path = _find(root, images_stem), _find(root, labels_stem)
    images = read_idx(images_path, _IMAGES_MAGIC, root)
    labels = read_idx(labels_path, _LABELS_MAGIC, root)
    if len(images) != len(labels):
        raise DatasetError(
            f"{root}: {images_path.name} has {len(images)} images but "
            f"{labels_path.name} has {len(labels)} labels"
        )
    if len(labels) and labels.max() >= len(class_names):
        raise DatasetError(
            f"{labels_path}: label {labels.max()} out of range 0..{len(class_names) - 1}"
        )
    return ImageSet(images, labels.astype(np.int64), list(class_names))


def load_mnist(root: str | Path, split: str) -> ImageSet:
    """Load MNIST ``split`` as uint8 (N, 28, 28) from IDX files in ``root`` or ``root/raw``."""
    return _load(root, split, MNIST_CLASS_NAMES)


def load_fashion_mnist(root: str | Path, split: str) -> ImageSet:
    """Load Fashion-MNIST ``split`` as uint8 (N, 28, 28).

    Reads the same IDX file names as MNIST from ``root`` or ``root/raw``.
    """
    return _load(root, split, FASHION_MNIST_CLASS_NAMES)

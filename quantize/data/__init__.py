"""Dataset loaders reading the datasets' real on-disk formats.

Every loader returns an :class:`ImageSet` of raw uint8 images exactly as read
(no resizing or normalisation; that is :mod:`quantize.preprocess`' job) and
raises :class:`DatasetError` with a one-line message when the files are not
where, or not what, the loader expects.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = [
    "ImageSet",
    "DatasetError",
    "DATASETS",
    "SPLITS",
    "load_dataset",
    "check_split",
    "stratified_split",
]

SPLITS = ("train", "test")


class DatasetError(Exception):
    """A dataset folder or file is missing or in the wrong format.

    The message is one line naming the path and what is missing or wrong.
    """


@dataclass
class ImageSet:
    """Raw images with integer labels and the names of the classes."""

    images: np.ndarray | list[np.ndarray]  # uint8: (N,H,W), (N,H,W,3) or list of (H,W,3)
    labels: np.ndarray  # int64 (N,)
    class_names: list[str]

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        if len(self.images) != len(self.labels):
            raise ValueError(
                f"ImageSet has {len(self.images)} images but {len(self.labels)} labels"
            )

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, idx: Any) -> "ImageSet":
        """Return the samples selected by ``idx`` (index array, boolean mask or slice)."""
        positions = np.atleast_1d(np.arange(len(self))[idx])
        if isinstance(self.images, np.ndarray):
            images: np.ndarray | list[np.ndarray] = self.images[positions]
        else:
            images = [self.images[i] for i in positions]
        return ImageSet(images, self.labels[positions], list(self.class_names))


def check_split(split: str) -> None:
    """Raise DatasetError unless ``split`` is one of :data:`SPLITS`."""
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")


def read_pickled_dict(path: Path) -> dict:
    """A pickled dict from a dataset file (Python 2 pickles too: bytes keys are kept as bytes)."""
    import pickle

    try:
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="bytes")
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as e:
        raise DatasetError(f"{path}: cannot unpickle ({e})") from None
    if not isinstance(d, dict):
        raise DatasetError(f"{path}: expected a pickled dict, got {type(d).__name__}")
    return d


def stratified_split(
    labels: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (train, test), taking ``test_fraction`` of every class.

    Each class contributes ``floor(count * test_fraction + 0.5)`` samples to
    test, chosen by a ``numpy.random.default_rng(seed)`` permutation, so the
    split depends only on the labels (in order), the fraction and the seed.
    Both index arrays are returned sorted.
    """
    if not 0.0 <= test_fraction <= 1.0:
        raise ValueError(f"test_fraction must be in [0, 1], got {test_fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    test_parts = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        n_test = int(np.floor(len(members) * test_fraction + 0.5))
        test_parts.append(rng.permutation(members)[:n_test])
    test = np.sort(np.concatenate(test_parts)) if test_parts else np.zeros(0, np.intp)
    is_test = np.zeros(len(labels), dtype=bool)
    is_test[test] = True
    return np.flatnonzero(~is_test), test


# Submodules import ImageSet and DatasetError from this package, so they are
# imported only after those names exist.
from . import cifar, digits, folders, gtsrb, idx  # noqa: E402

DATASETS: dict[str, Callable[[Path | None, str], ImageSet]] = {
    "gtsrb": gtsrb.load_gtsrb,
    "mnist": idx.load_mnist,
    "fashion-mnist": idx.load_fashion_mnist,
    "digits": digits.load_digits,
    "cifar10": cifar.load_cifar10,
    "cifar100": cifar.load_cifar100,
    "garbage": folders.load_garbage,
    "folder": folders.load_folder,
}


def load_dataset(name: str, root: str | Path | None, split: str) -> ImageSet:
    """Load ``split`` ("train" or "test") of dataset ``name`` from folder ``root``.

    ``root`` is ignored for "digits", which ships with scikit-learn.
    """
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    check_split(split)
    if name == "digits":
        return DATASETS[name](None, split)
    if root is None:
        raise DatasetError(f"dataset {name!r} needs a root folder, got None")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset root folder for {name!r} does not exist")
    return DATASETS[name](root, split)

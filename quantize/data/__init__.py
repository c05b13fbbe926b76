"""Dataset loaders reading the datasets' real on-disk formats.

Every loader returns an :class:`ImageSet` of raw uint8 images exactly as read
(no resizing or normalisation; that is :mod:`quantize.preprocess`' job) and
raises :class:`DatasetError` with a one-line message when the files are not
where, or not what, the loader expects.
"""

from __future__ import annotations

import os
import pickle
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from bnn2fpga.errors import UserError

__all__ = [
    "ImageSet",
    "DatasetError",
    "DATASETS",
    "SPLITS",
    "load_dataset",
    "check_split",
    "stratified_split",
    "read_pickled_dict",
    "regular_file",
]

SPLITS = ("train", "test")


class DatasetError(UserError):
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


def regular_file(path: str | Path, root: str | Path | None = None, missing: str | None = None) -> Path:
    """Return ``path`` if it is a regular file (after symlinks) inside ``root``; else DatasetError.

    Opening a FIFO blocks until someone writes to it and reading a device such as
    /dev/zero never ends, so the file type is checked (with stat, which opens nothing)
    before any loader opens the file. A symlink may point anywhere inside ``root``
    (None: no containment check) but not out of it. ``missing`` is the message when
    nothing is there at all.
    """
    path = Path(path)
    try:
        os.lstat(path)
    except FileNotFoundError:
        raise DatasetError(missing or f"{path}: file missing") from None
    except OSError as e:
        raise DatasetError(f"{path}: cannot access ({e.strerror or e})") from None
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise DatasetError(f"{path}: broken symlink") from None
    except OSError as e:  # e.g. a symlink loop
        raise DatasetError(f"{path}: cannot access ({e.strerror or e})") from None
    if not stat.S_ISREG(mode):
        raise DatasetError(f"{path}: {_file_kind(mode)}, not a regular file")
    if root is not None:
        real, real_root = path.resolve(), Path(root).resolve()
        if not real.is_relative_to(real_root):
            raise DatasetError(f"{path}: resolves to {real}, outside the dataset folder {real_root}")
    return path


def _file_kind(mode: int) -> str:
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for test, name in kinds if test(mode)), "a special file")


# What dataset pickles (CIFAR's batches, GTSRB's train.p/test.p) are made of: dicts,
# lists, strings and numpy arrays. numpy 1 names its reconstructors numpy.core.*,
# numpy 2 numpy._core.*; Python 2 and protocol-0..2 pickles name builtins __builtin__.
_NUMPY_GLOBALS = frozenset(
    (f"numpy.{core}.{sub}", name)
    for core in ("core", "_core")
    for sub, name in (("multiarray", "_reconstruct"), ("multiarray", "scalar"), ("numeric", "_frombuffer"))
) | {("numpy", "ndarray"), ("numpy", "dtype")}
_BUILTIN_GLOBALS = frozenset(
    (module, name)
    for module in ("builtins", "__builtin__")
    for name in ("set", "frozenset", "bytes", "bytearray", "complex")
) | {("collections", "OrderedDict")}
# Protocol-2 pickles written by Python 3 store bytes as _codecs.encode(text, "latin1").
_LATIN1 = frozenset({"latin1", "latin-1", "iso-8859-1", "iso8859-1", "l1"})


def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    if encoding.lower() not in _LATIN1:
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r} is not a bytes literal")
    return text.encode("latin1", errors)


class _DatasetUnpickler(pickle.Unpickler):
    """An unpickler that builds plain containers and numpy arrays and refuses every other global.

    A pickle may name any importable callable (``os.system``, ``builtins.exec``) and
    call it while loading; only the constructors dataset files need are allowed.
    """

    def __init__(self, file, path: Path):
        super().__init__(file, encoding="bytes")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        """Resolve an allowed global; any other is a DatasetError naming the file and the global."""
        if (module, name) in _NUMPY_GLOBALS or (module, name) in _BUILTIN_GLOBALS:
            return super().find_class(module, name)
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        raise DatasetError(
            f"{self._path}: refused to load global '{module}.{name}' "
            "(dataset pickles may only hold containers, strings, numbers and numpy arrays)"
        )


def read_pickled_dict(path: Path, root: Path | None = None) -> dict:
    """A pickled dict from a dataset file, read without running code from it.

    Python 2 pickles work too (their str keys and names come back as bytes). Any
    global other than numpy's array reconstruction and plain container types is
    refused with a DatasetError, so a crafted file cannot execute anything.
    """
    path = regular_file(path, root)
    try:
        with open(path, "rb") as f:
            d = _DatasetUnpickler(f, path).load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            ImportError, KeyError, IndexError, RecursionError, MemoryError) as e:
        # Malformed pickles fail in all of these ways; the file is the problem in each.
        raise DatasetError(f"{path}: cannot unpickle ({type(e).__name__}: {_one_line(e)})") from None
    if not isinstance(d, dict):
        raise DatasetError(f"{path}: expected a pickled dict, got {type(d).__name__}")
    return d


def _one_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    text = lines[0] if lines else ""
    return text if len(text) <= 200 else text[:197] + "..."


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

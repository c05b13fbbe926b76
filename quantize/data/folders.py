"""Image-folder classification datasets: ``root/<class_name>/*.jpg`` and friends."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from . import DatasetError, ImageSet, check_split, regular_file, stratified_split

__all__ = ["IMAGE_EXTENSIONS", "GARBAGE_CLASS_NAMES", "read_rgb", "load_folder", "load_garbage"]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".ppm", ".bmp"})

# Garbage Classification (12 classes); sorted, as the folder names sort.
GARBAGE_CLASS_NAMES = [
    "battery",
    "biological",
    "brown-glass",
    "cardboard",
    "clothes",
    "green-glass",
    "metal",
    "paper",
    "plastic",
    "shoes",
    "trash",
    "white-glass",
]


def read_rgb(path: Path, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Read an image file as uint8 RGB (H, W, 3), optionally cropped to PIL ``box``.

    ``box`` is (left, top, right, bottom) with right/bottom exclusive.
    Unreadable files, and paths that are no regular file, raise DatasetError naming the file.
    """
    regular_file(path)
    try:
        with Image.open(path) as im:
            if box is not None:
                im = im.crop(box)
            return np.array(im.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise DatasetError(f"{path}: cannot read image ({e})") from None


def _image_files(folder: Path, root: Path) -> list[Path]:
    # Every entry named like an image must be one: a FIFO, a directory or a symlink
    # out of the dataset called x.jpg is an error naming it, not silently skipped.
    return sorted(
        regular_file(p, root) for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS
    )


def _class_dirs(root: Path) -> list[str]:
    # Hidden folders (.ipynb_checkpoints, .git, ...) are never classes.
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def load_folder(
    root: str | Path,
    split: str,
    *,
    expected_classes: Sequence[str] | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> ImageSet:
    """Load ``root/<class>/*.{jpg,jpeg,png,ppm,bmp}`` as RGB uint8 images of varying size.

    If ``root/train`` and ``root/test`` both exist they are the split, each
    laid out as above.  Otherwise every class is split on its own, taking
    ``test_fraction`` of its files (sorted by name) for "test" with a
    ``seed``-ed permutation, so the split is reproducible and balanced; only
    the requested split's files are read.  Class names are the sorted folder
    names, or ``expected_classes`` (in that order) when given, in which case
    missing or extra class folders are an error.
    """
    check_split(split)
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: image folder dataset root does not exist")
    presplit = (root / "train").is_dir() and (root / "test").is_dir()
    class_root = root / split if presplit else root

    found = _class_dirs(class_root)
    if expected_classes is not None:
        class_names = list(expected_classes)
        missing = [c for c in class_names if c not in found]
        if missing:
            raise DatasetError(f"{class_root}: missing class folders {', '.join(missing)}")
        extra = [c for c in found if c not in class_names]
        if extra:
            raise DatasetError(f"{class_root}: unexpected class folders {', '.join(extra)}")
    else:
        class_names = found
    if not class_names:
        raise DatasetError(
            f"{class_root}: no class folders found (expected {class_root}/<class_name>/*.jpg)"
        )

    files: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(class_names):
        members = _image_files(class_root / name, root)
        if not members:
            raise DatasetError(
                f"{class_root / name}: no images ({', '.join(sorted(IMAGE_EXTENSIONS))})"
            )
        files += members
        labels += [label] * len(members)
    label_arr = np.asarray(labels, dtype=np.int64)

    if not presplit:
        train_idx, test_idx = stratified_split(label_arr, test_fraction, seed)
        keep = train_idx if split == "train" else test_idx
        files = [files[i] for i in keep]
        label_arr = label_arr[keep]
    return ImageSet([read_rgb(f) for f in files], label_arr, class_names)


def load_garbage(root: str | Path, split: str) -> ImageSet:
    """Load the 12-class Garbage Classification dataset (an image folder)."""
    return load_folder(root, split, expected_classes=GARBAGE_CLASS_NAMES)

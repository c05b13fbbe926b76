"""German Traffic Sign Recognition Benchmark (GTSRB), 43 classes.

Two layouts are understood:

* official: ``root/Final_Training/Images/000NN/*.ppm`` with ``GT-000NN.csv``
  in every class folder, and ``root/Final_Test/Images/*.ppm`` with
  ``GT-final_test.csv`` (from GTSRB_Final_Test_GT.zip) in ``root``,
  ``root/Final_Test`` or ``root/Final_Test/Images``;
* pickled 32x32: ``root/train.p`` and ``root/test.p`` (``valid.p`` is
  ignored), dicts with 'features' (N,32,32,3 uint8) and 'labels'.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path, PurePath

import numpy as np

from . import DatasetError, ImageSet, check_split, read_pickled_dict, regular_file
from .folders import read_rgb

__all__ = ["GTSRB_CLASS_NAMES", "load_gtsrb"]

GTSRB_CLASS_NAMES = [
    "Speed limit (20km/h)",
    "Speed limit (30km/h)",
    "Speed limit (50km/h)",
    "Speed limit (60km/h)",
    "Speed limit (70km/h)",
    "Speed limit (80km/h)",
    "End of speed limit (80km/h)",
    "Speed limit (100km/h)",
    "Speed limit (120km/h)",
    "No passing",
    "No passing for vehicles over 3.5 metric tons",
    "Right-of-way at the next intersection",
    "Priority road",
    "Yield",
    "Stop",
    "No vehicles",
    "Vehicles over 3.5 metric tons prohibited",
    "No entry",
    "General caution",
    "Dangerous curve to the left",
    "Dangerous curve to the right",
    "Double curve",
    "Bumpy road",
    "Slippery road",
    "Road narrows on the right",
    "Road work",
    "Traffic signals",
    "Pedestrians",
    "Children crossing",
    "Bicycles crossing",
    "Beware of ice/snow",
    "Wild animals crossing",
    "End of all speed and passing limits",
    "Turn right ahead",
    "Turn left ahead",
    "Ahead only",
    "Go straight or right",
    "Go straight or left",
    "Keep right",
    "Keep left",
    "Roundabout mandatory",
    "End of no passing",
    "End of no passing by vehicles over 3.5 metric tons",
]

_GT_COLUMNS = ("Filename", "Roi.X1", "Roi.Y1", "Roi.X2", "Roi.Y2", "ClassId")
_TEST_CSV = "GT-final_test.csv"


def _read_gt_csv(csv_path: Path, root: Path) -> list[tuple[int, dict[str, str]]]:
    """The csv's rows, each with the line it ends on (for messages)."""
    regular_file(csv_path, root, missing=f"{csv_path}: ground-truth csv missing")
    try:
        with open(csv_path, newline="") as f:
            reader = csv.DictReader(f, delimiter=";")
            missing = [c for c in _GT_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise DatasetError(f"{csv_path}: missing columns {', '.join(missing)}")
            return [(reader.line_num, row) for row in reader]
    except OSError as e:
        raise DatasetError(f"{csv_path}: cannot read ground-truth csv ({e})") from None
    except (csv.Error, UnicodeDecodeError) as e:
        raise DatasetError(f"{csv_path}: not a readable ground-truth csv ({e})") from None


def _image_path(folder: Path, name: str | None, csv_path: Path, line: int) -> Path:
    # The csv is data, possibly downloaded: its file names must not reach outside
    # the folder they describe.
    where = f"{csv_path}: line {line}: Filename {name!r}"
    if not name:
        raise DatasetError(f"{where} is empty")
    parts = PurePath(name).parts
    if PurePath(name).is_absolute() or ".." in parts:
        raise DatasetError(f"{where} must be a file name inside {folder} (no absolute path, no '..')")
    return folder / name


def _read_rows(
    folder: Path, rows: list[tuple[int, dict[str, str]]], csv_path: Path, crop_roi: bool, root: Path
) -> tuple[list[np.ndarray], list[int]]:
    images, labels = [], []
    for line, row in rows:
        try:
            label = int(row["ClassId"])
            box = tuple(int(row[c]) for c in ("Roi.X1", "Roi.Y1", "Roi.X2", "Roi.Y2"))
        except (TypeError, ValueError):
            raise DatasetError(f"{csv_path}: line {line}: bad row for {row.get('Filename')!r}") from None
        if not 0 <= label < len(GTSRB_CLASS_NAMES):
            raise DatasetError(f"{csv_path}: line {line}: ClassId {label} out of range 0..42")
        # Roi.X2/Y2 are used as exclusive bounds (PIL box convention), which
        # leaves the documented >=5 px margin on both sides of the sign.
        if crop_roi and not (box[0] < box[2] and box[1] < box[3]):
            raise DatasetError(f"{csv_path}: line {line}: empty ROI {box} for {row['Filename']}")
        path = _image_path(folder, row["Filename"], csv_path, line)
        regular_file(path, root, missing=f"{path}: image listed in {csv_path.name} is missing")
        images.append(read_rgb(path, box if crop_roi else None))
        labels.append(label)
    return images, labels


def _load_official_train(root: Path, crop_roi: bool) -> ImageSet:
    base = root / "Final_Training" / "Images"
    class_dirs = sorted(p for p in base.iterdir() if p.is_dir() and p.name.isdigit())
    if not class_dirs:
        raise DatasetError(f"{base}: no class folders 00000..00042")
    images: list[np.ndarray] = []
    labels: list[int] = []
    for d in class_dirs:
        csv_path = d / f"GT-{d.name}.csv"
        imgs, labs = _read_rows(d, _read_gt_csv(csv_path, root), csv_path, crop_roi, root)
        images += imgs
        labels += labs
    return ImageSet(images, np.asarray(labels, dtype=np.int64), list(GTSRB_CLASS_NAMES))


def _load_official_test(root: Path, crop_roi: bool) -> ImageSet:
    base = root / "Final_Test" / "Images"
    candidates = [root / _TEST_CSV, root / "Final_Test" / _TEST_CSV, base / _TEST_CSV]
    # lexists: a candidate that is there but is no regular file is refused by name, not skipped.
    csv_path = next((c for c in candidates if os.path.lexists(c)), None)
    if csv_path is None:
        # GT-final_test.test.csv ships with the images but has no ClassId.
        raise DatasetError(
            f"{root}: {_TEST_CSV} (with ClassId, from GTSRB_Final_Test_GT.zip) not found "
            f"in {root}, {root / 'Final_Test'} or {base}"
        )
    images, labels = _read_rows(base, _read_gt_csv(csv_path, root), csv_path, crop_roi, root)
    return ImageSet(images, np.asarray(labels, dtype=np.int64), list(GTSRB_CLASS_NAMES))


def _get(d: dict, key: str):
    # Pickles written by Python 2 have bytes keys.
    if key in d:
        return d[key]
    return d.get(key.encode())


def _load_pickle(path: Path, root: Path) -> ImageSet:
    d = read_pickled_dict(path, root)
    features, labels = _get(d, "features"), _get(d, "labels")
    if features is None or labels is None:
        raise DatasetError(f"{path}: pickle lacks 'features' or 'labels'")
    try:
        features = np.asarray(features)
        labels = np.asarray(labels).reshape(-1)
    except (TypeError, ValueError) as e:
        raise DatasetError(f"{path}: 'features' or 'labels' is not an array ({e})") from None
    if labels.dtype.kind not in "iuf":
        raise DatasetError(f"{path}: 'labels' must be class numbers, got {labels.dtype}")
    if features.dtype != np.uint8 or features.ndim != 4 or features.shape[-1] != 3:
        raise DatasetError(
            f"{path}: 'features' must be uint8 (N,H,W,3), got {features.dtype} {features.shape}"
        )
    if len(labels) != len(features):
        raise DatasetError(f"{path}: {len(features)} features but {len(labels)} labels")
    if len(labels) and not (labels.min() >= 0 and labels.max() < len(GTSRB_CLASS_NAMES)):
        raise DatasetError(f"{path}: labels outside 0..42")
    return ImageSet(features, labels.astype(np.int64), list(GTSRB_CLASS_NAMES))


def load_gtsrb(
    root: str | Path, split: str, *, crop_roi: bool = True, layout: str | None = None
) -> ImageSet:
    """Load GTSRB ``split`` from ``root`` in the official or the pickled layout.

    ``layout`` is "official", "pickle" or None to detect (official wins if
    both are present).  In the official layout images keep their varying
    sizes and, with ``crop_roi``, are cropped to the annotated sign ROI the
    GT files provide; the pickled layout is returned as stored.
    """
    check_split(split)
    root = Path(root)
    official_dir = root / ("Final_Training" if split == "train" else "Final_Test") / "Images"
    pickle_path = root / f"{split}.p"
    if layout is None:
        if official_dir.is_dir():
            layout = "official"
        elif os.path.lexists(pickle_path):
            layout = "pickle"
        else:
            raise DatasetError(
                f"{root}: no GTSRB {split} data; expected {official_dir} "
                f"(official layout) or {pickle_path} (pickled 32x32 layout)"
            )
    if layout == "official":
        if not official_dir.is_dir():
            raise DatasetError(f"{official_dir}: GTSRB official {split} folder missing")
        if split == "train":
            return _load_official_train(root, crop_roi)
        return _load_official_test(root, crop_roi)
    if layout == "pickle":
        regular_file(pickle_path, root, missing=f"{pickle_path}: GTSRB pickled {split} file missing")
        return _load_pickle(pickle_path, root)
    raise DatasetError(f"unknown GTSRB layout {layout!r}; valid: official, pickle")

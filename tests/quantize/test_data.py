"""Tests for quantize.data: every loader reads fixtures written here in the real on-disk format."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bnn2fpga.quantize.data import (
    DATASETS,
    DatasetError,
    ImageSet,
    load_dataset,
    stratified_split,
)
from bnn2fpga.quantize.data.cifar import load_cifar10, load_cifar100
from bnn2fpga.quantize.data.digits import load_digits
from bnn2fpga.quantize.data.folders import GARBAGE_CLASS_NAMES, load_folder, load_garbage
from bnn2fpga.quantize.data.gtsrb import GTSRB_CLASS_NAMES, load_gtsrb
from bnn2fpga.quantize.data.idx import FASHION_MNIST_CLASS_NAMES, load_fashion_mnist, load_mnist, read_idx


def _coord_image(h: int, w: int, tag: int) -> np.ndarray:
    """RGB image whose pixel (y, x) is (x, y, tag), so crops can be located."""
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx, yy, np.full_like(xx, tag)], axis=-1).astype(np.uint8)


# --- ImageSet / load_dataset ---------------------------------------------------


def test_imageset_subset_array_and_list():
    arr = ImageSet(np.arange(5 * 4, dtype=np.uint8).reshape(5, 2, 2), [0, 1, 0, 1, 1], ["a", "b"])
    sub = arr.subset(np.array([4, 0]))
    assert len(sub) == 2 and sub.labels.dtype == np.int64
    np.testing.assert_array_equal(sub.images[0], arr.images[4])
    np.testing.assert_array_equal(sub.labels, [1, 0])
    assert len(arr.subset(arr.labels == 1)) == 3
    assert len(arr.subset(2)) == 1

    lst = ImageSet([np.full((i + 1, 2, 3), i, np.uint8) for i in range(4)], [3, 2, 1, 0], list("abcd"))
    sub = lst.subset(slice(1, 3))
    assert [im.shape[0] for im in sub.images] == [2, 3]
    np.testing.assert_array_equal(sub.labels, [2, 1])
    assert sub.class_names == list("abcd")


def test_imageset_rejects_length_mismatch():
    with pytest.raises(ValueError, match="3 images but 2 labels"):
        ImageSet(np.zeros((3, 2, 2), np.uint8), [0, 1], ["a", "b"])


def test_load_dataset_unknown_name_and_split(tmp_path):
    with pytest.raises(DatasetError, match="valid names: gtsrb, mnist, fashion-mnist, digits"):
        load_dataset("imagenet", tmp_path, "train")
    with pytest.raises(DatasetError, match="valid splits: train, test"):
        load_dataset("mnist", tmp_path, "valid")
    with pytest.raises(DatasetError, match="needs a root folder"):
        load_dataset("mnist", None, "train")
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset("cifar10", tmp_path / "nope", "train")
    assert set(DATASETS) == {
        "gtsrb", "mnist", "fashion-mnist", "digits", "cifar10", "cifar100", "garbage", "folder"
    }


def test_stratified_split_is_balanced_disjoint_and_seeded():
    labels = np.repeat(np.arange(3), [10, 21, 7])
    tr, te = stratified_split(labels, 0.2, seed=0)
    assert np.intersect1d(tr, te).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([tr, te])), np.arange(len(labels)))
    assert np.bincount(labels[te]).tolist() == [2, 4, 1]  # floor(n*0.2 + 0.5)
    tr2, te2 = stratified_split(labels, 0.2, seed=0)
    np.testing.assert_array_equal(te, te2)
    assert any(not np.array_equal(te, stratified_split(labels, 0.2, seed=s)[1]) for s in range(1, 4))


# --- GTSRB ---------------------------------------------------------------------

_GT_HEADER = "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\n"


def _write_gtsrb_official(root: Path, test_csv_dir: Path | None = None) -> None:
    """Two training classes (0: two images, 14: one image) and two test images."""
    train = {0: [("00000_00000.ppm", 30, 29, 5, 6, 24, 25), ("00000_00001.ppm", 40, 35, 5, 5, 35, 30)],
             14: [("00000_00000.ppm", 50, 60, 6, 7, 44, 55)]}
    for cls, rows in train.items():
        d = root / "Final_Training" / "Images" / f"{cls:05d}"
        d.mkdir(parents=True)
        lines = [_GT_HEADER]
        for k, (name, w, h, x1, y1, x2, y2) in enumerate(rows):
            Image.fromarray(_coord_image(h, w, tag=cls * 10 + k)).save(d / name)
            lines.append(f"{name};{w};{h};{x1};{y1};{x2};{y2};{cls}\n")
        (d / f"GT-{cls:05d}.csv").write_text("".join(lines))
    (root / "Final_Training" / "Images" / "Readme.txt").write_text("not a class\n")

    test_dir = root / "Final_Test" / "Images"
    test_dir.mkdir(parents=True)
    lines = [_GT_HEADER]
    test_rows = [(31, 33, 5, 5, 26, 28, 42), (45, 41, 6, 5, 40, 36, 3)]
    for k, (w, h, x1, y1, x2, y2, cls) in enumerate(test_rows):
        name = f"{k:05d}.ppm"
        Image.fromarray(_coord_image(h, w, tag=200 + k)).save(test_dir / name)
        lines.append(f"{name};{w};{h};{x1};{y1};{x2};{y2};{cls}\n")
    (test_csv_dir or root).mkdir(parents=True, exist_ok=True)
    ((test_csv_dir or root) / "GT-final_test.csv").write_text("".join(lines))
    # The test-image archive ships this ClassId-less file; it must not be used.
    (test_dir / "GT-final_test.test.csv").write_text("Filename;Width\n00000.ppm;31\n")


def test_gtsrb_class_names():
    assert len(GTSRB_CLASS_NAMES) == 43
    assert GTSRB_CLASS_NAMES[0] == "Speed limit (20km/h)"
    assert GTSRB_CLASS_NAMES[14] == "Stop"
    assert GTSRB_CLASS_NAMES[42] == "End of no passing by vehicles over 3.5 metric tons"


def test_gtsrb_official_train_crops_roi(tmp_path):
    _write_gtsrb_official(tmp_path)
    ds = load_dataset("gtsrb", tmp_path, "train")
    assert isinstance(ds.images, list) and len(ds) == 3
    np.testing.assert_array_equal(ds.labels, [0, 0, 14])
    assert ds.class_names == GTSRB_CLASS_NAMES
    first = ds.images[0]
    assert first.dtype == np.uint8 and first.shape == (25 - 6, 24 - 5, 3)
    # top-left of the crop is the original pixel (x=5, y=6)
    np.testing.assert_array_equal(first[0, 0], [5, 6, 0])
    np.testing.assert_array_equal(first[-1, -1], [23, 24, 0])
    assert ds.images[2].shape == (55 - 7, 44 - 6, 3)
    np.testing.assert_array_equal(ds.images[2][0, 0], [6, 7, 140])


def test_gtsrb_official_without_crop_keeps_full_image(tmp_path):
    _write_gtsrb_official(tmp_path)
    ds = load_gtsrb(tmp_path, "train", crop_roi=False)
    assert [im.shape for im in ds.images] == [(29, 30, 3), (35, 40, 3), (60, 50, 3)]
    np.testing.assert_array_equal(ds.images[1][0, 0], [0, 0, 1])


@pytest.mark.parametrize("csv_sub", [".", "Final_Test", "Final_Test/Images"])
def test_gtsrb_official_test_finds_gt_csv(tmp_path, csv_sub):
    _write_gtsrb_official(tmp_path, test_csv_dir=tmp_path / csv_sub)
    ds = load_gtsrb(tmp_path, "test")
    np.testing.assert_array_equal(ds.labels, [42, 3])
    assert ds.images[1].shape == (36 - 5, 40 - 6, 3)
    np.testing.assert_array_equal(ds.images[1][0, 0], [6, 5, 201])


def test_gtsrb_official_test_without_gt_csv(tmp_path):
    _write_gtsrb_official(tmp_path)
    (tmp_path / "GT-final_test.csv").unlink()
    with pytest.raises(DatasetError, match="GT-final_test.csv .*not found"):
        load_gtsrb(tmp_path, "test")


def test_gtsrb_missing_class_csv_and_image(tmp_path):
    _write_gtsrb_official(tmp_path)
    (tmp_path / "Final_Training/Images/00014/GT-00014.csv").unlink()
    with pytest.raises(DatasetError, match=r"GT-00014\.csv: ground-truth csv missing"):
        load_gtsrb(tmp_path, "train")
    (tmp_path / "Final_Test/Images/00001.ppm").unlink()
    msg = r"00001\.ppm: image listed in GT-final_test\.csv is missing"
    with pytest.raises(DatasetError, match=msg):
        load_gtsrb(tmp_path, "test")


def test_gtsrb_csv_missing_columns(tmp_path):
    _write_gtsrb_official(tmp_path)
    (tmp_path / "GT-final_test.csv").write_text("Filename;Width;Height\n00000.ppm;31;33\n")
    with pytest.raises(DatasetError, match="missing columns Roi.X1, Roi.Y1, Roi.X2, Roi.Y2, ClassId"):
        load_gtsrb(tmp_path, "test")


def test_gtsrb_unreadable_ppm(tmp_path):
    _write_gtsrb_official(tmp_path)
    (tmp_path / "Final_Training/Images/00000/00000_00001.ppm").write_bytes(b"P6\nnot really\n")
    with pytest.raises(DatasetError, match=r"00000_00001\.ppm: cannot read image"):
        load_gtsrb(tmp_path, "train")


def test_gtsrb_pickle_layout(tmp_path):
    rng = np.random.default_rng(0)
    sets = {}
    for split, n in (("train", 6), ("valid", 2), ("test", 4)):
        sets[split] = {
            "features": rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8),
            "labels": rng.integers(0, 43, size=n).astype(np.uint8),
            "sizes": np.full((n, 2), 32),
        }
        with open(tmp_path / f"{split}.p", "wb") as f:
            pickle.dump(sets[split], f)
    for split in ("train", "test"):
        ds = load_dataset("gtsrb", tmp_path, split)
        assert ds.images.shape == (len(sets[split]["labels"]), 32, 32, 3)
        np.testing.assert_array_equal(ds.images, sets[split]["features"])
        np.testing.assert_array_equal(ds.labels, sets[split]["labels"])
        assert ds.labels.dtype == np.int64


def test_gtsrb_pickle_bad_content(tmp_path):
    with open(tmp_path / "train.p", "wb") as f:
        pickle.dump({"features": np.zeros((2, 32, 32, 3), np.uint8)}, f)
    with pytest.raises(DatasetError, match="lacks 'features' or 'labels'"):
        load_gtsrb(tmp_path, "train")
    with open(tmp_path / "train.p", "wb") as f:
        pickle.dump({"features": np.zeros((2, 32, 32), np.uint8), "labels": [0, 1]}, f)
    with pytest.raises(DatasetError, match=r"must be uint8 \(N,H,W,3\)"):
        load_gtsrb(tmp_path, "train")


def test_gtsrb_no_layout_names_both(tmp_path):
    msg = r"Final_Training.Images \(official layout\) or .*train\.p \(pickled"
    with pytest.raises(DatasetError, match=msg):
        load_gtsrb(tmp_path, "train")


# --- MNIST / Fashion-MNIST IDX ---------------------------------------------------


def _idx_bytes(arr: np.ndarray) -> bytes:
    header = struct.pack(">I", 0x0800 | arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def _write_idx(folder: Path, split: str, images: np.ndarray, labels: np.ndarray, gz: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    prefix = "train" if split == "train" else "t10k"
    for stem, arr in ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte", labels)):
        if gz:
            with gzip.open(folder / (stem + ".gz"), "wb") as f:
                f.write(_idx_bytes(arr))
        else:
            (folder / stem).write_bytes(_idx_bytes(arr))


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("sub", [".", "raw"])
def test_idx_round_trip(tmp_path, gz, sub):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=7).astype(np.uint8)
    _write_idx(tmp_path / sub, "test", images, labels, gz)
    ds = load_dataset("mnist", tmp_path, "test")
    assert ds.images.shape == (7, 28, 28) and ds.images.dtype == np.uint8
    np.testing.assert_array_equal(ds.images, images)
    assert ds.images[3, 5, 17] == images[3, 5, 17]
    np.testing.assert_array_equal(ds.labels, labels)
    assert ds.class_names == [str(d) for d in range(10)]
    ds.images[0, 0, 0] = 1  # callers may modify what they loaded


def test_fashion_mnist_class_names(tmp_path):
    _write_idx(tmp_path, "train", np.zeros((2, 28, 28), np.uint8), np.array([9, 0]), gz=True)
    ds = load_fashion_mnist(tmp_path, "train")
    assert ds.class_names == FASHION_MNIST_CLASS_NAMES
    assert [ds.class_names[i] for i in ds.labels] == ["Ankle boot", "T-shirt/top"]


def test_idx_truncated_file(tmp_path):
    _write_idx(tmp_path, "train", np.ones((3, 28, 28), np.uint8), np.array([0, 1, 2]), gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    msg = r"train-images-idx3-ubyte: 2342 data bytes but header \(3, 28, 28\) needs 2352"
    with pytest.raises(DatasetError, match=msg):
        load_mnist(tmp_path, "train")


def test_idx_truncated_gzip_stream(tmp_path):
    _write_idx(tmp_path, "train", np.ones((3, 28, 28), np.uint8), np.array([0, 1, 2]), gz=True)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(DatasetError, match="cannot read IDX file"):
        load_mnist(tmp_path, "train")


def test_idx_wrong_magic_and_count_mismatch(tmp_path):
    _write_idx(tmp_path, "train", np.zeros((3, 28, 28), np.uint8), np.array([0, 1]), gz=False)
    with pytest.raises(DatasetError, match="3 images but train-labels-idx1-ubyte has 2 labels"):
        load_mnist(tmp_path, "train")
    with pytest.raises(DatasetError, match="IDX magic 0x00000801, expected 0x00000803"):
        read_idx(tmp_path / "train-labels-idx1-ubyte", 0x00000803)


def test_idx_missing_file(tmp_path):
    _write_idx(tmp_path, "train", np.zeros((3, 28, 28), np.uint8), np.array([0, 1, 2]), gz=False)
    (tmp_path / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetError, match=r"train-labels-idx1-ubyte\[\.gz\] not found"):
        load_mnist(tmp_path, "train")


# --- sklearn digits --------------------------------------------------------------


def test_digits_split_sizes_stratified_and_deterministic():
    train = load_dataset("digits", None, "train")
    test = load_digits(split="test")
    assert len(train) + len(test) == 1797
    assert train.images.shape[1:] == (8, 8) and train.images.dtype == np.uint8
    assert train.class_names == [str(d) for d in range(10)]
    counts = np.bincount(np.concatenate([train.labels, test.labels]), minlength=10)
    np.testing.assert_array_equal(np.bincount(test.labels, minlength=10), np.floor(counts * 0.25 + 0.5))
    assert abs(len(test) - 0.25 * 1797) < 5

    again = load_digits(split="test")
    np.testing.assert_array_equal(again.images, test.images)
    np.testing.assert_array_equal(again.labels, test.labels)
    other = load_digits(split="test", seed=1)
    assert not np.array_equal(other.images, test.images)


def test_digits_scaling():
    ds = load_digits(split="train")
    allowed = {(v * 255 + 8) // 16 for v in range(17)}
    assert set(np.unique(ds.images).tolist()) <= allowed
    assert ds.images.max() == 255 and ds.images.min() == 0
    assert 128 in allowed  # 8/16 -> 127.5 rounds up


# --- CIFAR ------------------------------------------------------------------------


def _cifar_rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3072), dtype=np.uint8)


def _dump(path: Path, obj: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def _write_cifar10(folder: Path, byte_keys: bool = True) -> dict[str, np.ndarray]:
    k = (lambda s: s.encode()) if byte_keys else (lambda s: s)
    folder.mkdir(parents=True)
    rows = {}
    for i in range(1, 6):
        rows[f"data_batch_{i}"] = _cifar_rows(2, i)
        _dump(folder / f"data_batch_{i}", {k("data"): rows[f"data_batch_{i}"], k("labels"): [i, 9 - i]})
    rows["test_batch"] = _cifar_rows(3, 0)
    _dump(folder / "test_batch", {k("data"): rows["test_batch"], k("labels"): [0, 5, 9]})
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    _dump(folder / "batches.meta", {k("label_names"): [k(n) for n in names], k("num_vis"): 3072})
    return rows


@pytest.mark.parametrize("byte_keys", [True, False])
def test_cifar10_round_trip(tmp_path, byte_keys):
    rows = _write_cifar10(tmp_path / "cifar-10-batches-py", byte_keys)
    ds = load_dataset("cifar10", tmp_path, "train")
    assert ds.images.shape == (10, 32, 32, 3) and ds.images.dtype == np.uint8
    np.testing.assert_array_equal(ds.labels, [1, 8, 2, 7, 3, 6, 4, 5, 5, 4])
    assert ds.class_names[3] == "cat"
    # image 3 is batch 2 row 1; pixel (y=4, x=7) is R at 4*32+7, G at +1024, B at +2048
    row = rows["data_batch_2"][1]
    np.testing.assert_array_equal(ds.images[3, 4, 7], [row[135], row[1024 + 135], row[2048 + 135]])
    test = load_cifar10(tmp_path / "cifar-10-batches-py", "test")  # root is the folder itself
    np.testing.assert_array_equal(test.labels, [0, 5, 9])
    np.testing.assert_array_equal(test.images[2, 31, 31], rows["test_batch"][2, [1023, 2047, 3071]])


def test_cifar10_missing_batch_and_layout(tmp_path):
    _write_cifar10(tmp_path / "cifar-10-batches-py")
    (tmp_path / "cifar-10-batches-py" / "data_batch_4").unlink()
    with pytest.raises(DatasetError, match="data_batch_4: CIFAR file missing"):
        load_cifar10(tmp_path, "train")
    with pytest.raises(DatasetError, match=r"cifar-10-batches-py/batches\.meta not found"):
        load_cifar10(tmp_path / "elsewhere", "train")


def test_cifar10_bad_rows(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar10(folder)
    _dump(folder / "test_batch", {b"data": np.zeros((2, 1024), np.uint8), b"labels": [0, 1]})
    with pytest.raises(DatasetError, match=r"must be uint8 \(N, 3072\)"):
        load_cifar10(tmp_path, "test")


def test_cifar100_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    data = _cifar_rows(4, 3)
    _dump(
        folder / "train",
        {b"data": data, b"fine_labels": [99, 0, 42, 7], b"coarse_labels": [1, 2, 3, 4]},
    )
    _dump(folder / "test", {b"data": data[:1], b"fine_labels": [5], b"coarse_labels": [0]})
    _dump(folder / "meta", {b"fine_label_names": [f"c{i}".encode() for i in range(100)],
                            b"coarse_label_names": [b"x"] * 20})
    ds = load_dataset("cifar100", tmp_path, "train")
    np.testing.assert_array_equal(ds.labels, [99, 0, 42, 7])
    assert len(ds.class_names) == 100 and ds.class_names[42] == "c42"
    np.testing.assert_array_equal(ds.images[2, 0, 0], data[2, [0, 1024, 2048]])
    assert len(load_cifar100(folder, "test")) == 1


# --- image folders / garbage ---------------------------------------------------------


def _write_folder(root: Path, classes: dict[str, int], start: int = 0) -> None:
    """Class folders with small PNG/BMP images whose red channel is a unique id."""
    uid = start
    for name, n in classes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img = np.zeros((5 + i % 3, 6, 3), np.uint8)
            img[..., 0] = uid
            img[..., 1] = 7
            ext = ".png" if i % 2 else ".BMP"
            fmt = "PNG" if i % 2 else "BMP"
            Image.fromarray(img).save(root / name / f"img{i:03d}{ext}", format=fmt)
            uid += 1
    (root / next(iter(classes)) / "notes.txt").write_text("ignored\n")


def _ids(ds: ImageSet) -> list[int]:
    return sorted(int(im[0, 0, 0]) for im in ds.images)


def test_folder_random_split_is_stratified_complete_and_seeded(tmp_path):
    _write_folder(tmp_path, {"dog": 10, "cat": 5})
    train = load_folder(tmp_path, "train")
    test = load_dataset("folder", tmp_path, "test")
    assert train.class_names == ["cat", "dog"]
    assert sorted(_ids(train) + _ids(test)) == list(range(15))
    assert np.bincount(test.labels).tolist() == [1, 2]
    im = train.images[0]
    assert im.dtype == np.uint8 and im.ndim == 3 and im.shape[2] == 3 and im[0, 0, 1] == 7
    # the red id tells the class: dog ids are 0..9, cat ids 10..14
    for ds in (train, test):
        for img, label in zip(ds.images, ds.labels):
            assert (img[0, 0, 0] >= 10) == (ds.class_names[label] == "cat")
    assert _ids(load_folder(tmp_path, "test")) == _ids(test)
    assert any(_ids(load_folder(tmp_path, "test", seed=s)) != _ids(test) for s in range(1, 5))


def test_folder_uses_existing_train_test_subfolders(tmp_path):
    _write_folder(tmp_path / "train", {"a": 3, "b": 2})
    _write_folder(tmp_path / "test", {"a": 1, "b": 1}, start=100)
    train = load_folder(tmp_path, "train")
    test = load_folder(tmp_path, "test")
    assert _ids(train) == [0, 1, 2, 3, 4]
    assert _ids(test) == [100, 101]
    np.testing.assert_array_equal(test.labels, [0, 1])


def test_folder_grayscale_image_becomes_rgb(tmp_path):
    (tmp_path / "x").mkdir()
    Image.fromarray(np.full((4, 4), 77, np.uint8), mode="L").save(tmp_path / "x" / "g.png")
    ds = load_folder(tmp_path, "train", test_fraction=0.0)
    assert ds.images[0].shape == (4, 4, 3)
    np.testing.assert_array_equal(ds.images[0][2, 2], [77, 77, 77])


def test_folder_unreadable_image(tmp_path):
    _write_folder(tmp_path, {"a": 2})
    (tmp_path / "a" / "broken.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    with pytest.raises(DatasetError, match=r"broken\.jpg: cannot read image"):
        load_folder(tmp_path, "train", test_fraction=0.0)


def test_folder_empty_root_and_empty_class(tmp_path):
    with pytest.raises(DatasetError, match="no class folders found"):
        load_folder(tmp_path, "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="empty: no images"):
        load_folder(tmp_path, "train")


def test_garbage_layout(tmp_path):
    _write_folder(tmp_path, {name: 5 for name in GARBAGE_CLASS_NAMES})
    ds = load_dataset("garbage", tmp_path, "test")
    assert ds.class_names == GARBAGE_CLASS_NAMES
    np.testing.assert_array_equal(np.bincount(ds.labels), [1] * 12)
    assert len(load_garbage(tmp_path, "train")) == 48


def test_garbage_missing_and_extra_classes(tmp_path):
    _write_folder(tmp_path, {name: 1 for name in GARBAGE_CLASS_NAMES if name not in ("metal", "shoes")})
    with pytest.raises(DatasetError, match="missing class folders metal, shoes$"):
        load_garbage(tmp_path, "train")
    _write_folder(tmp_path, {"metal": 1, "shoes": 1, "glass": 1})
    with pytest.raises(DatasetError, match="unexpected class folders glass"):
        load_garbage(tmp_path, "train")

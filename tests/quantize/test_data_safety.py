"""Dataset files are data: pickles cannot run code, paths in files and symlinks stay inside the
dataset, and special files (FIFOs, devices, directories) are refused before anything opens them."""

from __future__ import annotations

import builtins
import os
import pickle
import shutil
import signal
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bnn2fpga.quantize.data import DatasetError, load_dataset, read_pickled_dict, regular_file
from bnn2fpga.quantize.data.cifar import load_cifar10, load_cifar100
from bnn2fpga.quantize.data.folders import load_folder
from bnn2fpga.quantize.data.gtsrb import load_gtsrb
from bnn2fpga.quantize.data.idx import load_mnist


@pytest.fixture(autouse=True)
def no_hang():
    """Fail instead of blocking forever if a loader opens a FIFO."""

    def timeout(signum, frame):
        raise TimeoutError("a loader blocked on a special file")

    old = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


# --- pickles never run code -----------------------------------------------------------------


class _Payload:
    """Pickles as a call of ``fn(*args)``, which plain pickle.load performs."""

    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def _payloads(marker: Path) -> dict[str, _Payload]:
    return {
        "os.system": _Payload(os.system, (f"touch {marker}",)),
        "builtins.exec": _Payload(builtins.exec, (f"open({str(marker)!r}, 'w').close()",)),
        "builtins.open": _Payload(builtins.open, (str(marker), "w")),
    }


def _write_gtsrb_pickle(root: Path, obj) -> tuple[Path, callable]:
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.p").write_bytes(pickle.dumps({"features": obj, "labels": [0]}))
    return root / "train.p", lambda: load_gtsrb(root, "train")


def _write_cifar_test_batch(root: Path, obj) -> tuple[Path, callable]:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = [f"c{i}".encode() for i in range(10)]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}, protocol=2))
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": obj, b"labels": [0]}, protocol=2))
    return folder / "test_batch", lambda: load_cifar10(root, "test")


@pytest.mark.parametrize("writer", [_write_gtsrb_pickle, _write_cifar_test_batch], ids=["gtsrb", "cifar10"])
@pytest.mark.parametrize("kind", ["os.system", "builtins.exec", "builtins.open"])
def test_pickle_payload_is_refused_and_never_runs(tmp_path, writer, kind):
    marker = tmp_path / "pwned"
    payload = _payloads(marker)[kind]
    path, load = writer(tmp_path / "data", payload)
    fn = payload.fn
    with pytest.raises(DatasetError, match="refused to load global") as err:
        load()
    assert not marker.exists(), "the pickle's payload ran"
    msg = str(err.value)
    assert msg.startswith(f"{path}:") and "\n" not in msg
    # Protocol 2 (the CIFAR writer) spells the builtins module as Python 2 did.
    named = {f"'{module}.{fn.__qualname__}'" for module in (fn.__module__, "__builtin__")}
    assert any(n in msg for n in named), msg


def test_pickle_of_an_unlisted_harmless_class_is_refused_too(tmp_path):
    # An allow list, not a block list: anything that is not array or container data is refused.
    (tmp_path / "train.p").write_bytes(pickle.dumps({"features": Path("x"), "labels": [0]}))
    with pytest.raises(DatasetError, match=r"train\.p: refused to load global 'pathlib\.PosixPath'"):
        load_gtsrb(tmp_path, "train")


def test_codecs_encode_is_only_a_latin1_bytes_literal(tmp_path):
    # Protocol-2 pickles spell bytes as _codecs.encode(text, "latin1"); other codecs are refused.
    good = tmp_path / "good.p"
    good.write_bytes(pickle.dumps({b"k": b"\x00\xffbytes"}, protocol=2))
    assert read_pickled_dict(good) == {b"k": b"\x00\xffbytes"}
    bad = tmp_path / "bad.p"
    bad.write_bytes(b"\x80\x02}X\x01\x00\x00\x00kc_codecs\nencode\nX\x03\x00\x00\x00abcX\x05\x00\x00\x00rot13\x86Rs.")
    assert pickle.loads(bad.read_bytes()) == {"k": "nop"}  # what plain pickle does with it
    with pytest.raises(DatasetError, match=r"bad\.p: cannot unpickle .*rot13"):
        read_pickled_dict(bad)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_gtsrb_pickles_of_every_protocol_load(tmp_path, protocol):
    rng = np.random.default_rng(protocol)
    d = {
        "features": rng.integers(0, 256, size=(3, 32, 32, 3), dtype=np.uint8),
        "labels": rng.integers(0, 43, size=3).astype(np.uint8),
        "sizes": np.full((3, 2), 32, dtype=np.int64),
        "coords": np.zeros((3, 4), dtype=np.float32),
        "count": np.int64(3),
        "tags": {"a", "b"},
        "raw": bytearray(b"xy"),
    }
    (tmp_path / "train.p").write_bytes(pickle.dumps(d, protocol=protocol))
    ds = load_gtsrb(tmp_path, "train")
    np.testing.assert_array_equal(ds.images, d["features"])
    np.testing.assert_array_equal(ds.labels, d["labels"])


def test_numpy1_pickles_load(tmp_path):
    """numpy 1 names its reconstructor numpy.core.multiarray; numpy 2 numpy._core.multiarray."""
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    data = np.random.default_rng(0).integers(0, 256, size=(2, 3072), dtype=np.uint8)

    def numpy1(obj) -> bytes:
        raw = pickle.dumps(obj, protocol=2)  # GLOBAL opcodes: module names as plain text lines
        return raw.replace(b"numpy._core.", b"numpy.core.")

    train = numpy1({b"data": data, b"fine_labels": [np.int64(99), 0]})
    assert b"numpy.core.multiarray\n_reconstruct" in train and b"numpy._core" not in train
    (folder / "train").write_bytes(train)
    (folder / "meta").write_bytes(numpy1({b"fine_label_names": [f"c{i}".encode() for i in range(100)]}))
    ds = load_cifar100(tmp_path, "train")
    np.testing.assert_array_equal(ds.labels, [99, 0])
    np.testing.assert_array_equal(ds.images[1, 0, 0], data[1, [0, 1024, 2048]])


def _py2_str(b: bytes) -> bytes:
    return b"U" + bytes([len(b)]) + b  # SHORT_BINSTRING: Python 2's str


def _py2_cifar_batch(data: np.ndarray, labels: list[int]) -> bytes:
    """Protocol 2 as Python 2's cPickle wrote CIFAR's batches: str keys, numpy 1 globals."""
    raw = data.tobytes()
    shape = b"K" + bytes([data.shape[0]]) + b"M" + struct.pack("<H", data.shape[1]) + b"\x86"
    array = (
        b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + _py2_str(b"b") + b"\x87R"
        + b"(K\x01" + shape + b"cnumpy\ndtype\n" + _py2_str(b"u1") + b"K\x00K\x01\x87R"
        + b"(K\x03" + _py2_str(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
        + b"\x89T" + struct.pack("<I", len(raw)) + raw + b"tb"
    )
    label_list = b"](" + b"".join(b"K" + bytes([v]) for v in labels) + b"e"
    return b"\x80\x02}(" + _py2_str(b"data") + array + _py2_str(b"labels") + label_list + b"u."


def test_python2_cifar10_pickles_load(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(1)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batches[name] = rng.integers(0, 256, size=(2, 3072), dtype=np.uint8)
        (folder / name).write_bytes(_py2_cifar_batch(batches[name], [3, 7]))
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    meta = b"\x80\x02}(" + _py2_str(b"label_names") + b"](" + b"".join(map(_py2_str, names)) + b"eu."
    (folder / "batches.meta").write_bytes(meta)
    train = load_cifar10(tmp_path, "train")
    assert train.class_names[3] == "cat" and len(train) == 10
    np.testing.assert_array_equal(train.labels, [3, 7] * 5)
    row = batches["data_batch_3"][1]
    np.testing.assert_array_equal(train.images[5, 0, 1], row[[1, 1025, 2049]])
    test = load_cifar10(folder, "test")
    np.testing.assert_array_equal(test.images[0].transpose(2, 0, 1).reshape(-1), batches["test_batch"][0])


# --- paths in files stay inside their folder ---------------------------------------------------

_GT_HEADER = "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\n"


def _ppm(path: Path, size: int = 12) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), 77, np.uint8)).save(path)


@pytest.mark.parametrize("kind", ["dotdot", "absolute"])
def test_gtsrb_csv_filename_outside_its_folder_is_refused(tmp_path, kind):
    root = tmp_path / "gtsrb"
    class_dir = root / "Final_Training" / "Images" / "00000"
    _ppm(class_dir / "00000_00000.ppm")
    outside = tmp_path / "outside.ppm"
    _ppm(outside)  # readable, so only the path check can stop it
    name = "../../../../outside.ppm" if kind == "dotdot" else str(outside)
    assert (class_dir / name).resolve() == outside.resolve()
    (class_dir / "GT-00000.csv").write_text(
        _GT_HEADER + "00000_00000.ppm;12;12;1;1;11;11;0\n" + f"{name};12;12;1;1;11;11;0\n"
    )
    with pytest.raises(DatasetError) as err:
        load_gtsrb(root, "train")
    msg = str(err.value)
    assert msg.startswith(f"{class_dir / 'GT-00000.csv'}: line 3: Filename {name!r}")
    assert "\n" not in msg


def test_gtsrb_test_csv_filename_with_dotdot_is_refused(tmp_path):
    images = tmp_path / "Final_Test" / "Images"
    _ppm(images / "00000.ppm")
    _ppm(tmp_path / "Final_Test" / "up.ppm")
    (tmp_path / "GT-final_test.csv").write_text(_GT_HEADER + "../up.ppm;12;12;1;1;11;11;5\n")
    with pytest.raises(DatasetError, match=r"GT-final_test\.csv: line 2: Filename '\.\./up\.ppm'"):
        load_gtsrb(tmp_path, "test")


# --- regular files only -------------------------------------------------------------------------


def test_regular_file_accepts_files_and_symlinks_inside_root(tmp_path):
    (tmp_path / "store").mkdir()
    real = tmp_path / "store" / "f.bin"
    real.write_bytes(b"x")
    link = tmp_path / "link.bin"
    link.symlink_to(real)
    assert regular_file(real, tmp_path) == real
    assert regular_file(link, tmp_path) == link
    assert regular_file(real) == real


def test_regular_file_refuses_special_files_and_escapes(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dir").mkdir()
    (tmp_path / "zero").symlink_to("/dev/zero")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    (tmp_path / "dangling").symlink_to(tmp_path / "nothing")
    elsewhere = tmp_path.parent / f"{tmp_path.name}-elsewhere"
    elsewhere.write_bytes(b"x")
    (tmp_path / "escape").symlink_to(elsewhere)
    try:
        cases = {
            "fifo": r"fifo: a FIFO \(named pipe\), not a regular file",
            "dir": r"dir: a directory, not a regular file",
            "zero": r"zero: a character device, not a regular file",
            "loop": r"loop: cannot (resolve|access)",
            "dangling": r"dangling: broken symlink",
            "escape": r"escape: resolves to .*-elsewhere, outside the dataset folder",
            "missing": r"missing: file missing",
        }
        for name, message in cases.items():
            with pytest.raises(DatasetError, match=message):
                regular_file(tmp_path / name, tmp_path)
        with pytest.raises(DatasetError, match="FIFO"):
            regular_file(tmp_path / "fifo")  # without a root: the type is still checked
        assert regular_file(tmp_path / "escape") == tmp_path / "escape"
        with pytest.raises(DatasetError, match="^custom$"):
            regular_file(tmp_path / "missing", tmp_path, missing="custom")
    finally:
        elsewhere.unlink()


def _idx(arr: np.ndarray) -> bytes:
    return struct.pack(">I", 0x0800 | arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def _mnist(root: Path) -> Path:
    root.mkdir(parents=True)
    for split, (images, labels) in {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                                    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}.items():
        (root / images).write_bytes(_idx(np.zeros((2, 28, 28), np.uint8)))
        (root / labels).write_bytes(_idx(np.array([1, 2], np.uint8)))
    return root / "train-images-idx3-ubyte"


def _cifar(root: Path) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = [f"c{i}".encode() for i in range(10)]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}))
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [4]}))
    return folder / "data_batch_1"


def _gtsrb_pickle(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "train.p").write_bytes(pickle.dumps({"features": np.zeros((1, 32, 32, 3), np.uint8), "labels": [1]}))
    return root / "train.p"


def _gtsrb_official(root: Path, which: str) -> Path:
    class_dir = root / "Final_Training" / "Images" / "00000"
    _ppm(class_dir / "00000_00000.ppm")
    (class_dir / "GT-00000.csv").write_text(_GT_HEADER + "00000_00000.ppm;12;12;1;1;11;11;0\n")
    return class_dir / ("00000_00000.ppm" if which == "image" else "GT-00000.csv")


def _folder(root: Path) -> Path:
    for cls in ("a", "b"):
        for k in range(3):
            _ppm(root / cls / f"{k}.png")
    return root / "a" / "1.png"


# (dataset name, how to write it into root and which file to replace, load_dataset split)
_LOADERS = {
    "mnist": (_mnist, "train"),
    "cifar10": (_cifar, "train"),
    "gtsrb-pickle": (_gtsrb_pickle, "train"),
    "gtsrb-image": (lambda root: _gtsrb_official(root, "image"), "train"),
    "gtsrb-csv": (lambda root: _gtsrb_official(root, "csv"), "train"),
    "folder": (_folder, "train"),
}


def _load(name: str, root: Path, split: str):
    if name == "folder":
        return load_folder(root, split, test_fraction=0.0)
    return load_dataset(name.split("-")[0], root, split)


@pytest.mark.parametrize("loader", list(_LOADERS))
def test_loaders_read_the_untouched_fixture(tmp_path, loader):
    write, split = _LOADERS[loader]
    write(tmp_path / "data")
    assert len(_load(loader, tmp_path / "data", split)) > 0


@pytest.mark.parametrize("special", ["fifo", "dev-zero", "directory", "symlink-out"])
@pytest.mark.parametrize("loader", list(_LOADERS))
def test_loaders_refuse_special_files_and_symlinks_out_of_the_dataset(tmp_path, loader, special):
    write, split = _LOADERS[loader]
    root = tmp_path / "data"
    target = write(root)
    if special == "symlink-out":
        # A readable copy of the right file, just outside the dataset root.
        outside = tmp_path / "elsewhere" / target.name
        outside.parent.mkdir()
        shutil.copy(target, outside)
    target.unlink()
    if special == "fifo":
        os.mkfifo(target)
        expected = "a FIFO"
    elif special == "dev-zero":
        target.symlink_to("/dev/zero")
        expected = "a character device"
    elif special == "directory":
        target.mkdir()
        expected = "a directory"
    else:
        target.symlink_to(outside)
        expected = "outside the dataset folder"
    with pytest.raises(DatasetError) as err:
        _load(loader, root, split)
    msg = str(err.value)
    assert msg.startswith(f"{target}: ") and expected in msg and "\n" not in msg


def test_symlinks_inside_the_dataset_are_followed(tmp_path):
    root = tmp_path / "data"
    target = _mnist(root)
    store = root / "store"
    store.mkdir()
    target.rename(store / target.name)
    target.symlink_to(Path("store") / target.name)
    assert len(load_mnist(root, "train")) == 2

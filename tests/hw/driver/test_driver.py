"""The board driver: FINN's byte format, the deployment package, the simulated board end to end, bad input."""
from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import json
import shutil
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

from bnn2fpga.flows.config import make_config
from bnn2fpga.errors import UserError
from bnn2fpga.flows.runner import model_file, run_build

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
DRIVER_SRC = ROOT / "hw" / "driver"
SHARED = [ROOT / "quantize" / n for n in ("preprocess.py", "input_quant.py", "postprocess.py")]
FAKE_HWH = ('<?xml version="1.0" encoding="UTF-8"?>\n<EDKSYSTEM NAME="top">'
            '<SYSTEMINFO ARCH="zynq" DEVICE="{device}" PACKAGE="clg400" SPEEDGRADE="-1"/></EDKSYSTEM>\n')


def _load_file(path: Path, name: str):
    # A single board-side file as a module of its own (dataclasses need it in sys.modules).
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def packaged(mnist_build, tmp_path_factory):
    """A copy of the session build, taken on through the Vivado-free 'package' step."""
    cfg, _ = mnist_build
    out = tmp_path_factory.mktemp("driver") / "cbcnn-mnist"
    shutil.copytree(cfg.out_dir, out)
    result = run_build(make_config(model="cbcnn-mnist", board="pynq-z2", out_dir=out, until="package"),
                       log=lambda m: None)
    assert result.done[-1] == "package" and (out / "deploy" / "io_spec.json").exists()
    return out, result


@pytest.fixture(scope="module")
def drv(packaged):
    """The deployed bnn2fpga_driver, imported from deploy/ as the board imports it."""
    deploy = packaged[0] / "deploy"
    sys.path.insert(0, str(deploy))
    try:
        names = ["__main__", "accelerator", "errors", "images", "io_spec", "metrics", "packing", "runtime"]
        yield types.SimpleNamespace(deploy=deploy, **{n.strip("_") or n: importlib.import_module(f"bnn2fpga_driver.{n}")
                                                      for n in names})
    finally:
        sys.path.remove(str(deploy))
        for name in [m for m in sys.modules if m == "bnn2fpga_driver" or m.startswith("bnn2fpga_driver.")]:
            del sys.modules[name]


@pytest.fixture(scope="module")
def sim(packaged):
    from bnn2fpga.flows.simulated_accelerator import SimulatedAccelerator

    return SimulatedAccelerator(packaged[0])


def _digits(n: int):
    from bnn2fpga.quantize.data import load_dataset

    s = load_dataset("digits", None, "test")
    return s.images[:n], s.labels[:n]


# --- packing: FINN's bytes --------------------------------------------------------------

@pytest.mark.parametrize("dt", ["UINT8", "BINARY", "BIPOLAR", "INT11", "INT12", "UINT3", "TERNARY", "INT16", "INT32"])
@pytest.mark.parametrize("shape", [(1, 28, 28, 1, 1), (3, 10, 1), (2, 4, 7), (1, 2, 16), (2, 1, 13)])
def test_packing_equals_finn_bytes_and_round_trips(dt, shape):
    from bnn2fpga.hw import finn_env

    finn_env.prepare()
    from finn.util.data_packing import finnpy_to_packed_bytearray, packed_bytearray_to_finnpy
    from qonnx.core.datatype import DataType
    from qonnx.util.basic import gen_finn_dt_tensor

    packing = _load_file(DRIVER_SRC / "packing.py", "_packing_under_test")
    x = gen_finn_dt_tensor(DataType[dt], shape)
    finn = np.asarray(finnpy_to_packed_bytearray(x, DataType[dt], reverse_inner=True, reverse_endian=True))
    ours = packing.pack(x.astype(np.int64), dt)
    assert ours.shape == finn.shape == packing.packed_shape(shape, dt)
    assert ours.tobytes() == np.ascontiguousarray(finn).tobytes()
    assert np.array_equal(packing.unpack(ours.tobytes(), dt, shape), x)
    back = packed_bytearray_to_finnpy(np.ascontiguousarray(ours), DataType[dt], shape,
                                      reverse_inner=True, reverse_endian=True)
    assert np.array_equal(back, x)


def test_packing_refuses_values_outside_the_datatype():
    packing = _load_file(DRIVER_SRC / "packing.py", "_packing_under_test")
    for values, dt, msg in [([256.0], "UINT8", "does not fit UINT8"), ([0], "BIPOLAR", "-1 or \\+1"),
                            ([1.5], "INT4", "integers"), ([-9], "INT4", "does not fit")]:
        with pytest.raises(ValueError, match=msg):
            packing.pack(np.array([values]), dt)
    with pytest.raises(ValueError, match="not supported"):
        packing.datatype("FLOAT32")


# --- the board side imports nothing from the build side ------------------------------------

ALLOWED = {"numpy"}
LAZY_ONLY = {"pynq", "PIL", "cv2", "serial"}  # board and host libraries (pyserial), imported inside functions


def _imports(path: Path):
    tree = ast.parse(path.read_text())
    top = {id(n) for n in tree.body}
    funcs = [f for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))]
    owner = {id(n): f.name for f in funcs for n in ast.walk(f)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, 0, id(node) in top, owner.get(id(node))
        elif isinstance(node, ast.ImportFrom):
            yield node.module or "", node.level, id(node) in top, owner.get(id(node))


def test_board_side_imports_only_numpy_stdlib_and_board_libraries():
    files = sorted(DRIVER_SRC.glob("*.py")) + SHARED
    siblings = {f.stem for f in files}
    for f in files:
        for module, level, _, func in _imports(f):
            root = module.split(".")[0]
            where = f"{f.name}: import {'.' * level}{module}"
            if level:
                assert root in siblings or not module, where
            elif module == "bnn2fpga.flows.simulated_accelerator":
                # --simulate is the one way into the build side, and only inside that function.
                assert (f.name, func) == ("__main__.py", "_simulated"), where
            elif root in LAZY_ONLY:
                assert func is not None, f"{where} must be inside a function (absent off PYNQ)"
            else:
                assert root in ALLOWED or root in sys.stdlib_module_names or root == "__future__", where


def test_deployed_driver_imports_without_the_build_stack(packaged):
    deploy = packaged[0] / "deploy"
    code = ("import sys, importlib\n"
            "for m in ['__main__', 'accelerator', 'images', 'io_spec', 'metrics', 'packing', 'runtime']:\n"
            "    importlib.import_module('bnn2fpga_driver.' + m)\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'finn', 'qonnx', 'brevitas', 'onnx', 'flows', 'quantize', 'boards', 'hw'))\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], cwd=deploy, check=True, timeout=60)


# --- the deployment package --------------------------------------------------------------

def test_deploy_folder_holds_spec_driver_readme_and_class_names(packaged):
    out, result = packaged
    deploy = out / "deploy"
    spec = json.loads((deploy / "io_spec.json").read_text())
    assert spec["format"] == "bnn2fpga-io/1" and spec["model"] == "cbcnn-mnist"
    assert (spec["board"], spec["part"], spec["finn_board"], spec["clock_mhz"]) == \
        ("pynq-z2", "xc7z020clg400-1", "Pynq-Z2", 100.0)
    assert spec["bitfile"] is None
    pkg = deploy / "bnn2fpga_driver"
    for f in sorted(DRIVER_SRC.glob("*.py")) + SHARED:
        assert (pkg / f.name).read_bytes() == f.read_bytes(), f.name
    names = (deploy / "class_names.txt").read_text().splitlines()
    assert names == spec["class_names"] == [str(d) for d in range(10)]
    readme = (deploy / "README.md").read_text()
    for word in ("classify", "validate", "benchmark", "--camera", "--simulate", "deploy.zip"):
        assert word in readme
    assert spec["input"]["quant"] == result.info["input_quant"]
    assert spec["head"] == result.info["sidecar"]["head"]
    assert spec["preprocessing"] == {"size": [28, 28], "luma": True, "equalize": False}


def test_io_spec_numbers_match_the_dataflow_model(packaged):
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp

    out, _ = packaged
    spec = json.loads((out / "deploy" / "io_spec.json").read_text())
    model = ModelWrapper(str(model_file(out, "package")))
    first, last = getCustomOp(model.graph.node[0]), getCustomOp(model.graph.node[-1])
    packing = _load_file(DRIVER_SRC / "packing.py", "_packing_under_test")
    inp, outp = spec["input"], spec["output"]
    assert inp["shape"] == list(first.get_normal_input_shape()) == [1, 28, 28, 1]
    assert inp["folded_shape"] == list(first.get_folded_input_shape())
    assert inp["datatype"] == model.get_tensor_datatype(model.graph.input[0].name).name == "UINT8"
    assert outp["shape"] == list(last.get_normal_output_shape()) == [1, 10]
    assert outp["folded_shape"] == list(last.get_folded_output_shape())
    assert outp["datatype"] == model.get_tensor_datatype(model.graph.output[0].name).name
    for side in (inp, outp):
        assert tuple(side["packed_shape"]) == packing.packed_shape(side["folded_shape"], side["datatype"])
    assert inp["host_shape"] == [1, 1, 28, 28]
    assert [(o["op"], o["perm"]) for o in inp["host_ops"]] == [("Transpose", [0, 2, 3, 1])]
    assert outp["host_ops"] == []


def test_deployed_preprocessing_is_bit_exact_with_training(packaged):
    from bnn2fpga.quantize import preprocess as train_pre

    board_pre = _load_file(packaged[0] / "deploy" / "bnn2fpga_driver" / "preprocess.py", "_board_preprocess")
    rng = np.random.default_rng(7)
    images = [rng.integers(0, 256, size=s, dtype=np.uint8) for s in [(41, 37, 3), (28, 28), (9, 50, 3), (64, 64, 1)]]
    for settings in ({"size": [32, 32], "luma": True, "equalize": True}, {"size": [28, 28], "luma": True, "equalize": False},
                     {"size": [20, 24], "luma": False, "equalize": True}):
        if not settings["luma"]:
            batch = [im if im.ndim == 3 and im.shape[-1] == 3 else np.repeat(im.reshape(*im.shape[:2], 1), 3, -1)
                     for im in images]
        else:
            batch = images
        a = train_pre.Preprocessing.from_dict(settings)(batch)
        b = board_pre.Preprocessing.from_dict(settings)(batch)
        assert a.dtype == b.dtype == np.uint8 and np.array_equal(a, b)


# --- end to end on the simulated accelerator ---------------------------------------------

def test_simulated_driver_gives_pytorch_outputs_and_labels(drv, sim):
    import torch

    from bnn2fpga.quantize.export import accelerator_part, load_for_export
    from bnn2fpga.quantize.registry import get_spec

    images, _ = _digits(4)
    x = get_spec("cbcnn-mnist").preprocessing(images).astype(np.float32)
    model, _ = load_for_export("cbcnn-mnist", None)  # the weights the session build exported
    model.set_deploy_order(True)
    with torch.no_grad():
        ref = accelerator_part(model)(torch.from_numpy(x)).numpy()  # the accelerator's integers
        logits = model(torch.from_numpy(x)).numpy()

    clf = drv.runtime.Classifier(drv.deploy, sim)
    xb = clf.preprocess(images)
    assert np.array_equal(xb, x.astype(np.uint8))  # the board's preprocessing of the raw images
    acc = clf.run(xb.astype(np.float32))
    assert np.array_equal(acc.reshape(len(x), -1), ref)  # integer outputs, bit for bit
    ours = clf.logits(acc)
    np.testing.assert_allclose(ours, logits, rtol=1e-5, atol=1e-5)
    preds = clf.classify(list(images), batch=3)  # batches of 3 + 1 frames
    assert [p.index for p in preds] == list(np.argmax(logits, axis=1))
    assert [p.label for p in preds] == [str(i) for i in np.argmax(logits, axis=1)]
    assert all(0 < p.score <= 1 for p in preds)


def test_validate_and_classify_commands_on_image_files(drv, packaged, tmp_path, capsys):
    from PIL import Image

    images, labels = _digits(5)
    folder = tmp_path / "labeled"
    files = []
    for i, (img, lab) in enumerate(zip(images, labels)):
        (folder / str(lab)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / str(lab) / f"{i}.png")
        files.append(folder / str(lab) / f"{i}.png")
    csv = tmp_path / "cm.csv"
    common = ["--package", str(drv.deploy), "--simulate", str(packaged[0])]
    assert drv.main.main(["validate", str(folder), "--batch", "2", "--csv", str(csv), *common]) == 0
    printed = capsys.readouterr().out
    rows = [line.split(",") for line in csv.read_text().splitlines()]
    assert rows[0] == ["true \\ predicted", *[str(d) for d in range(10)]]
    matrix = np.array([[int(v) for v in r[1:]] for r in rows[1:]])
    assert matrix.sum() == 5 and list(matrix.sum(axis=1)) == list(np.bincount(labels, minlength=10))
    assert f"top-1 accuracy: {np.trace(matrix) / 5:.2%} ({np.trace(matrix)}/5)" in printed
    assert drv.main.main(["classify", str(files[0]), *common]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith(f"{files[0]}: ") and "FPS" in line


def _fake_pynq(monkeypatch, sim, log: list, fclk0_mhz: float = 50.0) -> types.SimpleNamespace:
    """A fake PYNQ whose 'hardware' is the simulated accelerator; returns its PS clocks."""

    class Buffer(np.ndarray):
        def flush(self):
            log.append("flush")

        def invalidate(self):
            log.append("invalidate")

    buffers: dict[int, Buffer] = {}

    def allocate(shape, dtype, cacheable=True):
        buf = np.zeros(shape, dtype).view(Buffer)
        buf.device_address = 0x1_0000_0000 * (len(buffers) + 1) + 0x1000
        buffers[buf.device_address] = buf
        return buf

    class IODMA:
        def __init__(self, name):
            self.name, self.regs = name, {0x00: 0x4}

        def write(self, off, value):
            log.append((self.name, off, value))
            self.regs[off] = value
            if off == 0x00 and value == 1 and self.name == "idma0":
                od = overlay.odma0
                assert od.regs[0x00] == 1, "the output DMA must be started before the input DMA"
                addr = lambda d: d.regs[0x10] | d.regs[0x14] << 32  # noqa: E731
                n = self.regs[0x1C]
                src, dst = buffers[addr(self)], buffers[addr(od)]
                dst[:n] = np.frombuffer(sim.execute(np.asarray(src[:n]).tobytes(), n), np.uint8).reshape(n, -1)
                od.regs[0x00] = 0x2 | 0x4

        def read(self, off):
            return self.regs.get(off, 0)

    class Overlay:
        def __init__(self, path, download=True):
            log.append(("overlay", Path(path).name))
            self.ip_dict = {"idma0": {}, "odma0": {}}
            self.idma0, self.odma0 = IODMA("idma0"), IODMA("odma0")

    overlay = None

    def make_overlay(path, download=True):
        nonlocal overlay
        overlay = Overlay(path, download)
        return overlay

    clocks = types.SimpleNamespace(fclk0_mhz=fclk0_mhz)
    pynq = types.ModuleType("pynq")
    pynq.Overlay, pynq.allocate = make_overlay, allocate
    ps = types.ModuleType("pynq.ps")
    ps.Clocks = clocks
    monkeypatch.setitem(sys.modules, "pynq", pynq)
    monkeypatch.setitem(sys.modules, "pynq.ps", ps)
    return clocks


def _package_with_bitstream(packaged, tmp_path, **spec_changes) -> Path:
    from bnn2fpga.flows import package

    out = tmp_path / "build"
    shutil.copytree(packaged[0] / "deploy", out / "deploy")
    _fake_finn_output(tmp_path / "finn", device="7z020")
    package.add_bitstream(out, tmp_path / "finn")
    if spec_changes:
        path = out / "deploy" / "io_spec.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), **spec_changes}))
    return out / "deploy"


def test_pynq_path_programs_the_iodmas_like_finn(drv, packaged, sim, tmp_path, monkeypatch):
    """A fake PYNQ whose 'hardware' is the simulated accelerator: register protocol and buffers."""
    spec = drv.io_spec.load(_package_with_bitstream(packaged, tmp_path))
    log: list = []
    clocks = _fake_pynq(monkeypatch, sim, log)

    acc = drv.accelerator.PynqAccelerator(spec)
    assert clocks.fclk0_mhz == 100.0 and log[0] == ("overlay", "finn-accel.bit")
    clf = drv.runtime.Classifier(spec, acc)
    images, _ = _digits(2)
    board = clf.classify(list(images), batch=2)
    simulated = drv.runtime.Classifier(spec, sim).classify(list(images), batch=2)
    assert [(p.index, p.score) for p in board] == [(p.index, p.score) for p in simulated]
    writes = [e for e in log if isinstance(e, tuple) and e[0] in ("idma0", "odma0")]
    assert [(d, off) for d, off, _ in writes] == [("odma0", o) for o in (0x10, 0x14, 0x1C, 0x00)] + \
        [("idma0", o) for o in (0x10, 0x14, 0x1C, 0x00)]
    assert [v for _, off, v in writes if off == 0x1C] == [2, 2]
    assert [v for _, off, v in writes if off == 0x14] == [2, 1]  # high address words of the buffers


@pytest.mark.parametrize("design_mhz", [125.0, 50.0])
def test_pynq_path_sets_fclk0_to_the_clocking_wizards_100_mhz_reference(drv, packaged, sim, tmp_path, monkeypatch,
                                                                        design_mhz):
    """FINN's Zynq shell makes the design clock from FCLK0 = 100 MHz; the design clock stays information."""
    spec = drv.io_spec.load(_package_with_bitstream(packaged, tmp_path, clock_mhz=design_mhz))
    clocks = _fake_pynq(monkeypatch, sim, [], fclk0_mhz=design_mhz)
    acc = drv.accelerator.PynqAccelerator(spec)
    assert clocks.fclk0_mhz == 100.0
    assert spec.clock_mhz == acc.design_clock_mhz == design_mhz


def test_design_without_a_dma_layout_verifies_but_stops_before_vivado(packaged, tmp_path, monkeypatch):
    """FINN asserting on a folding it cannot stream: no package, and the Vivado steps refuse to start."""
    import qonnx.custom_op.registry as registry
    from qonnx.core.modelwrapper import ModelWrapper

    from bnn2fpga.flows import steps

    real = registry.getCustomOp

    class Unstreamable:
        """FINN's op for the node, except that its input stream shape fails (as FINN's Reshape_rtl can)."""

        def __init__(self, node):
            self.real = real(node)

        def __getattr__(self, name):
            return getattr(self.real, name)

        def get_folded_input_shape(self, ind=0):
            raise AssertionError("PE must divide last axis")

    monkeypatch.setattr(registry, "getCustomOp", Unstreamable)
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy.zip").write_bytes(b"an older design")
    ctx = types.SimpleNamespace(out_dir=tmp_path, info={}, cfg=None)
    shutil.copy(packaged[0] / "dataflow_parent.onnx", tmp_path / "dataflow_parent.onnx")
    model = ModelWrapper(str(model_file(packaged[0], "package")))
    assert steps.step_package(model, ctx) is model
    assert ctx.info["package_error"].startswith(
        f"node '{model.graph.node[0].name}' ({model.graph.node[0].op_type}): FINN cannot give the shape of its "
        "input stream (PE must divide last axis)")
    assert not (tmp_path / "deploy").exists() and not (tmp_path / "deploy.zip").exists()
    first_vivado_step = next(s for s in steps.STEPS if "vitis_hls" in s.needs or "vivado" in s.needs)
    with pytest.raises(UserError, match="no deployment package, so no bitstream is built: node"):
        steps.require_tools(first_vivado_step, [], ctx.info)


def test_design_with_runtime_writeable_weights_is_refused(packaged, tmp_path):
    """The board driver loads no weights at run time: such a design gets no package, nor a packaged bitstream."""
    from onnx import helper
    from qonnx.core.modelwrapper import ModelWrapper

    from bnn2fpga.flows import package, steps

    out, result = packaged
    model = ModelWrapper(str(model_file(out, "package")))
    node = next(n for n in model.graph.node if n.op_type.startswith(("MVAU", "Thresholding")))
    node.attribute.append(helper.make_attribute("runtime_writeable_weights", 1))  # as a folding file sets it
    build = tmp_path / "build"
    shutil.copytree(out, build, ignore=shutil.ignore_patterns("deploy", "deploy.zip"))
    ctx = types.SimpleNamespace(out_dir=build, info=dict(result.info),
                                cfg=make_config(model="cbcnn-mnist", board="pynq-z2", out_dir=build, until="package"))
    steps.step_package(model, ctx)
    assert ctx.info["package_error"].startswith(f"node(s) {node.name} have runtime-writeable weights")
    assert not (build / "deploy").exists()

    # FINN's driver settings saying so stop the Vivado 'driver' step before the bitstream is packaged.
    shutil.copytree(out / "deploy", build / "deploy")
    spec = json.loads((build / "deploy" / "io_spec.json").read_text())
    for flag in ({"runtime_weights": True}, {"external_weights": True}):
        settings = _finn_settings(spec)
        settings["driver_information"].update(flag)
        finn = _fake_finn_output(tmp_path / f"finn-{next(iter(flag))}", "7z020", settings)
        with pytest.raises(UserError, match="needs .* weights loaded at run time; the board driver does not load"):
            package.add_bitstream(build, finn)
        assert not (build / "deploy.zip").exists() and not (build / "deploy" / "finn-accel.bit").exists()


# --- bad input: one line, non-zero exit ---------------------------------------------------

def _fake_finn_output(finn: Path, device: str, settings: dict | None = None) -> Path:
    (finn / "bitfile").mkdir(parents=True)
    (finn / "bitfile" / "finn-accel.bit").write_bytes(b"\x00\x09\x0f\xf0fake bitstream" * 64)
    (finn / "bitfile" / "finn-accel.hwh").write_text(FAKE_HWH.format(device=device))
    if settings is not None:
        (finn / "driver").mkdir(parents=True)
        (finn / "driver" / "settings.json").write_text(json.dumps(settings))
    return finn


def _finn_settings(spec: dict) -> dict:
    # What FINN's MakePYNQDriver writes for this accelerator (shapes with batch 1).
    i, o = spec["input"], spec["output"]
    return {"driver_information": {"io_shape_dict": {
        "idt": [f"DataType['{i['datatype']}']"], "odt": [f"DataType['{o['datatype']}']"],
        "ishape_normal": [i["shape"]], "ishape_folded": [i["folded_shape"]], "ishape_packed": [i["packed_shape"]],
        "oshape_normal": [o["shape"]], "oshape_folded": [o["folded_shape"]], "oshape_packed": [o["packed_shape"]],
        "idma_names": ["idma0"], "odma_names": ["odma0"]}}}


def test_vivado_driver_step_adds_the_bitstream_and_zips(drv, packaged, tmp_path):
    from bnn2fpga.flows import package

    out = tmp_path / "build"
    shutil.copytree(packaged[0] / "deploy", out / "deploy")
    spec = json.loads((out / "deploy" / "io_spec.json").read_text())
    finn = _fake_finn_output(tmp_path / "finn", "7z020", _finn_settings(spec))
    zipped = package.add_bitstream(out, finn)
    loaded = drv.io_spec.load(out / "deploy")
    bit = finn / "bitfile" / "finn-accel.bit"
    assert loaded.bitfile["sha256"] == hashlib.sha256(bit.read_bytes()).hexdigest()
    assert drv.io_spec.check_bitfile(loaded) == out / "deploy" / "finn-accel.bit"
    names = zipfile.ZipFile(zipped).namelist()
    for f in ("deploy/io_spec.json", "deploy/finn-accel.bit", "deploy/finn-accel.hwh", "deploy/README.md",
              "deploy/class_names.txt", "deploy/bnn2fpga_driver/__main__.py", "deploy/bnn2fpga_driver/preprocess.py"):
        assert f in names

    # FINN's own driver settings disagreeing with io_spec.json stop the step.
    bad = _finn_settings(spec)
    bad["driver_information"]["io_shape_dict"]["oshape_folded"] = [[1, 5, 2]]
    shutil.rmtree(finn)
    _fake_finn_output(finn, "7z020", bad)
    with pytest.raises(UserError, match="disagree on the output folded shape"):
        package.add_bitstream(out, finn)


def test_bitstream_from_another_build_or_part_is_refused(drv, packaged, tmp_path):
    from bnn2fpga.flows import package

    out = tmp_path / "build"
    shutil.copytree(packaged[0] / "deploy", out / "deploy")
    package.add_bitstream(out, _fake_finn_output(tmp_path / "finn", "7z010"))
    spec = drv.io_spec.load(out / "deploy")
    with pytest.raises(drv.errors.DriverError, match=r"built for part 7z010clg400-1, but .* expects xc7z020") as e:
        drv.io_spec.check_bitfile(spec)
    assert "\n" not in str(e.value)
    (out / "deploy" / "finn-accel.bit").write_bytes(b"another build")
    with pytest.raises(drv.errors.DriverError, match="different builds"):
        drv.io_spec.check_bitfile(spec)
    (out / "deploy" / "finn-accel.bit").unlink()
    with pytest.raises(drv.errors.DriverError, match="missing from the package"):
        drv.io_spec.check_bitfile(spec)


def test_package_for_another_board_is_refused(drv, monkeypatch):
    spec = drv.io_spec.load(drv.deploy)
    with pytest.raises(drv.errors.DriverError, match=r"built for pynq-z2 \(part xc7z020clg400-1\), not for 'zcu104'"):
        drv.io_spec.check_board(spec, "zcu104")
    drv.io_spec.check_board(spec, "Pynq-Z2")
    monkeypatch.setenv("BOARD", "ZCU104")
    with pytest.raises(drv.errors.DriverError, match="this board is 'ZCU104'"):
        drv.io_spec.check_board(spec, on_board=True)
    monkeypatch.setenv("BOARD", "Pynq-Z2")
    monkeypatch.setattr(drv.io_spec.platform, "machine", lambda: "aarch64")
    with pytest.raises(drv.errors.DriverError, match="CPU is armv7l, but this machine is aarch64"):
        drv.io_spec.check_board(spec, on_board=True)


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.update(format="other/2"), "field 'format': 'other/2' is not 'bnn2fpga-io/1'"),
    (lambda s: s["input"].pop("folded_shape"), "field 'input.folded_shape': missing"),
    (lambda s: s["output"].update(packed_shape=[1, 10, 3]), "field 'output.packed_shape'"),
    (lambda s: s["input"].update(datatype="FLOAT32"), "field 'input.datatype'.*not supported"),
    (lambda s: s.update(class_names=["a"]), "field 'head.scale': expected 1 numbers"),
    (lambda s: s.update(link={"kind": "usb"}), "field 'link.kind': 'usb' is neither"),
    (lambda s: s.update(link={"kind": "serial", "baud": 5}), "field 'link.baud': 5 is not a serial rate"),
    (lambda s: s.update(link={"kind": "serial"}), "field 'link.baud': missing"),
])
def test_broken_io_spec_is_one_line_naming_the_field(drv, tmp_path, edit, message):
    spec = json.loads((drv.deploy / "io_spec.json").read_text())
    edit(spec)
    (tmp_path / "io_spec.json").write_text(json.dumps(spec))
    with pytest.raises(drv.errors.DriverError, match=message) as e:
        drv.io_spec.load(tmp_path)
    assert "\n" not in str(e.value) and "io_spec.json" in str(e.value)


def test_accelerator_that_does_not_match_the_package_is_refused(drv, sim):
    assert sim.io_signature["dataflow_sha256"] == drv.io_spec.load(drv.deploy).dataflow_sha256
    sig = dict(sim.io_signature, output_datatype="INT16")
    other = types.SimpleNamespace(io_signature=sig, execute=lambda data, batch: b"")
    with pytest.raises(drv.errors.DriverError, match="does not match .*output datatype INT16"):
        drv.runtime.Classifier(drv.deploy, other)
    other.io_signature = dict(sim.io_signature, dataflow_sha256="0" * 64)  # same shapes, another build
    with pytest.raises(drv.errors.DriverError, match="another build's dataflow model"):
        drv.runtime.Classifier(drv.deploy, other)


def test_camera_without_opencv_or_device_is_one_line(drv, monkeypatch, capsys):
    args = ["classify", "--camera", "0", "--package", str(drv.deploy)]
    monkeypatch.setitem(sys.modules, "cv2", None)  # as if OpenCV were not installed
    assert drv.main.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("bnn2fpga_driver: --camera needs OpenCV") and err.count("\n") == 1

    class Closed:
        def __init__(self, index):
            pass

        def isOpened(self):  # noqa: N802 - OpenCV's name
            return False

        def release(self):
            pass

    monkeypatch.setitem(sys.modules, "cv2", types.SimpleNamespace(VideoCapture=Closed))
    assert drv.main.main(args) == 2
    assert capsys.readouterr().err == "bnn2fpga_driver: camera 0 cannot be opened (is a camera plugged in as /dev/video0?)\n"


def test_unreadable_image_and_missing_bitstream_are_one_line(drv, packaged, tmp_path, capsys):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(drv.errors.DriverError, match="cannot read image .*broken.png"):
        drv.images.read_image(bad)
    assert drv.main.main(["classify", str(bad), "--package", str(drv.deploy), "--simulate", str(packaged[0])]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    # On a machine without PYNQ and a package without a bitstream: say so, and point to --simulate.
    assert drv.main.main(["benchmark", "--package", str(drv.deploy)]) == 2
    assert "has no bitstream" in capsys.readouterr().err
    assert drv.main.main(["classify", str(tmp_path / "nope.png"), "--package", str(drv.deploy)]) == 2
    assert "no such file" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["benchmark", "--board", "zcu104"], "was built for pynq-z2 (part xc7z020clg400-1), not for 'zcu104'"),
    (["benchmark", "--package", "/no/such/package"], "no deployment package at /no/such/package"),
    (["benchmark", "--serial", "/dev/ttyUSB9"], "reached by DMA on the board, not over a serial line"),
    (["benchmark", "--serial", "/dev/ttyUSB9", "--simulate", "/tmp"], "give --simulate or --serial, not both"),
])
def test_cli_errors_are_one_line_without_traceback(packaged, args, message):
    proc = subprocess.run([sys.executable, "-m", "bnn2fpga_driver", *args], cwd=packaged[0] / "deploy",
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith("bnn2fpga_driver: ") and message in proc.stderr and proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr and proc.stdout == ""

"""Tests for quantize.export (QONNX + sidecar) and quantize.postprocess (the host head).

The exported graph is checked bit for bit against the Brevitas model it came from.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bnn2fpga.hw import finn_env

finn_env.prepare()

from qonnx.core.modelwrapper import ModelWrapper  # noqa: E402
from qonnx.core.onnx_exec import execute_onnx  # noqa: E402
from qonnx.util.cleanup import cleanup_model  # noqa: E402

from bnn2fpga.quantize import export, postprocess  # noqa: E402
from bnn2fpga.quantize.data.idx import MNIST_CLASS_NAMES  # noqa: E402

NAME = "cbcnn-mnist"
SHAPE = (1, 1, 28, 28)


# Small tensors: one torch thread is faster, and much faster when the CPUs are shared.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("export")
    result = export.export_model(NAME, out_dir / "m.onnx")
    return out_dir, result


@pytest.fixture(scope="module")
def qonnx_model(exported):
    out_dir, _ = exported
    return cleanup_model(ModelWrapper(str(out_dir / "m.onnx")))


@pytest.fixture(scope="module")
def torch_model():
    model, info = export.load_for_export(NAME, None)
    assert info == {"trained": False}
    model.set_deploy_order(True)
    return model


@pytest.fixture(scope="module")
def inputs():
    gen = torch.Generator().manual_seed(1234)
    return [torch.randint(0, 256, SHAPE, generator=gen).float() for _ in range(8)]


def _run(model: ModelWrapper, x: np.ndarray) -> np.ndarray:
    with finn_env.exact_execution():
        out = execute_onnx(model, {model.graph.input[0].name: x})
    return out[model.graph.output[0].name]


@pytest.fixture(scope="module")
def qonnx_outputs(qonnx_model, inputs):
    return [_run(qonnx_model, x.numpy()) for x in inputs]


# --- files and sidecar ----------------------------------------------------------------------


def test_export_writes_onnx_and_sidecar(exported):
    out_dir, result = exported
    assert result.onnx == out_dir / "m.onnx"
    assert result.sidecar == out_dir / "m.json"
    # No temp folder, and no m.onnx.data: torch writes one, but the saved model embeds
    # its weights, so that file would be unused.
    assert {p.name for p in out_dir.iterdir()} == {"m.onnx", "m.json"}
    side = json.loads(result.sidecar.read_text())
    assert side["onnx_files"] == ["m.onnx"]


def test_exported_onnx_holds_its_weights(exported):
    import onnx

    _, result = exported
    assert export.external_data_files(result.onnx) == set()
    model = onnx.load(str(result.onnx))
    assert sum(np.prod(t.dims) for t in model.graph.initializer) > 400_000  # the weights are in the file


def test_sidecar_contents(exported):
    _, result = exported
    side = json.loads(result.sidecar.read_text())
    assert side["model"] == NAME
    assert side["format"] == "qonnx"
    assert side["input_shape"] == [1, 1, 28, 28]
    assert side["input_dtype"] == "UINT8"
    assert side["input_layout"] == "NCHW"
    assert side["class_names"] == list(MNIST_CLASS_NAMES)
    assert len(side["class_names"]) == 10
    assert isinstance(side["preprocessing"], dict)
    assert side["preprocessing"]["size"] == [28, 28]
    assert side["preprocessing"]["equalize"] is False
    head = side["head"]
    assert len(head["scale"]) == 10 and len(head["bias"]) == 10
    assert all(isinstance(v, float) for v in head["scale"] + head["bias"])
    assert side["trained"] is False


def test_sidecar_head_is_the_last_batchnorm(exported, torch_model):
    """scale = gamma / sqrt(var + eps), bias = beta - mean * scale, from the BN's own numbers."""
    _, result = exported
    head = json.loads(result.sidecar.read_text())["head"]
    bn = torch_model.head
    gamma, beta = bn.weight.detach().double().numpy(), bn.bias.detach().double().numpy()
    mean, var = bn.running_mean.double().numpy(), bn.running_var.double().numpy()
    scale = gamma / np.sqrt(var + bn.eps)
    np.testing.assert_allclose(head["scale"], scale, rtol=1e-5)
    np.testing.assert_allclose(head["bias"], beta - mean * scale, rtol=1e-5, atol=1e-5)


def test_exported_graph_is_the_accelerator_part(qonnx_model):
    ops = [n.op_type for n in qonnx_model.graph.node]
    assert ops[0] == "Quant"  # the UINT8 pixel quantizer
    assert ops[-1] in ("Gemm", "MatMul")  # the last dense layer; the head stays on the host
    assert "BatchNormalization" in ops
    assert qonnx_model.get_tensor_shape(qonnx_model.graph.input[0].name) == list(SHAPE)
    assert qonnx_model.get_tensor_shape(qonnx_model.graph.output[0].name) == [1, 10]
    # deploy order: BN -> sign -> MaxPool in the graph
    i = ops.index("MaxPool")
    assert ops[i - 2 : i] == ["BatchNormalization", "BipolarQuant"]


# --- bit-exactness --------------------------------------------------------------------------


def test_qonnx_matches_brevitas_bit_exact(qonnx_outputs, torch_model, inputs):
    acc_part = export.accelerator_part(torch_model)
    assert acc_part is torch_model.body
    for x, got in zip(inputs, qonnx_outputs):
        with torch.no_grad():
            ref = acc_part(x).numpy()
        assert got.shape == ref.shape == (1, 10)
        assert np.array_equal(got, ref), (got, ref)
        assert np.array_equal(got, np.round(got))  # integer accumulator
        # 256 products of +-1: even, within [-256, 256]
        assert np.all(np.abs(got) <= 256) and np.all(got % 2 == 0)


def test_outputs_depend_on_the_input(qonnx_outputs):
    assert len({o.tobytes() for o in qonnx_outputs}) > 1


def test_load_for_export_is_deterministic(torch_model, inputs):
    again, _ = export.load_for_export(NAME, None)
    for a, b in zip(torch_model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    assert not again.training


# --- host head ------------------------------------------------------------------------------


def test_apply_head_equals_full_model_logits(exported, qonnx_outputs, torch_model, inputs):
    _, result = exported
    head = json.loads(result.sidecar.read_text())["head"]
    for x, acc in zip(inputs, qonnx_outputs):
        logits = postprocess.apply_head(acc, head)
        with torch.no_grad():
            ref = torch_model(x).numpy()
        np.testing.assert_allclose(logits, ref, rtol=1e-5, atol=1e-4)
        assert np.array_equal(postprocess.top1(logits), ref.argmax(-1))


def test_apply_head_by_hand():
    acc = np.array([[2.0, -4.0, 6.0]])
    head = {"scale": [0.5, 2.0, -1.0], "bias": [1.0, 0.0, 3.0]}
    assert postprocess.apply_head(acc, head).tolist() == [[2.0, -8.0, -3.0]]
    assert postprocess.apply_head(acc, None).tolist() == acc.tolist()
    # the head changes the argmax (a negative scale flips the winner)
    assert postprocess.top1(acc).tolist() == [2]
    assert postprocess.top1(postprocess.apply_head(acc, head)).tolist() == [0]


def test_top1_first_maximum_wins():
    assert postprocess.top1(np.array([[1.0, 3.0, 3.0], [5.0, 5.0, 0.0]])).tolist() == [1, 0]


# --- errors ---------------------------------------------------------------------------------


def test_export_requires_onnx_suffix(tmp_path):
    with pytest.raises(export.ExportError, match=r"\.onnx"):
        export.export_model(NAME, tmp_path / "m.txt")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["m", "m.onnx.bak", "sub/m.ONNX"])
def test_export_qonnx_requires_onnx_suffix(tmp_path, torch_model, name):
    from bnn2fpga.quantize.registry import get_spec

    with pytest.raises(export.ExportError, match=r"\.onnx"):
        export.export_qonnx(torch_model, get_spec(NAME), tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_export_unknown_model(tmp_path):
    from bnn2fpga.quantize.registry import UnknownModelError

    with pytest.raises(UnknownModelError):
        export.export_model("no-such-model", tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_export_onto_an_existing_directory_is_refused(tmp_path, torch_model):
    from bnn2fpga.quantize.registry import get_spec

    (tmp_path / "m.onnx").mkdir()
    with pytest.raises(export.ExportError, match=r"m\.onnx: is a directory") as err:
        export.export_qonnx(torch_model, get_spec(NAME), tmp_path / "m.onnx")
    assert str(err.value).startswith(str(tmp_path / "m.onnx"))
    assert list(tmp_path.iterdir()) == [tmp_path / "m.onnx"]
    assert list((tmp_path / "m.onnx").iterdir()) == []
    # The sidecar's path is written too.
    (tmp_path / "n.json").mkdir()
    with pytest.raises(export.ExportError, match=r"n\.json: is a directory"):
        export.export_model(NAME, tmp_path / "n.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "n.json"]


def _fake_exporter(location: str):
    """Stands in for brevitas: writes an ONNX whose weights live in ``location``, plus the
    unused ``<name>.data`` torch leaves behind."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def fake(module, input_t=None, export_path=None, **kwargs):
        path = Path(export_path)
        weights = numpy_helper.from_array(np.arange(4096, dtype=np.float32), "w")
        graph = helper.make_graph(
            [helper.make_node("Add", ["x", "w"], ["y"])],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4096])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4096])],
            [weights],
        )
        (path.parent / (path.name + ".data")).write_bytes(b"stale torch weights")
        onnx.save_model(helper.make_model(graph), str(path), save_as_external_data=True,
                        all_tensors_to_one_file=True, location=location, size_threshold=0)

    return fake


@pytest.mark.parametrize("location", ["m.onnx.data", "weights.bin"])
def test_export_keeps_referenced_external_data_only(tmp_path, torch_model, monkeypatch, location):
    import brevitas.export
    import onnx
    from onnx import numpy_helper

    from bnn2fpga.quantize.registry import get_spec

    monkeypatch.setattr(brevitas.export, "export_qonnx", _fake_exporter(location))
    # What an earlier export of the same file left: replaced, or removed if now unused.
    (tmp_path / "m.onnx.data").write_bytes(b"from an older export")
    (tmp_path / "m.json").write_text(json.dumps({"format": "qonnx", "model": NAME,
                                                 "onnx_files": ["m.onnx", "m.onnx.data"]}))
    result = export.export_qonnx(torch_model, get_spec(NAME), tmp_path / "m.onnx")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(["m.json", "m.onnx", location])
    assert json.loads(result.sidecar.read_text())["onnx_files"] == sorted(["m.onnx", location])
    assert export.external_data_files(result.onnx) == {location}
    weights = onnx.load(str(result.onnx)).graph.initializer[0]
    np.testing.assert_array_equal(numpy_helper.to_array(weights), np.arange(4096, dtype=np.float32))


def test_export_prints_no_warnings(tmp_path):
    """brevitas warns twice while its exporter is imported (brevitas.fx deprecated,
    fast_hadamard_transform missing); both are harmless and silenced. A fresh interpreter,
    because the warnings come once per process, at import."""
    script = (
        "import warnings, sys\n"
        "warnings.simplefilter('always')\n"
        "from bnn2fpga.quantize.export import export_model\n"
        "export_model('cbcnn-mnist', sys.argv[1])\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "m.onnx")], capture_output=True,
                          text=True, env=env, cwd=next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file()), timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "fast_hadamard_transform" not in proc.stderr
    assert "brevitas.fx is deprecated" not in proc.stderr
    assert "Warning" not in proc.stderr, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.onnx"]

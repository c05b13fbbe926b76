"""The build as a careless or hostile user meets it: their files survive, stale inputs never
pass for fresh ones, corrupt files are rebuilt or named, exit codes are the promised ones."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch

from bnn2fpga.flows.cli import main
from bnn2fpga.flows.config import make_config
from bnn2fpga.errors import UserError
from bnn2fpga.flows.runner import load_state, model_file, run_build

QUIET = dict(log=lambda m: None)


def _mlp_onnx(folder, seed=0, external=None):
    """A small Brevitas BNN exported to ``folder/mlp.onnx``; weights in ``external`` when given."""
    import torch.nn as nn
    from brevitas.export import export_qonnx

    from bnn2fpga.quantize import layers

    torch.manual_seed(seed)
    model = nn.Sequential(layers.pixel_input(), nn.Flatten(), layers.binary_linear(16, 8), nn.BatchNorm1d(8),
                          layers.binary_act(), layers.binary_linear(8, 4))
    with torch.no_grad():
        model[3].running_mean.uniform_(-3, 3)
    model.eval()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "mlp.onnx"
    export_qonnx(model, input_t=torch.zeros(1, 1, 4, 4), export_path=str(path))
    if external:
        proto = onnx.load(str(path))
        for stale in folder.glob("mlp.onnx.data"):
            stale.unlink()
        onnx.save_model(proto, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=external, size_threshold=0)
    return path


# --- the tool deletes only what it created ------------------------------------------------


def test_input_inside_a_foreign_out_folder_is_refused_and_kept(tmp_path, capsys):
    proj = tmp_path / "proj"
    onnx_path = _mlp_onnx(proj / "qonnx")
    (proj / "qonnx" / "mlp.json").write_text(json.dumps({"class_names": list("abcd")}))
    before = {p: p.read_bytes() for p in (proj / "qonnx").iterdir()}
    code = main(["build", "--onnx", str(onnx_path), "--out", str(proj), "--until", "export"])
    err = capsys.readouterr().err
    assert code == 2 and "not made by bnn2fpga" in err and err.count("\n") == 1
    assert {p: p.read_bytes() for p in (proj / "qonnx").iterdir()} == before


def test_existing_folder_that_is_not_a_build_is_left_untouched(tmp_path, capsys):
    out = tmp_path / "mine"
    for rel in ("qonnx/keep.onnx", "deploy/notes.txt", "deploy.zip"):
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text("user data")
    assert main(["build", "cbcnn-mnist", "--out", str(out), "--until", "export"]) == 2
    assert "refusing to write into it" in capsys.readouterr().err
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
        "deploy", "deploy.zip", "deploy/notes.txt", "qonnx", "qonnx/keep.onnx"]


def test_out_that_is_a_file_is_exit_2(tmp_path, capsys):
    target = tmp_path / "file.txt"
    target.write_text("x")
    assert main(["build", "cbcnn-mnist", "--out", str(target)]) == 2
    assert "is a file" in capsys.readouterr().err and target.read_text() == "x"


def test_an_empty_folder_becomes_a_marked_build(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    run_build(make_config(onnx=_mlp_onnx(tmp_path / "u"), out_dir=out, until="export"), **QUIET)
    assert (out / ".bnn2fpga-build").is_file()
    # and a later build into the same folder is accepted
    run_build(make_config(onnx=_mlp_onnx(tmp_path / "u"), out_dir=out, until="export"), **QUIET)


def test_own_exported_model_as_input_survives(tmp_path):
    out = tmp_path / "b"
    run_build(make_config(onnx=_mlp_onnx(tmp_path / "u"), out_dir=out, until="export"), **QUIET)
    own = out / "qonnx" / "model.onnx"
    result = run_build(make_config(onnx=own, out_dir=out, until="qonnx_to_finn"), **QUIET)
    assert own.is_file() and onnx.load(str(own)).graph.node
    assert "qonnx_to_finn" in result.done


# --- a step's key covers every byte it reads --------------------------------------------


def test_weights_in_an_external_file_of_any_name_are_part_of_the_key(tmp_path):
    src = _mlp_onnx(tmp_path / "u", seed=0, external="weights.bin")
    out = tmp_path / "b"
    run_build(make_config(onnx=src, out_dir=out, until="export"), **QUIET)
    _mlp_onnx(tmp_path / "u", seed=1, external="weights.bin")  # same .onnx layout, new weights
    again = run_build(make_config(onnx=src, out_dir=out, until="export"), **QUIET)
    assert again.ran == ["export"]
    got = onnx.load(str(model_file(out, "export")))
    want = onnx.load(str(src))
    w = next(i.name for i in want.graph.initializer if i.dims and len(i.dims) == 2)
    assert np.array_equal(onnx.numpy_helper.to_array(next(i for i in got.graph.initializer if i.name == w)),
                          onnx.numpy_helper.to_array(next(i for i in want.graph.initializer if i.name == w),
                                                     base_dir=str(tmp_path / "u")))


def test_a_changed_sidecar_reruns_the_export(tmp_path):
    src = _mlp_onnx(tmp_path / "u")
    side = src.with_suffix(".json")
    side.write_text(json.dumps({"class_names": ["a", "b", "c", "d"]}))
    out = tmp_path / "b"
    run_build(make_config(onnx=src, out_dir=out, until="export"), **QUIET)
    side.write_text(json.dumps({"class_names": ["w", "x", "y", "z"]}))
    again = run_build(make_config(onnx=src, out_dir=out, until="export"), **QUIET)
    assert again.ran == ["export"] and again.info["sidecar"]["class_names"] == ["w", "x", "y", "z"]


def test_corrupt_sidecar_names_the_file(tmp_path, capsys):
    src = _mlp_onnx(tmp_path / "u")
    src.with_suffix(".json").write_text("{not json")
    assert main(["build", "--onnx", str(src), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "mlp.json" in err and "not valid JSON" in err and err.count("\n") == 1
    assert not (tmp_path / "b").exists()  # inputs are checked before the out folder is made


def test_external_data_outside_the_model_folder_is_refused(tmp_path):
    src = _mlp_onnx(tmp_path / "u", external="weights.bin")
    proto = onnx.load(str(src), load_external_data=False)
    for t in proto.graph.initializer:
        for entry in t.external_data:
            if entry.key == "location":
                entry.value = "../elsewhere.bin"
    onnx.save(proto, str(src))
    with pytest.raises(UserError, match="outside the ONNX file's folder"):
        make_config(onnx=src, out_dir=tmp_path / "b")


@pytest.mark.parametrize("kind", ["symlink to /dev/zero", "fifo"])
def test_external_data_that_is_not_a_regular_file_is_refused_at_once(tmp_path, kind):
    src = _mlp_onnx(tmp_path / "u", external="mlp.onnx.data")
    data = tmp_path / "u" / "mlp.onnx.data"
    data.unlink()
    if kind == "fifo":
        os.mkfifo(data)  # reading it would block for ever
    else:
        data.symlink_to("/dev/zero")  # hashing it would never end
    code = f"from bnn2fpga.flows.config import make_config; make_config(onnx={str(src)!r}, out_dir={str(tmp_path / 'b')!r})"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode != 0
    assert ("symbolic link" if kind != "fifo" else "not a regular file") in res.stderr.splitlines()[-1]


def test_a_zero_byte_onnx_is_exit_2(tmp_path, capsys):
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    assert main(["build", "--onnx", str(empty), "--out", str(tmp_path / "b")]) == 2
    assert "empty.onnx" in capsys.readouterr().err


# --- saved step files are checked before reuse ---------------------------------------------


def test_truncated_and_corrupted_step_files_are_rebuilt(mnist_build, tmp_path):
    cfg, _ = mnist_build
    out = tmp_path / "b"
    shutil.copytree(cfg.out_dir, out)
    est = model_file(out, "estimate")
    est.write_bytes(est.read_bytes()[:100])  # truncated
    notes: list[str] = []
    again = run_build(make_config(model="cbcnn-mnist", out_dir=out, until="estimate"), log=notes.append)
    assert again.ran == ["estimate"] and any("estimate.onnx changed" in n for n in notes)
    spec = model_file(out, "specialize_layers")
    raw = bytearray(spec.read_bytes())
    raw[len(raw) // 2: len(raw) // 2 + 16] = os.urandom(16)  # still loads, but is not what was written
    spec.write_bytes(bytes(raw))
    again = run_build(make_config(model="cbcnn-mnist", out_dir=out, until="estimate"), **QUIET)
    assert again.ran[0] == "specialize_layers"


def test_build_state_of_another_shape_is_a_fresh_build(tmp_path):
    src = _mlp_onnx(tmp_path / "u")
    out = tmp_path / "b"
    run_build(make_config(onnx=src, out_dir=out, until="export"), **QUIET)
    (out / "build_state.json").write_text("[1, 2, 3]")
    assert load_state(out) == {}
    assert run_build(make_config(onnx=src, out_dir=out, until="export"), **QUIET).ran == ["export"]


def test_report_json_of_another_shape_is_exit_2_naming_it(tmp_path, capsys):
    (tmp_path / "b" / "report").mkdir(parents=True)
    (tmp_path / "b" / "report" / "report.json").write_text("[]")
    assert main(["report", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "report.json holds a JSON list" in err and err.count("\n") == 1


# --- folding: stale files fail, missed targets are said ------------------------------------


def test_folding_file_naming_unknown_layers_fails(mnist_build, tmp_path, capsys):
    cfg, _ = mnist_build
    out = tmp_path / "b"
    shutil.copytree(cfg.out_dir, out)
    fold = json.loads((out / "folding.json").read_text())
    stale = {k.replace("MVAUXnor_rtl", "MVAU_hls"): v for k, v in fold.items()}
    (tmp_path / "stale.json").write_text(json.dumps(stale))
    code = main(["build", "cbcnn-mnist", "--out", str(out), "--folding", str(tmp_path / "stale.json"),
                 "--until", "folding"])
    err = capsys.readouterr().err
    assert code == 2 and "MVAU_hls_0" in err and "does not have" in err


def test_folding_pe_that_does_not_divide_is_exit_2(mnist_build, tmp_path, capsys):
    cfg, _ = mnist_build
    out = tmp_path / "b"
    shutil.copytree(cfg.out_dir, out)
    fold = json.loads((out / "folding.json").read_text())
    first = next(k for k in fold if k.startswith("MVAUXnor_rtl"))
    fold[first]["PE"] = 7  # no layer of CBCNN has a multiple of 7 output channels
    (tmp_path / "bad.json").write_text(json.dumps(fold))
    code = main(["build", "cbcnn-mnist", "--out", str(out), "--folding", str(tmp_path / "bad.json"),
                 "--until", "estimate"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "internal error" not in err and "divisable by PE" in err


def test_an_fps_target_out_of_reach_is_reported(mnist_build, tmp_path, capfd):
    cfg, _ = mnist_build
    out = tmp_path / "b"
    shutil.copytree(cfg.out_dir, out)
    code = main(["build", "cbcnn-mnist", "--out", str(out), "--fps", "1e9", "--until", "folding"])
    captured = capfd.readouterr()
    assert code == 0
    assert "FPS target not reached: --fps 1,000,000,000 asked" in captured.out + captured.err
    assert "target_missed" in load_state(out)["info"]["folding"]


# --- exit codes -------------------------------------------------------------------------------


@pytest.mark.parametrize("argv, needle", [
    (["--epochs", "0"], "--epochs must be >= 1"),
    (["--batch-size", "0"], "--batch-size must be"),
    (["--lr", "nan"], "--lr must be a finite number"),
    (["--limit", "0"], "--limit must be"),
])
def test_nonsense_training_settings_are_exit_2(argv, needle, capsys, tmp_path):
    assert main(["train", "cbcnn-mnist", "--dataset", "digits", "--out", str(tmp_path / "t"), *argv]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1


def test_dataset_with_other_classes_than_the_model_is_exit_2(capsys, tmp_path):
    assert main(["train", "cbcnn-gtsrb", "--dataset", "digits", "--out", str(tmp_path / "t"), "--epochs", "1"]) == 2
    assert "43" in capsys.readouterr().err


def test_verify_with_no_inputs_is_exit_2(capsys):
    assert main(["verify", "cbcnn-mnist", "--inputs", "0"]) == 2
    assert "--inputs must be >= 1" in capsys.readouterr().err


@pytest.mark.parametrize("fps", ["nan", "inf", "-5"])
def test_nonsense_fps_is_exit_2(fps, capsys, tmp_path):
    assert main(["build", "cbcnn-mnist", "--fps", fps, "--out", str(tmp_path / "b")]) == 2
    assert "--fps must be" in capsys.readouterr().err


def test_conv_without_kernel_shape_builds(tmp_path):
    """kernel_shape is optional in ONNX (it follows from the weights)."""
    import torch.nn as nn
    from brevitas.export import export_qonnx

    from bnn2fpga.quantize import layers

    model = nn.Sequential(layers.pixel_input(), layers.binary_conv(1, 4, 3), nn.BatchNorm2d(4),
                          layers.binary_act(), nn.Flatten(), layers.binary_linear(4 * 4 * 4, 3)).eval()
    path = tmp_path / "u" / "conv.onnx"
    path.parent.mkdir()
    export_qonnx(model, input_t=torch.zeros(1, 1, 6, 6), export_path=str(path))
    proto = onnx.load(str(path))
    for node in proto.graph.node:
        if node.op_type == "Conv":
            keep = [a for a in node.attribute if a.name != "kernel_shape"]
            del node.attribute[:]
            node.attribute.extend(keep)
    onnx.save(proto, str(path))
    result = run_build(make_config(onnx=path, out_dir=tmp_path / "b", until="streamline"), **QUIET)
    assert "streamline" in result.done


# --- found by hand on a clean clone (issue 15's probe) -------------------------------------


def test_train_out_that_is_a_file_or_a_foreign_folder_is_exit_2(tmp_path, capsys):
    afile = tmp_path / "afile.txt"
    afile.write_text("x")
    assert main(["train", "cbcnn-mnist", "--dataset", "digits", "--epochs", "1", "--out", str(afile)]) == 2
    assert "is a file" in capsys.readouterr().err and afile.read_text() == "x"
    mine = tmp_path / "td"
    mine.mkdir()
    (mine / "best.pt").write_text("my precious")
    assert main(["train", "cbcnn-mnist", "--dataset", "digits", "--epochs", "1", "--out", str(mine)]) == 2
    assert "not made by 'bnn2fpga train'" in capsys.readouterr().err
    assert (mine / "best.pt").read_text() == "my precious"


def test_export_keeps_a_users_files_beside_its_output(tmp_path, capsys):
    (tmp_path / "k.onnx.data").write_text("data")
    assert main(["export", "cbcnn-mnist", "--out", str(tmp_path / "k.onnx")]) == 0
    assert (tmp_path / "k.onnx.data").read_text() == "data"
    (tmp_path / "j.json").write_text('{"mine": true}')
    assert main(["export", "cbcnn-mnist", "--out", str(tmp_path / "j.onnx")]) == 2
    assert "not a sidecar of an earlier export" in capsys.readouterr().err
    assert (tmp_path / "j.json").read_text() == '{"mine": true}'


@pytest.mark.parametrize("value, needle", [(0, "whole number >= 1"), ("abc", "whole number >= 1"),
                                           (-16, "whole number >= 1")])
def test_folding_values_are_checked(mnist_build, tmp_path, capsys, value, needle):
    cfg, _ = mnist_build
    out = tmp_path / "b"
    shutil.copytree(cfg.out_dir, out)
    fold = json.loads((out / "folding.json").read_text())
    fold[next(k for k in fold if k.startswith("MVAUXnor_rtl"))]["PE"] = value
    (tmp_path / "f.json").write_text(json.dumps(fold))
    assert main(["build", "cbcnn-mnist", "--out", str(out), "--folding", str(tmp_path / "f.json"),
                 "--until", "estimate"]) == 2
    err = capsys.readouterr().err
    assert needle in err and "f.json" in err


def test_sidecar_class_names_must_match_the_outputs(tmp_path, capsys):
    src = _mlp_onnx(tmp_path / "u")  # 4 outputs
    src.with_suffix(".json").write_text(json.dumps({"class_names": ["a", "b"]}))
    assert main(["build", "--onnx", str(src), "--out", str(tmp_path / "b"), "--until", "export"]) == 2
    assert "'class_names' has 2 names but the network has 4 outputs" in capsys.readouterr().err


def test_another_design_in_the_same_folder_drops_the_old_report_and_package(mnist_build, tmp_path, capfd):
    cfg, _ = mnist_build
    out = tmp_path / "b"
    shutil.copytree(cfg.out_dir, out)
    assert (out / "report" / "report.json").exists() and (out / "deploy").exists()
    assert main(["build", "--onnx", str(_mlp_onnx(tmp_path / "u")), "--out", str(out), "--until", "export"]) == 0
    assert "estimate:" not in capfd.readouterr().out  # no figure of the old design is printed
    report = json.loads((out / "report" / "report.json").read_text())
    assert "performance" not in report and "layers" not in report  # only this build's step table
    assert not (out / "deploy").exists()


def test_a_corrupt_checkpoint_fails_before_the_build_folder_exists(tmp_path, capsys):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    assert main(["build", "cbcnn-mnist", "--ckpt", str(junk), "--out", str(tmp_path / "bj")]) == 2
    assert "junk.pt" in capsys.readouterr().err and not (tmp_path / "bj").exists()

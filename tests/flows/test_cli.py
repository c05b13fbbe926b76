"""The command line as a user meets it: tables, JSON, exit codes, one-line errors."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bnn2fpga.flows.cli import main

REPO = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
VENV = Path(sys.executable).parent.parent


def test_models_table_and_json(capsys):
    assert main(["models"]) == 0
    table = capsys.readouterr().out
    assert "cbcnn-gtsrb" in table and "587,222" in table and "1x32x32" in table and "UINT8" in table
    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["cbcnn-mnist"]["trainable_params"] == 480_404
    assert rows["cbcnn-gtsrb"]["binary_weight_bits"] == 585_600
    assert rows["cbcnn-gtsrb"]["classes"] == 43 and rows["cbcnn-gtsrb"]["aliases"] == ["cbcnn"]


def test_boards_table_and_json(capsys):
    assert main(["boards"]) == 0
    table = capsys.readouterr().out
    assert "pynq-z2" in table and "xc7z020clg400-1" in table and "53,200" in table
    assert main(["boards", "--json"]) == 0
    boards = {b["name"]: b for b in json.loads(capsys.readouterr().out)}
    assert boards["zcu104"]["resources"]["URAM"] == 96


@pytest.mark.parametrize("argv, needle", [
    (["build", "nope", "--board", "pynq-z2"], "valid models: "),
    (["build", "cbcnn", "--board", "nope"], "valid boards: "),
    (["verify", "cbcnn", "--ckpt", "/no/such.pt"], "checkpoint not found"),
    (["export", "nope", "--out", "x.onnx"], "unknown model 'nope'"),
    (["build"], "give a model name or --onnx"),
])
def test_user_errors_are_one_line_with_exit_2(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err


def test_make_bitstream_with_unknown_model_or_board_lists_valid_ones():
    for var, needle in (("MODEL=nope", "valid models: "), ("BOARD=nope", "valid boards: ")):
        args = ["make", "-s", "bitstream", "MODEL=cbcnn", "BOARD=pynq-z2", var, f"VENV={VENV}"]
        res = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300)
        assert res.returncode != 0 and needle in res.stderr, res.stderr
        assert ("cbcnn-gtsrb" if var.startswith("MODEL") else "pynq-z2") in res.stderr


def test_build_without_vivado_exits_3_naming_the_tool(mnist_build, capsys, tmp_path):
    import shutil

    cfg, _ = mnist_build
    out = tmp_path / "b"
    shutil.copytree(cfg.out_dir, out)  # the Vivado-free steps are reused
    code = main(["build", "cbcnn-mnist", "--board", "pynq-z2", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 3
    # Every layer is RTL: code generation runs here, and the first step that stops is Vivado's.
    assert "needs Vivado" in err and "Vitis HLS" not in err
    assert "make docker-bitstream MODEL=cbcnn-mnist BOARD=pynq-z2" in err
    assert "Produced so far" in err and err.count("\n") == 1
    assert (out / "report" / "report.html").exists()

"""The Docker route: the Dockerfile lints clean and the in-container command resolves."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
HADOLINT = Path(sys.executable).parent / "hadolint"


def _run(cmd, **kw):
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120, **kw)


def test_dockerfile_lints_clean():
    res = _run([str(HADOLINT), "--failure-threshold", "warning", "Dockerfile"])
    assert res.returncode == 0, res.stdout + res.stderr


def test_dockerfile_uses_the_shared_installer_and_pins_finn_deps():
    text = (REPO / "Dockerfile").read_text()
    assert "scripts/install.sh /opt/venv" in text  # the same installer as make setup
    assert "finn deps update" in text and "mvau.hpp" in text
    assert "\nUSER " in text  # not root


def test_in_container_command_resolves_to_a_bitstream_build():
    env = {**os.environ, "DRY_RUN": "1", "VIVADO_PATH": "/tools/Xilinx/Vivado/2024.2",
           "HLS_PATH": "/tools/Xilinx/Vitis/2024.2"}
    res = _run(["scripts/docker.sh", "bitstream", "bnn2fpga:test", "cbcnn", "pynq-z2"], env=env)
    assert res.returncode == 0, res.stderr
    cmd = res.stdout.split()
    assert f"{os.getuid()}:{os.getgid()}" in cmd  # outputs owned by the caller
    assert "XILINX_VIVADO=/tools/Xilinx/Vivado/2024.2" in cmd
    assert "XILINX_VITIS=/tools/Xilinx/Vitis/2024.2" in cmd  # 2024.2+: Vitis, not Vitis_HLS
    inner = cmd[cmd.index("bnn2fpga:test") + 1:]
    assert inner[:2] == ["make", "bitstream"]
    # What make would run inside the container, resolved against this checkout's Makefile.
    dry = _run(["make", "-n", *inner[1:]])
    assert dry.returncode == 0, dry.stderr
    assert "/opt/venv/bin/bnn2fpga build cbcnn" in dry.stdout and "--board pynq-z2" in dry.stdout


@pytest.mark.skipif(shutil.which("docker") is not None and subprocess.run(
    ["docker", "info"], capture_output=True).returncode == 0, reason="a Docker engine is running here")
def test_without_docker_engine_one_clear_line():
    res = _run(["scripts/docker.sh", "image", "bnn2fpga:test"])
    assert res.returncode == 3
    assert res.stderr.count("\n") == 1
    assert "Docker engine" in res.stderr or "not installed" in res.stderr


def test_entrypoint_names_missing_tools_and_still_runs(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("XILINX")}
    env["HOME"] = str(tmp_path / "home")
    env["FINN_BUILD_DIR"] = str(tmp_path / "finn")
    res = _run(["scripts/container-entry.sh", "echo", "ran"], env=env)
    assert res.returncode == 0 and res.stdout.strip() == "ran"
    assert "XILINX_VIVADO is not set" in res.stderr and "Vitis HLS" in res.stderr

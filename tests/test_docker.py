"""The Docker route: the Dockerfile lints clean and the scripts resolve to the right commands.

The real build and the in-container runs are `make docker-test` (scripts/docker-test.sh):
too slow for `make test`, and it needs a Docker engine.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
HADOLINT = Path(sys.executable).parent / "hadolint"
DOCKERFILE = (REPO / "Dockerfile").read_text()


def _run(cmd, **kw):
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120, **kw)


def _dry(*args, **env):
    """scripts/docker.sh in DRY_RUN mode: the docker command it would run, as words."""
    full = {k: v for k, v in os.environ.items()
            if k not in {"BASE_IMAGE", "TORCH_INDEX_URL", "WHEELS_URL", "FETCH_FINN_DEPS", "CA_BUNDLE",
                         "DOCKER_NETWORK", "VIVADO_PATH", "HLS_PATH", "FINN_DEPS_PATH", "CHECKOUT", "DOCKER_USER"}}
    full.update(DRY_RUN="1", **env)
    res = _run(["scripts/docker.sh", *args], env=full)
    return res, shlex.split(res.stdout)


def test_dockerfile_lints_clean():
    res = _run([str(HADOLINT), "--failure-threshold", "warning", "Dockerfile"])
    assert res.returncode == 0, res.stdout + res.stderr


def test_dockerfile_uses_the_shared_installer_and_pins_finn_deps():
    assert "scripts/install.sh /opt/venv" in DOCKERFILE  # the same installer as make setup
    # FINN's dependencies at finn-plus' pinned commits, by FINN's own updater (finn deps update
    # demands Vivado first), and only when asked: GitHub may be out of reach.
    assert "external_dependencies.yaml" in DOCKERFILE and "mvau.hpp" in DOCKERFILE
    assert re.search(r"^ARG FETCH_FINN_DEPS=1$", DOCKERFILE, re.M)
    assert "\nUSER " in DOCKERFILE  # not root


def test_dockerfile_base_is_an_argument_with_the_pinned_default():
    # scripts/docker-test.sh reads this line to know the default base.
    assert re.findall(r"^ARG BASE_IMAGE=(.+)$", DOCKERFILE, re.M) == ["python:3.11.7-slim-bookworm"]
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", DOCKERFILE, re.M)
    # A plain Debian base gets Python 3.11 with venv and headers from apt.
    assert "python3.11-venv" in DOCKERFILE and "python3.11-dev" in DOCKERFILE


def test_dockerfile_takes_the_ca_bundle_as_a_secret_and_keeps_only_needed_compilers():
    assert "--mount=type=secret,id=ca_bundle" in DOCKERFILE
    assert not re.search(r"^(COPY|ADD)\b.*(\.crt|\.pem|ca_bundle)", DOCKERFILE, re.M)  # never baked in
    assert "build-essential" not in DOCKERFILE  # g++ + make (Verilator, XSI), perl (verilator front end)
    assert all(p in DOCKERFILE for p in ("g++=", "make=", "perl="))


def test_image_build_passes_build_args_and_the_ca_secret(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    res, cmd = _dry("image", "bnn2fpga:test", BASE_IMAGE="debian-py:12", TORCH_INDEX_URL="https://idx/cpu",
                    WHEELS_URL="http://127.0.0.1:8000/", FETCH_FINN_DEPS="0", CA_BUNDLE=str(ca),
                    DOCKER_NETWORK="host")
    assert res.returncode == 0, res.stderr
    assert cmd[:2] == ["env", "DOCKER_BUILDKIT=1"] and cmd[3] == "build"  # RUN --mount needs BuildKit
    for arg in ("BASE_IMAGE=debian-py:12", "TORCH_INDEX_URL=https://idx/cpu",
                "WHEELS_URL=http://127.0.0.1:8000/", "FETCH_FINN_DEPS=0"):
        assert cmd[cmd.index(arg) - 1] == "--build-arg"
    assert cmd[cmd.index(f"id=ca_bundle,src={ca}") - 1] == "--secret"
    assert cmd[cmd.index("--network") + 1] == "host"
    assert cmd[-1] == str(REPO) and cmd[cmd.index("-t") + 1] == "bnn2fpga:test"


def test_image_build_defaults_pass_nothing_extra():
    res, cmd = _dry("image", "bnn2fpga:test")
    assert res.returncode == 0, res.stderr
    assert "--build-arg" not in cmd and "--secret" not in cmd and "--network" not in cmd


def test_image_build_rejects_a_missing_ca_bundle(tmp_path):
    res, _ = _dry("image", "bnn2fpga:test", CA_BUNDLE=str(tmp_path / "nope.pem"))
    assert res.returncode == 2 and "CA_BUNDLE" in res.stderr


def test_in_container_command_resolves_to_a_bitstream_build():
    res, cmd = _dry("bitstream", "bnn2fpga:test", "cbcnn", "pynq-z2",
                    VIVADO_PATH="/tools/Xilinx/Vivado/2024.2", HLS_PATH="/tools/Xilinx/Vitis/2024.2")
    assert res.returncode == 0, res.stderr
    assert cmd[cmd.index("--user") + 1] == f"{os.getuid()}:{os.getgid()}"  # outputs owned by the caller
    assert cmd[cmd.index("-v") + 1] == f"{REPO}:/work"
    assert "XILINX_VIVADO=/tools/Xilinx/Vivado/2024.2" in cmd
    assert "XILINX_VITIS=/tools/Xilinx/Vitis/2024.2" in cmd  # 2024.2+: Vitis, not Vitis_HLS
    inner = cmd[cmd.index("bnn2fpga:test") + 1:]
    assert inner[:2] == ["make", "bitstream"]
    # What make would run inside the container, resolved against this checkout's Makefile.
    dry = _run(["make", "-n", *inner[1:]])
    assert dry.returncode == 0, dry.stderr
    assert "/opt/venv/bin/bnn2fpga build cbcnn" in dry.stdout and "--board pynq-z2" in dry.stdout


def test_bitstream_mounts_finn_deps_checkout_and_user_when_given(tmp_path):
    deps, checkout = tmp_path / "deps", tmp_path / "checkout"
    deps.mkdir()
    checkout.mkdir()
    res, cmd = _dry("bitstream", "bnn2fpga:test", "cbcnn", "pynq-z2",
                    FINN_DEPS_PATH=str(deps), CHECKOUT=str(checkout), DOCKER_USER="4321:4321")
    assert res.returncode == 0, res.stderr
    assert f"{deps}:/opt/finn-deps:ro" in cmd
    assert f"{checkout}:/work" in cmd and cmd[cmd.index("--user") + 1] == "4321:4321"


@pytest.mark.skipif(shutil.which("docker") is not None and subprocess.run(
    ["docker", "info"], capture_output=True).returncode == 0, reason="a Docker engine is running here")
def test_without_docker_engine_one_clear_line():
    res = _run(["scripts/docker.sh", "image", "bnn2fpga:test"])
    assert res.returncode == 3
    assert res.stderr.count("\n") == 1
    assert "Docker engine" in res.stderr or "not installed" in res.stderr


def _entry(tmp_path, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XILINX", "FINN_DEPS"))}
    env["HOME"] = str(tmp_path / "home")
    env["FINN_BUILD_DIR"] = str(tmp_path / "finn")
    env.update(extra)
    return _run(["scripts/container-entry.sh", "echo", "ran"], env=env)


def test_entrypoint_names_missing_tools_and_still_runs(tmp_path):
    res = _entry(tmp_path)
    assert res.returncode == 0 and res.stdout.strip() == "ran"
    assert "XILINX_VIVADO is not set" in res.stderr and "Vitis HLS" in res.stderr


def test_entrypoint_names_missing_board_files(tmp_path):
    deps = tmp_path / "deps"
    deps.mkdir()
    res = _entry(tmp_path, FINN_DEPS=str(deps))
    assert res.returncode == 0 and "board files: none under" in res.stderr
    (deps / "board_files").mkdir()
    assert "board files" not in _entry(tmp_path, FINN_DEPS=str(deps)).stderr


def test_docker_test_target_is_wired_but_not_part_of_make_test():
    assert _run(["bash", "-n", "scripts/docker-test.sh"]).returncode == 0
    dry = _run(["make", "-n", "docker-test"])
    assert dry.returncode == 0 and "scripts/docker-test.sh" in dry.stdout
    assert "docker-test" not in _run(["make", "-n", "test"]).stdout

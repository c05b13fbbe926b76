"""Board files: the shipped ones are valid and match FINN; bad ones fail clearly."""

from __future__ import annotations

import pytest
from board_files import renamed, write_board

from bnn2fpga.boards import (
    BOARDS_DIR,
    Board,
    BoardError,
    Resources,
    get_board,
    list_boards,
    load_board_file,
)

SHIPPED = ["kv260", "pynq-z1", "pynq-z2", "ultra96-v2", "ulx3s-45f", "ulx3s-85f", "zcu104"]


def _write(tmp_path, data, stem="myboard"):
    return write_board(tmp_path, data, stem)


@pytest.fixture
def good():
    """A valid board definition (a copy of pynq-z2 renamed to match its file)."""
    return renamed("pynq-z2", "myboard")


def test_every_shipped_board_loads():
    boards = list_boards()
    assert [b.name for b in boards] == SHIPPED
    assert sorted(p.stem for p in BOARDS_DIR.glob("*.yaml")) == SHIPPED
    for board in boards:
        assert isinstance(board, Board)
        assert board.clock_mhz > 0
        assert board.resources.LUT > 0 and board.resources.DSP > 0


def test_pynq_z2_figures():
    board = get_board("pynq-z2")
    assert board.part == "xc7z020clg400-1"
    assert board.finn_board == "Pynq-Z2"
    assert board.shell_flow == "vivado_zynq"
    assert board.arch == "armv7l"
    assert board.resources == Resources(LUT=53200, FF=106400, BRAM36=140, URAM=0, DSP=220)
    assert board.resources.BRAM18 == 280
    assert board.clock_period_ns == pytest.approx(10.0)


def test_lookup_is_case_insensitive():
    assert get_board("PYNQ-Z2") == get_board("pynq-z2")
    assert get_board(" Ultra96-V2 ").name == "ultra96-v2"


def test_unknown_board_lists_valid_names():
    with pytest.raises(BoardError) as info:
        get_board("zedboard")
    msg = str(info.value)
    assert "unknown board 'zedboard'" in msg
    assert "valid boards: " + ", ".join(SHIPPED) in msg
    assert "\n" not in msg


def test_board_error_is_a_value_error():
    assert issubclass(BoardError, ValueError)


def test_to_dict_round_trips(tmp_path):
    for board in list_boards():
        path = _write(tmp_path, board.to_dict(), stem=board.name)
        assert load_board_file(path) == board
    assert get_board("zcu104").resources.as_dict() == {
        "LUT": 230400, "FF": 460800, "BRAM36": 312, "URAM": 96, "DSP": 1728,
    }


def test_finn_board_names_and_parts_match_finn():
    basic = pytest.importorskip("finn.util.basic")
    for board in list_boards():
        if board.is_ecp5:  # built by the open flow, not FINN's Vivado shell (tests/boards/test_ecp5_boards.py)
            continue
        assert board.finn_board in basic.pynq_part_map, board.name
        assert basic.pynq_part_map[board.finn_board] == board.part, board.name


def _assert_fails(path, *fragments):
    with pytest.raises(BoardError) as info:
        load_board_file(path)
    msg = str(info.value)
    assert str(path) in msg
    for fragment in fragments:
        assert fragment in msg
    assert "\n" not in msg
    return msg


def test_missing_field(tmp_path, good):
    del good["part"]
    _assert_fails(_write(tmp_path, good), "'part'", "missing")


def test_missing_resource_field(tmp_path, good):
    del good["resources"]["URAM"]
    _assert_fails(_write(tmp_path, good), "'resources.URAM'", "missing")


def test_negative_lut(tmp_path, good):
    good["resources"]["LUT"] = -1
    _assert_fails(_write(tmp_path, good), "'resources.LUT'", "negative")


def test_unknown_key(tmp_path, good):
    good["speed_grade"] = "-1"
    _assert_fails(_write(tmp_path, good), "'speed_grade'", "unknown key")


def test_unknown_resource_key(tmp_path, good):
    good["resources"]["BRAM"] = 140
    _assert_fails(_write(tmp_path, good), "'resources.BRAM'", "unknown key")


@pytest.mark.parametrize(
    "field, value",
    [
        ("clock_mhz", "fast"),
        ("clock_mhz", True),
        ("part", 7020),
        ("resources", [1, 2, 3]),
    ],
)
def test_wrong_type(tmp_path, good, field, value):
    good[field] = value
    _assert_fails(_write(tmp_path, good), f"'{field}'", "expected")


@pytest.mark.parametrize("value", ["lots", 1.5, True])
def test_wrong_resource_type(tmp_path, good, value):
    good["resources"]["DSP"] = value
    _assert_fails(_write(tmp_path, good), "'resources.DSP'", "integer")


@pytest.mark.parametrize("value", [0, -100, float("nan")])
def test_clock_must_be_positive(tmp_path, good, value):
    good["clock_mhz"] = value
    _assert_fails(_write(tmp_path, good), "'clock_mhz'", "positive")


def test_name_must_match_file_stem(tmp_path, good):
    _assert_fails(_write(tmp_path, good, stem="other"), "'name'", "other")


def test_bad_enum_values(tmp_path, good):
    good["shell_flow"] = "vivado"
    _assert_fails(_write(tmp_path, good), "'shell_flow'")
    good["shell_flow"] = "vivado_zynq"
    good["arch"] = "arm"
    _assert_fails(_write(tmp_path, good), "'arch'")


def test_not_a_mapping_or_not_yaml(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n", encoding="utf-8")
    _assert_fails(path, "mapping")
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed\n", encoding="utf-8")
    _assert_fails(path, "invalid YAML")
    _assert_fails(tmp_path / "absent.yaml", "cannot read")

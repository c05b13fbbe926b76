"""make bench's README blocks and its estimate-vs-synthesis table (benchmarks.readme, benchmarks.synth)."""
from __future__ import annotations

import json

import pytest

from bnn2fpga.benchmarks import synth
from bnn2fpga.benchmarks.readme import update_readme

README = """# title
text before
<!-- bench:start -->
old bench
<!-- bench:end -->
between
<!-- bench-synth:start -->
old synth
line two
<!-- bench-synth:end -->
after
"""


def test_only_the_named_block_is_replaced(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(README)
    update_readme("| new | table |\n", "bench-synth", readme)
    assert readme.read_text() == README.replace("old synth\nline two", "| new | table |")
    update_readme("fresh", "bench", readme)  # the other block, and a second rewrite, work the same way
    update_readme("again", "bench-synth", readme)
    assert readme.read_text() == README.replace("old bench", "fresh").replace("old synth\nline two", "again")


def test_an_empty_block_is_filled(tmp_path):
    """The markers as first added to README, with nothing between them yet."""
    readme = tmp_path / "README.md"
    readme.write_text(README.replace("old synth\nline two\n", ""))
    update_readme("row", "bench-synth", readme)
    assert readme.read_text() == README.replace("old synth\nline two", "row")


@pytest.mark.parametrize("text", [README.replace("<!-- bench-synth:end -->\n", ""),
                                  README.replace("<!-- bench-synth:start -->\n", ""),
                                  README + "<!-- bench-synth:start -->\nx\n<!-- bench-synth:end -->\n"])
def test_missing_or_repeated_markers_fail_and_leave_the_file(tmp_path, text):
    readme = tmp_path / "README.md"
    readme.write_text(text)
    with pytest.raises(ValueError, match="bench-synth:start"):
        update_readme("new", "bench-synth", readme)
    assert readme.read_text() == text


def test_the_repository_readme_has_both_blocks():
    from bnn2fpga.benchmarks.readme import README as repo_readme

    text = repo_readme.read_text()
    for name in ("bench", synth.MARKER):
        assert text.count(f"<!-- {name}:start -->") == 1 and text.count(f"<!-- {name}:end -->") == 1


def _row(model: str, levels: int) -> dict:
    return {"model": model, "board": "pynq-z2", "clock_mhz": 100.0, "fps": 1234.5, "bottleneck": "L0",
            "finn": {"LUT": 900.0, "BRAM_18K": 3.0}, "calibrated": {"LUT": 610.2, "BRAM_18K": 2.0},
            "yosys": {"LUT": 600, "FF": 400, "BRAM_18K": 2, "DSP": 0},
            "yosys_pct": {"LUT": 600 / 53200, "FF": 400 / 106400, "BRAM_18K": 2 / 280, "DSP": 0.0},
            "deepest": {"layer": "L0", "levels": levels}, "level_limit": 8,
            "too_deep": ["L0"] if levels > 8 else [], "no_rtl": [], "failed": [],
            "first": {"seconds": 700.0, "yosys_runs": 6, "load_before": [3.5, 2, 1], "load_after": [3, 2, 1]},
            "cached": {"seconds": 1.2, "yosys_runs": 0, "load_before": [3, 2, 1], "load_after": [3, 2, 1]},
            "cold": True, "syntheses": 6, "date": "2026-12-06 17:30 UTC", "layers": {}}


def test_table_rows_follow_the_model_order_and_keep_earlier_measurements(tmp_path):
    """A run that measured only some models still lists every model measured before."""
    (tmp_path / "cbcnn-gtsrb-pynq-z2.json").write_text(json.dumps(_row("cbcnn-gtsrb", 9)))
    (tmp_path / "cbcnn-mnist-pynq-z2.json").write_text(json.dumps(_row("cbcnn-mnist", 7)))
    table = synth.write_table(tmp_path)
    rows = [line for line in table.splitlines() if line.startswith("| cbcnn")]
    assert [r.split(" | ")[0] for r in rows] == ["| cbcnn-mnist", "| cbcnn-gtsrb"]
    assert "| L0: 9 / 8 | 1 |" in rows[1] and "| L0: 7 / 8 | 0 |" in rows[0]
    assert "11.7 min (cold, 6 of 6 syntheses run, load 3.5) / 1 s" in rows[0]
    assert "900 / 3 | 610 / 2 | 600 (1%)" in rows[0]
    assert [r["model"] for r in json.loads((tmp_path / "synth.json").read_text())] == ["cbcnn-mnist", "cbcnn-gtsrb"]
    assert (tmp_path / "synth.md").read_text() == table + "\n"

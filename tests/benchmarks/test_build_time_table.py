"""The build-time bench's bookkeeping: graph names with a board, and the before/after table of two runs."""

from __future__ import annotations

import pytest

from bnn2fpga.benchmarks.build_time import before_after, split_graph


def test_graph_names_carry_an_optional_board():
    assert split_graph("presb-net-18-deploy@zcu104") == ("presb-net-18-deploy", "zcu104")
    assert split_graph("presb-lite-1111") == ("presb-lite-1111", "pynq-z2")


def _run(code, rows):
    return {"date": "2026-12-06", "code": code, "graphs": [
        {"graph": g, "nodes": n, "cpu": cpu} for g, n, cpu in rows]}


def test_before_after_rows_pair_graphs_by_name_in_node_order_with_cpu_per_node():
    before = _run("old", [("big", 400, {"qonnx_to_finn": 80.0, "streamline": 100.0, "other_step": 20.0}),
                          ("small", 40, {"qonnx_to_finn": 4.0, "streamline": 4.0})])
    after = _run("new", [("small", 40, {"qonnx_to_finn": 1.0, "streamline": 1.0}),
                         ("big", 400, {"qonnx_to_finn": 8.0, "streamline": 30.0, "other_step": 2.0}),
                         ("only-after@zcu104", 700, {"streamline": 9.0})])
    lines = before_after(before, after).splitlines()
    assert lines[0] == "| graph | nodes | qonnx_to_finn | streamline | other | total CPU s | CPU s/node |"
    assert lines[2] == "| small | 40 | 4.0 -> 1.0 | 4.0 -> 1.0 | 0.0 -> 0.0 | 8.0 -> 2.0 | 0.200 -> 0.050 |"
    assert lines[3] == "| big | 400 | 80.0 -> 8.0 | 100.0 -> 30.0 | 20.0 -> 2.0 | 200.0 -> 40.0 | 0.500 -> 0.100 |"
    assert not any("only-after" in line for line in lines)  # no before: not in the table
    assert "old" in lines[-1] and "new" in lines[-1]


def test_a_missing_or_malformed_run_is_one_line_and_exit_2(tmp_path, capsys):
    from bnn2fpga.benchmarks.build_time import main

    good = tmp_path / "good.json"
    good.write_text('{"date": "d", "graphs": [{"graph": "g", "nodes": 3, "cpu": {"streamline": 1.0}}]}')
    bad = tmp_path / "bad.json"
    bad.write_text('{"graphs": [{"graph": "g"}]}')
    for first in (tmp_path / "missing.json", bad):
        assert main(["--before-after", str(first), str(good)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(first) in err
    assert main(["--before-after", str(good), str(good)]) == 0
    assert "| g | 3 | 1.0 -> 1.0 |" in capsys.readouterr().out


@pytest.mark.parametrize("graph", ["nope", "cbcnn-gtsrb@nope", "presb-lite-12"])
def test_an_unknown_graph_or_board_stops_before_any_build_with_one_line(graph, capsys):
    from bnn2fpga.benchmarks.build_time import main

    assert main(["--graphs", "presb-lite-1111", graph, "--no-warm-up"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and graph in err


def test_runs_without_nodes_or_with_text_seconds_are_refused_and_an_empty_one_is_a_header(tmp_path, capsys):
    from bnn2fpga.benchmarks.build_time import main

    empty = tmp_path / "empty.json"
    empty.write_text('{"graphs": []}')
    for bad in ('{"graphs": [{"graph": "g", "nodes": 0, "cpu": {}}]}',
                '{"graphs": [{"graph": "g", "nodes": 3, "cpu": {"streamline": "1.0"}}]}'):
        f = tmp_path / "bad.json"
        f.write_text(bad)
        assert main(["--before-after", str(f), str(empty)]) == 2
        assert "bad.json" in capsys.readouterr().err
    assert main(["--before-after", str(empty), str(empty)]) == 0
    assert capsys.readouterr().out.startswith("| graph | nodes |")


def test_exponents_leave_out_graphs_of_another_board():
    from bnn2fpga.benchmarks.build_time import fit_exponents

    rows = [{"graph": g, "nodes": n, "times": {"streamline": t}, "total_s": t}
            for g, n, t in (("a", 100, 1.0), ("b", 400, 4.0), ("b@zcu104", 400, 40.0))]
    k = fit_exponents(rows)
    assert abs(k["streamline"] - 1.0) < 1e-9 and abs(k["total"] - 1.0) < 1e-9

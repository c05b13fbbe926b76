"""Board files written by tests: a shipped board under another name, saved as YAML."""
from __future__ import annotations

from pathlib import Path

import yaml

from bnn2fpga.boards import get_board


def renamed(board: str, name: str) -> dict:
    """The shipped ``board``'s definition as data, renamed ``name`` (so it matches its file's stem)."""
    data = get_board(board).to_dict()
    data["name"] = name
    return data


def write_board(folder: Path, data: dict, stem: str) -> Path:
    """``data`` as ``folder/<stem>.yaml``, the way a user writes a board file."""
    path = Path(folder) / f"{stem}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path

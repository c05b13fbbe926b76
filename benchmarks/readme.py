"""The README blocks that benchmarks write: text between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``."""
from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def replace_block(text: str, name: str, block: str) -> str:
    """``text`` with the lines between the ``name`` markers replaced by ``block``.

    Raises ValueError when the markers are missing or repeated: a figure that silently goes
    nowhere would leave the README's old one standing.
    """
    pattern = re.compile(rf"(<!-- {re.escape(name)}:start -->\n)(?:.*?\n)?(<!-- {re.escape(name)}:end -->)", re.S)
    found = len(pattern.findall(text))
    if found != 1:
        raise ValueError(f"README needs exactly one '<!-- {name}:start -->' ... '<!-- {name}:end -->' block "
                         f"(found {found})")
    return pattern.sub(lambda m: m.group(1) + block.strip("\n") + "\n" + m.group(2), text)


def update_readme(block: str, name: str = "bench", readme: Path = README) -> None:
    """Rewrite the ``name`` block of ``readme`` (README.md) with ``block``."""
    readme.write_text(replace_block(readme.read_text(), name, block))

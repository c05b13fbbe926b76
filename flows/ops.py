"""What every flow entry point does before touching FINN: its environment, then our op types.

Registration is an explicit call here, not an import side effect of a lower layer:
``bnn2fpga.hw.finn_env`` knows FINN's quirks and nothing of our ops.
"""
from __future__ import annotations

from pathlib import Path

from bnn2fpga.hw import finn_env
from bnn2fpga.hw.finn_ops import register


def prepare() -> Path:
    """Make FINN usable without Vivado and register our op types; returns FINN's scratch folder."""
    scratch = finn_env.prepare()
    register()
    return scratch

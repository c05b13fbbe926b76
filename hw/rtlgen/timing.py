"""Logic depth in LUT levels: what one clock period allows, and what our datapath blocks cost.

A rule of thumb for 7-series -1 parts, shared by the generators (which place pipeline
registers so that no stage exceeds the limit) and by the synthesis stage (which checks the
synthesized netlists against the same limit, hw/synth/yosys.py ``logic_levels``).
"""
from __future__ import annotations

import math

#: Levels a carry block (CARRY4, four bits of an adder) adds to a path: CIN->COUT is ~0.1 ns
#: against ~1 ns for a LUT and its net, as hw/synth/yosys.py counts them.
CARRY4_LEVELS = 0.25


def max_levels(clock_mhz: float) -> int:
    """LUT levels that fit one clock period on a 7-series -1 part (a rule of thumb, not timing analysis).

    ~1 ns of the period goes to the flip-flops (clock-to-out ~0.5 ns, setup) and clock
    uncertainty; each level costs ~1.1 ns (LUT plus a typical net, DS187 and the usual
    0.5-1 ns per net). 100 MHz: 8 levels; congested designs route slower, so a path at the
    limit may still fail in Vivado.
    """
    return max(1, int((1000.0 / clock_mhz - 1.0) / 1.1))


#: The limit at the clock every Zynq board of the project runs (boards/*.yaml), for layers
#: generated without a board.
DEFAULT_MAX_LEVELS = max_levels(100.0)


def adder_levels(bits: int) -> float:
    """Levels of a ``bits``-wide adder or comparator: one LUT per bit in front of the carry chain."""
    return 1 + CARRY4_LEVELS * math.ceil(bits / 4)


def count_levels(n: int) -> int:
    """Levels of counting ``n`` bits (plus a constant): one LUT6 up to 5 inputs, a compressor tree beyond."""
    return 1 if n <= 5 else 1 + math.ceil(math.log(n / 5, 3))
